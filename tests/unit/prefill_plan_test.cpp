// plan_prefill (backend/prefill_plan.h): how a paged_attention call is split between the prefill
// kernel's work items and decode-kernel token runs.
#include "backend/prefill_plan.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

using namespace densekv;

namespace {

// A batch of (sequence, first position, token count) segments in this order.
struct Batch {
  std::vector<int32_t> seq, pos;
  Batch& add(int s, int p0, int n) {
    for (int i = 0; i < n; ++i) seq.push_back(s), pos.push_back(p0 + i);
    return *this;
  }
  PrefillPlan plan(int group, int kv_block = 0) const {
    return plan_prefill(seq.data(), pos.data(), static_cast<int>(seq.size()), group, kv_block);
  }
};

using Runs = std::vector<std::pair<int32_t, int32_t>>;

TEST(PrefillPlan, DecodeOnlyBatchUsesTheDecodeKernel) {
  const PrefillPlan p = Batch().add(0, 100, 1).add(1, 7, 1).add(2, 4000, 1).plan(8);
  EXPECT_EQ(p.n_work(), 0);
  EXPECT_TRUE(p.decode_runs.empty());
}

TEST(PrefillPlan, ChunkIsCutIntoBlocksOf64Rows) {
  // group 4: 16 tokens x 4 heads per block
  const PrefillPlan p = Batch().add(0, 0, 40).plan(4);
  EXPECT_EQ(p.work, (std::vector<int32_t>{0, 16, 16, 16, 32, 8}));
  EXPECT_TRUE(p.decode_runs.empty());
  // group 7: 9 tokens (63 rows) per block; group 1: 64 tokens
  EXPECT_EQ(Batch().add(3, 10, 20).plan(7).work, (std::vector<int32_t>{0, 9, 9, 9, 18, 2}));
  EXPECT_EQ(Batch().add(3, 10, 70).plan(1).work, (std::vector<int32_t>{0, 64, 64, 6}));
}

TEST(PrefillPlan, MixedBatchSendsDecodeTokensToDecodeRuns) {
  const Batch b = Batch().add(0, 50, 1).add(1, 9, 1).add(2, 3, 1).add(3, 0, 20).add(4, 77, 1);
  const PrefillPlan p = b.plan(4);
  EXPECT_EQ(p.work, (std::vector<int32_t>{3, 16, 19, 4}));
  EXPECT_EQ(p.decode_runs, (Runs{{0, 3}, {23, 1}}));
  // Fewer than 16 rows (3 tokens x 4 heads) stay with the decode kernel; 4 tokens qualify.
  const PrefillPlan q = Batch().add(0, 5, 3).add(1, 0, 4).plan(4);
  EXPECT_EQ(q.work, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(q.decode_runs, (Runs{{0, 3}}));
}

TEST(PrefillPlan, QuantizedSegmentsStayInOneKvBlock) {
  // positions 60..69 cross the block boundary at 64: two segments (4 and 6 tokens)
  const PrefillPlan p = Batch().add(0, 60, 10).plan(4, 64);
  EXPECT_EQ(p.work, (std::vector<int32_t>{0, 4, 4, 6}));
  EXPECT_EQ(Batch().add(0, 60, 10).plan(4, 0).work, (std::vector<int32_t>{0, 10}));
}

TEST(PrefillPlan, SegmentsBreakAtSequenceAndPositionGaps) {
  // Two sequences back to back, and one sequence whose positions jump.
  const PrefillPlan p = Batch().add(0, 0, 5).add(1, 0, 5).add(1, 100, 5).plan(4);
  EXPECT_EQ(p.work, (std::vector<int32_t>{0, 5, 5, 5, 10, 5}));
}

TEST(PrefillPlan, ManyInterleavedDecodeRunsGoToThePrefillKernel) {
  Batch b;
  for (int s = 0; s < 10; ++s) b.add(2 * s, 30, 1).add(2 * s + 1, 0, 8);
  const PrefillPlan p = b.plan(2);  // 10 decode runs > kPrefillMaxDecodeRuns
  EXPECT_TRUE(p.decode_runs.empty());
  std::vector<int32_t> want;
  for (int s = 0; s < 10; ++s) want.insert(want.end(), {9 * s, 1, 9 * s + 1, 8});
  EXPECT_EQ(p.work, want);
}

TEST(PrefillPlan, GroupsOver64HeadsAreNotSupported) {
  EXPECT_EQ(Batch().add(0, 0, 100).plan(65).n_work(), 0);
  EXPECT_EQ(Batch().add(0, 0, 100).plan(64).n_work(), 100);
}

}  // namespace
