#include "kv/block_manager.h"

#include <string>

#include "core/check.h"
#include "core/errors.h"

namespace densekv {

KvBlockManager::KvBlockManager(const KvBlockManagerConfig& cfg)
    : cfg_(cfg), blocks_(cfg.num_blocks), tails_(cfg.has_tail ? cfg.num_tail_blocks : 1) {
  if (cfg.block_size <= 0) {
    throw InvalidArgumentError("KV block size must be positive, got " +
                               std::to_string(cfg.block_size));
  }
}

int KvBlockManager::blocks_for(int n_tokens) const {
  const int b = cfg_.block_size;
  return cfg_.has_tail ? n_tokens / b : (n_tokens + b - 1) / b;
}

int KvBlockManager::start(KvSeqBlocks& seq, std::span<const int32_t> prompt) {
  CHECK(!seq.started && seq.blocks.empty() && seq.tail < 0);
  if (cfg_.has_tail) {
    seq.tail = tails_.allocate();
    if (seq.tail < 0) return -1;
  }
  seq.started = true;
  seq.num_tokens = 0;
  const int b = cfg_.block_size;
  query_tokens_ += static_cast<int64_t>(prompt.size());
  if (!cfg_.prefix_caching || prompt.empty()) return 0;
  const int max_blocks = (static_cast<int>(prompt.size()) - 1) / b;  // keep one token to compute
  uint64_t parent = kRootBlockHash;
  for (int i = 0; i < max_blocks; ++i) {
    const uint64_t h = block_hash(parent, prompt.subspan(static_cast<size_t>(i) * b, b));
    const int id = blocks_.lookup(h);
    if (id < 0) break;
    seq.blocks.push_back(id);
    seq.hashes.push_back(h);
    parent = h;
  }
  seq.num_tokens = static_cast<int>(seq.blocks.size()) * b;
  hit_tokens_ += seq.num_tokens;
  return seq.num_tokens;
}

bool KvBlockManager::reserve(KvSeqBlocks& seq, int n_tokens) {
  CHECK(seq.started && n_tokens >= seq.num_tokens);
  const int need = blocks_for(n_tokens) - static_cast<int>(seq.blocks.size());
  if (need <= 0) return true;
  if (need > blocks_.num_available()) return false;
  for (int i = 0; i < need; ++i) {
    const int id = blocks_.allocate();
    CHECK(id >= 0);
    seq.blocks.push_back(id);
  }
  return true;
}

void KvBlockManager::commit(KvSeqBlocks& seq, std::span<const int32_t> tokens, int n_tokens) {
  CHECK(seq.started && n_tokens >= seq.num_tokens && static_cast<int>(tokens.size()) >= n_tokens);
  CHECK(blocks_for(n_tokens) <= static_cast<int>(seq.blocks.size()));
  const int b = cfg_.block_size;
  for (int i = static_cast<int>(seq.hashes.size()); (i + 1) * b <= n_tokens; ++i) {
    const uint64_t parent = i == 0 ? kRootBlockHash : seq.hashes[i - 1];
    const uint64_t h = block_hash(parent, tokens.subspan(static_cast<size_t>(i) * b, b));
    seq.hashes.push_back(h);
    // A block with the same hash may already be published (an identical prefix computed by
    // another sequence at the same time): ours then stays private and is freed on release.
    if (cfg_.prefix_caching) blocks_.publish(seq.blocks[i], h);
  }
  seq.num_tokens = n_tokens;
}

void KvBlockManager::release(KvSeqBlocks& seq) {
  for (int32_t id : seq.blocks) blocks_.release(id);
  if (seq.tail >= 0) tails_.release(seq.tail);
  seq = KvSeqBlocks{};
}

void KvBlockManager::check_invariants(std::span<const KvSeqBlocks* const> live) const {
  blocks_.check_invariants();
  tails_.check_invariants();
  std::vector<int> refs(blocks_.num_blocks(), 0);
  std::vector<int> tail_refs(tails_.num_blocks(), 0);
  for (const KvSeqBlocks* s : live) {
    CHECK(s->started);
    CHECK(static_cast<int>(s->hashes.size()) == s->num_tokens / cfg_.block_size);
    CHECK(blocks_for(s->num_tokens) <= static_cast<int>(s->blocks.size()));
    for (int32_t id : s->blocks) ++refs[id];
    CHECK((s->tail >= 0) == cfg_.has_tail);
    if (s->tail >= 0) ++tail_refs[s->tail];
  }
  for (int id = 0; id < blocks_.num_blocks(); ++id) CHECK(blocks_.ref_count(id) == refs[id]);
  for (int id = 0; id < tails_.num_blocks(); ++id) {
    CHECK(tails_.ref_count(id) == tail_refs[id]);
    CHECK(tail_refs[id] <= 1);  // tails are never shared
  }
}

}  // namespace densekv
