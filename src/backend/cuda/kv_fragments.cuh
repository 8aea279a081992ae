// Tensor-core side of the KV codings (byte layouts of docs/kv-formats.md): each coding turns the
// 32-bit words that ldmatrix hands a lane into mma.sync m16n8k16 B fragments (pairs of 16-bit
// numbers in a u32), dequantized with integer tricks, and says which channel each element is.
//
// Sections sit in shared memory as 16-byte chunks, CPR = HD * bits / 128 chunks per token row,
// swizzled (swizzle_chunk) so that ldmatrix's eight rows of one chunk hit eight different bank
// groups. Two views of a chunk:
//   K (scores, B = K^T, n = tokens): ldmatrix, no transpose: lane (gid, t) gets word t of the chunk
//     of token row gid: 16 / bits elements of that token. kdecode(w, h) gives the h-th pair.
//   V (values, B = V, k = tokens): ldmatrix.trans: lane (gid, t) gets 16-bit column gid of rows 2t
//     (low half) and 2t + 1 (high half). vdecode(w, e) gives (token 2t, token 2t + 1) of the e-th
//     channel of that column.
// 4-bit and 2-bit codes become exact fp16 codes with one LOP3 ((w >> k) & mask | 0x64006400 =
// 1024 + 2^o code) and one HFMA2 per pair (code_pair), int8 codes 1024 + code with a byte permute,
// e4m3 pairs with one cvt; 16-bit rows are used as stored.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "backend/cuda/kv_coding.cuh"

namespace densekv::cuda {

// Swizzled position of 16-byte chunk L of a region with `cpr` chunks per row: the low 3 bits are
// XORed with the row (cpr >= 8) or with the index of the 128-byte line (cpr < 8), so that the same
// chunk of 8 consecutive rows lands in 8 different 16-byte bank groups. A permutation within
// aligned groups of 8 chunks (within a row when cpr >= 8).
__host__ __device__ constexpr int swizzle_chunk(int L, int cpr) {
  return L ^ ((L / (cpr > 8 ? cpr : 8)) & 7);
}

// Byte offset of the row address lane `lane` gives ldmatrix for the K view: x4 (cpr >= 4) over
// chunks cb..cb+3 (matrix j = chunk cb + j), x2 (cpr 2: chunks 0, 1) or x1, rows row0..row0+7.
__host__ __device__ constexpr int k_ldsm_offset(int row0, int lane, int cb, int cpr) {
  const int chunk = cpr >= 4 ? cb + (lane >> 3) : cpr == 2 ? (lane >> 3) & 1 : 0;
  return swizzle_chunk((row0 + (lane & 7)) * cpr + chunk, cpr) * 16;
}
// ... for the V view (.trans): x4 (cpr >= 2) = (rows 0-7, chunk cb), (rows 8-15, cb), (0-7,
// cb + 1), (8-15, cb + 1), or with `a_order` (16-bit rows, used as loaded) (rows 0-7, cb), (0-7,
// cb + 1), (8-15, cb), (8-15, cb + 1): then the four words are one mma's A fragment in register
// order (the first order cost ~240 register moves per bf16 prefill tile and warp; the quantized
// codings decode the words into new registers, and their decode kernels spill with this order);
// x2 (cpr 1) = rows 0-7, rows 8-15; rows relative to row0.
__host__ __device__ constexpr int v_ldsm_offset(int row0, int lane, int cb, int cpr, bool a_order) {
  if (cpr < 2) return swizzle_chunk((row0 + (lane & 7) + ((lane >> 3) & 1) * 8) * cpr, cpr) * 16;
  const int m = lane >> 3;  // the matrix this lane addresses
  const int half = a_order ? m >> 1 : m & 1, j = a_order ? m & 1 : m >> 1;
  return swizzle_chunk((row0 + (lane & 7) + half * 8) * cpr + cb + j, cpr) * 16;
}
// The word of that load holding chunk cb + j, rows 8 half .. 8 half + 7.
__host__ __device__ constexpr int v_ldsm_word(int j, int half, int cpr, bool a_order) {
  return cpr < 2 ? half : a_order ? 2 * half + j : 2 * j + half;
}

// ---- Warp-level primitives. On the device: the instructions. In host code (only the fragment
// test calls the attention's warp functions on the host) a lockstep emulation of one warp that
// the test defines (tests/kernels/warp_emulation.h); production code never odr-uses it. ----
namespace warp_emu {
int lane();
int warp();
float shfl(float v, int src_lane);
void ldsm(uint32_t* r, const void* p, int count, bool trans);
void mma(float* d, const uint32_t* a, const uint32_t* b, bool bf16);
uint32_t movmatrix_t(uint32_t x);
bool any(bool p);
}  // namespace warp_emu

__host__ __device__ __forceinline__ int lane_id() {
#ifdef __CUDA_ARCH__
  return threadIdx.x & 31;
#else
  return warp_emu::lane();
#endif
}
__host__ __device__ __forceinline__ int warp_id() {
#ifdef __CUDA_ARCH__
  return threadIdx.x >> 5;
#else
  return warp_emu::warp();
#endif
}
__host__ __device__ __forceinline__ float shfl_idx(float v, int src_lane) {
#ifdef __CUDA_ARCH__
  return __shfl_sync(0xffffffffu, v, src_lane);
#else
  return warp_emu::shfl(v, src_lane);
#endif
}
__host__ __device__ __forceinline__ float shfl_xor(float v, int mask) {
#ifdef __CUDA_ARCH__
  return __shfl_xor_sync(0xffffffffu, v, mask);
#else
  return warp_emu::shfl(v, warp_emu::lane() ^ mask);
#endif
}

// True when p holds in any lane of the warp.
__host__ __device__ __forceinline__ bool warp_any(bool p) {
#ifdef __CUDA_ARCH__
  return __any_sync(0xffffffffu, p);
#else
  return warp_emu::any(p);
#endif
}

// 2^x, as the MUFU instruction (results below 2^-126 flush to zero; exp2f adds a range fix-up).
__host__ __device__ __forceinline__ float exp2_approx(float x) {
#ifdef __CUDA_ARCH__
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
  return r;
#else
  return std::exp2(x);
#endif
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__host__ __device__ __forceinline__ void ldsm_x4(uint32_t* r, const void* p) {
#ifdef __CUDA_ARCH__
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
#else
  warp_emu::ldsm(r, p, 4, false);
#endif
}
__host__ __device__ __forceinline__ void ldsm_x2(uint32_t* r, const void* p) {
#ifdef __CUDA_ARCH__
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_u32(p)));
#else
  warp_emu::ldsm(r, p, 2, false);
#endif
}
__host__ __device__ __forceinline__ void ldsm_x1(uint32_t* r, const void* p) {
#ifdef __CUDA_ARCH__
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
               : "=r"(r[0])
               : "r"(smem_u32(p)));
#else
  warp_emu::ldsm(r, p, 1, false);
#endif
}
__host__ __device__ __forceinline__ void ldsm_x4_t(uint32_t* r, const void* p) {
#ifdef __CUDA_ARCH__
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
#else
  warp_emu::ldsm(r, p, 4, true);
#endif
}
__host__ __device__ __forceinline__ void ldsm_x2_t(uint32_t* r, const void* p) {
#ifdef __CUDA_ARCH__
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_u32(p)));
#else
  warp_emu::ldsm(r, p, 2, true);
#endif
}

// Transposes an 8x8 matrix of 16-bit numbers held in the mma fragment layout (lane (gid, t): row
// gid, columns 2t, 2t + 1): afterwards lane (gid, t) holds row gid of the transpose.
__host__ __device__ __forceinline__ uint32_t movmatrix_t(uint32_t x) {
#ifdef __CUDA_ARCH__
  uint32_t r;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(r) : "r"(x));
  return r;
#else
  return warp_emu::movmatrix_t(x);
#endif
}

// d += A * B for one m16n8k16 tile (fp32 accumulators): a0 = (row gid, k 2t..2t+1), a1 = row
// gid + 8, a2 = (row gid, k 2t+8..2t+9), a3 = row gid + 8; b0 = (k 2t..2t+1, n gid), b1 = k + 8;
// d = (row gid, n 2t..2t+1), (row gid + 8, n 2t..2t+1).
template <class T>
__host__ __device__ __forceinline__ void mma_16816(float* d, uint32_t a0, uint32_t a1, uint32_t a2,
                                                   uint32_t a3, uint32_t b0, uint32_t b1) {
#ifdef __CUDA_ARCH__
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
#else
  const uint32_t a[4] = {a0, a1, a2, a3}, b[2] = {b0, b1};
  warp_emu::mma(d, a, b, !std::is_same_v<T, __half>);
#endif
}

template <class T>
__host__ __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
}

// Byte permute (PRMT): result byte i = byte sel[4i..4i+3] of the 8 bytes {a, b} (low nibbles
// only, no sign replication). The host version serves the fragment test.
__host__ __device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
#ifdef __CUDA_ARCH__
  return __byte_perm(a, b, sel);
#else
  const uint64_t x = (static_cast<uint64_t>(b) << 32) | a;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i)
    r |= static_cast<uint32_t>((x >> (8 * ((sel >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
#endif
}
__host__ __device__ __forceinline__ __half2 as_h2(uint32_t u) {
  return *reinterpret_cast<const __half2*>(&u);
}
__host__ __device__ __forceinline__ uint32_t as_u32(__half2 h) {
  return *reinterpret_cast<const uint32_t*>(&h);
}
__host__ __device__ __forceinline__ uint32_t lds_u32(const uint8_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}
__host__ __device__ __forceinline__ uint4 lds_u128(const uint8_t* p) {  // p 16-byte aligned
  return *reinterpret_cast<const uint4*>(p);
}
__host__ __device__ __forceinline__ float h16_to_f32(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

constexpr uint32_t kMagic1024 = 0x64006400u;  // half2(1024, 1024)
// A coding's key affines (kaff) are read for this many pairs of a lane at once: pass q % 4 == 0.
constexpr int kKAffPairs = 4;

// (x & mask) | 0x64006400 as one LOP3 (the compiler emits an AND and an OR; LOP3 takes one
// immediate, so ptxas keeps the other constant in a register).
__host__ __device__ __forceinline__ uint32_t and_or_1024(uint32_t x, uint32_t mask) {
#ifdef __CUDA_ARCH__
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(r) : "r"(x), "r"(mask), "n"(kMagic1024));
  return r;
#else
  return (x & mask) | kMagic1024;
#endif
}

// half2 arithmetic (host: fp32 then one rounding, for the fragment test).
__host__ __device__ __forceinline__ __half2 hfma2(__half2 a, __half2 b, __half2 c) {
#ifdef __CUDA_ARCH__
  return __hfma2(a, b, c);
#else
  const float2 x = __half22float2(a), y = __half22float2(b), z = __half22float2(c);
  return __floats2half2_rn(std::fma(x.x, y.x, z.x), std::fma(x.y, y.y, z.y));
#endif
}
__host__ __device__ __forceinline__ __half2 hmul2(__half2 a, __half2 b) {
#ifdef __CUDA_ARCH__
  return __hmul2(a, b);
#else
  const float2 x = __half22float2(a), y = __half22float2(b);
  return __floats2half2_rn(x.x * y.x, x.y * y.y);
#endif
}
__host__ __device__ __forceinline__ __half2 hsub2(__half2 a, __half2 b) {
#ifdef __CUDA_ARCH__
  return __hsub2(a, b);
#else
  const float2 x = __half22float2(a), y = __half22float2(b);
  return __floats2half2_rn(x.x - y.x, x.y - y.y);
#endif
}

// e4m3 pair (low byte -> low half) -> half2, exact.
__host__ __device__ __forceinline__ uint32_t e4m3x2_to_h2(uint32_t u16) {
  const __half2_raw r =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(u16 & 0xffffu), __NV_E4M3);
  return static_cast<uint32_t>(r.x) | (static_cast<uint32_t>(r.y) << 16);
}

// Pair h of the 4-bit or 2-bit codes of word w (bits BITS h.. and 16 + BITS h..) as half2 of the
// exact codes. A code ORed into the fp16 mantissa of 1024 at bit offset o gives 1024 + 2^o code, so
// one FMA with (2^-o, -1024 2^-o) gives the code exactly; the codes that fit the 10-bit mantissa
// at offsets 0, BITS, .. (G of them: 2 for 4-bit, 5 for 2-bit) need no shift, the rest one shift
// (w >> BITS G) shared by up to G pairs. Per pair: one LOP3 and one HFMA2.
template <int BITS>
__host__ __device__ __forceinline__ uint32_t code_pair(uint32_t w, int h) {
  constexpr int G = (10 - BITS) / BITS + 1;
  constexpr uint32_t kMask = BITS == 4 ? 0x000f000fu : 0x00030003u;
  const int o = BITS * (h % G);
  const uint32_t y = and_or_1024(w >> (BITS * G * (h / G)), kMask << o);
  const uint32_t m = ((15u - o) << 10) * 0x10001u;              // half2(2^-o)
  const uint32_t b = (0x8000u | ((25u - o) << 10)) * 0x10001u;  // half2(-1024 2^-o)
  return as_u32(hfma2(as_h2(y), as_h2(m), as_h2(b)));
}

template <int BITS, bool FP8 = false>
struct CodeWords {
  static constexpr int kPairs = 16 / BITS;
  // K view: the h-th pair of word w (one token). Channel (within the chunk) of each half:
  // kchan_in_chunk(t, h, hi).
  __host__ __device__ static __forceinline__ uint32_t kdecode(uint32_t w, int h) {
    if constexpr (BITS == 16) {
      return w;
    } else if constexpr (BITS == 8) {
      if constexpr (FP8) {
        return e4m3x2_to_h2(w >> (16 * h));
      } else {
        return prmt(w, kMagic1024, h == 0 ? 0x5150 : 0x5352);  // byte 5 = 0x64
      }
    } else {
      return code_pair<BITS>(w, h);
    }
  }
  __host__ __device__ static constexpr int kchan_in_chunk(int t, int h, int hi) {
    if constexpr (BITS == 16) {
      return 2 * t + hi;
    } else if constexpr (BITS == 8) {
      return 4 * t + 2 * h + hi;
    } else {
      return (32 / BITS) * t + h + (16 / BITS) * hi;  // 4-bit: 8t + h + 4hi; 2-bit: 16t + h + 8hi
    }
  }
  // V view: the e-th pair (tokens 2t, 2t+1) of the transposed word of column `col`, channel
  // (within the chunk) vchan_in_chunk(col, e).
  __host__ __device__ static __forceinline__ uint32_t vdecode(uint32_t w, int e) {
    if constexpr (BITS == 16) {
      return w;
    } else if constexpr (BITS == 8) {
      if constexpr (FP8) {
        return e4m3x2_to_h2(prmt(w, 0u, e == 0 ? 0x4420 : 0x4431));
      } else {
        return prmt(w, kMagic1024, e == 0 ? 0x5250 : 0x5351);
      }
    } else {
      return code_pair<BITS>(w, e);
    }
  }
  __host__ __device__ static constexpr int vchan_in_chunk(int col, int e) {
    return (16 / BITS) * col + e;
  }
};

// Common shape of a coding for head_dim HD: chunks per row, channel of each fragment element.
template <int BITS, int HD, bool FP8 = false>
struct FragBase : CodeWords<BITS, FP8> {
  using Words = CodeWords<BITS, FP8>;
  static constexpr int kBits = BITS;
  static constexpr int kCpr = HD * BITS / 128;           // 16-byte chunks per token row
  static constexpr int kChunkChans = 128 / BITS;         // channels per chunk
  static constexpr int kMeta = kQBlock * HD * BITS / 8;  // sealed sections: meta offset
  // A quantized coding's sealed section is kSectionBytes (codes, then meta; kv_format.cpp's
  // make_section, checked at launch).
  // K: channel of half `hi` of pair h of lane t in chunk c
  __host__ __device__ static constexpr int kchan(int c, int t, int h, int hi) {
    return c * kChunkChans + Words::kchan_in_chunk(t, h, hi);
  }
  // V: channel of pair e of column col in chunk c
  __host__ __device__ static constexpr int vchan(int c, int col, int e) {
    return c * kChunkChans + Words::vchan_in_chunk(col, e);
  }
  __host__ __device__ static constexpr int vgroup(int, int) { return 0; }
};

// 16-bit rows (bf16 / fp16 caches and the 16-bit tail). MMA type = the element type.
template <class E, int HD>
struct PlainFrag : FragBase<16, HD> {
  using T = E;
  static constexpr bool kPerChannel = false, kPerToken = false, kAffineV = false;
  struct KAff {};
  __host__ __device__ __forceinline__ KAff kaff(const uint8_t*, int, int) const { return {}; }
  __host__ __device__ __forceinline__ uint32_t kapply(uint32_t x, const KAff&, int) const {
    return x;
  }
  struct VAff {};
  __host__ __device__ __forceinline__ VAff vaff(const uint8_t*, int, int) const { return {}; }
  __host__ __device__ __forceinline__ uint32_t vapply(uint32_t x, const VAff&) const { return x; }
};

// fp8 e4m3 with an fp16 scale per token: keys scale the score (kfix), values are scaled in fp16.
template <int HD>
struct Fp8Frag : FragBase<8, HD, true> {
  using T = __half;
  static constexpr int kMeta = FragBase<8, HD, true>::kMeta;
  static constexpr int kSectionBytes = kMeta + 2 * kQBlock;
  static constexpr bool kPerChannel = false, kPerToken = true, kAffineV = true;
  struct KAff {};
  __host__ __device__ __forceinline__ KAff kaff(const uint8_t*, int, int) const { return {}; }
  __host__ __device__ __forceinline__ uint32_t kapply(uint32_t x, const KAff&, int) const {
    return x;
  }
  __host__ __device__ __forceinline__ float2 kfix(const uint8_t* sec, int row) const {
    return {h16_to_f32(reinterpret_cast<const uint16_t*>(sec + kMeta)[row]), 0.0f};
  }
  struct VAff {
    uint32_t s;
  };
  // rows a (even) and a + 1
  __host__ __device__ __forceinline__ VAff vaff(const uint8_t* sec, int a, int) const {
    return {lds_u32(sec + kMeta + 2 * a)};
  }
  __host__ __device__ __forceinline__ uint32_t vapply(uint32_t x, const VAff& f) const {
    return as_u32(hmul2(as_h2(x), as_h2(f.s)));
  }
};

// u8 codes with an fp16 scale and a u8 zero point per token: x = (q - zp) * scale. Keys: score =
// scale * (q'.(1024 + code) - (1024 + zp) * sum(q')) in fp32 (kfix); values: (1024 + code) -
// (1024 + zp) is exact in fp16, then one multiply.
template <int HD>
struct Int8Frag : FragBase<8, HD> {
  using T = __half;
  static constexpr int kMeta = FragBase<8, HD>::kMeta;
  static constexpr int kSectionBytes = kMeta + 3 * kQBlock;
  static constexpr bool kPerChannel = false, kPerToken = true, kAffineV = true;
  struct KAff {};
  __host__ __device__ __forceinline__ KAff kaff(const uint8_t*, int, int) const { return {}; }
  __host__ __device__ __forceinline__ uint32_t kapply(uint32_t x, const KAff&, int) const {
    return x;
  }
  __host__ __device__ __forceinline__ float2 kfix(const uint8_t* sec, int row) const {
    return {h16_to_f32(reinterpret_cast<const uint16_t*>(sec + kMeta)[row]),
            1024.0f + static_cast<float>(sec[kMeta + 2 * kQBlock + row])};
  }
  struct VAff {
    uint32_t s, off;
  };
  __host__ __device__ __forceinline__ VAff vaff(const uint8_t* sec, int a, int) const {
    const uint32_t zp2 = *reinterpret_cast<const uint16_t*>(sec + kMeta + 2 * kQBlock + a);
    return {lds_u32(sec + kMeta + 2 * a), prmt(zp2, kMagic1024, 0x5150)};
  }
  __host__ __device__ __forceinline__ uint32_t vapply(uint32_t x, const VAff& f) const {
    return as_u32(hmul2(hsub2(as_h2(x), as_h2(f.off)), as_h2(f.s)));
  }
};

// Keys, b-bit per channel ((scale, zero) fp16 pair per channel of the block): dequantized in the
// fragment, x = code * scale + zero. kaff reads the (scale, zero) of 4 pairs of one lane at once:
// the low channels of pairs h..h+3 of a chunk are 4 consecutive channels, their high channels the
// next P, so two 16-byte loads; kapply picks a pair's two scales and two zeros with byte permutes.
template <int BITS, int HD>
struct PerChannelFrag : FragBase<BITS, HD> {
  using T = __half;
  using Base = FragBase<BITS, HD>;
  static constexpr bool kPerChannel = true, kPerToken = false;
  static constexpr int kSectionBytes = Base::kMeta + 4 * HD;
  static_assert(16 / BITS % kKAffPairs == 0, "a kaff load stays in one chunk");
  struct KAff {
    uint32_t lo[kKAffPairs], hi[kKAffPairs];  // (scale, zero) of the pairs' low / high channels
  };
  // pairs q..q + 3 (q a multiple of 4; chunk q / P, pairs q % P..) of lane t
  __host__ __device__ __forceinline__ KAff kaff(const uint8_t* sec, int t, int q) const {
    constexpr int P = 16 / BITS;
    const uint8_t* m = sec + Base::kMeta + 4 * Base::kchan(q / P, t, q % P, 0);
    const uint4 lo = lds_u128(m), hi = lds_u128(m + 4 * P);
    return {{lo.x, lo.y, lo.z, lo.w}, {hi.x, hi.y, hi.z, hi.w}};
  }
  // codes (exact, code_pair) of pair q -> values; f = kaff(.., q - q % 4)
  __host__ __device__ __forceinline__ uint32_t kapply(uint32_t x, const KAff& f, int q) const {
    const int i = q % kKAffPairs;
    const uint32_t s = prmt(f.lo[i], f.hi[i], 0x5410), z = prmt(f.lo[i], f.hi[i], 0x7632);
    return as_u32(hfma2(as_h2(x), as_h2(s), as_h2(z)));
  }
};

// Values, b-bit per token with a (scale, zero) fp16 pair per group of GROUP channels.
template <int BITS, int GROUP, int HD>
struct PerTokenGroupFrag : FragBase<BITS, HD> {
  using T = __half;
  using Base = FragBase<BITS, HD>;
  static constexpr bool kAffineV = true;
  static constexpr int kGroups = HD / GROUP;
  static constexpr int kSectionBytes = Base::kMeta + 4 * kQBlock * kGroups;
  static_assert(GROUP % (16 / BITS) == 0, "the channels of one column share a group");
  // group of the channels of column col in chunk c
  __host__ __device__ static constexpr int vgroup(int c, int col) {
    return Base::vchan(c, col, 0) / GROUP;
  }
  struct VAff {
    uint32_t s, z;
  };
  __host__ __device__ __forceinline__ VAff vaff(const uint8_t* sec, int a, int grp) const {
    const uint32_t ua = lds_u32(sec + Base::kMeta + 4 * (a * kGroups + grp));
    const uint32_t ub = lds_u32(sec + Base::kMeta + 4 * ((a + 1) * kGroups + grp));
    return {prmt(ua, ub, 0x5410), prmt(ua, ub, 0x7632)};
  }
  // codes (exact, code_pair) -> values
  __host__ __device__ __forceinline__ uint32_t vapply(uint32_t x, const VAff& f) const {
    return as_u32(hfma2(as_h2(x), as_h2(f.s), as_h2(f.z)));
  }
};

}  // namespace densekv::cuda
