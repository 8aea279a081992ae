// The decode step's opt-in fast paths on the GPU (skipped without one):
//  - decode graphs (model/decode_graph.h, DENSEKV_CUDA_GRAPHS=1): a replayed graph gives the
//    logits of the same padded step run uncaptured bit for bit; against the plain (unpadded)
//    forward the logits agree within rounding (padding changes cuBLASLt's GEMM shapes and the
//    attention's split count, so not bitwise), for bf16 and int4_kivi; the engine's greedy
//    outputs with graphs equal the plain engine's up to the first near tie.
//  - greedy and plain draws on the device (EngineConfig::greedy_on_device): the engine's tokens
//    equal the host sampler's (the same logits and RNG draws, Backend::argmax / Backend::sample
//    vs Sampler).
// Host-side versions: tests/unit/decode_graph_test.cpp, engine_test.cpp, sampler_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "../unit/decode_scenario.h"
#include "../unit/engine_test_util.h"
#include "engine/llm_engine.h"
#include "kernel_test_util.h"
#include "model/llama.h"
#ifdef DENSEKV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

using namespace densekv;
using namespace densekv::test;
using densekv::testing::run_decode_scenario;

namespace {

const std::string kModel = std::string(DENSEKV_SOURCE_DIR) + "/tests/data/models/llama31-tiny";

class CudaDecodeGraph : public ::testing::TestWithParam<KvFormat> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
    std::string why;
    gpu_ = cuda_backend_or_null(why);
    if (!gpu_) GTEST_SKIP() << "no CUDA backend (" << why << ")";
    graphs_ = load_llama(*gpu_, kModel);
    graphs_->set_decode_graphs(true);
    plain_ = load_llama(*gpu_, kModel);
    cfg_ = kv_cache_config(plain_->config(), GetParam(), 48, 5);
    cfg_.prefix_caching = false;
  }
  std::unique_ptr<Backend> gpu_;
  std::unique_ptr<LlamaModel> graphs_, plain_;
  KvCacheConfig cfg_;
};

TEST_P(CudaDecodeGraph, ReplaysEqualTheUncapturedPaddedStepBitwise) {
  KvCache replayed(*gpu_, cfg_);
  const auto got = run_decode_scenario(*graphs_, replayed);
  ASSERT_GT(graphs_->graph_replays(), 8);
  // Dropping the graphs before every forward: each step runs padded but uncaptured (then is
  // captured and never replayed).
  auto fresh = load_llama(*gpu_, kModel);
  KvCache uncaptured(*gpu_, cfg_);
  const auto want = run_decode_scenario(*fresh, uncaptured, [&] {
    fresh->set_decode_graphs(false);
    fresh->set_decode_graphs(true);
  });
  EXPECT_EQ(fresh->graph_replays(), 0);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), want[i].size());
    EXPECT_EQ(std::memcmp(got[i].data(), want[i].data(), got[i].size() * sizeof(float)), 0)
        << kv_format_name(GetParam()) << " forward " << i;
  }
}

TEST_P(CudaDecodeGraph, LogitsMatchThePlainForward) {
  KvCache cg(*gpu_, cfg_), cp(*gpu_, cfg_);
  const auto got = run_decode_scenario(*graphs_, cg);
  const auto want = run_decode_scenario(*plain_, cp);
  ASSERT_EQ(got.size(), want.size());
  const int vocab = plain_->config().vocab_size;
  double worst = 0;
  int top1_checked = 0, top1_same = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), want[i].size());
    double max_diff = 0, max_ref = 0;
    for (size_t j = 0; j < got[i].size(); ++j) {
      max_diff = std::max(max_diff, double(std::fabs(got[i][j] - want[i][j])));
      max_ref = std::max(max_ref, double(std::fabs(want[i][j])));
    }
    worst = std::max(worst, max_diff / max_ref);
    EXPECT_LT(max_diff / max_ref, 1e-2) << kv_format_name(GetParam()) << " forward " << i;
    for (size_t r = 0; r * vocab < want[i].size(); ++r) {
      const float* w = want[i].data() + r * vocab;
      const float* g = got[i].data() + r * vocab;
      std::vector<float> top(w, w + vocab);
      std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<>());
      if (top[0] - top[1] <= 2 * max_diff) continue;
      ++top1_checked;
      top1_same += std::max_element(g, g + vocab) - g == std::max_element(w, w + vocab) - w;
    }
  }
  std::printf(
      "  %s: %zu forwards, max |diff| / max |logit| %.3g, top-1 %d/%d, %lld captures, "
      "%lld replays\n",
      kv_format_name(GetParam()), got.size(), worst, top1_same, top1_checked,
      static_cast<long long>(graphs_->graph_captures()),
      static_cast<long long>(graphs_->graph_replays()));
  EXPECT_EQ(top1_same, top1_checked);
  EXPECT_GT(graphs_->graph_replays(), 8);
}

// Greedy engine outputs with graphs vs without, for mixed concurrent requests: identical up to
// the first step where the plain run's top two logprobs are within kMargin (a near tie that the
// padded GEMM's rounding, or another batch composition, may flip: GPU logits are not
// batch-invariant and concurrent submission does not fix the batches); after it the
// continuations may differ. These tiny random models have many near ties (docs/quality.md).
TEST_P(CudaDecodeGraph, EngineGreedyEqualsThePlainEngineAwayFromTies) {
  constexpr float kMargin = 0.05f;
  auto reqs = densekv::testing::random_requests(24, plain_->config().vocab_size, 80, 40, 3);
  for (auto& r : reqs) r.params.logprobs = 2;  // the top two, for the tie test
  EngineConfig c;
  c.max_num_seqs = 16;
  c.max_num_batched_tokens = 128;
  c.num_kv_blocks = 256;
  c.kv_cache_dtype = kv_format_name(GetParam());
  auto eg = make_llm_engine(*graphs_, c);
  const auto got = densekv::testing::run_concurrently(*eg, reqs);
  eg->shutdown(true);
  auto ep = make_llm_engine(*plain_, c);
  const auto want = densekv::testing::run_concurrently(*ep, reqs);
  ep->shutdown(true);
  int compared = 0, total = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& w = want[i];
    total += static_cast<int>(w.token_ids.size());
    for (size_t k = 0; k < w.token_ids.size(); ++k) {
      ASSERT_LT(k, got[i].token_ids.size());
      const auto& top = w.logprobs[k].top;
      if (top.size() < 2 || top[0].second - top[1].second < kMargin) break;
      ASSERT_EQ(got[i].token_ids[k], w.token_ids[k]) << "request " << i << " token " << k;
      ++compared;
    }
  }
  std::printf("  %s: %d of %d tokens compared before a near tie\n", kv_format_name(GetParam()),
              compared, total);
  EXPECT_GT(compared, total / 10);
  EXPECT_GT(graphs_->graph_replays(), 20);
}

INSTANTIATE_TEST_SUITE_P(Formats, CudaDecodeGraph,
                         ::testing::Values(KvFormat::BF16, KvFormat::INT4_KIVI),
                         [](const auto& info) { return std::string(kv_format_name(info.param)); });

// The engine's tokens for `reqs` with the device fast path (EngineConfig::greedy_on_device) on
// and off, bf16 and int4_kivi, must be equal. One request at a time, so both runs have the same
// batches (GPU logits depend on the batch shape); check(on, off) sees the two runs' metrics.
void expect_same_tokens_on_and_off(
    LlamaModel& model, const std::vector<GenerationRequest>& reqs,
    const std::function<void(const EngineMetrics&, const EngineMetrics&)>& check) {
  EngineConfig on;
  on.max_num_seqs = 32;
  on.num_kv_blocks = 256;
  EngineConfig off = on;
  off.greedy_on_device = false;
  for (const char* f : {"bf16", "int4_kivi"}) {
    on.kv_cache_dtype = off.kv_cache_dtype = f;
    auto e_on = make_llm_engine(model, on);
    const auto got = densekv::testing::run_one_by_one(*e_on, reqs);
    const EngineMetrics m_on = e_on->metrics();
    e_on->shutdown(true);
    auto e_off = make_llm_engine(model, off);
    const auto want = densekv::testing::run_one_by_one(*e_off, reqs);
    const EngineMetrics m_off = e_off->metrics();
    e_off->shutdown(true);
    check(m_on, m_off);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(got[i].token_ids, want[i].token_ids) << f << " request " << i;
      ASSERT_EQ(got[i].logprobs.size(), want[i].logprobs.size()) << f << " request " << i;
      for (size_t k = 0; k < got[i].logprobs.size(); ++k) {
        EXPECT_TRUE(densekv::test::same_logprobs(got[i].logprobs[k], want[i].logprobs[k]))
            << f << " request " << i << " token " << k;
      }
    }
  }
}

// Greedy on the device: the same engine tokens as the host sampler, exactly (the logits are the
// same; only who takes the argmax differs), and the fast path ran.
TEST(CudaGreedy, EngineOnDeviceEqualsHostSampler) {
  if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
  DENSEKV_REQUIRE_CUDA(gpu);
  auto model = load_llama(*gpu, kModel);
  const auto reqs = densekv::testing::random_requests(32, model->config().vocab_size, 60, 30, 4);
  expect_same_tokens_on_and_off(*model, reqs,
                                [](const EngineMetrics& on, const EngineMetrics& off) {
                                  EXPECT_GT(on.greedy_device_steps, 0);
                                  EXPECT_EQ(off.greedy_device_steps, 0);
                                });
}

// Sampling on the device (Backend::sample, each sequence's RNG draw taken on the host): the same
// engine tokens as the host sampler for seeded requests with temperature, top_k, top_p and min_p
// (and greedy ones), no row left to the host.
TEST(CudaSample, EngineOnDeviceEqualsHostSampler) {
  if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
  DENSEKV_REQUIRE_CUDA(gpu);
  auto model = load_llama(*gpu, kModel);
  auto reqs = densekv::testing::random_requests(24, model->config().vocab_size, 60, 30, 5);
  for (size_t i = 0; i < reqs.size(); ++i) {
    SamplingParams& p = reqs[i].params;
    p.seed = 1000 + i;
    p.temperature = 0.7f + 0.1f * static_cast<float>(i % 5);
    if (i % 4 == 1) p.top_p = 0.9f;
    if (i % 4 == 2) p.top_k = 20;
    if (i % 4 == 3) p.min_p = 0.05f;
    if (i % 6 == 5) p.temperature = 0.0f;
  }
  expect_same_tokens_on_and_off(*model, reqs,
                                [](const EngineMetrics& on, const EngineMetrics& off) {
                                  EXPECT_GT(on.device_draw_rows, 0);
                                  EXPECT_EQ(on.host_fallback_rows, 0);
                                  EXPECT_EQ(off.device_draw_rows, 0);
                                });
}

// Requests whose rows keep more candidates than the device sorts (the sort's limit lowered to 4
// here): drawn by selects on the device (the default), or, with the selects off, left to the
// host, which samples them from the same RNG state. Either way the tokens are the host
// sampler's.
void expect_rows_beyond_the_sort_keep_the_tokens(bool selects) {
  if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
  DENSEKV_REQUIRE_CUDA(gpu);
#ifdef DENSEKV_HAVE_CUDA
  auto* cuda = dynamic_cast<CudaBackend*>(gpu.get());
  ASSERT_NE(cuda, nullptr);
  cuda->set_sample_limits(4, selects);
#endif
  auto model = load_llama(*gpu, kModel);
  auto reqs = densekv::testing::random_requests(12, model->config().vocab_size, 40, 20, 6);
  for (size_t i = 0; i < reqs.size(); ++i) {
    SamplingParams& p = reqs[i].params;
    p.seed = 77 + i;
    p.temperature = 1.5f;
    p.top_p = 0.95f;
    if (i % 3 == 1) p.top_k = 3;  // fits the sort
    if (i % 4 == 2) p.min_p = 0.01f;
  }
  expect_same_tokens_on_and_off(*model, reqs,
                                [selects](const EngineMetrics& on, const EngineMetrics&) {
                                  if (selects) {
                                    EXPECT_EQ(on.host_fallback_rows, 0);
                                  } else {
                                    EXPECT_GT(on.host_fallback_rows, 0);
                                  }
                                  EXPECT_LT(on.host_fallback_rows, on.device_draw_rows);
                                });
}

TEST(CudaSample, RowsBeyondTheSortAreDrawnBySelects) {
  expect_rows_beyond_the_sort_keep_the_tokens(true);
}

TEST(CudaSample, RowsLeftToTheHostKeepTheTokens) {
  expect_rows_beyond_the_sort_keep_the_tokens(false);
}

// Penalties on the device (Backend::penalize, then argmax or sample): the same engine tokens as
// the host sampler for seeded requests mixing repetition, frequency and presence penalties with
// greedy and drawing rows (and rows without penalties).
TEST(CudaSample, EnginePenaltiesOnDeviceEqualHostSampler) {
  if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
  DENSEKV_REQUIRE_CUDA(gpu);
  auto model = load_llama(*gpu, kModel);
  auto reqs = densekv::testing::random_requests(24, model->config().vocab_size, 60, 30, 8);
  for (size_t i = 0; i < reqs.size(); ++i) {
    SamplingParams& p = reqs[i].params;
    p.seed = 500 + i;
    p.temperature = i % 2 ? 0.0f : 0.9f;
    if (i % 4 == 0) p.top_k = 30;
    if (i % 3 == 0) p.repetition_penalty = 1.2f + 0.1f * static_cast<float>(i % 4);
    if (i % 3 == 1) p.frequency_penalty = 0.5f, p.presence_penalty = 0.3f;
    if (i % 5 == 4) p.presence_penalty = -0.4f;
  }
  expect_same_tokens_on_and_off(*model, reqs,
                                [](const EngineMetrics& on, const EngineMetrics& off) {
                                  EXPECT_GT(on.penalized_rows, 0);
                                  EXPECT_GT(on.device_draw_rows, 0);
                                  EXPECT_EQ(on.host_fallback_rows, 0);
                                  EXPECT_EQ(off.penalized_rows, 0);
                                });
}

// Rows that ask for logprobs are picked on the device like the others and get their logprobs
// from Backend::logprobs: the same tokens as the host sampler for every row, and its logprobs
// (same ids, values within one float step).
TEST(CudaSample, LogprobsOnTheDeviceEqualHostSampler) {
  if (!std::filesystem::exists(kModel + "/config.json")) GTEST_SKIP() << "missing " << kModel;
  DENSEKV_REQUIRE_CUDA(gpu);
  auto model = load_llama(*gpu, kModel);
  auto reqs = densekv::testing::random_requests(18, model->config().vocab_size, 50, 25, 12);
  for (size_t i = 0; i < reqs.size(); ++i) {
    SamplingParams& p = reqs[i].params;
    p.seed = 900 + i;
    p.temperature = i % 2 ? 0.0f : 0.8f;
    if (i % 3 == 0) p.logprobs = static_cast<int>(i % 4);  // 0, 3, 2, 1, ...
    if (i % 4 == 1) p.repetition_penalty = 1.2f;
    if (i % 5 == 2) p.top_p = 0.9f;
  }
  expect_same_tokens_on_and_off(*model, reqs,
                                [](const EngineMetrics& on, const EngineMetrics& off) {
                                  EXPECT_EQ(on.host_fallback_rows, 0);
                                  EXPECT_GT(on.device_draw_rows, 0);
                                  EXPECT_GT(on.greedy_device_steps, 0);
                                  EXPECT_EQ(off.greedy_device_steps, 0);
                                });
}

}  // namespace
