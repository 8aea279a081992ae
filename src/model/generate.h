// Running one sequence through the model and its paged KV cache: all-position logits of a prompt
// (optionally in prefill chunks), and generation (prefill, then one decode step per token, each
// reading the cache through the block table). The engine's scheduler batches many sequences the
// same way later; this is what `densekv logits` / `densekv generate` and the golden tests use.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/llama.h"

namespace densekv {

// Logits [ids.size(), vocab] (row-major) of every prompt position. prefill_chunk > 0 runs the
// prompt in chunks of that many tokens, each attending to the cached earlier chunks.
std::vector<float> prompt_logits(LlamaModel& model, KvFormat kv_format,
                                 const std::vector<int32_t>& ids, int prefill_chunk = 0);

struct GenerateOptions {
  int max_tokens = 16;
  float temperature = 0.0f;  // 0: greedy
  uint64_t seed = 0;
  bool ignore_eos = false;
  int prefill_chunk = 0;  // 0: the whole prompt in one forward
};

struct GenerateResult {
  std::vector<int32_t> token_ids;  // generated tokens (an eos that stopped it included)
  std::string finish_reason;       // "stop" (eos) or "length"
  int prompt_tokens = 0;
  double prefill_seconds = 0;  // prompt forward(s) up to the first token
  double decode_seconds = 0;   // the decode steps
  int decode_steps = 0;
  double decode_bytes = 0;  // weight + KV bytes the decode steps read
};

GenerateResult generate(LlamaModel& model, KvFormat kv_format, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts);

// Picks the next token from fp32 logits: argmax at temperature 0, else a softmax sample.
int32_t sample_token(const float* logits, int vocab, float temperature, uint64_t& rng_state);

}  // namespace densekv
