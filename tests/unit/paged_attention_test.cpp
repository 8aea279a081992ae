// Paged attention and KV write through shuffled block tables vs dense causal attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/errors.h"
#include "kv/kv_cache.h"

using namespace densekv;

namespace {

struct Case {
  KvFormat format;
  int head_dim;
  int block_size;
};

float round_to(KvFormat f, float x) {
  if (f == KvFormat::BF16) return bf16_to_f32(f32_to_bf16(x));
  if (f == KvFormat::F16) return f16_to_f32(f32_to_f16(x));
  return x;
}

// Two sequences: the first has a cached prefix of 21 tokens and gets a chunk of 6 new ones; the
// second is a fresh prefill of 9 tokens. Blocks come from a pool in shuffled order.
void run_case(const Case& c) {
  const int H = 4, KVH = 2, hd = c.head_dim, bs = c.block_size;
  const std::vector<int> prefix = {21, 0}, fresh = {6, 9};
  CpuBackend be(3);
  KvCacheConfig cfg;
  cfg.format = c.format;
  cfg.block_size = bs;
  cfg.num_blocks = 64;
  cfg.num_layers = 1;
  cfg.n_kv_heads = KVH;
  cfg.head_dim = hd;
  KvCache cache(be, cfg);
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);

  // Shuffle the free list by reserving everything, shuffling, and giving tables out of it.
  std::vector<int32_t> all(64);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<std::vector<int32_t>> tables(2);
  size_t next = 0;
  for (int s = 0; s < 2; ++s) {
    int n = (prefix[s] + fresh[s] + bs - 1) / bs;
    for (int i = 0; i < n; ++i) tables[s].push_back(all[next++]);
  }

  // Dense K/V of every position of each sequence, [pos][KVH*hd].
  std::vector<std::vector<float>> K(2), V(2);
  for (int s = 0; s < 2; ++s) {
    int n = prefix[s] + fresh[s];
    K[s].resize(n * KVH * hd);
    V[s].resize(n * KVH * hd);
    for (auto& x : K[s]) x = nd(rng);
    for (auto& x : V[s]) x = nd(rng);
  }

  // Write the cached prefix first (as an earlier forward would have), then this chunk.
  BatchLayout lay;
  for (int s = 0; s < 2; ++s) {
    for (int p = 0; p < prefix[s] + fresh[s]; ++p) {
      bool is_new = p >= prefix[s];
      int slot = tables[s][p / bs] * bs + p % bs;
      Tensor k = make_tensor(K[s].data() + p * KVH * hd, DType::F32, 1, KVH * hd);
      Tensor v = make_tensor(V[s].data() + p * KVH * hd, DType::F32, 1, KVH * hd);
      be.kv_write(cache.layer(0), k, v, &slot);
      if (is_new) {
        lay.positions.push_back(p);
        lay.seq_of_token.push_back(s);
        lay.slots.push_back(slot);
        lay.token_ids.push_back(0);
      }
    }
  }
  lay.max_blocks = static_cast<int>(std::max(tables[0].size(), tables[1].size()));
  for (int s = 0; s < 2; ++s) {
    lay.context_lens.push_back(prefix[s] + fresh[s]);
    auto row = tables[s];
    row.resize(lay.max_blocks, -1);
    lay.block_tables.insert(lay.block_tables.end(), row.begin(), row.end());
    lay.tails.push_back(-1);
  }
  lay.max_context = *std::max_element(lay.context_lens.begin(), lay.context_lens.end());
  BatchView view = be.upload_batch(lay);

  const int T = view.n_tokens;
  std::vector<float> q(T * H * hd), out(T * H * hd);
  for (auto& x : q) x = nd(rng);
  const float scale = 1.0f / std::sqrt(float(hd));
  be.paged_attention(make_tensor(q.data(), DType::F32, T, H * hd), cache.layer(0), view, scale,
                     make_tensor(out.data(), DType::F32, T, H * hd));

  for (int t = 0; t < T; ++t) {
    int s = lay.seq_of_token[t], p = lay.positions[t];
    for (int h = 0; h < H; ++h) {
      int kh = h / (H / KVH);
      std::vector<double> w(p + 1);
      double mx = -1e300;
      for (int j = 0; j <= p; ++j) {
        double d = 0;
        for (int i = 0; i < hd; ++i) {
          d += double(q[(t * H + h) * hd + i]) * round_to(c.format, K[s][(j * KVH + kh) * hd + i]);
        }
        w[j] = d * scale;
        mx = std::max(mx, w[j]);
      }
      double sum = 0;
      for (auto& x : w) sum += (x = std::exp(x - mx));
      for (int i = 0; i < hd; ++i) {
        double o = 0;
        for (int j = 0; j <= p; ++j)
          o += w[j] / sum * round_to(c.format, V[s][(j * KVH + kh) * hd + i]);
        ASSERT_NEAR(out[(t * H + h) * hd + i], o, 2e-5) << "t=" << t << " h=" << h << " i=" << i;
      }
    }
  }
}

}  // namespace

TEST(PagedAttention, MatchesDenseCausalBf16) {
  run_case({KvFormat::BF16, 128, 16});
}
TEST(PagedAttention, MatchesDenseCausalF16Hd64) {
  run_case({KvFormat::F16, 64, 16});
}
TEST(PagedAttention, MatchesDenseCausalF32SmallBlocks) {
  run_case({KvFormat::F32, 32, 4});
}

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
  EXPECT_EQ(cache.total_bytes(), cache.block_bytes() * 5 * 2);
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
            static_cast<ptrdiff_t>(cache.block_bytes() * 5));
  EXPECT_EQ(cache.layer(0).tail_base, nullptr);

  // A quantized cache: 64-token blocks and a 16-bit tail pool, one tail per sequence.
  cfg.format = KvFormat::INT4_KIVI;
  cfg.num_tail_blocks = 3;
  KvCache q(be, cfg);
  EXPECT_EQ(q.block_size(), 64);
  EXPECT_EQ(q.block_bytes(), kv_block_bytes(KvFormat::INT4_KIVI, 64, 2, 64));
  EXPECT_EQ(q.tail_block_bytes(), 2u * 64 * 2 * 64 * 2);
  EXPECT_EQ(q.total_bytes(), q.block_bytes() * 5 * 2 + q.tail_block_bytes() * 3 * 2);
  EXPECT_EQ(static_cast<char*>(q.layer(1).tail_base) - static_cast<char*>(q.layer(0).tail_base),
            static_cast<ptrdiff_t>(q.tail_block_bytes() * 3));
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
