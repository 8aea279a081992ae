// What crosses between the HTTP/CLI threads and the engine thread: native structs only (no JSON).
// A client submits a GenerationRequest and reads RequestOutput chunks from its RequestStream
// (engine.h); detokenization and stop strings run on the client side (text_stream.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace densekv {

// As vLLM's SamplingParams. Validation (sampler.h: validate_sampling_params) throws
// InvalidArgumentError naming the parameter; the server turns that into a 400 with `param`.
struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy
  float top_p = 1.0f;               // (0, 1]
  int top_k = -1;                   // -1 or 0: off
  float min_p = 0.0f;               // [0, 1]
  std::optional<uint64_t> seed;     // per-request reproducible sampling
  float presence_penalty = 0.0f;    // [-2, 2]
  float frequency_penalty = 0.0f;   // [-2, 2]
  float repetition_penalty = 1.0f;  // > 0
  int max_tokens = 16;              // >= 1 (the server fills the remaining context when absent)
  std::vector<std::string> stop;    // stop strings, cut from the text (text_stream.h)
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  int logprobs = -1;  // -1: none; n >= 0: the chosen token plus the top n
};

enum class FinishReason { None, Stop, Length, Abort };
const char* finish_reason_name(FinishReason r);  // "", "stop", "length", "abort"

struct TokenLogprobs {
  int32_t token_id = 0;
  float logprob = 0.0f;                        // of the chosen token
  std::vector<std::pair<int32_t, float>> top;  // [n] most likely (id, logprob), best first
};

struct GenerationRequest {
  uint64_t id = 0;                  // unique per engine; assigned by Engine::submit when 0
  std::vector<int32_t> prompt_ids;  // non-empty, shorter than max_model_len
  SamplingParams params;
  std::vector<int32_t> eos_token_ids;  // the model's (generation_config / config / tokenizer)
};

// One chunk of a request's output: the tokens produced since the previous chunk.
struct RequestOutput {
  uint64_t id = 0;
  std::vector<int32_t> token_ids;  // new tokens (an eos / stop token id that ended it included)
  std::vector<TokenLogprobs> logprobs;       // [token_ids.size()] when params.logprobs >= 0
  FinishReason finish = FinishReason::None;  // set on the last chunk only
  std::string error;  // non-empty: the engine failed this request (finish Abort)
  // Filled on the last chunk:
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;  // prefix-cache hits
  int completion_tokens = 0;
  double queue_seconds = 0, ttft_seconds = 0, tpot_seconds = 0;
};

}  // namespace densekv
