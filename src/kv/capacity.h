// How much KV cache a memory budget holds for a model and a KV format: bytes per token, tokens,
// concurrent sequences of a given length, and the split of a budget into the main block pool and
// the 16-bit tail pool. Works from the model config alone (no weights).
#pragma once
#include <cstdint>
#include <string>

#include "io/hf_config.h"
#include "kv/kv_format.h"

namespace densekv {

// The plain 16-bit format that holds the tails of a quantized cache (and the "16-bit" baseline):
// fp16 for fp16 models, else bf16.
KvFormat kv_tail_format(DType model_dtype);

// Bytes of one block in the main pool (all layers, all kv heads) and of one tail block.
struct KvBlockBytes {
  int block_size = 0;  // tokens per block
  int64_t block = 0;   // one main-pool block, all layers and kv heads
  int64_t tail = 0;    // one 16-bit tail block, all layers and kv heads; 0 for plain formats
};
KvBlockBytes kv_block_bytes_all_layers(const ModelConfig& cfg, KvFormat f);

// At most this share of a KV budget goes to the 16-bit tails of the quantized formats.
constexpr double kMaxTailShare = 0.2;
// The pools a budget holds: quantized formats one tail per running sequence, up to max_num_seqs
// tails on at most kMaxTailShare of the budget (at least one), the rest main-pool blocks. Throws
// InvalidArgumentError when the budget cannot hold the tails plus one block.
struct KvPoolPlan {
  int64_t num_blocks = 0;
  int64_t num_tail_blocks = 0;
};
KvPoolPlan plan_kv_pools(const ModelConfig& cfg, KvFormat f, int64_t budget_bytes,
                         int64_t max_num_seqs);

// "bf16 32768, fp8_e4m3 ..., int4_kivi 93248, ...": the tokens the sealed blocks of each KV
// format the model can store would hold in the same budget (plan_kv_pools with max_num_seqs
// tails), for the start-up log; formats whose pools do not fit say "-".
std::string kv_tokens_per_format(const ModelConfig& cfg, int64_t budget_bytes,
                                 int64_t max_num_seqs);

struct KvCapacity {
  std::string kv_cache_dtype;  // format name ("bf16", "int4_kivi", ...)
  int block_size = 0;
  double bytes_per_token = 0;   // all layers, K and V, at the sealed-block density
  int64_t tokens = 0;           // whole blocks in the budget x block_size (tails not counted)
  int64_t max_concurrency = 0;  // sequences of max_model_len tokens that fit, tail and rounding in
  double ratio_vs_16bit = 0;    // 16-bit bytes per token / bytes_per_token
};
// budget_bytes > 0, max_model_len > 0 (the caller validates user input).
KvCapacity kv_capacity(const ModelConfig& cfg, KvFormat f, int64_t budget_bytes, int max_model_len);

}  // namespace densekv
