// The model forward over every KV format on the tiny test models (tests/data/models): logits do
// not depend on how the prompt was chunked, on token-by-token decode, or on whether a prefix
// came from the prefix cache (bit for bit: the attention rule of backend.h plus the CPU's
// row-independent matmul); a generation whose tail is sealed mid-way equals recomputing the
// whole sequence; and int8 greedy continuations equal the 16-bit cache's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kv/capacity.h"
#include "kv/kv_cache.h"
#include "model/generate.h"
#include "model/llama.h"

using namespace densekv;

namespace {

const std::string kModels = std::string(DENSEKV_SOURCE_DIR) + "/tests/data/models/";

const KvFormat kFormats[] = {KvFormat::F32,       KvFormat::BF16, KvFormat::F16,
                             KvFormat::FP8_E4M3,  KvFormat::INT8, KvFormat::INT4_KIVI,
                             KvFormat::INT2_KIVI, KvFormat::K4V2};

std::vector<float> rows(const std::vector<float>& v, int vocab, int from, int n) {
  return std::vector<float>(v.begin() + int64_t(from) * vocab,
                            v.begin() + int64_t(from + n) * vocab);
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class KvForward : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::ifstream f(kModels + GetParam() + "/golden.json");
    if (!f) GTEST_SKIP() << "model folder missing: " << kModels + GetParam();
    golden_ = nlohmann::json::parse(f);
    backend_ = make_backend("cpu", 2);
    model_ = load_llama(*backend_, kModels + GetParam());
    prompt_ = golden_["prompts"][3]["ids"].get<std::vector<int32_t>>();  // 300 tokens
    vocab_ = model_->config().vocab_size;
  }
  nlohmann::json golden_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  std::vector<int32_t> prompt_;
  int vocab_ = 0;
};

TEST_P(KvForward, ChunkedEqualsUnchunkedEqualsDecodeBitwise) {
  const std::vector<int32_t> ids(prompt_.begin(), prompt_.begin() + 150);  // 2 sealed + 22 rows
  for (KvFormat f : kFormats) {
    const std::vector<float> whole = prompt_logits(*model_, f, ids);
    for (int chunk : {1, 7, 64, 100}) {  // 1 = token-by-token decode
      EXPECT_TRUE(bit_equal(prompt_logits(*model_, f, ids, chunk), whole))
          << kv_format_name(f) << " chunk " << chunk;
    }
  }
}

// A second prompt shares the first 200 tokens of the first: with prefix caching it reuses the
// first one's sealed (or full plain) blocks and computes only the rest, with the logits of a
// from-scratch computation.
TEST_P(KvForward, PrefixCacheHitEqualsRecomputeBitwise) {
  std::vector<int32_t> a(prompt_.begin(), prompt_.begin() + 230);
  std::vector<int32_t> b(prompt_.begin(), prompt_.begin() + 200);
  for (int i = 0; i < 30; ++i) b.push_back((a[200 + i] + 7) % vocab_);
  for (KvFormat f : kFormats) {
    KvCache cache(*backend_, kv_cache_config(model_->config(), f, 40, 2));
    KvBlockManager& bm = cache.blocks();
    const int bs = cache.block_size();
    KvSeqBlocks sa, sb;
    ASSERT_EQ(bm.start(sa, a), 0);
    ASSERT_TRUE(bm.reserve(sa, 230));
    model_->forward({{a.data(), 230, 0, &sa}}, cache, true);
    bm.commit(sa, a, 230);
    bm.release(sa);  // its full blocks stay cached

    const int hit = bm.start(sb, b);
    ASSERT_EQ(hit, 200 / bs * bs) << kv_format_name(f);
    ASSERT_TRUE(bm.reserve(sb, 230));
    Tensor t = model_->forward({{b.data() + hit, 230 - hit, hit, &sb}}, cache, false);
    std::vector<float> got(static_cast<size_t>(t.numel()));
    backend_->download_f32(t, got.data());
    const std::vector<float> want = prompt_logits(*model_, f, b);
    EXPECT_TRUE(bit_equal(got, rows(want, vocab_, hit, 230 - hit))) << kv_format_name(f);
    bm.commit(sb, b, 230);
    bm.release(sb);
    bm.check_invariants(std::span<const KvSeqBlocks* const>{});
    EXPECT_EQ(bm.blocks().num_available(), 40);  // nothing leaked
  }
}

// 50 prompt tokens, 100 generated: the tail is sealed twice during decode (at 64 and 128).
// Every greedy token equals the argmax of a from-scratch prefill of the sequence so far.
TEST_P(KvForward, GenerationAcrossSealsEqualsRecompute) {
  const std::vector<int32_t> p(prompt_.begin(), prompt_.begin() + 50);
  GenerateOptions opts;
  opts.max_tokens = 100;
  opts.ignore_eos = true;
  for (KvFormat f : {KvFormat::BF16, KvFormat::INT8, KvFormat::INT4_KIVI, KvFormat::K4V2}) {
    GenerateResult r = generate(*model_, f, p, opts);
    ASSERT_EQ(r.token_ids.size(), 100u);
    std::vector<int32_t> full = p;
    full.insert(full.end(), r.token_ids.begin(), r.token_ids.end() - 1);
    const std::vector<float> logits = prompt_logits(*model_, f, full);
    for (int i = 0; i < 100; ++i) {
      const float* row = logits.data() + int64_t(49 + i) * vocab_;
      ASSERT_EQ(std::max_element(row, row + vocab_) - row, r.token_ids[i])
          << kv_format_name(f) << " token " << i;
    }
  }
}

// int8 keeps the greedy continuations of the 16-bit cache (the model dtype's 16-bit format).
// These tiny models have random weights, so their next-token distributions are nearly flat and
// many steps are near ties that any numeric change flips (an fp32 or fp16 cache diverges from
// bf16 as often as int8 does: docs/quality.md). So the assertion is: along the 16-bit greedy
// continuation, at every step where the 16-bit top token leads the runner-up by more than
// kMargin logits (the 16-bit cache's own error level: bf16 vs the fp32 transformers oracle
// differs by up to ~0.1, llama_golden_test), int8 picks the same token; and int8's own greedy
// decode equals the 16-bit continuation up to its first near tie.
TEST_P(KvForward, Int8GreedyEquals16BitAwayFromTies) {
  constexpr float kMargin = 0.1f;
  const KvFormat base = kv_tail_format(model_->config().dtype);
  GenerateOptions opts;
  opts.max_tokens = 64;
  opts.ignore_eos = true;
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& g : golden_["greedy"]) prompts.push_back(g["prompt_ids"]);
  int confident = 0, total = 0, equal_prefix = 0;
  for (const std::vector<int32_t>& p : prompts) {
    const std::vector<int32_t> ref = generate(*model_, base, p, opts).token_ids;
    const std::vector<int32_t> got = generate(*model_, KvFormat::INT8, p, opts).token_ids;
    std::vector<int32_t> seq = p;
    seq.insert(seq.end(), ref.begin(), ref.end() - 1);
    const std::vector<float> lb = prompt_logits(*model_, base, seq);
    const std::vector<float> li = prompt_logits(*model_, KvFormat::INT8, seq);
    int first_tie = opts.max_tokens;
    for (int i = 0; i < opts.max_tokens; ++i) {
      const int64_t off = static_cast<int64_t>(p.size() - 1 + i) * vocab_;
      std::vector<float> row(lb.begin() + off, lb.begin() + off + vocab_);
      ASSERT_EQ(std::max_element(row.begin(), row.end()) - row.begin(), ref[i]);
      std::nth_element(row.begin(), row.begin() + 1, row.end(), std::greater<float>());
      ++total;
      if (row[0] - row[1] <= kMargin) {
        first_tie = std::min(first_tie, i);
        continue;
      }
      ++confident;
      const float* irow = li.data() + off;
      EXPECT_EQ(std::max_element(irow, irow + vocab_) - irow, ref[i])
          << p.size() << "-token prompt, step " << i << ", 16-bit margin " << row[0] - row[1];
    }
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + first_tie, ref.begin()))
        << p.size() << "-token prompt: int8 decode differs before the first near tie (step "
        << first_tie << ")";
    equal_prefix +=
        static_cast<int>(std::mismatch(got.begin(), got.end(), ref.begin()).first - got.begin());
  }
  std::printf("int8 vs %s: %d of %d steps with margin > %.2f; identical greedy prefix %d of %d\n",
              kv_format_name(base), confident, total, kMargin, equal_prefix, total);
  EXPECT_GT(confident, total / 2);  // the check covers most steps
}

INSTANTIATE_TEST_SUITE_P(Models, KvForward,
                         ::testing::Values("llama31-tiny", "qwen25-tiny", "mistral-tiny-hd64"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
