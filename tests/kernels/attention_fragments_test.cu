// Host test (no GPU needed) of the tensor-core attention (paged_attention_mma.cuh). Part 1: the
// fragment mapping
// (src/backend/cuda/kv_fragments.cuh): for every KV format and head_dim 64/128, a block quantized
// by the reference coding (kv_format.cpp) is laid out in "shared memory" with the kernel's swizzle,
// ldmatrix (plain and .trans) is emulated per lane with the kernel's row addresses, and every
// element each lane decodes (codes, byte permutes, scale/zero pairs, channel order) must equal the
// reference dequantized value of the token and channel the kernel believes it holds. Every
// (token, channel) must be covered. Part 2: the warp code itself (mma_attend_tile over a full
// tile and a partial one, the 16-bit tail for quantized formats, then the kernel's merge of the 4
// warps) runs on the host with a lockstep emulation of ldmatrix, mma.sync and shuffles
// (warp_emulation.h), against softmax attention in double over the reference dequantized K/V.
//
//   attention_fragments_test    exit 0 = pass
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <type_traits>
#include <vector>

#include "backend/cuda/kv_fragments.cuh"
#include "backend/cuda/paged_attention_mma.cuh"
#include "kv/kv_format.h"
#include "warp_emulation.h"

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
    if constexpr (KC::kBits < 16) {  // the quantized codings
      if (info.k.bytes != static_cast<size_t>(KC::kSectionBytes) ||
          info.v.bytes != static_cast<size_t>(VC::kSectionBytes)) {
        ++g_failures;
        std::printf("FAIL %s hd %d: sections of %zu + %zu bytes, the kernel's %d + %d\n", name, HD,
                    info.k.bytes, info.v.bytes, KC::kSectionBytes, VC::kSectionBytes);
      }
    }
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
          const auto a = kc.kaff(ks.data(), t, q - q % kKAffPairs);
          const uint32_t raw = kc.kapply(KC::kdecode(w[l][q / KP], q % KP), a, q);
          for (int hi = 0; hi < 2; ++hi) {
            const int ch = KC::kchan(q / KP, t, q % KP, hi);
            float got = elem<KC>(raw, hi);
            if constexpr (KC::kPerToken) {
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
      constexpr bool kAOrder = VC::kBits == 16;
      for (int l = 0; l < 32; ++l) off[l] = v_ldsm_offset(r0, l, cb, VCPR, kAOrder);
      for (int l = 0; l < 32; ++l) ldsm(vs.data(), off, VCPR >= 2 ? 4 : 2, true, l, w[l]);
      for (int l = 0; l < 32; ++l) {
        const int gid = l / 4, t = l % 4;
        for (int j = 0; j < (VCPR >= 2 ? 2 : 1); ++j) {
          const int c = cb + j;
          for (int half = 0; half < 2; ++half) {
            const int ta = r0 + 8 * half + 2 * t;
            const auto a = vc.vaff(vs.data(), ta, VC::vgroup(c, gid));
            for (int e = 0; e < VP; ++e) {
              const uint32_t raw =
                  vc.vapply(VC::vdecode(w[l][v_ldsm_word(j, half, VCPR, kAOrder)], e), a);
              const int ch = VC::vchan(c, gid, e);
              for (int hi = 0; hi < 2; ++hi) {
                const float got = elem<VC>(raw, hi);
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

// 16-bit bits of x in the format's element type.
uint16_t to16(float x, bool bf16) {
  return bf16 ? f32_to_bf16(x) : f32_to_f16(x);
}
float from16(uint16_t h, bool bf16) {
  return bf16 ? bf16_bits(h) : h16_to_f32(h);
}

// Rows [r0, r0 + n) of x as 16-bit rows, swizzled, in a 64-row buffer whose other bytes are 0xff
// (NaN: rows past n_rows must not leak into the output). ref gets the rounded values.
std::vector<uint8_t> rows16_smem(const std::vector<float>& x, int r0, int n, int hd, bool bf16,
                                 std::vector<float>& ref) {
  const int cpr = hd * 2 / 16;
  std::vector<uint8_t> lin(64 * hd * 2, 0xff), s(64 * hd * 2, 0xff);
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < hd; ++c) {
      const uint16_t h = to16(x[(r0 + r) * hd + c], bf16);
      std::memcpy(&lin[(r * hd + c) * 2], &h, 2);
      ref[(r0 + r) * hd + c] = from16(h, bf16);
    }
  }
  for (int i = 0; i < n * cpr; ++i) std::memcpy(&s[swizzle_chunk(i, cpr) * 16], &lin[i * 16], 16);
  return s;
}

template <class KM, class VM, int HD>
void check_attention(KvFormat f, std::mt19937& rng) {
  constexpr int kB = 37;  // rows of the second (partial / tail) tile
  constexpr int kN = 64 + kB;
  const bool quant = kv_format_is_quantized(f);
  const bool bf16 = f != KvFormat::F16;  // 16-bit rows: the plain format's, or a bf16 tail
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> xk(kN * HD), xv(kN * HD), kref(kN * HD), vref(kN * HD);
  for (float& x : xk) x = 2.0f * u(rng);
  for (float& x : xv) x = u(rng);
  float qs[kMmaHeads][HD];
  for (auto& row : qs)
    for (float& x : row) x = 0.5f * u(rng);

  std::vector<uint8_t> ka, va;
  if (quant) {
    const KvFormatInfo info = kv_format_info(f, HD);
    std::vector<uint8_t> kb(info.k.bytes), vb(info.v.bytes);
    quantize_section(info, info.k, xk.data(), kb.data());
    quantize_section(info, info.v, xv.data(), vb.data());
    dequantize_section(info, info.k, kb.data(), kref.data());
    dequantize_section(info, info.v, vb.data(), vref.data());
    ka = to_smem(kb, KM::kCpr);
    va = to_smem(vb, VM::kCpr);
  } else {
    ka = rows16_smem(xk, 0, 64, HD, bf16, kref);
    va = rows16_smem(xv, 0, 64, HD, bf16, vref);
  }
  const std::vector<uint8_t> kt = rows16_smem(xk, 64, kB, HD, bf16, kref);
  const std::vector<uint8_t> vt = rows16_smem(xv, 64, kB, HD, bf16, vref);

  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  const float sl2 = scale * 1.4426950408889634f;
  std::vector<float> red(kAttnWarps * kMmaHeads * HD), ml(kAttnWarps * kMmaHeads * 2);
  for (int w = 0; w < kAttnWarps; ++w) {
    warp_emu::run_warp(w, [&] {
      const int gid = lane_id() >> 2, t = lane_id() & 3;
      uint32_t qa[HD / 16][2];
      float sumq = 0.0f, sumq2[2];
      make_q_frags<KM, HD>(qs, gid, t, qa, sumq);
      decode_head_sums(sumq, sumq2);
      MmaDecodeState<HD> st;
      mma_attend_tile<KM, VM, VM, HD, true>(ka.data(), va.data(), 64, qa, sumq2, sl2, st);
      if (quant) {
        using P16 = PlainFrag<__nv_bfloat16, HD>;
        uint32_t qt[HD / 16][2];
        float sumt = 0.0f;
        const float no_offset[2] = {0.0f, 0.0f};
        make_q_frags<P16, HD>(qs, gid, t, qt, sumt);
        mma_attend_tile<P16, P16, VM, HD>(kt.data(), vt.data(), kB, qt, no_offset, sl2, st);
      } else {
        mma_attend_tile<KM, VM, VM, HD>(kt.data(), vt.data(), kB, qa, sumq2, sl2, st);
      }
      mma_store_warp_state<VM, HD>(st, red.data(), ml.data());
    });
  }
  // The kernel's merge of the warps, then softmax attention in double.
  double err = 0, ref_max = 1e-9;
  for (int g = 0; g < kMmaHeads; ++g) {
    float m = -INFINITY;
    for (int w = 0; w < kAttnWarps; ++w) m = std::max(m, ml[(w * kMmaHeads + g) * 2]);
    std::vector<double> s(kN);
    double smax = -1e300;
    for (int j = 0; j < kN; ++j) {
      double d = 0;
      for (int c = 0; c < HD; ++c) d += double(qs[g][c]) * kref[j * HD + c];
      s[j] = d * scale;
      smax = std::max(smax, s[j]);
    }
    double den_ref = 0;
    for (int j = 0; j < kN; ++j) den_ref += std::exp(s[j] - smax);
    for (int c = 0; c < HD; ++c) {
      float num = 0, den = 0;
      for (int w = 0; w < kAttnWarps; ++w) {
        const float mw = ml[(w * kMmaHeads + g) * 2];
        if (mw == -INFINITY) continue;
        const float fw = std::exp2(mw - m);
        num += fw * red[(w * kMmaHeads + g) * HD + c];
        den += fw * ml[(w * kMmaHeads + g) * 2 + 1];
      }
      double want = 0;
      for (int j = 0; j < kN; ++j) want += std::exp(s[j] - smax) / den_ref * vref[j * HD + c];
      const double got = den > 0 ? num / den : 0.0;
      if (!std::isfinite(got)) err = INFINITY;
      err = std::max(err, std::fabs(got - want));
      ref_max = std::max(ref_max, std::fabs(want));
    }
  }
  const double rel = err / ref_max;
  const bool ok = rel < 1e-2;
  if (!ok) ++g_failures;
  std::printf("%-10s hd %3d: attention over %d + %d tokens, rel err %.2e %s\n", kv_format_name(f),
              HD, 64, kB, rel, ok ? "ok" : "FAIL");
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
  check_attention<PlainFrag<__nv_bfloat16, HD>, PlainFrag<__nv_bfloat16, HD>, HD>(KvFormat::BF16,
                                                                                  rng);
  check_attention<PlainFrag<__half, HD>, PlainFrag<__half, HD>, HD>(KvFormat::F16, rng);
  check_attention<Fp8Frag<HD>, Fp8Frag<HD>, HD>(KvFormat::FP8_E4M3, rng);
  check_attention<Int8Frag<HD>, Int8Frag<HD>, HD>(KvFormat::INT8, rng);
  check_attention<PerChannelFrag<4, HD>, PerTokenGroupFrag<4, 64, HD>, HD>(KvFormat::INT4_KIVI,
                                                                           rng);
  check_attention<PerChannelFrag<2, HD>, PerTokenGroupFrag<2, 32, HD>, HD>(KvFormat::INT2_KIVI,
                                                                           rng);
  check_attention<PerChannelFrag<4, HD>, PerTokenGroupFrag<2, 64, HD>, HD>(KvFormat::K4V2, rng);
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  check_all<64>(rng);
  check_all<128>(rng);
  std::printf("%s (%d failures)\n", g_failures == 0 ? "PASS" : "FAIL", g_failures);
  return g_failures == 0 ? 0 : 1;
}
