// Per-sequence KV block tables over the block pools, with prefix caching of full blocks.
//
// A sequence of n stored tokens holds
//   quantized formats: n / B sealed blocks in the main pool + one 16-bit tail block (tail pool)
//                      holding the n % B newest tokens (sealed into the next main block on fill);
//   plain formats:     ceil(n / B) blocks in the main pool, no tail.
// Full blocks are immutable, so they are shared: each gets a chained hash of its tokens
// (block_hash) and is published in the pool's prefix index; a new sequence whose prompt starts
// with the same full blocks reuses them (ref count++) and computes only the rest.
//
// The engine's use, per sequence: start() on admission; before each forward reserve(total
// tokens after it) (false = preempt someone, or wait); after the forward commit(); release() on
// finish, abort or preemption (a preempted sequence restarts with start() and gets its own
// published blocks back as prefix hits while they are still cached).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "kv/block_pool.h"

namespace densekv {

struct KvSeqBlocks {
  std::vector<int32_t> blocks;   // main-pool block ids in token order: token p in blocks[p / B]
  std::vector<uint64_t> hashes;  // chained hash of each full block, [number of full blocks]
  int32_t tail = -1;             // tail-pool block id (quantized formats), -1 none
  int num_tokens = 0;            // tokens whose K/V are stored (committed)
  bool started = false;
};

struct KvBlockManagerConfig {
  int num_blocks = 0;       // main pool
  int num_tail_blocks = 0;  // tail pool: at most this many running sequences (quantized formats)
  int block_size = 64;      // tokens per block
  bool has_tail = false;    // quantized format: the newest block is a 16-bit tail
  bool prefix_caching = true;
};

class KvBlockManager {
 public:
  explicit KvBlockManager(const KvBlockManagerConfig& cfg);

  const KvBlockManagerConfig& config() const { return cfg_; }
  const BlockPool& blocks() const { return blocks_; }
  const BlockPool& tails() const { return tails_; }

  // Main-pool blocks a sequence of n_tokens holds: n / B with a tail, else ceil(n / B).
  int blocks_for(int n_tokens) const;

  // Admits a sequence: takes a tail (when the format has one) and reuses the cached full blocks
  // of the prompt's prefix, leaving at least one prompt token to compute. Returns the number of
  // prompt tokens already stored (a multiple of B; the sequence's num_tokens), or -1 when no
  // tail is free (nothing taken).
  int start(KvSeqBlocks& seq, std::span<const int32_t> prompt);
  // Makes room for the sequence to hold n_tokens in total. False, allocating nothing, when the
  // main pool is short.
  bool reserve(KvSeqBlocks& seq, int n_tokens);
  // The forward stored the K/V of tokens [seq.num_tokens, n_tokens) (tokens = the sequence's ids,
  // at least n_tokens of them): hashes the blocks that became full and publishes them.
  void commit(KvSeqBlocks& seq, std::span<const int32_t> tokens, int n_tokens);
  // Gives back every block and the tail (finish, abort, preemption). seq is empty afterwards.
  void release(KvSeqBlocks& seq);

  // Prefix-cache statistics since construction, in tokens.
  int64_t prefix_hit_tokens() const { return hit_tokens_; }
  int64_t prefix_query_tokens() const { return query_tokens_; }

  // CHECK-fails unless the pools are consistent and every block's ref count equals the number
  // of `live` sequences that hold it. For tests.
  void check_invariants(std::span<const KvSeqBlocks* const> live) const;

 private:
  KvBlockManagerConfig cfg_;
  BlockPool blocks_;
  BlockPool tails_;
  int64_t hit_tokens_ = 0;
  int64_t query_tokens_ = 0;
};

}  // namespace densekv
