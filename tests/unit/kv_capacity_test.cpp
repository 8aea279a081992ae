// Capacity arithmetic on real configs (config.json only), against numbers worked out by hand in
// the comments.
#include "kv/capacity.h"

#include <gtest/gtest.h>

#include "core/errors.h"

using namespace densekv;

namespace {

ModelConfig config(const std::string& name) {
  return load_model_config(std::string(DENSEKV_SOURCE_DIR) + "/tests/data/configs/" + name);
}

constexpr int64_t kGiB = int64_t{1} << 30;

}  // namespace

// Llama-3.1-8B: 32 layers x 8 KV heads = 256 (layer, head) pairs, head_dim 128.
// 16-bit: 512 B per token per pair -> 131072 B/token. A 64-token 16-bit tail: 32 KiB per pair
// -> 8 MiB. 20 GiB, sequences of 8192 tokens.
TEST(KvCapacity, Llama31_8B) {
  const ModelConfig cfg = config("llama-3.1-8b");
  const int64_t budget = 20 * kGiB;
  {
    const KvCapacity c = kv_capacity(cfg, KvFormat::BF16, budget, 8192);
    EXPECT_EQ(c.bytes_per_token, 131072.0);
    EXPECT_EQ(c.tokens, 163840);       // 20 GiB / 128 KiB
    EXPECT_EQ(c.max_concurrency, 20);  // 8192 tokens = 1 GiB each, no tail
    EXPECT_EQ(c.ratio_vs_16bit, 1.0);
  }
  {
    // int4_kivi: K 4608 + V 4608 B per 64-token block per pair = 144 B/token/pair.
    const KvCapacity c = kv_capacity(cfg, KvFormat::INT4_KIVI, budget, 8192);
    EXPECT_EQ(c.bytes_per_token, 36864.0);
    EXPECT_EQ(c.tokens, 9102 * 64);    // 20 GiB / 2359296 B per block = 9102.2
    EXPECT_EQ(c.max_concurrency, 69);  // 128 blocks + 8 MiB tail = 310378496 B each
    EXPECT_NEAR(c.ratio_vs_16bit, 32.0 / 9.0, 1e-12);
  }
  {
    // k4v2: 4608 + 2560 = 7168 B per block per pair -> 1835008 B per block, 28672 B/token.
    const KvCapacity c = kv_capacity(cfg, KvFormat::K4V2, budget, 8192);
    EXPECT_EQ(c.bytes_per_token, 28672.0);
    EXPECT_EQ(c.tokens, 11702 * 64);
    EXPECT_EQ(c.max_concurrency, 88);  // 128 * 1835008 + 8388608 = 243269632 B each
  }
  {
    // int2_kivi: 2560 + 3072 = 5632 B per block per pair.
    const KvCapacity c = kv_capacity(cfg, KvFormat::INT2_KIVI, budget, 8192);
    EXPECT_EQ(c.bytes_per_token, 22528.0);
    EXPECT_EQ(c.max_concurrency, 111);  // 128 * 1441792 + 8388608 = 192937984 B each
    EXPECT_GE(c.ratio_vs_16bit, 5.0);
  }
  {
    // fp8: 2 x 8320 B per block per pair; a 100-token sequence holds 1 block + a tail.
    const KvCapacity c = kv_capacity(cfg, KvFormat::FP8_E4M3, budget, 100);
    EXPECT_EQ(c.bytes_per_token, 66560.0);
    EXPECT_EQ(c.max_concurrency, budget / (4259840 + 8388608));
  }
}

// Llama-3.1-70B: 80 layers x 8 KV heads = 640 pairs; 16-bit 327680 B/token.
TEST(KvCapacity, Llama31_70BFromConfigAlone) {
  const ModelConfig cfg = config("llama-3.1-70b");
  const KvCapacity bf16 = kv_capacity(cfg, KvFormat::BF16, 40 * kGiB, 131072);
  EXPECT_EQ(bf16.bytes_per_token, 327680.0);
  EXPECT_EQ(bf16.max_concurrency, 1);  // 131072 tokens = 40 GiB exactly
  const KvCapacity int4 = kv_capacity(cfg, KvFormat::INT4_KIVI, 40 * kGiB, 131072);
  EXPECT_EQ(int4.bytes_per_token, 92160.0);  // 144 x 640
  EXPECT_EQ(int4.max_concurrency, 3);        // 2048 x 5898240 + 20971520 = 12100566016 B each
}

TEST(KvCapacity, PlanSplitsTailsAndBlocks) {
  const ModelConfig cfg = config("llama-3.1-8b");
  // 256 tails of 8 MiB = 2 GiB; the other 18 GiB / 2359296 B = 8192 int4 blocks.
  const KvPoolPlan p = plan_kv_pools(cfg, KvFormat::INT4_KIVI, 20 * kGiB, 256);
  EXPECT_EQ(p.num_tail_blocks, 256);
  EXPECT_EQ(p.num_blocks, 8192);
  const KvPoolPlan q = plan_kv_pools(cfg, KvFormat::BF16, 20 * kGiB, 256);
  EXPECT_EQ(q.num_tail_blocks, 0);
  EXPECT_EQ(q.num_blocks, 10240);
  // 4 GiB: the tails get 20% (102 of 8 MiB), the sealed blocks the rest (1457 of 2359296 B)
  const KvPoolPlan r = plan_kv_pools(cfg, KvFormat::INT4_KIVI, 4 * kGiB, 256);
  EXPECT_EQ(r.num_tail_blocks, 102);
  EXPECT_EQ(r.num_blocks, (4 * kGiB - 102 * 8 * 1048576ll) / 2359296);
  EXPECT_EQ(plan_kv_pools(cfg, KvFormat::INT4_KIVI, 4 * kGiB, 16).num_tail_blocks, 16);
  // one tail and one block do not fit in 9 MiB
  EXPECT_THROW(plan_kv_pools(cfg, KvFormat::INT4_KIVI, 9 << 20, 256), InvalidArgumentError);
}

TEST(KvCapacity, TokensPerFormatForTheStartupLog) {
  const ModelConfig cfg = config("llama-3.1-8b");
  // 4 GiB, 256 sequences: the token counts the engine logged on the H100 for bf16, int8,
  // int4_kivi and k4v2 (docs/benchmarks.md); fp8 (260 B per token and head) and int2_kivi (88 B)
  // beside the same 102 tails: (4 GiB - 102 x 8 MiB) / (64 x 256 x B) blocks of 64 tokens.
  EXPECT_EQ(kv_tokens_per_format(cfg, 4 * kGiB, 256),
            "bf16 32768, fp8_e4m3 51648, int8 51264, int4_kivi 93248, int2_kivi 152640, k4v2 "
            "119936");
  // 9 MiB holds one bf16 block of 16 tokens but no tail plus block of the quantized formats
  EXPECT_EQ(kv_tokens_per_format(cfg, 9 << 20, 256).substr(0, 21), "bf16 64, fp8_e4m3 -, ");
}

TEST(KvCapacity, TailFollowsModelDtype) {
  EXPECT_EQ(kv_tail_format(DType::F16), KvFormat::F16);
  EXPECT_EQ(kv_tail_format(DType::BF16), KvFormat::BF16);
  EXPECT_EQ(kv_tail_format(DType::F32), KvFormat::BF16);
  ModelConfig cfg = config("qwen2.5-7b");  // 28 layers x 4 KV heads, head_dim 128
  const KvBlockBytes b = kv_block_bytes_all_layers(cfg, KvFormat::INT2_KIVI);
  EXPECT_EQ(b.block_size, 64);
  EXPECT_EQ(b.block, 5632 * 112);
  EXPECT_EQ(b.tail, 64 * 512 * 112);
}
