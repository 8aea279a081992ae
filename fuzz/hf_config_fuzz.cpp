// libFuzzer target: parse_model_config on arbitrary JSON must return a config or throw
// densekv::Error (UnsupportedModelError), never crash or leak a nlohmann exception.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "io/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    densekv::ModelConfig c = densekv::parse_model_config(j);
    (void)densekv::parameter_count(c);
    (void)densekv::kv_bytes_per_token_16bit(c);
  } catch (const densekv::Error&) {
  }
  return 0;
}
