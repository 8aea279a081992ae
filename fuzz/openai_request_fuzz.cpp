// libFuzzer target: the request parser of the server (src/server/openai.h) on arbitrary bytes, as
// the HTTP layer calls it for /v1/completions, /v1/chat/completions, /tokenize and /detokenize.
// It must return a request or throw ApiError (a 400 with a message), never crash, hang or leak a
// nlohmann exception. For parsed requests the context check runs too. The first byte picks the
// endpoint; the rest is the body.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0:
      case 1: {
        auto ep =
            data[0] % 4 == 0 ? densekv::Endpoint::Completions : densekv::Endpoint::ChatCompletions;
        densekv::ApiRequest r = densekv::parse_api_request(ep, body);
        int prompt_tokens = static_cast<int>(r.prompt_ids.size() + r.prompt_text.size() % 7);
        densekv::check_request_fits(r, prompt_tokens, 64, 512);
        break;
      }
      case 2:
        (void)densekv::parse_tokenize_request(body);
        break;
      default:
        (void)densekv::parse_detokenize_request(body);
        break;
    }
  } catch (const densekv::ApiError&) {
  }
  return 0;
}
