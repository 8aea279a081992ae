// Backend::sample on the GPU (src/backend/cuda/sample.cu) against the host Sampler
// (engine/sampler.cpp, whose rules tests/unit/sampler_test.cpp checks): the same logits row and the
// same RNG state give the same token, for every filter combination, fp32 and bf16 logits, a small
// and a 128k vocabulary. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#ifdef DENSEKV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "engine/device_picks.h"
#include "engine/sampler.h"
#include "engine/sequence.h"
#include "kernel_test_util.h"

using namespace densekv;
using namespace densekv::test;

namespace {

// Logits like a language model's: a broad base and a few ids far above it.
std::vector<float> lm_logits(int rows, int vocab, DType dt, std::mt19937& rng) {
  std::normal_distribution<float> base(0.0f, 2.0f);
  std::uniform_real_distribution<float> peak(6.0f, 14.0f);
  std::uniform_int_distribution<int> id(0, vocab - 1);
  std::vector<float> v(static_cast<size_t>(rows) * vocab);
  for (int r = 0; r < rows; ++r) {
    float* row = v.data() + static_cast<size_t>(r) * vocab;
    for (int i = 0; i < vocab; ++i) row[i] = base(rng);
    for (int k = 0; k < 24; ++k) row[id(rng)] += peak(rng);
  }
  for (float& x : v) {
    if (dt == DType::BF16) x = bf16_to_f32(f32_to_bf16(x));
  }
  return v;
}

struct Filters {
  float temperature;
  int top_k;
  float top_p;
  float min_p;
};

// How many of the most likely ids Sampler::draw keeps for this row (top_k, then the top_p
// prefix, then min_p), in its order.
size_t kept_ids(std::span<const float> logits, const SamplingParams& p) {
  std::vector<double> w;
  const float inv_t = 1.0f / p.temperature;
  float mx = -INFINITY;
  for (float l : logits) mx = std::max(mx, l * inv_t);
  for (float l : logits) w.push_back(std::exp(l * inv_t - mx));
  std::sort(w.begin(), w.end(), std::greater<double>());
  if (p.top_k > 0 && p.top_k < static_cast<int>(w.size())) w.resize(static_cast<size_t>(p.top_k));
  double total = 0, cum = 0;
  for (double x : w) total += x;
  size_t keep = w.size();
  for (size_t i = 0; p.top_p < 1.0f && i < w.size(); ++i) {
    cum += w[i];
    if (cum >= p.top_p * total) {
      keep = i + 1;
      break;
    }
  }
  size_t k = 1;
  while (p.min_p > 0.0f && k < keep && w[k] >= p.min_p * w[0]) ++k;
  return p.min_p > 0.0f ? k : keep;
}

// The device's limits for a test (CudaBackend::set_sample_limits); a no-op without CUDA.
void set_limits(Backend& gpu, int sort_candidates, bool selects) {
#ifdef DENSEKV_HAVE_CUDA
  auto* cuda = dynamic_cast<CudaBackend*>(&gpu);
  ASSERT_NE(cuda, nullptr);
  cuda->set_sample_limits(sort_candidates, selects);
#else
  (void)gpu, (void)sort_candidates, (void)selects;
#endif
}

// Draws of every row of `logits` with params p, 8 RNG seeds per row; returns how many draws the
// device left to the host (-1), which it may only do with its selects off, for rows that keep
// more than 2048 ids.
int expect_host_tokens(Backend& gpu, const Tensor& t, const std::vector<float>& host, int vocab,
                       const SamplingParams& p, uint64_t seed0, bool selects) {
  Sampler sampler;
  int left = 0;
  for (uint64_t s = 0; s < 8; ++s) {
    std::vector<DeviceDraw> draws;
    std::vector<int32_t> want;
    for (int r = 0; r < t.rows; ++r) {
      SamplerRng rng(seed0 * 131 + s * 17 + static_cast<uint64_t>(r));
      SamplerRng dev = rng;
      draws.push_back(device_draw(p, r, dev));
      const std::span<const float> row(host.data() + static_cast<size_t>(r) * vocab,
                                       static_cast<size_t>(vocab));
      want.push_back(sampler.sample(row, p, SamplingContext{{}, nullptr}, rng).token);
    }
    const std::vector<int32_t> got = gpu.sample(t, draws);
    EXPECT_EQ(got.size(), draws.size());
    for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
      if (got[i] < 0 && !selects) {
        ++left;
        const std::span<const float> row(host.data() + i * static_cast<size_t>(vocab),
                                         static_cast<size_t>(vocab));
        EXPECT_GT(kept_ids(row, p), 2048u) << "row " << i << " left to the host";
        continue;
      }
      EXPECT_EQ(got[i], want[i]) << "row " << i << " seed " << s << " vocab " << vocab << " T "
                                 << p.temperature << " top_k " << p.top_k << " top_p " << p.top_p
                                 << " min_p " << p.min_p << " selects " << selects;
    }
  }
  return left;
}

// Every filter combination through each of the kernel's paths: the sort (rows of at most 4096
// candidates) with the selects beyond it (the default), the selects alone (sort limit 0), and the
// sort alone, which leaves longer rows to the host.
TEST(CudaSample, EqualsHostSampler) {
  DENSEKV_REQUIRE_CUDA(gpu);
  ASSERT_TRUE(gpu->supports_device_sampling());
  const Filters cases[] = {
      {1.0f, -1, 1.0f, 0.0f},     // plain softmax: every id in id order
      {0.7f, -1, 1.0f, 0.0f},     //
      {1.3f, -1, 0.9f, 0.0f},     // top_p
      {0.8f, 50, 1.0f, 0.0f},     // top_k
      {1.0f, 40, 0.8f, 0.0f},     // top_k then top_p
      {0.6f, -1, 0.95f, 0.05f},   // top_p and min_p
      {1.0f, -1, 1.0f, 0.1f},     // min_p
      {0.9f, 1500, 0.9f, 0.0f},   // a long top_k
      {1.0f, 0, 0.5f, 0.0f},      // top_k 0: off
      {1.0f, 5, 1.0f, 0.3f},      // top_k with min_p
      {2.0f, 6000, 0.97f, 0.0f},  // top_k beyond the sort, then top_p
      {1.5f, -1, 0.99f, 1e-4f},   // top_p and min_p keeping thousands of ids
  };
  struct Mode {
    const char* name;
    int sort_candidates;
    bool selects;
  };
  const Mode modes[] = {
      {"sort, then selects", 4096, true}, {"selects only", 0, true}, {"sort only", 4096, false}};
  for (const Mode& m : modes) {
    set_limits(*gpu, m.sort_candidates, m.selects);
    std::mt19937 rng(7);
    int draws = 0, left = 0;
    for (int vocab : {1000, 128256}) {
      for (DType dt : {DType::F32, DType::BF16}) {
        const int rows = 12;
        const std::vector<float> host = lm_logits(rows, vocab, dt, rng);
        OwnedTensor t = make_owned(*gpu, dt, rows, vocab, &host);
        uint64_t seed = 1;
        for (const Filters& f : cases) {
          SamplingParams p;
          p.temperature = f.temperature;
          p.top_k = f.top_k;
          p.top_p = f.top_p;
          p.min_p = f.min_p;
          left += expect_host_tokens(*gpu, t.t, host, vocab, p, seed++, m.selects);
          draws += 8 * rows;
        }
      }
    }
    std::printf("  %s: %d draws, %d left to the host\n", m.name, draws, left);
    if (m.selects) {
      EXPECT_EQ(left, 0);
    } else {
      EXPECT_LT(left, draws / 5);
    }
  }
  set_limits(*gpu, 4096, true);
}

// A row whose top_p set is larger than the device sorts (flat logits over 128k ids) is drawn by
// selects, as the host draws it; with the selects off it comes back as -1 (the engine then
// samples it on the host).
TEST(CudaSample, LongCandidateListIsDrawnBySelects) {
  DENSEKV_REQUIRE_CUDA(gpu);
  const int vocab = 128256;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  std::vector<float> host(vocab);
  for (float& x : host) x = u(rng);
  OwnedTensor t = make_owned(*gpu, DType::F32, 1, vocab, &host);
  Sampler sampler;
  for (float top_p : {0.99f, 0.5f, 0.01f}) {
    SamplingParams p;
    p.top_p = top_p;
    for (uint64_t seed = 0; seed < 16; ++seed) {
      SamplerRng a(seed), b(seed);
      const int32_t want = sampler.sample(host, p, SamplingContext{{}, nullptr}, a).token;
      EXPECT_EQ(gpu->sample(t.t, {device_draw(p, 0, b)}).at(0), want)
          << "top_p " << top_p << " seed " << seed;
    }
  }
  set_limits(*gpu, 4096, false);
  SamplingParams p;
  p.top_p = 0.99f;
  SamplerRng r(5);
  EXPECT_EQ(gpu->sample(t.t, {device_draw(p, 0, r)}).at(0), -1);
  set_limits(*gpu, 4096, true);
}

// Backend::penalize: each penalized row is its logits row with the host's penalties, bit for bit
// (penalty_entries + apply_penalty, which tests/unit/sampler_test.cpp checks against vLLM's
// formulas), and argmax / sample of those rows give the host Sampler's tokens for the same
// prompt, output counts and RNG state.
TEST(CudaSample, PenalizedRowsEqualHostSampler) {
  DENSEKV_REQUIRE_CUDA(gpu);
  std::mt19937 rng(11);
  int rows_checked = 0, entries_checked = 0;
  for (int vocab : {1000, 128256}) {
    for (DType dt : {DType::F32, DType::BF16}) {
      const int rows = 6;
      const std::vector<float> host = lm_logits(rows, vocab, dt, rng);
      OwnedTensor t = make_owned(*gpu, dt, rows, vocab, &host);
      // Penalized rows of source rows {3, 0, 5, 3, 1} (a source may repeat), each its own
      // prompt, output counts (among the row's likely ids, so the choice moves) and parameters.
      const std::vector<int32_t> src = {3, 0, 5, 3, 1};
      std::vector<std::vector<int32_t>> prompts(src.size());
      std::vector<std::unordered_map<int32_t, int>> counts(src.size());
      std::vector<SamplingParams> params(src.size());
      std::vector<PenaltyEntry> entries;
      std::vector<int32_t> begins = {0};
      PenaltyIndex index;
      for (size_t r = 0; r < src.size(); ++r) {
        const float* row = host.data() + static_cast<size_t>(src[r]) * vocab;
        std::vector<int32_t> top(static_cast<size_t>(vocab));
        for (int i = 0; i < vocab; ++i) top[i] = i;
        std::partial_sort(top.begin(), top.begin() + 16, top.end(),
                          [&](int32_t a, int32_t b) { return row[a] > row[b]; });
        for (int k = 0; k < 200; ++k) prompts[r].push_back(static_cast<int32_t>(rng() % vocab));
        for (int k = 0; k < 6; ++k) prompts[r].push_back(top[rng() % 16]);
        for (int k = 0; k < 40; ++k) ++counts[r][top[rng() % 16]];
        for (int k = 0; k < 40; ++k) ++counts[r][static_cast<int32_t>(rng() % vocab)];
        SamplingParams& p = params[r];
        p.repetition_penalty = r % 3 == 2 ? 1.0f : 1.3f;
        p.frequency_penalty = r % 2 ? 0.4f : 0.0f;
        p.presence_penalty = r == 1 ? 0.0f : -0.5f + 0.3f * static_cast<float>(r);
        p.temperature = r % 2 ? 0.0f : 0.8f;
        p.top_k = r == 2 ? 40 : -1;
        p.seed = 5 + r;
        penalty_entries(p, {prompts[r], &counts[r]}, vocab, entries, index);
        begins.push_back(static_cast<int32_t>(entries.size()));
      }
      const Tensor pen = gpu->penalize(t.t, src, begins, entries);
      ASSERT_EQ(pen.rows, static_cast<int64_t>(src.size()));
      ASSERT_EQ(pen.dtype, DType::F32);
      const std::vector<float> got = download(*gpu, pen);
      for (size_t r = 0; r < src.size(); ++r) {
        std::vector<float> want(host.begin() + static_cast<int64_t>(src[r]) * vocab,
                                host.begin() + static_cast<int64_t>(src[r] + 1) * vocab);
        for (int e = begins[r]; e < begins[r + 1]; ++e) {
          want[entries[e].id] = apply_penalty(want[entries[e].id], entries[e]);
        }
        for (int i = 0; i < vocab; ++i) {
          ASSERT_EQ(got[r * vocab + i], want[i]) << "row " << r << " id " << i;
        }
        ++rows_checked;
        entries_checked += begins[r + 1] - begins[r];
      }
      // The tokens: device argmax and draws of the penalized rows against Sampler::sample on
      // the raw rows with the same contexts.
      const std::vector<int32_t> am = gpu->argmax(pen);
      std::vector<DeviceDraw> draws;
      std::vector<int32_t> want_draws;
      Sampler sampler;
      for (size_t r = 0; r < src.size(); ++r) {
        const std::span<const float> row(host.data() + static_cast<size_t>(src[r]) * vocab,
                                         static_cast<size_t>(vocab));
        SamplerRng a(100 + r), b(100 + r);
        const int32_t want = sampler.sample(row, params[r], {prompts[r], &counts[r]}, a).token;
        if (is_greedy(params[r])) {
          EXPECT_EQ(am[r], want) << "greedy row " << r;
        } else {
          draws.push_back(device_draw(params[r], static_cast<int32_t>(r), b));
          want_draws.push_back(want);
        }
      }
      EXPECT_EQ(gpu->sample(pen, draws), want_draws);
    }
  }
  std::printf("  %d penalized rows, %d entries: equal to the host's\n", rows_checked,
              entries_checked);
}

// One step's rows through DevicePicks with rows that ask for logprobs among greedy, drawing and
// penalized rows: every row is picked on the device, and its token (and logprobs) are
// Sampler::sample's for the same RNG.
TEST(CudaSample, DevicePicksEqualSamplerWithLogprobs) {
  DENSEKV_REQUIRE_CUDA(gpu);
  std::mt19937 rng(21);
  const int vocab = 32000, rows = 16;
  const std::vector<float> host = lm_logits(rows, vocab, DType::F32, rng);
  OwnedTensor t = make_owned(*gpu, DType::F32, rows, vocab, &host);
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int r = 0; r < rows; ++r) {
    GenerationRequest req;
    for (int k = 0; k < 30; ++k) req.prompt_ids.push_back(static_cast<int32_t>(rng() % vocab));
    SamplingParams& p = req.params;
    p.temperature = r % 2 ? 0.0f : 0.9f;
    if (r % 3 == 0) p.logprobs = r % 4;
    if (r % 4 == 1) p.repetition_penalty = 1.3f;
    if (r % 5 == 2) p.top_k = 40;
    seqs.push_back(std::make_unique<Sequence>(req, r, 1234 + r, Sequence::Clock::now()));
  }
  DevicePicks picks(vocab);
  std::vector<SamplerRng> before;
  for (int r = 0; r < rows; ++r) {
    before.push_back(seqs[r]->rng);
    picks.add(r, *seqs[r]);
  }
  ASSERT_FALSE(picks.pick(*gpu, t.t));  // nothing left to the host
  Sampler sampler;
  for (int r = 0; r < rows; ++r) {
    const Sequence& q = *seqs[r];
    const std::span<const float> row(host.data() + static_cast<size_t>(r) * vocab,
                                     static_cast<size_t>(vocab));
    const SamplingContext ctx{std::span<const int32_t>(q.tokens().data(), q.prompt_len()),
                              &q.output_counts()};
    SamplerRng ref = before[r];
    const SampleResult want = sampler.sample(row, q.params(), ctx, ref);
    const SampleResult got = picks.result(r);
    EXPECT_EQ(got.token, want.token) << "row " << r;
    EXPECT_EQ(seqs[r]->rng.next_u64(), ref.next_u64()) << "row " << r << ": the RNG";
    if (q.params().logprobs >= 0) {
      EXPECT_TRUE(same_logprobs(got.logprobs, want.logprobs)) << "row " << r;
      EXPECT_EQ(got.logprobs.top.size(), static_cast<size_t>(q.params().logprobs));
    }
  }
}

}  // namespace
