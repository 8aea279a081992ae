// Paged storage of one layer: tokens stored one by one land in the 16-bit tail, full tails are
// sealed into their blocks exactly as quantize_section codes the tail's 16-bit values, and loading
// a context returns sealed blocks dequantized plus the exact tail. Two interleaved sequences must
// not disturb each other.
#include "kv/kv_paged.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace densekv;

namespace {

struct Layer {
  std::vector<uint8_t> blocks, tails;
  KvLayerView view;
};

Layer make_layer(KvFormat f, int n_kv_heads, int head_dim, int num_blocks, int num_tails) {
  Layer l;
  const KvFormatInfo info = kv_format_info(f, head_dim);
  l.view.format = f;
  l.view.block_size = info.block_size;
  l.view.n_kv_heads = n_kv_heads;
  l.view.head_dim = head_dim;
  l.view.block_bytes = kv_block_bytes(f, info.block_size, n_kv_heads, head_dim);
  l.blocks.assign(l.view.block_bytes * num_blocks, 0xEE);
  l.view.base = l.blocks.data();
  if (info.quantized) {
    l.view.tail_format = KvFormat::BF16;
    l.view.tail_block_bytes = kv_block_bytes(KvFormat::BF16, info.block_size, n_kv_heads, head_dim);
    l.tails.assign(l.view.tail_block_bytes * num_tails, 0xEE);
    l.view.tail_base = l.tails.data();
  }
  return l;
}

float bf16_round(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

}  // namespace

TEST(KvPaged, StoreSealAndLoadMatchTheBlockCoding) {
  const int H = 2, d = 64;
  for (KvFormat f : {KvFormat::BF16, KvFormat::F32, KvFormat::FP8_E4M3, KvFormat::INT8,
                     KvFormat::INT4_KIVI, KvFormat::INT2_KIVI, KvFormat::K4V2}) {
    Layer l = make_layer(f, H, d, 12, 3);
    const int bs = l.view.block_size;
    const KvFormatInfo info = kv_format_info(f, d);
    // Sequence A: 150 tokens in blocks {7, 2, 9, ...}, tail 2. Sequence B: 70 tokens, tail 0.
    const std::vector<int32_t> table_a = {7, 2, 9, 4, 5, 6, 8, 10, 11, 3};
    const std::vector<int32_t> table_b = {1, 0};
    const int na = info.quantized ? 150 : 150 - 150 % bs, nb = info.quantized ? 70 : 32;
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    std::vector<float> ka(na * H * d), va(ka.size()), kb(nb * H * d), vb(kb.size());
    for (auto* x : {&ka, &va, &kb, &vb})
      for (float& e : *x) e = nd(rng);
    for (int p = 0; p < std::max(na, nb); ++p) {  // interleaved, each in position order
      if (p < na) {
        kv_store_token(l.view, table_a[p / bs], p % bs, 2, &ka[p * H * d], &va[p * H * d], 0, H);
      }
      if (p < nb) {
        kv_store_token(l.view, table_b[p / bs], p % bs, 0, &kb[p * H * d], &vb[p * H * d], 0, 1);
        kv_store_token(l.view, table_b[p / bs], p % bs, 0, &kb[p * H * d], &vb[p * H * d], 1, H);
      }
    }
    auto check = [&](const std::vector<int32_t>& table, int tail, int n,
                     const std::vector<float>& kx, const std::vector<float>& vx) {
      for (int h = 0; h < H; ++h) {
        std::vector<float> kl(n * d), vl(n * d);
        kv_load_context(l.view, h, table.data(), tail, n, kl.data(), vl.data());
        // Oracle: this head's rows, 16-bit rounded (the tail), then whole blocks block-coded.
        std::vector<float> kw(n * d), vw(n * d);
        for (int p = 0; p < n; ++p) {
          for (int c = 0; c < d; ++c) {
            const float kval = kx[(p * H + h) * d + c], vval = vx[(p * H + h) * d + c];
            kw[p * d + c] = f == KvFormat::F32 ? kval : bf16_round(kval);
            vw[p * d + c] = f == KvFormat::F32 ? vval : bf16_round(vval);
          }
        }
        if (info.quantized) {
          std::vector<uint8_t> kq(info.k.bytes), vq(info.v.bytes);
          for (int b = 0; b < n / bs; ++b) {
            float* kp = &kw[b * bs * d];
            float* vp = &vw[b * bs * d];
            quantize_block(info, kp, vp, kq.data(), vq.data());
            dequantize_block(info, kq.data(), vq.data(), kp, vp);
          }
        }
        ASSERT_EQ(kl, kw) << kv_format_name(f) << " head " << h;
        ASSERT_EQ(vl, vw) << kv_format_name(f) << " head " << h;
      }
    };
    check(table_a, 2, na, ka, va);
    check(table_b, 0, nb, kb, vb);
  }
}

TEST(KvPaged, SealedBlockBytesAreTheQuantizedTail) {
  Layer l = make_layer(KvFormat::INT4_KIVI, 1, 128, 2, 1);
  const KvFormatInfo info = kv_format_info(KvFormat::INT4_KIVI, 128);
  std::vector<float> k(64 * 128), v(64 * 128);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = bf16_round(std::sin(0.1f * static_cast<float>(i)));
    v[i] = bf16_round(std::cos(0.07f * static_cast<float>(i)));
  }
  for (int p = 0; p < 64; ++p) kv_store_token(l.view, 1, p, 0, &k[p * 128], &v[p * 128], 0, 1);
  std::vector<uint8_t> kq(info.k.bytes), vq(info.v.bytes);
  quantize_block(info, k.data(), v.data(), kq.data(), vq.data());
  EXPECT_EQ(0, std::memcmp(kv_block_section(l.view, 1, 0, 0), kq.data(), kq.size()));
  EXPECT_EQ(0, std::memcmp(kv_block_section(l.view, 1, 1, 0), vq.data(), vq.size()));
  EXPECT_EQ(kv_block_section(l.view, 1, 1, 0) - kv_block_section(l.view, 1, 0, 0),
            static_cast<long>(info.k.bytes));
}
