// model/eval.h on a tiny test model: windowed perplexity scores every token once and, with one
// window, equals the negative log-likelihood computed directly from the logits; greedy match of
// a format against itself is exact (teacher-forced scoring equals its own decode bit for bit).
#include "model/eval.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/errors.h"
#include "model/generate.h"

using namespace densekv;

namespace {

class Eval : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(DENSEKV_SOURCE_DIR) + "/tests/data/models/llama31-tiny";
    std::ifstream f(dir + "/golden.json");
    if (!f) GTEST_SKIP() << "model folder missing: " << dir;
    ids_ = nlohmann::json::parse(f)["prompts"][3]["ids"].get<std::vector<int32_t>>();
    backend_ = make_backend("cpu", 2);
    model_ = load_llama(*backend_, dir);
  }
  std::vector<int32_t> ids_;  // 300 tokens
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
};

TEST_F(Eval, PerplexityOfOneWindowIsTheMeanNll) {
  const int vocab = model_->config().vocab_size, n = static_cast<int>(ids_.size());
  const std::vector<float> logits = prompt_logits(*model_, KvFormat::F32, ids_);
  double total = 0;
  for (int i = 1; i < n; ++i) {
    const float* row = logits.data() + int64_t(i - 1) * vocab;
    double sum = 0;
    for (int v = 0; v < vocab; ++v) sum += std::exp(double(row[v]));
    total += std::log(sum) - row[ids_[i]];
  }
  PerplexityOptions opts;
  opts.window = 512;
  opts.stride = 256;
  PerplexityResult r = perplexity(*model_, KvFormat::F32, ids_, opts);
  EXPECT_EQ(r.windows, 1);
  EXPECT_EQ(r.tokens, n - 1);
  EXPECT_NEAR(r.mean_nll, total / (n - 1), 1e-6);
  EXPECT_NEAR(r.ppl, std::exp(total / (n - 1)), 1e-6 * r.ppl);

  // Windows of 100 advancing by 60: 5 windows, still every token but the first scored once.
  opts.window = 100;
  opts.stride = 60;
  r = perplexity(*model_, KvFormat::INT4_KIVI, ids_, opts);
  EXPECT_EQ(r.windows, 5);
  EXPECT_EQ(r.tokens, n - 1);
  EXPECT_TRUE(std::isfinite(r.ppl) && r.ppl > 1);

  opts.stride = 100;
  EXPECT_THROW(perplexity(*model_, KvFormat::F32, ids_, opts), InvalidArgumentError);
}

TEST_F(Eval, GreedyMatchOfAFormatWithItselfIsExact) {
  const std::vector<std::vector<int32_t>> prompts = {{ids_.begin(), ids_.begin() + 8},
                                                     {ids_.begin(), ids_.begin() + 70}};
  for (KvFormat f : {KvFormat::BF16, KvFormat::INT2_KIVI, KvFormat::K4V2}) {
    const auto refs = greedy_references(*model_, f, prompts, 80);
    const GreedyChoices c = greedy_choices(*model_, f, prompts, refs);
    // The CPU forward does not depend on chunking: the teacher-forced choices are the references.
    EXPECT_EQ(c, refs) << kv_format_name(f);
    GreedyMatchResult g = greedy_match(c, c, refs);
    EXPECT_EQ(g.prompts, 2);
    EXPECT_EQ(g.tokens, 160);
    EXPECT_EQ(g.matched, 160) << kv_format_name(f);
    EXPECT_EQ(g.matched_reference, 160) << kv_format_name(f);
    EXPECT_EQ(g.first_divergence_mean, 80.0);
  }
  // int2 against bf16 differs somewhere on these random models (and the rate says how much); on
  // the CPU, where the baseline's choices are its references, both rates are the same.
  const auto refs = greedy_references(*model_, KvFormat::BF16, prompts, 80);
  const GreedyChoices base = greedy_choices(*model_, KvFormat::BF16, prompts, refs);
  GreedyMatchResult g =
      greedy_match(greedy_choices(*model_, KvFormat::INT2_KIVI, prompts, refs), base, refs);
  EXPECT_LT(g.matched, g.tokens);
  EXPECT_EQ(g.matched_reference, g.matched);
  EXPECT_LT(g.first_divergence_mean, 80.0);
}

TEST(GreedyMatch, ComparesWithTheBaselinesChoicesAndCountsTheReferenceApart) {
  // Two prompts of 4 positions; the baseline's choices differ from the references at one
  // position (a near tie its prefill path flips), the format's at others.
  const std::vector<std::vector<int32_t>> refs = {{1, 2, 3, 4}, {5, 6, 7, 8}};
  const GreedyChoices base = {{1, 2, 9, 4}, {5, 6, 7, 8}};
  const GreedyChoices fmt = {{1, 2, 9, 0}, {5, 0, 7, 8}};
  const GreedyMatchResult g = greedy_match(fmt, base, refs);
  EXPECT_EQ(g.prompts, 2);
  EXPECT_EQ(g.tokens, 8);
  EXPECT_EQ(g.matched, 6);            // all but (0, 3) and (1, 1)
  EXPECT_EQ(g.matched_reference, 5);  // all but (0, 2), (0, 3) and (1, 1)
  EXPECT_DOUBLE_EQ(g.first_divergence_mean, (3 + 1) / 2.0);
  EXPECT_DOUBLE_EQ(g.rate(), 0.75);
  EXPECT_DOUBLE_EQ(g.reference_rate(), 0.625);
}

}  // namespace
