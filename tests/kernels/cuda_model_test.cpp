// The whole tiny models on the CUDA backend (bf16 weights, activations and KV cache) against
// transformers' fp32 logits (tests/data/models/*/golden.json, logits_*.npy), and greedy decoding
// through the paged cache against transformers' greedy continuation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "kernel_test_util.h"
#include "model/generate.h"
#include "model/llama.h"

using namespace densekv;
using namespace densekv::test;

namespace {

const std::string kModels = std::string(DENSEKV_SOURCE_DIR) + "/tests/data/models/";

class CudaModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = kModels + GetParam();
    std::ifstream f(dir_ + "/golden.json");
    if (!f) GTEST_SKIP() << "golden model folder missing: " << dir_;
    golden_ = nlohmann::json::parse(f);
    std::string why;
    gpu_ = cuda_backend_or_null(why);
    if (!gpu_) GTEST_SKIP() << "no CUDA backend (" << why << ")";
    model_ = load_llama(*gpu_, dir_);
  }
  std::string dir_;
  nlohmann::json golden_;
  std::unique_ptr<Backend> gpu_;
  std::unique_ptr<LlamaModel> model_;
};

// bf16 end to end vs fp32: the error grows with depth and context; measured on the CPU with only
// the cache in bf16 at <= 0.08 absolute. Here activations are bf16 too: bound the error relative
// to the logits' range, and require the top-1 token to agree wherever the reference's margin
// between its top two logits exceeds the error bound.
TEST_P(CudaModel, LogitsCloseToTransformers) {
  const int vocab = model_->config().vocab_size;
  for (const auto& p : golden_["prompts"]) {
    const std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    NpyArray ref = read_npy_f32(dir_ + "/" + p["logits"].get<std::string>());
    for (int chunk : {0, 1, 7}) {  // 1: every forward a decode-sized matmul (gemv.cu)
      const std::vector<float> got = prompt_logits(*model_, KvFormat::BF16, ids, chunk);
      ASSERT_EQ(got.size(), ref.data.size());
      double max_diff = 0, max_ref = 0;
      int top1_checked = 0, top1_same = 0;
      for (size_t r = 0; r < ids.size(); ++r) {
        const float* g = got.data() + r * vocab;
        const float* w = ref.data.data() + r * vocab;
        double row_diff = 0;
        for (int i = 0; i < vocab; ++i) {
          row_diff = std::max(row_diff, static_cast<double>(std::fabs(g[i] - w[i])));
          max_ref = std::max(max_ref, static_cast<double>(std::fabs(w[i])));
        }
        max_diff = std::max(max_diff, row_diff);
        std::vector<float> sorted(w, w + vocab);
        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
        if (sorted[0] - sorted[1] > 2 * row_diff) {
          ++top1_checked;
          top1_same += std::max_element(g, g + vocab) - g == std::max_element(w, w + vocab) - w;
        }
      }
      std::printf("  %zu ids, chunk %d: max |diff| %.3g (max |ref| %.3g), top-1 %d/%d\n",
                  ids.size(), chunk, max_diff, max_ref, top1_same, top1_checked);
      EXPECT_LT(max_diff / max_ref, 0.03) << ids.size() << " ids, chunk " << chunk;
      EXPECT_EQ(top1_same, top1_checked);
    }
  }
}

// Greedy decoding through the paged cache (the prompt's forward, then one-token decode steps)
// against transformers' fp32 greedy continuation. bf16 end to end eventually flips a near-tie,
// after which the continuations differ: the tokens must agree up to the first difference, and
// there transformers' token must be a near-tie in our logits (teacher-forced, one token per
// forward as the decode steps run): within twice LogitsCloseToTransformers' error bound of our
// top logit. A broken forward differs at a wide margin.
TEST_P(CudaModel, GreedyFollowsTransformers) {
  const int vocab = model_->config().vocab_size;
  for (const auto& g : golden_["greedy"]) {
    const std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> want = g["token_ids"].get<std::vector<int32_t>>();
    GenerateOptions o;
    o.max_tokens = static_cast<int>(want.size());
    o.ignore_eos = true;
    const GenerateResult r = generate(*model_, KvFormat::BF16, prompt, o);
    ASSERT_EQ(r.token_ids.size(), want.size());
    size_t k = 0;
    while (k < want.size() && want[k] == r.token_ids[k]) ++k;
    std::printf("  prompt %zu: %zu/%zu leading tokens equal to transformers (fp32)", prompt.size(),
                k, want.size());
    if (k == want.size()) {
      std::printf("\n");
      continue;
    }
    std::vector<int32_t> ids = prompt;
    ids.insert(ids.end(), want.begin(), want.begin() + static_cast<std::ptrdiff_t>(k));
    const std::vector<float> logits = prompt_logits(*model_, KvFormat::BF16, ids, 1);
    const float* row = logits.data() + (ids.size() - 1) * vocab;
    float top = row[0], max_abs = 0;
    for (int i = 0; i < vocab; ++i)
      top = std::max(top, row[i]), max_abs = std::max(max_abs, std::fabs(row[i]));
    const float gap = top - row[want[k]];
    std::printf("; there transformers' token is %.3g below our top logit (max |logit| %.3g)\n", gap,
                max_abs);
    EXPECT_LE(gap, 2 * 0.03 * max_abs) << "prompt of " << prompt.size() << " tokens, token " << k;
  }
}

// Every quantized format on the GPU is as close to transformers (fp32, unquantized) as the same
// format on the CPU reference is. GPU and CPU cannot agree closely with each other: the GPU's
// bf16 activations move K/V by bf16 rounding before quantization, and coarse codes (int2/int4)
// amplify that (measured GPU vs CPU, same format, 300 tokens: int8 0.03-0.04, fp8 0.06-0.09,
// int4 0.19-0.22, int2 0.37-0.45 of the logit range), while both stay at the format's own
// distance from the oracle. The slack is the bf16 path's own error (LogitsCloseToTransformers).
TEST_P(CudaModel, QuantizedFormatsAsCloseToTransformersAsCpu) {
  auto cpu = make_backend("cpu", 2);
  auto cpu_model = load_llama(*cpu, dir_);
  const auto& p = golden_["prompts"][3];
  const std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
  NpyArray ref = read_npy_f32(dir_ + "/" + p["logits"].get<std::string>());
  auto max_diff = [&](const std::vector<float>& v) {
    double m = 0;
    for (size_t i = 0; i < v.size(); ++i) m = std::max(m, double(std::fabs(v[i] - ref.data[i])));
    return m;
  };
  const double bf16_err = max_diff(prompt_logits(*model_, KvFormat::BF16, ids));
  for (KvFormat f : {KvFormat::FP8_E4M3, KvFormat::INT8, KvFormat::INT4_KIVI, KvFormat::INT2_KIVI,
                     KvFormat::K4V2}) {
    const double gpu_err = max_diff(prompt_logits(*model_, f, ids, 50));
    const double cpu_err = max_diff(prompt_logits(*cpu_model, f, ids));
    std::printf("  %s: max |logit - transformers| gpu %.3g, cpu %.3g (gpu bf16 cache %.3g)\n",
                kv_format_name(f), gpu_err, cpu_err, bf16_err);
    EXPECT_LT(gpu_err, 1.25 * cpu_err + bf16_err) << kv_format_name(f);
  }
}

// int8 keeps the 16-bit cache's greedy tokens on the GPU, wherever the 16-bit top token leads the
// runner-up by more than kMargin (these random tiny models have many near ties; see
// tests/unit/kv_forward_test.cpp for the CPU version and docs/quality.md). kMargin is the GPU
// 16-bit path's own error level: with bf16 activations its logits differ from transformers' by
// up to 0.14-0.2 (LogitsCloseToTransformers), where the CPU's fp32 forward stays within 0.1 (the
// CPU test's margin); at 0.1 the CUDA-core kernels' int8 flipped a 0.125 lead (session 19).
TEST_P(CudaModel, Int8GreedyEquals16BitAwayFromTies) {
  constexpr float kMargin = 0.2f;
  const int vocab = model_->config().vocab_size;
  GenerateOptions o;
  o.max_tokens = 64;
  o.ignore_eos = true;
  int confident = 0, total = 0;
  for (const auto& g : golden_["greedy"]) {
    const std::vector<int32_t> p = g["prompt_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> ref = generate(*model_, KvFormat::BF16, p, o).token_ids;
    const std::vector<int32_t> got = generate(*model_, KvFormat::INT8, p, o).token_ids;
    std::vector<int32_t> seq = p;
    seq.insert(seq.end(), ref.begin(), ref.end() - 1);
    const std::vector<float> lb = prompt_logits(*model_, KvFormat::BF16, seq);
    const std::vector<float> li = prompt_logits(*model_, KvFormat::INT8, seq);
    int first_tie = o.max_tokens;
    for (int i = 0; i < o.max_tokens; ++i) {
      const int64_t off = static_cast<int64_t>(p.size() - 1 + i) * vocab;
      const float* brow = lb.data() + off;
      std::vector<float> row(brow, brow + vocab);
      std::nth_element(row.begin(), row.begin() + 1, row.end(), std::greater<float>());
      ++total;
      if (row[0] - row[1] <= kMargin) {
        first_tie = std::min(first_tie, i);
        continue;
      }
      ++confident;
      // Both teacher-forced on the same tokens: int8's top against the 16-bit cache's top there
      // (which the margin is of; the generated token ref[i] came from the decode path).
      const float* irow = li.data() + off;
      const int64_t top16 = std::max_element(brow, brow + vocab) - brow;
      EXPECT_EQ(std::max_element(irow, irow + vocab) - irow, top16)
          << "step " << i << ": 16-bit top " << top16 << " by " << row[0] - row[1]
          << ", its generated token " << ref[i];
    }
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + first_tie, ref.begin()))
        << p.size() << "-token prompt: int8 greedy differs before the first near tie";
  }
  std::printf("  int8 vs bf16 on cuda: %d of %d steps checked (margin > %.2f)\n", confident, total,
              kMargin);
  EXPECT_GT(confident, total / 3);
}

TEST_P(CudaModel, Fp32CacheIsRefusedClearly) {
  EXPECT_THROW(prompt_logits(*model_, KvFormat::F32, {1, 2, 3}), InvalidArgumentError);
}

INSTANTIATE_TEST_SUITE_P(Models, CudaModel,
                         ::testing::Values("llama31-tiny", "qwen25-tiny", "mistral-tiny-hd64"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
