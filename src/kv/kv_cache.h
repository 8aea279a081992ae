// The paged KV cache: one pool of fixed-size blocks per layer (all in one backend allocation,
// layer-major: [layer][block] of kv_block_bytes each), a free list, and per-sequence block tables.
// Token p of a sequence lives in block table[p / block_size] at offset p % block_size. The format
// decides only what a block holds (kv_format.h); allocation and tables are format-agnostic.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "io/hf_config.h"
#include "kv/kv_format.h"

namespace densekv {

struct KvCacheConfig {
  KvFormat format = KvFormat::BF16;
  int block_size = 16;  // tokens per block
  int num_blocks = 0;
  int num_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// The blocks one sequence owns, in token order.
struct SeqBlocks {
  std::vector<int32_t> table;
  int capacity_tokens(int block_size) const { return static_cast<int>(table.size()) * block_size; }
};

class KvCache {
 public:
  KvCache(Backend& backend, const KvCacheConfig& cfg);
  const KvCacheConfig& config() const { return cfg_; }
  KvLayerView layer(int l) const;
  size_t block_bytes() const { return block_bytes_; }  // one layer's block
  size_t total_bytes() const { return pool_.size(); }

  int num_free_blocks() const { return static_cast<int>(free_.size()); }
  // Grows seq's table until it holds n_tokens. Returns false (and allocates nothing) when the pool
  // lacks the blocks.
  bool reserve(SeqBlocks& seq, int n_tokens);
  // Returns all of seq's blocks to the pool.
  void release(SeqBlocks& seq);

 private:
  KvCacheConfig cfg_;
  size_t block_bytes_ = 0;
  Buffer pool_;
  std::vector<int32_t> free_;  // stack of free block ids
};

// A cache shaped for the model with room for num_blocks blocks of block_size tokens.
KvCacheConfig kv_cache_config(const ModelConfig& model, KvFormat format, int num_blocks,
                              int block_size = 16);

// Blocks needed for n_tokens.
inline int kv_blocks_for(int n_tokens, int block_size) {
  return (n_tokens + block_size - 1) / block_size;
}

}  // namespace densekv
