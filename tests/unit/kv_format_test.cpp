// KV formats: names, layout sizes and density, fp8 e4m3 codes (against the OCP FP8 spec values and
// a brute-force nearest search), exact bytes on hand-made blocks, and round-trip error bounds
// recomputed independently from the input.
#include "kv/kv_format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/errors.h"

using namespace densekv;

namespace {

const KvFormat kQuantFormats[] = {KvFormat::FP8_E4M3, KvFormat::INT8, KvFormat::INT4_KIVI,
                                  KvFormat::INT2_KIVI, KvFormat::K4V2};
const KvFormat kAllFormats[] = {KvFormat::BF16,      KvFormat::F16,  KvFormat::F32,
                                KvFormat::FP8_E4M3,  KvFormat::INT8, KvFormat::INT4_KIVI,
                                KvFormat::INT2_KIVI, KvFormat::K4V2};

uint16_t u16_at(const std::vector<uint8_t>& b, size_t off) {
  uint16_t v;
  std::memcpy(&v, b.data() + off, 2);
  return v;
}

// Keys/values like a real model's: per-channel offsets and spreads, a few outlier channels.
std::vector<float> realistic_block(int n, int d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> offset(d), spread(d);
  for (int c = 0; c < d; ++c) {
    offset[c] = 0.5f * nd(rng);
    spread[c] = std::exp(0.5f * nd(rng));
    if (c % 37 == 5) {  // outlier channel
      offset[c] += 12.0f;
      spread[c] *= 6.0f;
    }
  }
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (int t = 0; t < n; ++t) {
    for (int c = 0; c < d; ++c) x[static_cast<size_t>(t) * d + c] = offset[c] + spread[c] * nd(rng);
  }
  return x;
}

struct Roundtrip {
  std::vector<uint8_t> bytes;
  std::vector<float> deq;
};
Roundtrip roundtrip(const KvFormatInfo& info, const KvSection& s, const std::vector<float>& x) {
  Roundtrip r;
  r.bytes.assign(s.bytes, 0xAB);
  r.deq.assign(x.size(), NAN);
  quantize_section(info, s, x.data(), r.bytes.data());
  dequantize_section(info, s, r.bytes.data(), r.deq.data());
  return r;
}

// Checks the stored scales / zeros against values recomputed from x by the documented rules, and
// every element against its bound. Returns the largest error.
float check_section(const KvFormatInfo& info, const KvSection& s, const std::vector<float>& x) {
  const int n = info.block_size, d = info.head_dim;
  const Roundtrip r = roundtrip(info, s, x);
  float worst = 0.0f;
  auto at = [&](int t, int c) { return static_cast<size_t>(t) * d + c; };
  auto check = [&](int t, int c, float bound) {
    const float xv = x[at(t, c)], err = std::fabs(xv - r.deq[at(t, c)]);
    worst = std::max(worst, err);
    EXPECT_LE(err, bound * (1.0f + 1e-5f) + 1e-6f * std::fabs(xv))
        << kv_format_name(info.format) << " d=" << d << " t=" << t << " c=" << c << " x=" << xv;
  };
  // Asymmetric b-bit group [lo, hi]: the stored pair must be (round-up scale, nearest zero).
  auto check_asym = [&](size_t meta, float lo, float hi, auto&& elements) {
    const uint16_t zero_h = f32_to_f16(lo);
    const float zero = f16_to_f32(zero_h);
    const float span = std::max(hi - zero, 0.0f);
    const uint16_t scale_h = f32_to_f16_round_up(span / float((1 << s.bits) - 1));
    EXPECT_EQ(u16_at(r.bytes, meta), scale_h);
    EXPECT_EQ(u16_at(r.bytes, meta + 2), zero_h);
    const float bound =
        f16_to_f32(scale_h) / 2 + std::fabs(zero - lo) + 1e-6f * (std::fabs(zero) + std::fabs(hi));
    elements(bound);
  };
  switch (s.coding) {
    case KvCoding::Plain: {
      const float rel =
          s.bits == 32 ? 0.0f : (info.format == KvFormat::BF16 ? 1.0f / 256 : 1.0f / 2048);
      for (int t = 0; t < n; ++t)
        for (int c = 0; c < d; ++c) check(t, c, std::fabs(x[at(t, c)]) * rel);
      break;
    }
    case KvCoding::Fp8PerToken:
      for (int t = 0; t < n; ++t) {
        float amax = 0.0f;
        for (int c = 0; c < d; ++c) amax = std::max(amax, std::fabs(x[at(t, c)]));
        const uint16_t scale_h = f32_to_f16_round_up(amax / 448.0f);
        EXPECT_EQ(u16_at(r.bytes, s.meta_offset + 2 * t), scale_h);
        const float scale = f16_to_f32(scale_h);
        for (int c = 0; c < d; ++c) check(t, c, std::fabs(x[at(t, c)]) / 16 + scale / 1024);
      }
      break;
    case KvCoding::Int8PerToken:
      for (int t = 0; t < n; ++t) {
        float lo = 0.0f, hi = 0.0f;
        for (int c = 0; c < d; ++c) {
          lo = std::min(lo, x[at(t, c)]);
          hi = std::max(hi, x[at(t, c)]);
        }
        const uint16_t scale_h = f32_to_f16_round_up((hi - lo) / 254.0f);
        EXPECT_EQ(u16_at(r.bytes, s.meta_offset + 2 * t), scale_h);
        const float scale = f16_to_f32(scale_h);
        if (scale > 0) {
          EXPECT_EQ(r.bytes[s.meta_offset + 2 * n + t], std::nearbyint(-lo / scale));
        }
        for (int c = 0; c < d; ++c) check(t, c, scale / 2);
      }
      break;
    case KvCoding::PerChannel:
      for (int c = 0; c < d; ++c) {
        float lo = x[at(0, c)], hi = lo;
        for (int t = 0; t < n; ++t) {
          lo = std::min(lo, x[at(t, c)]);
          hi = std::max(hi, x[at(t, c)]);
        }
        check_asym(s.meta_offset + 4 * c, lo, hi, [&](float bound) {
          for (int t = 0; t < n; ++t) check(t, c, bound);
        });
      }
      break;
    case KvCoding::PerTokenGroup:
      for (int t = 0; t < n; ++t) {
        for (int g = 0; g < d / s.group; ++g) {
          const auto [lo, hi] = std::minmax_element(x.begin() + at(t, g * s.group),
                                                    x.begin() + at(t, (g + 1) * s.group));
          check_asym(s.meta_offset + 4 * (t * (d / s.group) + g), *lo, *hi, [&](float bound) {
            for (int c = g * s.group; c < (g + 1) * s.group; ++c) check(t, c, bound);
          });
        }
      }
      break;
  }
  // Padding after the scales is zero (the section is memset before coding).
  const size_t used = s.meta_offset + (s.coding == KvCoding::PerChannel ? 4 * d : 0);
  if (s.coding == KvCoding::PerChannel) {
    for (size_t i = used; i < s.bytes; ++i) EXPECT_EQ(r.bytes[i], 0) << i;
  }
  return worst;
}

}  // namespace

TEST(KvFormat, ParsesNamesAndRejectsUnknown) {
  EXPECT_EQ(parse_kv_cache_dtype("auto", DType::BF16), KvFormat::BF16);
  EXPECT_EQ(parse_kv_cache_dtype("auto", DType::F16), KvFormat::F16);
  EXPECT_EQ(parse_kv_cache_dtype("auto", DType::F32), KvFormat::F32);
  for (KvFormat f : kAllFormats) {
    if (f == KvFormat::F32) continue;  // fp32 is only reachable through auto
    EXPECT_EQ(parse_kv_cache_dtype(kv_format_name(f), DType::BF16), f) << kv_format_name(f);
  }
  EXPECT_EQ(parse_kv_cache_dtype("fp8", DType::BF16), KvFormat::FP8_E4M3);
  try {
    parse_kv_cache_dtype("int3", DType::BF16);
    FAIL() << "no exception";
  } catch (const InvalidArgumentError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'int3'"), std::string::npos) << msg;
    for (const char* n :
         {"auto", "bf16", "fp16", "fp8_e4m3", "int8", "int4_kivi", "int2_kivi", "k4v2"}) {
      EXPECT_NE(msg.find(n), std::string::npos) << msg;
    }
  }
}

TEST(KvFormat, RejectsUnsupportedHeadDimAndBlockSize) {
  EXPECT_THROW(kv_format_info(KvFormat::INT4_KIVI, 96), InvalidArgumentError);
  EXPECT_THROW(kv_format_info(KvFormat::K4V2, 192), InvalidArgumentError);  // not a power of two
  EXPECT_NO_THROW(kv_format_info(KvFormat::INT8, 192));
  EXPECT_THROW(kv_format_info(KvFormat::INT8, 128, 16), InvalidArgumentError);
  EXPECT_NO_THROW(kv_format_info(KvFormat::BF16, 96, 32));
  EXPECT_THROW(kv_format_info(KvFormat::BF16, 0), InvalidArgumentError);
}

// The sizes docs/kv-formats.md documents, and the density targets of the issue.
TEST(KvFormat, SectionSizesAndDensityTargets) {
  struct Want {
    KvFormat f;
    size_t k128, v128, k64, v64;
    double target;
  };
  const Want wants[] = {
      {KvFormat::BF16, 4096, 4096, 2048, 2048, 1.0},      // block 16
      {KvFormat::FP8_E4M3, 8320, 8320, 4224, 4224, 1.9},  // 64 x (d + 2)
      {KvFormat::INT8, 8384, 8384, 4288, 4288, 1.9},      // 64 x (d + 3)
      {KvFormat::INT4_KIVI, 4608, 4608, 2304, 2304, 3.3},
      {KvFormat::INT2_KIVI, 2560, 3072, 1280, 1536, 5.0},
      {KvFormat::K4V2, 4608, 2560, 2304, 1280, 4.5},
  };
  for (const Want& w : wants) {
    for (int d : {64, 128}) {
      const KvFormatInfo info = kv_format_info(w.f, d);
      EXPECT_EQ(info.k.bytes, d == 128 ? w.k128 : w.k64) << kv_format_name(w.f) << " " << d;
      EXPECT_EQ(info.v.bytes, d == 128 ? w.v128 : w.v64) << kv_format_name(w.f) << " " << d;
      EXPECT_EQ(info.k.bytes % 16, 0u);
      EXPECT_EQ(info.v.bytes % 16, 0u);
      EXPECT_EQ(info.k.meta_offset % 16, 0u);
      EXPECT_EQ(info.v.meta_offset % 16, 0u);
      EXPECT_GE(info.density_vs_16bit(), w.target) << kv_format_name(w.f) << " " << d;
      EXPECT_EQ(info.quantized, w.f != KvFormat::BF16);
      EXPECT_EQ(info.block_size, w.f == KvFormat::BF16 ? 16 : 64);
    }
  }
  EXPECT_EQ(kv_block_bytes(KvFormat::INT4_KIVI, 64, 8, 128), 8u * (4608 + 4608));
  EXPECT_EQ(kv_block_bytes(KvFormat::BF16, 16, 8, 128), 2u * 16 * 8 * 128 * 2);
}

TEST(KvFormat, E4m3SpecValues) {
  // OCP 8-bit floating point spec, E4M3: bias 7, max normal 448 = S.1111.110, NaN = S.1111.111,
  // min normal 2^-6 = S.0001.000, min subnormal 2^-9 = S.0000.001.
  EXPECT_EQ(f32_to_e4m3(1.0f), 0x38);
  EXPECT_EQ(f32_to_e4m3(-2.0f), 0xc0);
  EXPECT_EQ(f32_to_e4m3(448.0f), 0x7e);
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7e);  // saturates
  EXPECT_EQ(f32_to_e4m3(-INFINITY), 0xfe);
  EXPECT_EQ(f32_to_e4m3(NAN), 0x7f);
  EXPECT_EQ(f32_to_e4m3(0.015625f), 0x08);
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -9)), 0x01);
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -10)), 0x00);  // tie 0 | 2^-9 -> even
  EXPECT_EQ(f32_to_e4m3(std::ldexp(3.0f, -10)), 0x02);  // tie 2^-9 | 2^-8 -> even
  EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38);                // tie 1 | 1.125 -> even
  EXPECT_EQ(f32_to_e4m3(1.1875f), 0x3a);                // tie 1.125 | 1.25 -> even
  EXPECT_EQ(f32_to_e4m3(432.0f), 0x7e);                 // tie 416 | 448 -> even (0x7e)
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_to_f32(0xb8), -1.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7f)));
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    EXPECT_EQ(f32_to_e4m3(e4m3_to_f32(static_cast<uint8_t>(c))), c) << c;
  }
}

TEST(KvFormat, E4m3IsNearestEven) {
  std::vector<float> vals;  // positive finite values, increasing with the code
  for (int c = 0; c <= 0x7e; ++c) vals.push_back(e4m3_to_f32(static_cast<uint8_t>(c)));
  for (size_t i = 1; i < vals.size(); ++i) ASSERT_LT(vals[i - 1], vals[i]);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> log2u(-12.0f, 9.5f);
  for (int i = 0; i < 20000; ++i) {
    const float x = std::exp2(log2u(rng));
    int best = 0;  // brute force: the nearest value, ties to the even code
    for (int c = 1; c <= 0x7e; ++c) {
      const float dc = std::fabs(vals[c] - x), db = std::fabs(vals[best] - x);
      if (dc < db || (dc == db && c % 2 == 0)) best = c;
    }
    ASSERT_EQ(f32_to_e4m3(x), best) << x;
    ASSERT_EQ(f32_to_e4m3(-x), best | 0x80) << x;
  }
}

TEST(KvFormat, F16RoundUp) {
  for (float x : {0.0f, 1.0f, 4.2f, 1e-7f, 3e-5f, 0.1f, 65504.0f, 1234.567f}) {
    const uint16_t h = f32_to_f16_round_up(x);
    EXPECT_GE(f16_to_f32(h), x);
    if (h > 0) {
      EXPECT_LT(f16_to_f32(static_cast<uint16_t>(h - 1)), x);
    }
  }
  EXPECT_EQ(f32_to_f16_round_up(4.2f), 0x4434);  // 4.203125; nearest would be 4.19921875
}

TEST(KvFormat, Int4PerChannelKeyBytes) {
  const KvFormatInfo info = kv_format_info(KvFormat::INT4_KIVI, 64);
  std::vector<float> k(64 * 64, 0.0f), v(64 * 64, 0.0f);
  for (int t = 0; t < 64; ++t) {
    k[t * 64 + 0] = static_cast<float>(t % 16);             // scale 1, zero 0
    k[t * 64 + 1] = static_cast<float>(15 - t % 16);        // scale 1, zero 0
    k[t * 64 + 2] = 3.0f;                                   // constant: scale 0, zero 3
    k[t * 64 + 3] = 2.0f * static_cast<float>(t % 16) - 8;  // scale 2, zero -8
  }
  std::vector<uint8_t> kb(info.k.bytes), vb(info.v.bytes);
  quantize_block(info, k.data(), v.data(), kb.data(), vb.data());
  ASSERT_EQ(info.k.row_bytes, 32u);
  for (int t = 0; t < 64; ++t) {
    // One u32 = channels 0..7 of a token, channel c in bits 4c..4c+3.
    uint32_t w;
    std::memcpy(&w, kb.data() + t * 32, 4);
    const uint32_t q = t % 16;
    EXPECT_EQ(w, q | (15 - q) << 4 | 0u << 8 | q << 12) << t;
  }
  const size_t m = info.k.meta_offset;  // (scale, zero) fp16 pairs per channel
  EXPECT_EQ(m, 64u * 32);
  EXPECT_EQ(u16_at(kb, m + 0), 0x3c00);
  EXPECT_EQ(u16_at(kb, m + 2), 0x0000);
  EXPECT_EQ(u16_at(kb, m + 8), 0x0000);
  EXPECT_EQ(u16_at(kb, m + 10), 0x4200);
  EXPECT_EQ(u16_at(kb, m + 12), 0x4000);
  EXPECT_EQ(u16_at(kb, m + 14), 0xc800);
  std::vector<float> kd(k.size()), vd(v.size());
  dequantize_block(info, kb.data(), vb.data(), kd.data(), vd.data());
  EXPECT_EQ(kd, k);  // every value sits on its grid
  EXPECT_EQ(vd, v);
}

TEST(KvFormat, Int2PerTokenValueBytes) {
  const KvFormatInfo info = kv_format_info(KvFormat::INT2_KIVI, 64);
  ASSERT_EQ(info.v.group, 32);
  std::vector<float> v(64 * 64);
  for (int t = 0; t < 64; ++t) {
    for (int c = 0; c < 64; ++c) v[t * 64 + c] = c < 32 ? float(c % 4) : 0.5f * float(c % 4) - 1.0f;
  }
  std::vector<uint8_t> vb(info.v.bytes);
  quantize_section(info, info.v, v.data(), vb.data());
  ASSERT_EQ(info.v.row_bytes, 16u);
  for (int t = 0; t < 64; ++t) {
    for (int i = 0; i < 16; ++i) EXPECT_EQ(vb[t * 16 + i], 0xe4) << t << " " << i;  // 0,1,2,3
    const size_t m = info.v.meta_offset + 8 * t;  // two groups per token
    EXPECT_EQ(u16_at(vb, m + 0), 0x3c00);         // group 0: scale 1
    EXPECT_EQ(u16_at(vb, m + 2), 0x0000);         //          zero 0
    EXPECT_EQ(u16_at(vb, m + 4), 0x3800);         // group 1: scale 0.5
    EXPECT_EQ(u16_at(vb, m + 6), 0xbc00);         //          zero -1
  }
  std::vector<float> vd(v.size());
  dequantize_section(info, info.v, vb.data(), vd.data());
  EXPECT_EQ(vd, v);
}

TEST(KvFormat, Int8AndFp8PerTokenBytes) {
  {
    const KvFormatInfo info = kv_format_info(KvFormat::INT8, 128);
    std::vector<float> x(64 * 128);
    for (int t = 0; t < 64; ++t)
      for (int c = 0; c < 128; ++c) x[t * 128 + c] = 0.5f * float(c - 64);  // [-32, 31.5]
    std::vector<uint8_t> b(info.k.bytes);
    quantize_section(info, info.k, x.data(), b.data());
    for (int t = 0; t < 64; ++t) {
      for (int c = 0; c < 128; ++c) ASSERT_EQ(b[t * 128 + c], 2 * c);  // x / 0.25 + 128
      EXPECT_EQ(u16_at(b, info.k.meta_offset + 2 * t), 0x3400);        // scale 63.5/254 = 0.25
      EXPECT_EQ(b[info.k.meta_offset + 128 + t], 128);                 // zero point
    }
    std::vector<float> xd(x.size());
    dequantize_section(info, info.k, b.data(), xd.data());
    EXPECT_EQ(xd, x);
  }
  {
    const KvFormatInfo info = kv_format_info(KvFormat::FP8_E4M3, 64);
    std::vector<float> x(64 * 64, 0.0f);
    for (int t = 0; t < 64; ++t) {
      x[t * 64 + 0] = 448.0f;  // amax 448: scale 1
      x[t * 64 + 1] = -1.0f;
      x[t * 64 + 2] = 0.5f;
    }
    x[64 * 5 + 0] = 0.0f;  // token 5: amax 1 -> scale 1/448 rounded up
    std::vector<uint8_t> b(info.v.bytes);
    quantize_section(info, info.v, x.data(), b.data());
    EXPECT_EQ(b[0], 0x7e);
    EXPECT_EQ(b[1], 0xb8);
    EXPECT_EQ(b[2], 0x30);
    EXPECT_EQ(u16_at(b, info.v.meta_offset), 0x3c00);
    EXPECT_EQ(u16_at(b, info.v.meta_offset + 10), f32_to_f16_round_up(1.0f / 448.0f));
  }
}

TEST(KvFormat, RoundTripErrorBounds) {
  for (KvFormat f : kAllFormats) {
    for (int d : {64, 128}) {
      const KvFormatInfo info = kv_format_info(f, d);
      for (uint32_t seed : {1u, 2u, 3u}) {
        const std::vector<float> x = realistic_block(info.block_size, d, seed * 100 + d);
        check_section(info, info.k, x);
        check_section(info, info.v, x);
      }
    }
  }
}

TEST(KvFormat, EdgeBlocks) {
  for (KvFormat f : kQuantFormats) {
    const KvFormatInfo info = kv_format_info(f, 128);
    const size_t n = 64 * 128;
    std::vector<std::vector<float>> blocks = {
        std::vector<float>(n, 0.0f), std::vector<float>(n, -3.25f), std::vector<float>(n, 1e-6f)};
    std::vector<float> spike(n, 0.01f);
    spike[777] = 1000.0f;
    blocks.push_back(spike);
    std::vector<float> negative = realistic_block(64, 128, 9);
    for (float& x : negative) x = -std::fabs(x) - 5.0f;
    blocks.push_back(negative);
    for (const auto& x : blocks) {
      check_section(info, info.k, x);
      check_section(info, info.v, x);
    }
    const Roundtrip zeros = roundtrip(info, info.k, blocks[0]);
    for (float v : zeros.deq) ASSERT_EQ(v, 0.0f) << kv_format_name(f);
  }
}

// k4v2 through the rotation hooks: rotate, quantize, dequantize, rotate back. On keys with outlier
// channels, rotation spreads the outliers so 2-bit per-token values lose less than without it.
TEST(KvFormat, K4v2RotatedRoundTripBeatsUnrotatedInt2Values) {
  const KvFormatInfo k4v2 = kv_format_info(KvFormat::K4V2, 128);
  const std::vector<float> x = realistic_block(64, 128, 42);
  std::vector<float> rot = x;
  kv_rotate_rows(k4v2, rot.data(), 64);
  std::vector<uint8_t> kb(k4v2.k.bytes), vb(k4v2.v.bytes);
  quantize_block(k4v2, rot.data(), rot.data(), kb.data(), vb.data());
  std::vector<float> kd(x.size()), vd(x.size());
  dequantize_block(k4v2, kb.data(), vb.data(), kd.data(), vd.data());
  kv_rotate_rows(k4v2, kd.data(), 64);
  kv_rotate_rows(k4v2, vd.data(), 64);
  // The unrotated 2-bit group-64 per-token coding of the same values, for comparison.
  KvFormatInfo plain2 = k4v2;
  plain2.rotated = false;
  const Roundtrip un = roundtrip(plain2, plain2.v, x);
  double err_rot = 0.0, err_un = 0.0, err_k = 0.0, norm = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    err_rot += (vd[i] - x[i]) * (vd[i] - x[i]);
    err_un += (un.deq[i] - x[i]) * (un.deq[i] - x[i]);
    err_k += (kd[i] - x[i]) * (kd[i] - x[i]);
    norm += x[i] * x[i];
  }
  EXPECT_LT(err_rot, 0.5 * err_un);
  EXPECT_LT(err_k / norm, 0.01);  // 4-bit keys: well under 1% relative squared error
}
