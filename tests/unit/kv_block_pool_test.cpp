// Block pool (ref counts, free list, prefix index, LRU eviction) and the per-sequence block
// manager, including a randomized run of thousands of admit / step / finish / abort / preempt
// operations against a shadow copy of what each block holds.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "core/errors.h"
#include "kv/block_manager.h"
#include "kv/block_pool.h"

using namespace densekv;

TEST(KvBlockPool, AllocateReleaseAndRefCounts) {
  BlockPool pool(3);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.num_available(), 0);
  pool.retain(1);
  EXPECT_EQ(pool.ref_count(1), 2);
  pool.release(1);
  EXPECT_EQ(pool.num_available(), 0);
  pool.release(1);
  EXPECT_EQ(pool.num_available(), 1);
  EXPECT_EQ(pool.allocate(), 1);
  pool.check_invariants();
  EXPECT_THROW(BlockPool(0), InvalidArgumentError);
}

TEST(KvBlockPool, PrefixIndexAndLruEviction) {
  BlockPool pool(3);
  const int a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  EXPECT_EQ(pool.publish(a, 100), a);
  EXPECT_EQ(pool.publish(b, 200), b);
  EXPECT_EQ(pool.publish(c, 100), a);  // duplicate hash: the first block stays canonical
  EXPECT_FALSE(pool.is_cached(c));
  EXPECT_EQ(pool.lookup(100), a);  // hit on a referenced block shares it
  EXPECT_EQ(pool.ref_count(a), 2);
  pool.release(a);
  pool.release(a);  // a: cached, unreferenced, least recently used
  pool.release(b);  // b: cached, more recent
  pool.release(c);  // c: uncached -> free list
  pool.check_invariants();
  EXPECT_EQ(pool.num_available(), 3);
  EXPECT_EQ(pool.num_cached(), 2);
  EXPECT_EQ(pool.allocate(), c);  // the free list goes first
  EXPECT_EQ(pool.lookup(300), -1);
  EXPECT_EQ(pool.allocate(), a);  // then the LRU cached block, evicted
  EXPECT_EQ(pool.lookup(100), -1);
  EXPECT_EQ(pool.lookup(200), b);  // still cached: revived off the LRU
  EXPECT_EQ(pool.allocate(), -1);
  pool.check_invariants();
}

TEST(KvBlockPool, BlockHashIsXxh3OfParentAndTokens) {
  const std::vector<int32_t> toks = {1, 2, 3, 70000};
  uint8_t buf[8 + 16];
  const uint64_t parent = kRootBlockHash;
  std::memcpy(buf, &parent, 8);
  std::memcpy(buf + 8, toks.data(), 16);
  EXPECT_EQ(block_hash(parent, toks), XXH3_64bits(buf, sizeof(buf)));
  EXPECT_NE(block_hash(parent, toks), block_hash(parent + 1, toks));
  EXPECT_NE(block_hash(parent, toks), block_hash(parent, std::vector<int32_t>{1, 2, 3, 70001}));
}

TEST(KvBlockManager, TailFormatsHoldFloorBlocksPlusOneTail) {
  KvBlockManager m({.num_blocks = 10, .num_tail_blocks = 2, .block_size = 64, .has_tail = true});
  EXPECT_EQ(m.blocks_for(63), 0);
  EXPECT_EQ(m.blocks_for(64), 1);
  EXPECT_EQ(m.blocks_for(200), 3);
  KvBlockManager plain({.num_blocks = 10, .block_size = 16, .has_tail = false});
  EXPECT_EQ(plain.blocks_for(1), 1);
  EXPECT_EQ(plain.blocks_for(32), 2);
  EXPECT_EQ(plain.blocks_for(33), 3);

  std::vector<int32_t> prompt(10, 5);
  KvSeqBlocks s1, s2, s3;
  EXPECT_EQ(m.start(s1, prompt), 0);
  EXPECT_EQ(m.start(s2, prompt), 0);
  EXPECT_EQ(m.start(s3, prompt), -1);  // two tails: a third running sequence must wait
  EXPECT_EQ(s3.tail, -1);
  m.release(s2);
  EXPECT_EQ(m.start(s3, prompt), 0);
  EXPECT_TRUE(m.reserve(s1, 640));  // 10 blocks
  EXPECT_FALSE(m.reserve(s3, 64));  // pool exhausted: nothing taken
  EXPECT_TRUE(s3.blocks.empty());
  const KvSeqBlocks* live[] = {&s1, &s3};
  m.check_invariants(live);
  m.release(s1);
  m.release(s3);
  EXPECT_EQ(m.blocks().num_available(), 10);
  EXPECT_EQ(m.tails().num_available(), 2);
}

TEST(KvBlockManager, PrefixHitsReuseFullBlocksAndKeepOneTokenToCompute) {
  KvBlockManager m({.num_blocks = 8, .num_tail_blocks = 4, .block_size = 64, .has_tail = true});
  std::vector<int32_t> a(200);
  for (int i = 0; i < 200; ++i) a[i] = i;
  KvSeqBlocks s;
  ASSERT_EQ(m.start(s, a), 0);
  ASSERT_TRUE(m.reserve(s, 200));
  m.commit(s, a, 200);
  EXPECT_EQ(s.blocks.size(), 3u);
  EXPECT_EQ(m.blocks().num_cached(), 3);
  const std::vector<int32_t> first = s.blocks;
  m.release(s);

  std::vector<int32_t> b(a.begin(), a.begin() + 150);  // shares blocks 0 and 1 (128 tokens)
  b[140] = -7;
  KvSeqBlocks t;
  EXPECT_EQ(m.start(t, b), 128);
  EXPECT_EQ(t.blocks, std::vector<int32_t>(first.begin(), first.begin() + 2));
  EXPECT_EQ(t.num_tokens, 128);
  KvSeqBlocks u;  // a prompt of exactly 128 tokens reuses one block: the last token is computed
  EXPECT_EQ(m.start(u, std::span<const int32_t>(a).first(128)), 64);
  std::vector<int32_t> c = a;
  c[5] = 99;  // differs in the first block: the chain misses everywhere
  KvSeqBlocks v;
  EXPECT_EQ(m.start(v, c), 0);
  const KvSeqBlocks* live[] = {&t, &u, &v};
  m.check_invariants(live);
  EXPECT_EQ(m.blocks().ref_count(first[0]), 2);
  m.release(t);
  m.release(u);
  m.release(v);
  EXPECT_EQ(m.prefix_hit_tokens(), 192);
}

namespace {

// A randomized workload: sequences share a few prompt prefixes, grow by prefill chunks and
// decode steps, and are finished, aborted or preempted (released, then restarted with all their
// tokens) under memory pressure. A shadow map of what each block holds checks that every prefix
// hit returns the right tokens; ref counts are checked against the live sequences after every
// operation; at the end every block is back in the pool.
void run_random_workload(const KvBlockManagerConfig& cfg, uint32_t seed, int ops) {
  KvBlockManager m(cfg);
  const int bs = cfg.block_size;
  std::mt19937 rng(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<std::vector<int32_t>> prefixes(4);
  for (auto& p : prefixes) {
    p.resize(uni(bs / 2, 4 * bs));
    for (auto& t : p) t = uni(0, 50);
  }
  struct Sim {
    KvSeqBlocks kv;
    std::vector<int32_t> tokens;  // prompt + generated so far
    int target = 0;               // finishes at this length
  };
  std::vector<Sim> running, waiting;            // waiting = preempted, to restart
  std::map<int, std::vector<int32_t>> content;  // block id -> the tokens stored in it (full blocks)
  int64_t hits = 0, preemptions = 0, aborts = 0, finished = 0;

  auto check_all = [&] {
    std::vector<const KvSeqBlocks*> live;
    for (const Sim& s : running) live.push_back(&s.kv);
    m.check_invariants(live);
  };
  auto admit = [&](Sim& s) {  // moved into `running` on success, untouched on failure
    const int have = m.start(s.kv, s.tokens);
    if (have < 0) return false;
    for (int i = 0; i < have / bs; ++i) {  // every reused block holds exactly these tokens
      const std::vector<int32_t> want(s.tokens.begin() + i * bs, s.tokens.begin() + (i + 1) * bs);
      EXPECT_EQ(content[s.kv.blocks[i]], want) << "prefix hit on a block with other tokens";
    }
    hits += have;
    running.push_back(std::move(s));
    return true;
  };
  auto release_at = [&](size_t i) {
    m.release(running[i].kv);
    running.erase(running.begin() + static_cast<long>(i));
  };

  int64_t evictions = 0;  // the prefix index only shrinks by LRU eviction
  int cached_before = 0;
  for (int op = 0; op < ops; ++op) {
    evictions += std::max(0, cached_before - m.blocks().num_cached());
    cached_before = m.blocks().num_cached();
    const int kind = uni(0, 99);
    if (kind < 20) {  // admit a new request, or restart a preempted one
      if (!waiting.empty() && uni(0, 1)) {
        Sim s = std::move(waiting.back());
        waiting.pop_back();
        if (!admit(s)) waiting.push_back(std::move(s));  // no tail free: keep waiting
      } else {
        Sim s;
        if (uni(0, 2) > 0) s.tokens = prefixes[uni(0, 3)];
        for (int n = uni(1, 2 * bs); n > 0; --n) s.tokens.push_back(uni(51, 60));
        s.target = static_cast<int>(s.tokens.size()) + uni(1, 3 * bs);
        admit(s);
      }
    } else if (kind < 85 && !running.empty()) {  // one forward of one sequence
      const size_t i = uni(0, static_cast<int>(running.size()) - 1);
      Sim& s = running[i];
      int len = static_cast<int>(s.tokens.size());
      if (s.kv.num_tokens >= len) {  // decode: the sampled token joins the sequence
        s.tokens.push_back(uni(0, 60));
        ++len;
      }
      const int upto = std::min(len, s.kv.num_tokens + uni(1, 2 * bs));  // prefill chunk
      if (!m.reserve(s.kv, upto)) {
        // Short of blocks: preempt the most recent other sequence, or abort this one.
        const size_t victim =
            running.size() - 1 == i ? (running.size() > 1 ? 0 : i) : running.size() - 1;
        if (victim != i) {
          waiting.push_back(Sim{KvSeqBlocks{}, running[victim].tokens, running[victim].target});
          release_at(victim);
          ++preemptions;
        } else {
          release_at(i);
          ++aborts;
        }
        check_all();
        continue;
      }
      // "Write": blocks that become full now hold these tokens (sealed or filled in place).
      for (int b = s.kv.num_tokens / bs; (b + 1) * bs <= upto; ++b) {
        content[s.kv.blocks[b]].assign(s.tokens.begin() + b * bs, s.tokens.begin() + (b + 1) * bs);
      }
      m.commit(s.kv, s.tokens, upto);
      if (upto >= s.target) {
        release_at(i);
        ++finished;
      }
    } else if (kind < 92 && !running.empty()) {  // client abort
      release_at(uni(0, static_cast<int>(running.size()) - 1));
      ++aborts;
    } else if (!running.empty()) {  // preemption by the scheduler
      const size_t i = uni(0, static_cast<int>(running.size()) - 1);
      waiting.push_back(Sim{KvSeqBlocks{}, running[i].tokens, running[i].target});
      release_at(i);
      ++preemptions;
    }
    check_all();
  }
  while (!running.empty()) release_at(running.size() - 1);
  check_all();
  EXPECT_EQ(m.blocks().num_available(), cfg.num_blocks);
  for (int id = 0; id < cfg.num_blocks; ++id) EXPECT_EQ(m.blocks().ref_count(id), 0);
  if (cfg.has_tail) {
    EXPECT_EQ(m.tails().num_available(), cfg.num_tail_blocks);
  }
  EXPECT_GT(hits, 0);
  EXPECT_GT(preemptions, 0);
  EXPECT_GT(aborts, 0);
  EXPECT_GT(finished, 0);
  EXPECT_GT(evictions, 0);
}

}  // namespace

TEST(KvBlockManager, RandomizedWorkloadLeaksNothingQuantized) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    run_random_workload(
        {.num_blocks = 24, .num_tail_blocks = 6, .block_size = 64, .has_tail = true}, seed, 4000);
  }
}

TEST(KvBlockManager, RandomizedWorkloadLeaksNothingPlain) {
  for (uint32_t seed : {4u, 5u}) {
    run_random_workload({.num_blocks = 60, .block_size = 16, .has_tail = false}, seed, 4000);
  }
}
