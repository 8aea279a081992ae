// The sampler against the formulas it implements (vLLM's semantics) and a reference vector of
// splitmix64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/errors.h"
#include "engine/sampler.h"

using namespace densekv;

namespace {

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

// Frequencies of n draws.
std::vector<double> frequencies(const std::vector<float>& logits, const SamplingParams& p,
                                int n = 40000) {
  Sampler s;
  SamplerRng rng(123);
  std::unordered_map<int32_t, int> none;
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < n; ++i) f[s.sample(logits, p, {{}, &none}, rng).token] += 1.0 / n;
  return f;
}

TEST(Sampler, SplitMix64ReferenceValues) {
  SamplerRng rng(0);  // reference outputs of splitmix64 seeded with 0
  EXPECT_EQ(rng.next_u64(), 0xe220a8397b1dcdafull);
  EXPECT_EQ(rng.next_u64(), 0x6e789e6aa1b965f4ull);
  for (int i = 0; i < 1000; ++i) {
    const double d = rng.next_double();
    ASSERT_TRUE(d >= 0.0 && d < 1.0);
  }
}

TEST(Sampler, GreedyIsArgmaxFirstOnTies) {
  Sampler s;
  SamplerRng rng(1);
  SamplingParams p;
  p.temperature = 0;
  std::unordered_map<int32_t, int> none;
  std::vector<float> l = {0.1f, 3.0f, -2.0f, 3.0f};
  EXPECT_EQ(s.sample(l, p, {{}, &none}, rng).token, 1);
  p.temperature = 1.0f;
  p.top_k = 1;  // top_k 1 is greedy at any temperature
  EXPECT_EQ(s.sample(l, p, {{}, &none}, rng).token, 1);
}

// The engine's greedy fast path takes Backend::argmax instead of Sampler::sample: both must pick
// the same token on every row, ties (first index) and infinities included. Rows of values from
// a 5-value set tie all the time; the CUDA argmax is compared with the CPU one in
// tests/kernels (cuda_ops_test, cuda_decode_step_test).
TEST(Sampler, BackendArgmaxEqualsGreedySampleOnTies) {
  constexpr int kRows = 300, kVocab = 97;
  const float values[] = {-INFINITY, -1.0f, 0.5f, 2.0f, 2.0f};
  std::vector<float> logits(kRows * kVocab);
  SamplerRng pick(5);
  for (float& x : logits) x = values[pick.next_u64() % 5];
  for (int c = 0; c < kVocab; ++c) logits[c] = -INFINITY;      // row 0: all -inf, first index wins
  for (int c = 0; c < kVocab; ++c) logits[kVocab + c] = 1.0f;  // row 1: all equal
  CpuBackend be(1);
  const std::vector<int32_t> ids =
      be.argmax(Tensor{logits.data(), DType::F32, kRows, kVocab, kVocab});
  Sampler s;
  std::unordered_map<int32_t, int> none;
  int ties = 0;
  for (int r = 0; r < kRows; ++r) {
    const std::span<const float> row(logits.data() + r * kVocab, kVocab);
    ties += std::count(row.begin(), row.end(), 2.0f) > 1;
    for (float t : {0.0f, 0.7f, 1.0f, 3.0f}) {
      SamplingParams p;
      p.temperature = t;
      p.top_k = t == 0.0f ? -1 : 1;
      ASSERT_TRUE(greedy_without_logits(p));
      SamplerRng rng(r), rng2(r);
      EXPECT_EQ(s.sample(row, p, {{}, &none}, rng).token, ids[r]) << "row " << r << " t " << t;
      greedy_rng_draw(p, rng2);  // the fast path leaves the RNG where sample() does
      EXPECT_EQ(rng.next_u64(), rng2.next_u64()) << "row " << r << " t " << t;
    }
  }
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 0);
  EXPECT_GT(ties, kRows / 2);
}

TEST(Sampler, GreedyWithoutLogitsOnlyWhenNothingElseNeedsThem) {
  SamplingParams p;
  EXPECT_FALSE(greedy_without_logits(p));  // temperature 1: sampling
  p.temperature = 0;
  EXPECT_TRUE(greedy_without_logits(p));
  p.logprobs = 0;
  EXPECT_FALSE(greedy_without_logits(p));
  p.logprobs = -1;
  p.repetition_penalty = 1.1f;
  EXPECT_FALSE(greedy_without_logits(p));
  p.repetition_penalty = 1.0f;
  p.frequency_penalty = 0.1f;
  EXPECT_FALSE(greedy_without_logits(p));
  p.frequency_penalty = 0.0f;
  p.presence_penalty = -0.1f;
  EXPECT_FALSE(greedy_without_logits(p));
  p.presence_penalty = 0.0f;
  p.temperature = 0.9f;
  p.top_k = 1;
  EXPECT_TRUE(greedy_without_logits(p));
  p.top_k = 2;
  EXPECT_FALSE(greedy_without_logits(p));
}

TEST(Sampler, DrawsFollowTheFilteredDistribution) {
  const std::vector<float> l = logits_of({0.5, 0.3, 0.15, 0.05});
  SamplingParams p;
  auto f = frequencies(l, p);
  EXPECT_NEAR(f[0], 0.5, 0.01);
  EXPECT_NEAR(f[1], 0.3, 0.01);
  EXPECT_NEAR(f[3], 0.05, 0.006);
  p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.8: tokens 0 and 1
  f = frequencies(l, p);
  EXPECT_NEAR(f[0], 0.5 / 0.8, 0.01);
  EXPECT_EQ(f[2] + f[3], 0.0);
  p.top_p = 1.0f;
  p.min_p = 0.5f;  // keep p >= 0.25
  f = frequencies(l, p);
  EXPECT_NEAR(f[1], 0.3 / 0.8, 0.01);
  EXPECT_EQ(f[2] + f[3], 0.0);
  p.min_p = 0.0f;
  p.top_k = 3;
  f = frequencies(l, p);
  EXPECT_NEAR(f[2], 0.15 / 0.95, 0.01);
  EXPECT_EQ(f[3], 0.0);
  p.top_k = -1;
  p.temperature = 0.5f;  // p^2, renormalized
  f = frequencies(l, p);
  const double z = 0.25 + 0.09 + 0.0225 + 0.0025;
  EXPECT_NEAR(f[0], 0.25 / z, 0.01);
  EXPECT_NEAR(f[1], 0.09 / z, 0.01);
}

// Large vocabularies: top_p / min_p sets bigger than the first sorted prefix.
TEST(Sampler, FiltersOnALargeVocabulary) {
  std::vector<float> flat(1000), steep(1000);
  for (int i = 0; i < 1000; ++i) {
    flat[i] = -1e-4f * static_cast<float>(i);   // nearly uniform
    steep[i] = -0.01f * static_cast<float>(i);  // p_i / p_0 = exp(-0.01 i)
  }
  SamplingParams p;
  p.top_p = 0.5f;
  auto f = frequencies(flat, p, 6000);
  int used = 0, last = 0;
  for (int i = 0; i < 1000; ++i) {
    if (f[i] > 0) ++used, last = i;
  }
  EXPECT_GT(used, 400);
  EXPECT_LE(last, 510) << "about half the mass: the first ~500 ids";
  p.top_p = 1.0f;
  p.min_p = 0.5f;  // exp(-0.01 i) >= 0.5 for i <= 69
  f = frequencies(steep, p, 6000);
  for (int i = 70; i < 1000; ++i) ASSERT_EQ(f[i], 0.0) << i;
  EXPECT_GT(f[69], 0.0);
}

TEST(Sampler, PenaltiesChangeTheGreedyChoice) {
  Sampler s;
  SamplerRng rng(1);
  SamplingParams p;
  p.temperature = 0;
  std::vector<float> l = {2.0f, 1.9f, -1.0f, 1.0f};
  std::unordered_map<int32_t, int> none, counts = {{0, 3}};
  const int32_t prompt[] = {0};
  p.repetition_penalty = 2.0f;  // 2.0 / 2 = 1.0 < 1.9
  EXPECT_EQ(s.sample(l, p, {prompt, &none}, rng).token, 1);
  EXPECT_EQ(s.sample(l, p, {{}, &counts}, rng).token, 1) << "output tokens count too";
  p.repetition_penalty = 1.0f;
  EXPECT_EQ(s.sample(l, p, {prompt, &none}, rng).token, 0);
  p.frequency_penalty = 0.05f;  // 2.0 - 3 * 0.05 = 1.85 < 1.9
  EXPECT_EQ(s.sample(l, p, {{}, &counts}, rng).token, 1);
  p.frequency_penalty = 0.0f;
  p.presence_penalty = 0.05f;  // 1.95 > 1.9
  EXPECT_EQ(s.sample(l, p, {{}, &counts}, rng).token, 0);
  p.presence_penalty = 0.2f;
  EXPECT_EQ(s.sample(l, p, {{}, &counts}, rng).token, 1);
  // Negative logits are multiplied by the repetition penalty.
  std::vector<float> neg = {-1.0f, -1.5f};
  p = SamplingParams{};
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  EXPECT_EQ(s.sample(neg, p, {prompt, &none}, rng).token, 1);  // -2.0 < -1.5
}

TEST(Sampler, LogprobsAreLogSoftmaxOfRawLogits) {
  const std::vector<float> l = {1.0f, 3.0f, 2.0f, -1.0f};
  double z = 0;
  for (float v : l) z += std::exp(static_cast<double>(v));
  TokenLogprobs lp = token_logprobs(l, 2, 2);
  EXPECT_EQ(lp.token_id, 2);
  EXPECT_NEAR(lp.logprob, 2.0 - std::log(z), 1e-6);
  ASSERT_EQ(lp.top.size(), 2u);
  EXPECT_EQ(lp.top[0].first, 1);
  EXPECT_EQ(lp.top[1].first, 2);
  EXPECT_NEAR(lp.top[0].second, 3.0 - std::log(z), 1e-6);
  // Through the sampler: of the raw logits, not the penalized ones.
  Sampler s;
  SamplerRng rng(1);
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = 1;
  p.repetition_penalty = 1.5f;
  std::unordered_map<int32_t, int> none;
  SampleResult r = s.sample(l, p, {{}, &none}, rng);
  EXPECT_NEAR(r.logprobs.logprob, 3.0 - std::log(z), 1e-6);
}

TEST(Sampler, SameSeedSameTokens) {
  std::vector<float> l = logits_of({0.2, 0.2, 0.2, 0.2, 0.2});
  SamplingParams p;
  std::unordered_map<int32_t, int> none;
  Sampler a, b;
  SamplerRng ra(77), rb(77), rc(78);
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(l, p, {{}, &none}, ra).token);
    tb.push_back(b.sample(l, p, {{}, &none}, rb).token);
    tc.push_back(b.sample(l, p, {{}, &none}, rc).token);
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(Sampler, ValidationNamesTheParameter) {
  auto message = [](SamplingParams p) -> std::string {
    try {
      validate_sampling_params(p, 100);
    } catch (const InvalidArgumentError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(message({}), "");
  SamplingParams p;
  p.temperature = NAN;
  EXPECT_EQ(message(p).rfind("temperature", 0), 0u);
  p = {};
  p.top_p = 1.5f;
  EXPECT_EQ(message(p).rfind("top_p", 0), 0u);
  p = {};
  p.top_k = -2;
  EXPECT_EQ(message(p).rfind("top_k", 0), 0u);
  p = {};
  p.min_p = -0.1f;
  EXPECT_EQ(message(p).rfind("min_p", 0), 0u);
  p = {};
  p.presence_penalty = 3;
  EXPECT_EQ(message(p).rfind("presence_penalty", 0), 0u);
  p = {};
  p.frequency_penalty = -3;
  EXPECT_EQ(message(p).rfind("frequency_penalty", 0), 0u);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_EQ(message(p).rfind("repetition_penalty", 0), 0u);
  p = {};
  p.max_tokens = 0;
  EXPECT_EQ(message(p).rfind("max_tokens", 0), 0u);
  p = {};
  p.logprobs = 21;
  EXPECT_EQ(message(p).rfind("logprobs", 0), 0u);
  p = {};
  p.stop = {"ok", ""};
  EXPECT_EQ(message(p).rfind("stop", 0), 0u);
  p = {};
  p.stop_token_ids = {100};
  EXPECT_EQ(message(p).rfind("stop_token_ids", 0), 0u);
}

// The device's draw (Backend::sample) gets the RNG value sample() would use, and leaves the
// sequence's RNG where sample() leaves it; greedy rows take the argmax, penalties go through
// Backend::penalize.
TEST(Sampler, DeviceDrawTakesSamplesDraw) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.9f;
  ASSERT_FALSE(is_greedy(p));
  SamplerRng a(42), b(42), c(42);
  const DeviceDraw d = device_draw(p, 3, a);
  EXPECT_EQ(d.row, 3);
  EXPECT_EQ(d.temperature, 0.8f);
  EXPECT_EQ(d.top_p, 0.9f);
  EXPECT_EQ(d.u, c.next_double());
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.5f};
  Sampler s;
  s.sample(logits, p, SamplingContext{{}, nullptr}, b);
  EXPECT_EQ(a.next_u64(), b.next_u64());  // one draw each
  SamplingParams q = p;
  q.top_k = 1;
  EXPECT_TRUE(is_greedy(q));
  q.top_k = -1;
  q.temperature = 0.0f;
  EXPECT_TRUE(is_greedy(q));
  q = p;
  q.repetition_penalty = 1.1f;
  EXPECT_TRUE(has_penalties(q));
  EXPECT_FALSE(has_penalties(p));
}

// vLLM's penalties written out directly (apply_penalties in vllm/model_executor/layers/utils.py):
// the oracle for penalty_entries + apply_penalty, which the device applies the same way.
std::vector<float> vllm_penalties(std::vector<float> l, const SamplingParams& p,
                                  std::span<const int32_t> prompt,
                                  const std::unordered_map<int32_t, int>& counts) {
  const int vocab = static_cast<int>(l.size());
  std::vector<bool> seen(l.size(), false);
  for (int32_t t : prompt) seen[t] = true;
  for (const auto& [t, c] : counts) seen[t] = true;
  for (int t = 0; t < vocab; ++t) {
    if (seen[t]) l[t] = l[t] > 0 ? l[t] / p.repetition_penalty : l[t] * p.repetition_penalty;
  }
  for (const auto& [t, c] : counts) {
    l[t] -= p.frequency_penalty * static_cast<float>(c);
    if (c > 0) l[t] -= p.presence_penalty;
  }
  return l;
}

TEST(Sampler, PenaltyEntriesAreVllmsPenalties) {
  std::mt19937 rng(7);
  std::normal_distribution<float> logit(0.0f, 3.0f);
  const int vocab = 5000;
  PenaltyIndex index;
  int checked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<float> l(vocab);
    for (float& x : l) x = logit(rng);
    std::vector<int32_t> prompt(static_cast<size_t>(rng() % 300));
    for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % 400);  // repeats, overlaps
    std::unordered_map<int32_t, int> counts;
    for (int k = static_cast<int>(rng() % 200); k-- > 0;)
      ++counts[static_cast<int32_t>(rng() % 600)];
    SamplingParams p;
    p.repetition_penalty = trial % 3 == 0 ? 1.0f : 0.5f + static_cast<float>(rng() % 100) / 50.0f;
    p.frequency_penalty = trial % 3 == 1 ? 0.0f : static_cast<float>(rng() % 400) / 100.0f - 2.0f;
    p.presence_penalty = trial % 4 == 1 ? 0.0f : static_cast<float>(rng() % 400) / 100.0f - 2.0f;
    std::vector<PenaltyEntry> entries = {PenaltyEntry{9, 3.0f, 1.0f, 2.0f}};  // appended after this
    penalty_entries(p, {prompt, &counts}, vocab, entries, index);
    std::vector<float> got = l;
    std::vector<bool> once(vocab, false);
    for (size_t i = 1; i < entries.size(); ++i) {
      const PenaltyEntry& e = entries[i];
      ASSERT_TRUE(e.id >= 0 && e.id < vocab);
      ASSERT_FALSE(once[e.id]) << "id " << e.id << " twice";
      once[e.id] = true;
      got[e.id] = apply_penalty(got[e.id], e);
    }
    const std::vector<float> want = vllm_penalties(l, p, prompt, counts);
    for (int t = 0; t < vocab; ++t) ASSERT_EQ(got[t], want[t]) << "trial " << trial << " id " << t;
    ASSERT_TRUE(std::all_of(index.slot.begin(), index.slot.end(), [](int32_t s) { return s == 0; }))
        << "the scratch is left zeroed";
    checked += static_cast<int>(entries.size()) - 1;
  }
  EXPECT_GT(checked, 5000);
  std::vector<PenaltyEntry> none;
  penalty_entries(SamplingParams{}, {{}, nullptr}, vocab, none, index);
  EXPECT_TRUE(none.empty());
}

}  // namespace
