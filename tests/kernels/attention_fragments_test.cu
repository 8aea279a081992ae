// Host test (no GPU needed) of the tensor-core attention's fragment mapping
// (src/backend/cuda/kv_fragments.cuh): for every KV format and head_dim 64/128, a block quantized
// by the reference coding (kv_format.cpp) is laid out in "shared memory" with the kernel's swizzle,
// ldmatrix (plain and .trans) is emulated per lane with the kernel's row addresses, and every
// element each lane decodes (codes, byte permutes, scale/zero pairs, channel order) must equal the
// reference dequantized value of the token and channel the kernel believes it holds. Every
// (token, channel) must be covered.
//
//   attention_fragments_test    exit 0 = pass
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <type_traits>
#include <vector>

#include "backend/cuda/kv_fragments.cuh"
#include "kv/kv_format.h"

using namespace densekv;
using namespace densekv::cuda;

namespace {

int g_failures = 0;

void fail(const char* what, const char* fmt, int a, int b, float got, float want) {
  if (++g_failures <= 20) {
    std::printf("FAIL %s: %s token %d channel %d got %g want %g\n", what, fmt, a, b, got, want);
  }
}

float half_lo(uint32_t u) {
  return h16_to_f32(static_cast<uint16_t>(u & 0xffff));
}
float half_hi(uint32_t u) {
  return h16_to_f32(static_cast<uint16_t>(u >> 16));
}
float bf16_bits(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// A section in shared memory: code chunks swizzled, meta in place (as copy_section_swizzled).
std::vector<uint8_t> to_smem(const std::vector<uint8_t>& sec, int cpr) {
  std::vector<uint8_t> s(sec.size());
  const int n = static_cast<int>(sec.size() / 16), code = 64 * cpr;
  for (int i = 0; i < n; ++i) {
    std::memcpy(&s[(i < code ? swizzle_chunk(i, cpr) : i) * 16], &sec[i * 16], 16);
  }
  return s;
}

// ldmatrix: `count` 8x8 b16 matrices, matrix j's row r at the address of lane 8j + r.
void ldsm(const uint8_t* smem, const int (&off)[32], int count, bool trans, int lane,
          uint32_t* out) {
  for (int j = 0; j < count; ++j) {
    if (!trans) {
      std::memcpy(&out[j], smem + off[8 * j + lane / 4] + 4 * (lane % 4), 4);
    } else {
      uint16_t lo, hi;
      std::memcpy(&lo, smem + off[8 * j + 2 * (lane % 4)] + 2 * (lane / 4), 2);
      std::memcpy(&hi, smem + off[8 * j + 2 * (lane % 4) + 1] + 2 * (lane / 4), 2);
      out[j] = lo | (static_cast<uint32_t>(hi) << 16);
    }
  }
}

template <class C>
constexpr bool kIsFp8 = std::is_same_v<C, Fp8Frag<64>> || std::is_same_v<C, Fp8Frag<128>>;
template <class C>
constexpr bool kIsInt8 = std::is_same_v<C, Int8Frag<64>> || std::is_same_v<C, Int8Frag<128>>;

// The element value of a decoded half (bf16 rows: the raw bits).
template <class C>
float elem(uint32_t raw, int hi) {
  if constexpr (std::is_same_v<typename C::T, __nv_bfloat16>) {
    return bf16_bits(static_cast<uint16_t>(hi ? raw >> 16 : raw & 0xffff));
  } else {
    return hi ? half_hi(raw) : half_lo(raw);
  }
}

template <class KC, class VC, int HD>
void check(KvFormat f, std::mt19937& rng) {
  const bool quant = kv_format_is_quantized(f);
  const char* name = kv_format_name(f);
  // Reference block: [64][HD] keys and values, their stored bytes and dequantized values.
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> xk(64 * HD), xv(64 * HD);
  for (float& x : xk) x = u(rng);
  for (float& x : xv) x = u(rng);
  std::vector<uint8_t> kb, vb;
  std::vector<float> kref(64 * HD), vref(64 * HD);
  if (quant) {
    const KvFormatInfo info = kv_format_info(f, HD);
    kb.resize(info.k.bytes);
    vb.resize(info.v.bytes);
    quantize_section(info, info.k, xk.data(), kb.data());
    quantize_section(info, info.v, xv.data(), vb.data());
    dequantize_section(info, info.k, kb.data(), kref.data());
    dequantize_section(info, info.v, vb.data(), vref.data());
  } else {
    kb.resize(64 * HD * 2);
    vb.resize(64 * HD * 2);
    for (int i = 0; i < 64 * HD; ++i) {
      uint16_t a, b;
      if (f == KvFormat::BF16) {
        a = f32_to_bf16(xk[i]), b = f32_to_bf16(xv[i]);
        kref[i] = bf16_bits(a), vref[i] = bf16_bits(b);
      } else {
        a = f32_to_f16(xk[i]), b = f32_to_f16(xv[i]);
        kref[i] = h16_to_f32(a), vref[i] = h16_to_f32(b);
      }
      std::memcpy(&kb[2 * i], &a, 2);
      std::memcpy(&vb[2 * i], &b, 2);
    }
  }
  const std::vector<uint8_t> ks = to_smem(kb, KC::kCpr), vs = to_smem(vb, VC::kCpr);
  const KC kc{};
  const VC vc{};
  std::set<std::pair<int, int>> k_seen, v_seen;

  for (int warp = 0; warp < 4; ++warp) {
    const int r0 = 16 * warp;
    // Keys: rows r0 + 8i + gid, pair q of lane t -> channels kchan(q / P, t, q % P, hi).
    constexpr int KCPR = KC::kCpr, KP = 16 / KC::kBits;
    for (int i = 0; i < 2; ++i) {
      uint32_t w[32][KCPR];
      for (int cb = 0; cb < KCPR; cb += 4) {
        int off[32];
        for (int l = 0; l < 32; ++l) off[l] = k_ldsm_offset(r0 + 8 * i, l, cb, KCPR);
        for (int l = 0; l < 32; ++l)
          ldsm(ks.data(), off, KCPR >= 4 ? 4 : KCPR, false, l, &w[l][cb]);
      }
      for (int l = 0; l < 32; ++l) {
        const int gid = l / 4, t = l % 4, tok = r0 + 8 * i + gid;
        for (int q = 0; q < HD / 8; ++q) {
          const uint32_t raw = KC::kdecode(w[l][q / KP], q % KP);
          for (int hi = 0; hi < 2; ++hi) {
            const int ch = KC::kchan(q / KP, t, q % KP, hi);
            float got = elem<KC>(raw, hi);
            if constexpr (KC::kPerChannel) {
              const auto a = kc.kaff(ks.data(), t, q);
              got = (got - 1024.0f) * (hi ? half_hi(a.s) : half_lo(a.s)) +
                    (hi ? half_hi(a.z) : half_lo(a.z));
            } else {
              const float2 fx = kc.kfix(ks.data(), tok);
              got = fx.x * (got - fx.y);
            }
            const float want = kref[tok * HD + ch];
            if (std::fabs(got - want) > 2e-3f * (1.0f + std::fabs(want))) {
              fail(name, "K", tok, ch, got, want);
            }
            k_seen.insert({tok, ch});
          }
        }
      }
    }
    // Values: pair e of column gid in chunk c = tokens (r0 + 2t, +1) [b0] and (r0 + 8 + 2t, +1)
    // [b1] of channel vchan(c, gid, e).
    constexpr int VCPR = VC::kCpr, VP = 16 / VC::kBits;
    for (int cb = 0; cb < VCPR; cb += 2) {
      uint32_t w[32][4];
      int off[32];
      for (int l = 0; l < 32; ++l) off[l] = v_ldsm_offset(r0, l, cb, VCPR);
      for (int l = 0; l < 32; ++l) ldsm(vs.data(), off, VCPR >= 2 ? 4 : 2, true, l, w[l]);
      for (int l = 0; l < 32; ++l) {
        const int gid = l / 4, t = l % 4;
        for (int j = 0; j < (VCPR >= 2 ? 2 : 1); ++j) {
          const int c = cb + j;
          for (int half = 0; half < 2; ++half) {
            const int ta = r0 + 8 * half + 2 * t;
            const auto a = vc.vaff(vs.data(), ta, VC::vgroup(c, gid));
            for (int e = 0; e < VP; ++e) {
              const uint32_t raw = VC::vdecode(w[l][2 * j + half], e);
              const int ch = VC::vchan(c, gid, e);
              for (int hi = 0; hi < 2; ++hi) {
                float got = elem<VC>(raw, hi);
                if constexpr (kIsFp8<VC>) {
                  got *= hi ? half_hi(a.s) : half_lo(a.s);
                } else if constexpr (kIsInt8<VC>) {
                  got = (got - (hi ? half_hi(a.off) : half_lo(a.off))) *
                        (hi ? half_hi(a.s) : half_lo(a.s));
                } else if constexpr (VC::kAffineV) {
                  got = (got - 1024.0f) * (hi ? half_hi(a.s) : half_lo(a.s)) +
                        (hi ? half_hi(a.z) : half_lo(a.z));
                }
                const int tok = ta + hi;
                const float want = vref[tok * HD + ch];
                if (std::fabs(got - want) > 2e-3f * (1.0f + std::fabs(want))) {
                  fail(name, "V", tok, ch, got, want);
                }
                v_seen.insert({tok, ch});
              }
            }
          }
        }
      }
    }
  }
  if (k_seen.size() != 64u * HD || v_seen.size() != 64u * HD) {
    ++g_failures;
    std::printf("FAIL %s hd %d: covered %zu K and %zu V of %d elements\n", name, HD, k_seen.size(),
                v_seen.size(), 64 * HD);
  }
  std::printf("%-10s hd %3d: checked\n", name, HD);
}

template <int HD>
void check_all(std::mt19937& rng) {
  check<PlainFrag<__nv_bfloat16, HD>, PlainFrag<__nv_bfloat16, HD>, HD>(KvFormat::BF16, rng);
  check<PlainFrag<__half, HD>, PlainFrag<__half, HD>, HD>(KvFormat::F16, rng);
  check<Fp8Frag<HD>, Fp8Frag<HD>, HD>(KvFormat::FP8_E4M3, rng);
  check<Int8Frag<HD>, Int8Frag<HD>, HD>(KvFormat::INT8, rng);
  check<PerChannelFrag<4, HD>, PerTokenGroupFrag<4, 64, HD>, HD>(KvFormat::INT4_KIVI, rng);
  check<PerChannelFrag<2, HD>, PerTokenGroupFrag<2, 32, HD>, HD>(KvFormat::INT2_KIVI, rng);
  check<PerChannelFrag<4, HD>, PerTokenGroupFrag<2, 64, HD>, HD>(KvFormat::K4V2, rng);
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  check_all<64>(rng);
  check_all<128>(rng);
  std::printf("%s (%d failures)\n", g_failures == 0 ? "PASS" : "FAIL", g_failures);
  return g_failures == 0 ? 0 : 1;
}
