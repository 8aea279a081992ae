// The paged KV cache of one model, for every KV format: the storage (per layer, a main pool of
// fixed-size blocks and, for quantized formats, a small pool of 16-bit tail blocks) plus the
// bookkeeping of which sequence holds which blocks (a KvBlockManager: ref-counted blocks, one
// tail per running sequence, prefix cache of full blocks).
//
// Storage is one backend allocation per pool, layer-major: main block b of layer l at
//   main + (l * (num_blocks + 1) + b) * block_bytes()
// and tail t of layer l at
//   tails + (l * (num_tail_blocks + 1) + t) * tail_block_bytes().
// Block ids from blocks() index the main pool in every layer; tail ids index the tail pool. Each
// pool has one block more than the block manager hands out: the scratch block (id num_blocks)
// and scratch tail (id num_tail_blocks), which no sequence ever holds. The padding rows of a
// captured decode step (model/decode_graph.h) write their K/V there.
// docs/kv-formats.md describes what a block and a tail hold (kv_format.h, kv_paged.h).
//
// A sequence's use (the engine's, and generate.cpp's for one sequence):
//   KvSeqBlocks seq;
//   int cached = cache.blocks().start(seq, prompt);   // prefix-cache hit: tokens already stored
//   cache.blocks().reserve(seq, n_after_forward);      // false: short of blocks
//   model.forward({{ids + cached, n, cached, &seq}}, cache, ...);
//   cache.blocks().commit(seq, ids, n_after_forward);  // publishes the blocks that became full
//   cache.blocks().release(seq);                       // finish, abort or preemption
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend/backend.h"
#include "io/hf_config.h"
#include "kv/block_manager.h"
#include "kv/kv_format.h"

namespace densekv {

struct KvCacheConfig {
  KvFormat format = KvFormat::BF16;
  KvFormat tail_format = KvFormat::BF16;  // 16-bit format of the tails (quantized formats)
  int block_size = 0;                     // tokens per block; 0 = the format's default
  int num_blocks = 0;                     // main pool
  int num_tail_blocks = 0;  // quantized formats: running sequences at most (one tail each)
  int num_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  bool prefix_caching = true;
};

class KvCache {
 public:
  // Throws InvalidArgumentError for a bad shape, or a format that cannot store this head_dim.
  KvCache(Backend& backend, const KvCacheConfig& cfg);

  const KvCacheConfig& config() const { return cfg_; }  // block_size resolved
  int block_size() const { return cfg_.block_size; }
  bool quantized() const { return kv_format_is_quantized(cfg_.format); }
  KvLayerView layer(int l) const;
  size_t block_bytes() const { return block_bytes_; }            // one layer's main block
  size_t tail_block_bytes() const { return tail_block_bytes_; }  // one layer's tail, 0 if none
  size_t total_bytes() const { return main_.size() + tails_.size(); }
  // The block / tail no sequence holds (see above); scratch_tail() is -1 for plain formats.
  int scratch_block() const { return cfg_.num_blocks; }
  int scratch_tail() const { return quantized() ? cfg_.num_tail_blocks : -1; }

  // Block tables, tails, reference counts and the prefix cache.
  KvBlockManager& blocks() { return manager_; }
  const KvBlockManager& blocks() const { return manager_; }

 private:
  KvCacheConfig cfg_;
  size_t block_bytes_ = 0;
  size_t tail_block_bytes_ = 0;
  Buffer main_;
  Buffer tails_;
  KvBlockManager manager_;
};

// A cache shaped for the model: num_blocks main blocks of the format's block size, and
// max_seqs tails (quantized formats; the tail format is kv_tail_format of the model dtype).
KvCacheConfig kv_cache_config(const ModelConfig& model, KvFormat format, int num_blocks,
                              int max_seqs = 1);

}  // namespace densekv
