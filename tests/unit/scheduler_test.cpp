// The scheduler on a real KvBlockManager with a fake model (every computed chunk that reaches
// the end of a sequence "samples" token 7): budgets, chunking, admission, preemption, prefix hits.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "kv/block_manager.h"

using namespace densekv;

namespace {

struct Fixture {
  explicit Fixture(int num_blocks, SchedulerConfig sc, bool prefix = true)
      : kv(KvBlockManagerConfig{num_blocks, 0, 4, false, prefix}), sched(sc, kv) {}

  Sequence* add(std::vector<int32_t> prompt, int max_tokens = 100) {
    GenerationRequest r;
    r.id = seqs.size() + 1;
    r.prompt_ids = std::move(prompt);
    r.params.max_tokens = max_tokens;
    r.params.temperature = 0;
    seqs.push_back(std::make_unique<Sequence>(r, seqs.size(), 0, Sequence::Clock::now()));
    sched.add(seqs.back().get());
    return seqs.back().get();
  }

  // One step with the fake model; returns the scheduled chunks.
  SchedulerOutput step() {
    SchedulerOutput out = sched.schedule(Sequence::Clock::now());
    for (const ScheduledChunk& c : out.chunks) {
      sched.commit(c);
      if (!c.samples()) continue;
      if (c.seq->append(7, nullptr, 0, Sequence::Clock::now()) != FinishReason::None) {
        sched.remove(c.seq);
        c.seq->set_finished(FinishReason::Length, Sequence::Clock::now());
      }
    }
    std::vector<const KvSeqBlocks*> held;
    for (const Sequence* s : sched.running()) held.push_back(&s->kv);
    kv.check_invariants(held);
    return out;
  }

  KvBlockManager kv;
  Scheduler sched;
  std::vector<std::unique_ptr<Sequence>> seqs;
};

std::vector<int32_t> iota(int n, int from = 0) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(from + i);
  return v;
}

TEST(Scheduler, ChunksPrefillsUnderTheTokenBudget) {
  Fixture f(100, {8, 25});
  Sequence* a = f.add(iota(10));
  Sequence* b = f.add(iota(20, 100));
  Sequence* c = f.add(iota(30, 200));
  SchedulerOutput o = f.step();
  ASSERT_EQ(o.chunks.size(), 2u);
  EXPECT_EQ(o.chunks[0].seq, a);
  EXPECT_EQ(o.chunks[0].n, 10);
  EXPECT_EQ(o.chunks[1].seq, b);
  EXPECT_EQ(o.chunks[1].n, 15);  // the budget's rest: a chunk
  EXPECT_EQ(o.num_tokens, 25);
  EXPECT_EQ(a->num_generated(), 1);
  EXPECT_EQ(b->num_generated(), 0);
  o = f.step();  // a decodes (1), b finishes its prefill (5), c gets 19
  ASSERT_EQ(o.chunks.size(), 3u);
  EXPECT_EQ(o.chunks[0].n, 1);
  EXPECT_EQ(o.chunks[1].start, 15);
  EXPECT_EQ(o.chunks[1].n, 5);
  EXPECT_EQ(o.chunks[2].seq, c);
  EXPECT_EQ(o.chunks[2].n, 19);
  EXPECT_EQ(b->num_generated(), 1);
}

TEST(Scheduler, RespectsMaxNumSeqs) {
  Fixture f(100, {2, 1000});
  for (int i = 0; i < 5; ++i) f.add(iota(3, 10 * i));
  SchedulerOutput o = f.step();
  EXPECT_EQ(o.chunks.size(), 2u);
  EXPECT_EQ(f.sched.running().size(), 2u);
  EXPECT_EQ(f.sched.waiting().size(), 3u);
}

TEST(Scheduler, PreemptsTheNewestWhenBlocksRunOut) {
  // 6 blocks of 4 tokens: two sequences of 8-token prompts fit (2 blocks each), then grow.
  Fixture f(6, {8, 100});
  Sequence* a = f.add(iota(8), 100);
  Sequence* b = f.add(iota(8, 50), 100);
  f.step();
  EXPECT_EQ(f.sched.running().size(), 2u);
  int steps = 0;
  while (b->state() != SeqState::Preempted && steps++ < 20) f.step();
  ASSERT_EQ(b->state(), SeqState::Preempted) << "b (newest) goes first";
  EXPECT_EQ(a->state(), SeqState::Running);
  EXPECT_EQ(f.sched.num_preemptions(), 1);
  EXPECT_EQ(f.sched.waiting().front(), b);
  EXPECT_FALSE(b->kv.started) << "its blocks are released";
  const int generated = b->num_generated();
  // a keeps running alone until it needs the whole pool; it then preempts itself only if alone
  // it cannot fit, which 24 tokens allow up to a's 24th token.
  while (a->num_tokens() < 23) f.step();
  EXPECT_EQ(a->state(), SeqState::Running);
  EXPECT_EQ(b->num_generated(), generated) << "a preempted sequence keeps its tokens";
}

TEST(Scheduler, ReadmitsPreemptedWithRecompute) {
  Fixture f(5, {8, 100});
  Sequence* a = f.add(iota(8), 6);
  Sequence* b = f.add(iota(8, 50), 10);
  for (int i = 0; i < 100 && !(a->finished() && b->finished()); ++i) f.step();
  EXPECT_TRUE(a->finished());
  EXPECT_TRUE(b->finished());
  EXPECT_EQ(b->num_generated(), 10);
  EXPECT_GT(f.sched.num_preemptions(), 0);
  EXPECT_EQ(f.kv.blocks().num_available(), 5) << "everything back";
}

TEST(Scheduler, PrefixHitsSkipTheirPrefill) {
  Fixture f(100, {8, 100});
  Sequence* a = f.add(iota(10), 1);
  f.step();  // a computes 10 tokens: blocks [0,4) and [4,8) are full and published
  Sequence* b = f.add(iota(9), 1);
  SchedulerOutput o = f.step();
  ASSERT_EQ(o.chunks.size(), 1u);
  EXPECT_EQ(o.chunks[0].seq, b);
  EXPECT_EQ(o.chunks[0].start, 8);  // 2 cached blocks
  EXPECT_EQ(o.chunks[0].n, 1);
  EXPECT_TRUE(a->finished());
  Sequence* c = f.add(iota(8), 1);  // a whole-block prompt still computes its last token
  o = f.step();
  EXPECT_EQ(o.chunks[0].start, 4);
  EXPECT_EQ(o.chunks[0].seq, c);
}

TEST(Scheduler, RemoveFreesBlocksOfRunningAndWaiting) {
  Fixture f(100, {1, 100});
  Sequence* a = f.add(iota(10));
  Sequence* b = f.add(iota(10, 20));
  f.step();
  f.sched.remove(a);
  f.sched.remove(b);
  EXPECT_TRUE(f.sched.idle());
  EXPECT_EQ(f.kv.blocks().num_available(), 100);
  f.kv.check_invariants({});
}

}  // namespace
