// Backend::logprobs (src/backend/cuda/logprobs.cu) against the host's token_logprobs
// (engine/sampler.cpp), the CPU reference: the log_softmax of the chosen token and the top n ids
// (best first, ties by id) of raw logits rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "engine/sampler.h"
#include "kernel_test_util.h"

using namespace densekv;
using namespace densekv::test;

namespace {

// Rows with the shapes that decide the top n: LM-like (a normal base and a few peaks), flat (every
// id tied), ties at the n-th place (a few leaders, then one value at 40 or at 5000 scattered ids:
// the kernel's sort, or its select when more than 2048 ids pass its threshold), nearly flat, and
// a row with -inf entries (masked ids).
std::vector<float> rows_of_every_kind(int vocab, DType dt, std::mt19937& rng) {
  std::normal_distribution<float> base(0.0f, 2.0f);
  std::uniform_real_distribution<float> peak(6.0f, 14.0f);
  std::uniform_int_distribution<int> id(0, vocab - 1);
  const int kinds = 7;
  std::vector<float> v(static_cast<size_t>(kinds) * vocab);
  for (int r = 0; r < kinds; ++r) {
    float* row = v.data() + static_cast<size_t>(r) * vocab;
    switch (r) {
      case 0:
      case 1:
        for (int i = 0; i < vocab; ++i) row[i] = base(rng);
        for (int k = 0; k < 24; ++k) row[id(rng)] += peak(rng);
        break;
      case 2:
        for (int i = 0; i < vocab; ++i) row[i] = 1.5f;
        break;
      case 3:
      case 6:
        for (int i = 0; i < vocab; ++i) row[i] = base(rng) - 10.0f;
        for (int k = 0; k < (r == 3 ? 40 : 5000); ++k) row[id(rng)] = 5.0f;
        for (int k = 0; k < 3; ++k) row[id(rng)] = 8.0f + static_cast<float>(k);
        break;
      case 4:
        for (int i = 0; i < vocab; ++i) row[i] = base(rng) * 0.01f;  // nearly flat
        break;
      case 5:
        for (int i = 0; i < vocab; ++i) {
          row[i] = i % 7 == 3 ? -std::numeric_limits<float>::infinity() : base(rng);
        }
    }
  }
  for (float& x : v) {
    if (dt == DType::BF16 && std::isfinite(x)) x = bf16_to_f32(f32_to_bf16(x));
  }
  return v;
}

TEST(CudaLogprobs, EqualTokenLogprobs) {
  DENSEKV_REQUIRE_CUDA(gpu);
  std::mt19937 rng(7);
  int checked = 0, exact = 0;
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int vocab : {12, 1000, 128256}) {
      const std::vector<float> host = rows_of_every_kind(vocab, dt, rng);
      const int rows = static_cast<int>(host.size() / vocab);
      OwnedTensor t = make_owned(*gpu, dt, rows, vocab, &host);
      std::vector<LogprobsQuery> queries;
      std::uniform_int_distribution<int> id(0, vocab - 1);
      for (int rep = 0; rep < 3; ++rep) {
        for (int r = rows - 1; r >= 0; --r) {  // rows out of order, each several times
          const int chosen = r == 5 && rep == 0 ? 3 : id(rng);  // (row 5: id 3 is -inf)
          queries.push_back({r, chosen, (r + 7 * rep) % (kMaxTopLogprobs + 1)});
        }
      }
      queries.push_back({0, 0, kMaxTopLogprobs});
      const std::vector<RowLogprobs> got = gpu->logprobs(t.t, queries);
      ASSERT_EQ(got.size(), queries.size());
      for (size_t q = 0; q < queries.size(); ++q) {
        const LogprobsQuery& lq = queries[q];
        const std::span<const float> row(host.data() + static_cast<size_t>(lq.row) * vocab,
                                         static_cast<size_t>(vocab));
        const TokenLogprobs want = token_logprobs(row, lq.chosen, lq.top_n);
        TokenLogprobs g;
        g.token_id = lq.chosen;
        g.logprob = got[q].chosen;
        ASSERT_EQ(got[q].n, std::min(lq.top_n, vocab));
        for (int j = 0; j < got[q].n; ++j)
          g.top.emplace_back(got[q].top_ids[j], got[q].top_values[j]);
        EXPECT_TRUE(same_logprobs(g, want))
            << dtype_name(dt) << " vocab " << vocab << " row " << lq.row << " top " << lq.top_n;
        ++checked;
        bool same =
            g.logprob == want.logprob || (std::isinf(g.logprob) && std::isinf(want.logprob));
        for (size_t j = 0; j < g.top.size(); ++j) same = same && g.top[j] == want.top[j];
        exact += same;
      }
    }
  }
  EXPECT_TRUE(gpu->logprobs(make_owned(*gpu, DType::F32, 1, 8).t, {}).empty());
  std::printf("  %d queries equal to token_logprobs, %d of them bit for bit\n", checked, exact);
}

}  // namespace
