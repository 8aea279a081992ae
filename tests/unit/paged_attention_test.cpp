// Paged attention and KV write through shuffled block tables, every KV format, vs dense causal
// attention over the reference context (kv_paged.h) and over the exact fp32 rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/errors.h"
#include "kv/kv_cache.h"
#include "kv/kv_paged.h"

using namespace densekv;

namespace {

struct Case {
  KvFormat format;
  int head_dim;
  int block_size;  // 0: the format's default
};

// Dense causal attention in double of one query head over rows [0, n) of K, V ([n][hd]).
std::vector<double> dense_attention(const float* q, const float* K, const float* V, int n, int hd,
                                    float scale) {
  std::vector<double> w(n), o(hd, 0.0);
  double mx = -1e300, sum = 0;
  for (int j = 0; j < n; ++j) {
    double d = 0;
    for (int i = 0; i < hd; ++i) d += double(q[i]) * K[j * hd + i];
    w[j] = d * scale;
    mx = std::max(mx, w[j]);
  }
  for (auto& x : w) sum += (x = std::exp(x - mx));
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < hd; ++i) o[i] += w[j] / sum * V[j * hd + i];
  }
  return o;
}

struct Result {
  double max_ref_err = 0;   // vs dense attention over the reference context (kv_paged.h)
  double rel_fp32_err = 0;  // ||out - exact fp32 attention|| / ||exact||
};

// Two sequences through a pool of shuffled blocks: the first has `prefix` cached tokens and gets
// `fresh` new ones, the second is a fresh prefill of `fresh2` tokens. K/V rows are stored with
// kv_write (all of each sequence, in position order), then the new tokens attend.
Result run_case(const Case& c, int prefix, int fresh, int fresh2) {
  const int H = 4, KVH = 2, hd = c.head_dim;
  const std::vector<int> start = {prefix, 0}, len = {prefix + fresh, fresh2};
  CpuBackend be(3);
  KvCacheConfig cfg;
  cfg.format = c.format;
  cfg.block_size = c.block_size;
  cfg.num_blocks = 64;
  cfg.num_tail_blocks = 4;
  cfg.num_layers = 1;
  cfg.n_kv_heads = KVH;
  cfg.head_dim = hd;
  KvCache cache(be, cfg);
  const KvLayerView kv = cache.layer(0);
  const int bs = cache.block_size();
  const KvFormatInfo info = kv_format_info(c.format, hd, bs);
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);

  std::vector<int32_t> all(64);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<std::vector<int32_t>> tables(2);
  const std::vector<int32_t> tails = {3, 1};
  size_t next = 0;
  for (int s = 0; s < 2; ++s) {
    const int n = info.quantized ? len[s] / bs : (len[s] + bs - 1) / bs;
    for (int i = 0; i < n; ++i) tables[s].push_back(all[next++]);
  }

  // Dense K/V of every position of each sequence, [pos][KVH*hd]; a few outlier key channels.
  std::vector<std::vector<float>> K(2), V(2);
  for (int s = 0; s < 2; ++s) {
    K[s].resize(len[s] * KVH * hd);
    V[s].resize(len[s] * KVH * hd);
    for (size_t i = 0; i < K[s].size(); ++i) K[s][i] = nd(rng) * (i % hd == 5 ? 8.0f : 1.0f);
    for (auto& x : V[s]) x = nd(rng);
  }

  auto layout = [&](bool only_new) {
    BatchLayout lay;
    lay.max_blocks = 1;
    for (int s = 0; s < 2; ++s) {
      for (int p = only_new ? start[s] : 0; p < len[s]; ++p) {
        lay.positions.push_back(p);
        lay.seq_of_token.push_back(s);
        const bool held = p / bs < static_cast<int>(tables[s].size());
        lay.slots.push_back(held ? tables[s][p / bs] * bs + p % bs : -1);
        lay.token_ids.push_back(0);
      }
      lay.max_blocks = std::max(lay.max_blocks, static_cast<int>(tables[s].size()));
    }
    for (int s = 0; s < 2; ++s) {
      lay.context_lens.push_back(len[s]);
      auto row = tables[s];
      row.resize(lay.max_blocks, -1);
      lay.block_tables.insert(lay.block_tables.end(), row.begin(), row.end());
      lay.tails.push_back(info.quantized ? tails[s] : -1);
    }
    lay.max_context = std::max(len[0], len[1]);
    return lay;
  };

  // Write every token (the cached prefix as an earlier forward would have, then this chunk).
  BatchLayout wl = layout(false);
  std::vector<float> kall, vall;
  for (int s = 0; s < 2; ++s) {
    kall.insert(kall.end(), K[s].begin(), K[s].end());
    vall.insert(vall.end(), V[s].begin(), V[s].end());
  }
  const int W = static_cast<int>(wl.positions.size());
  be.kv_write(kv, make_tensor(kall.data(), DType::F32, W, KVH * hd),
              make_tensor(vall.data(), DType::F32, W, KVH * hd), be.upload_batch(wl));

  BatchLayout lay = layout(true);
  BatchView view = be.upload_batch(lay);
  const int T = view.n_tokens;
  std::vector<float> q(T * H * hd), out(T * H * hd);
  for (auto& x : q) x = nd(rng);
  const float scale = 1.0f / std::sqrt(float(hd));
  be.paged_attention(make_tensor(q.data(), DType::F32, T, H * hd), kv, view, scale,
                     make_tensor(out.data(), DType::F32, T, H * hd));

  Result r;
  double err2 = 0, ref2 = 0;
  for (int t = 0; t < T; ++t) {
    const int s = lay.seq_of_token[t], p = lay.positions[t];
    for (int h = 0; h < H; ++h) {
      const int kh = h / (H / KVH);
      const float* o = &out[(t * H + h) * hd];
      // Reference context of the cache (rotated domain for k4v2): rotate q, rotate back.
      std::vector<float> kc((p + 1) * hd), vc(kc.size());
      kv_attention_context(kv, kh, tables[s].data(), info.quantized ? tails[s] : -1, p, kc.data(),
                           vc.data());
      std::vector<float> qr(&q[(t * H + h) * hd], &q[(t * H + h) * hd] + hd);
      kv_rotate_rows(info, qr.data(), 1);
      std::vector<double> ref = dense_attention(qr.data(), kc.data(), vc.data(), p + 1, hd, scale);
      std::vector<float> reff(ref.begin(), ref.end());
      kv_rotate_rows(info, reff.data(), 1);
      // Exact fp32 attention over the unquantized rows.
      std::vector<float> ke((p + 1) * hd), ve(ke.size());
      for (int j = 0; j <= p; ++j) {
        std::copy_n(&K[s][(j * KVH + kh) * hd], hd, &ke[j * hd]);
        std::copy_n(&V[s][(j * KVH + kh) * hd], hd, &ve[j * hd]);
      }
      std::vector<double> exact =
          dense_attention(&q[(t * H + h) * hd], ke.data(), ve.data(), p + 1, hd, scale);
      for (int i = 0; i < hd; ++i) {
        r.max_ref_err = std::max(r.max_ref_err, std::abs(double(o[i]) - reff[i]));
        err2 += (o[i] - exact[i]) * (o[i] - exact[i]);
        ref2 += exact[i] * exact[i];
      }
    }
  }
  r.rel_fp32_err = std::sqrt(err2 / ref2);
  return r;
}

}  // namespace

TEST(PagedAttention, MatchesDenseCausalBf16) {
  Result r = run_case({KvFormat::BF16, 128, 16}, 21, 6, 9);
  EXPECT_LT(r.max_ref_err, 2e-5);
  EXPECT_LT(r.rel_fp32_err, 1e-2);
}
TEST(PagedAttention, MatchesDenseCausalF16Hd64) {
  Result r = run_case({KvFormat::F16, 64, 16}, 21, 6, 9);
  EXPECT_LT(r.max_ref_err, 2e-5);
  EXPECT_LT(r.rel_fp32_err, 2e-3);
}
TEST(PagedAttention, MatchesDenseCausalF32SmallBlocks) {
  Result r = run_case({KvFormat::F32, 32, 4}, 21, 6, 9);
  EXPECT_LT(r.max_ref_err, 2e-5);
  EXPECT_LT(r.rel_fp32_err, 1e-5);
}

// Quantized formats: sequence 0 has 150 cached tokens (2 sealed blocks + 22 tail rows) and gets
// 20 more inside its third block; sequence 1 is a fresh 64-token prefill (its last token reads
// the block sealed by its own write, the others the tail rows). The output equals dense attention
// over the reference context (kv_attention_context) to fp32 rounding, and exact fp32 attention
// within the format's error.
struct QuantCase {
  KvFormat format;
  double max_rel_err;  // vs exact fp32 attention, as measured with margin
};

class QuantizedAttention : public ::testing::TestWithParam<QuantCase> {};

TEST_P(QuantizedAttention, MatchesReferenceAndFp32WithinTolerance) {
  for (int hd : {64, 128}) {
    Result r = run_case({GetParam().format, hd, 0}, 150, 20, 64);
    EXPECT_LT(r.max_ref_err, 2e-5) << "hd " << hd;
    EXPECT_LT(r.rel_fp32_err, GetParam().max_rel_err) << "hd " << hd;
    std::printf("%s hd %d: max |out - reference| %.2e, relative error vs fp32 %.4f\n",
                kv_format_name(GetParam().format), hd, r.max_ref_err, r.rel_fp32_err);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantizedAttention,
                         ::testing::Values(QuantCase{KvFormat::FP8_E4M3, 0.02},
                                           QuantCase{KvFormat::INT8, 0.012},
                                           QuantCase{KvFormat::INT4_KIVI, 0.06},
                                           QuantCase{KvFormat::INT2_KIVI, 0.3},
                                           QuantCase{KvFormat::K4V2, 0.2}),
                         [](const auto& info) { return kv_format_name(info.param.format); });

TEST(KvCache, StorageAndBookkeeping) {
  CpuBackend be(1);
  KvCacheConfig cfg;
  cfg.format = KvFormat::BF16;
  cfg.num_blocks = 5;
  cfg.num_layers = 2;
  cfg.n_kv_heads = 2;
  cfg.head_dim = 64;
  KvCache cache(be, cfg);
  EXPECT_EQ(cache.block_size(), 16);  // the plain formats' default
  EXPECT_EQ(cache.block_bytes(), 2u * 16 * 2 * 64 * 2);
  EXPECT_EQ(cache.tail_block_bytes(), 0u);
  // 5 blocks + the scratch block (decode-graph padding) per layer.
  EXPECT_EQ(cache.total_bytes(), cache.block_bytes() * 6 * 2);
  EXPECT_EQ(cache.scratch_block(), 5);
  EXPECT_EQ(cache.scratch_tail(), -1);
  KvSeqBlocks a, b;
  ASSERT_EQ(cache.blocks().start(a, {}), 0);
  ASSERT_EQ(cache.blocks().start(b, {}), 0);
  EXPECT_TRUE(cache.blocks().reserve(a, 17));  // 2 blocks
  EXPECT_EQ(a.blocks.size(), 2u);
  EXPECT_EQ(a.tail, -1);
  EXPECT_FALSE(cache.blocks().reserve(b, 4 * 16));  // needs 4, 3 free: nothing taken
  EXPECT_TRUE(b.blocks.empty());
  EXPECT_TRUE(cache.blocks().reserve(b, 48));
  EXPECT_EQ(cache.blocks().blocks().num_available(), 0);
  cache.blocks().release(a);
  EXPECT_EQ(cache.blocks().blocks().num_available(), 2);
  // Layer views are disjoint, layer-major regions.
  EXPECT_EQ(static_cast<char*>(cache.layer(1).base) - static_cast<char*>(cache.layer(0).base),
            static_cast<ptrdiff_t>(cache.block_bytes() * 6));
  EXPECT_EQ(cache.layer(0).tail_base, nullptr);

  // A quantized cache: 64-token blocks and a 16-bit tail pool, one tail per sequence.
  cfg.format = KvFormat::INT4_KIVI;
  cfg.num_tail_blocks = 3;
  KvCache q(be, cfg);
  EXPECT_EQ(q.block_size(), 64);
  EXPECT_EQ(q.block_bytes(), kv_block_bytes(KvFormat::INT4_KIVI, 64, 2, 64));
  EXPECT_EQ(q.tail_block_bytes(), 2u * 64 * 2 * 64 * 2);
  EXPECT_EQ(q.total_bytes(), q.block_bytes() * 6 * 2 + q.tail_block_bytes() * 4 * 2);
  EXPECT_EQ(static_cast<char*>(q.layer(1).tail_base) - static_cast<char*>(q.layer(0).tail_base),
            static_cast<ptrdiff_t>(q.tail_block_bytes() * 4));
  EXPECT_EQ(q.scratch_block(), 5);
  EXPECT_EQ(q.scratch_tail(), 3);
  KvSeqBlocks c;
  ASSERT_EQ(q.blocks().start(c, {}), 0);
  EXPECT_GE(c.tail, 0);
  EXPECT_TRUE(q.blocks().reserve(c, 130));  // 2 sealed blocks + the tail
  EXPECT_EQ(c.blocks.size(), 2u);
  cfg.num_tail_blocks = 0;
  EXPECT_THROW(KvCache(be, cfg), InvalidArgumentError);
  cfg.num_tail_blocks = 1;
  cfg.head_dim = 96;  // not a multiple of 64
  EXPECT_THROW(KvCache(be, cfg), InvalidArgumentError);
}

TEST(KvFormat, ParsesCliNames) {
  EXPECT_EQ(parse_kv_cache_dtype("auto", DType::BF16), KvFormat::BF16);
  EXPECT_EQ(parse_kv_cache_dtype("auto", DType::F32), KvFormat::F32);
  EXPECT_EQ(parse_kv_cache_dtype("fp16", DType::BF16), KvFormat::F16);
  EXPECT_EQ(parse_kv_cache_dtype("fp32", DType::BF16), KvFormat::F32);
  EXPECT_EQ(parse_kv_cache_dtype("int4_kivi", DType::BF16), KvFormat::INT4_KIVI);
  EXPECT_THROW(parse_kv_cache_dtype("int5", DType::BF16), InvalidArgumentError);
}
