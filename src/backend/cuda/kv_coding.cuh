// Device-side reads of one KV section (one head's keys or values of one block, in shared memory,
// byte layout of docs/kv-formats.md): each coding gives 8 consecutive channels [8 c8, 8 c8 + 8) of
// token row j as fp32, exactly as kv_format.cpp's dequantize_section computes them.
//
//   init(sec, c8)       once per section and lane (per-channel codings load their 8 (scale, zero)
//                       pairs here: they are the same for every token of the block)
//   load(sec, j, c8, x) x[0..8) = the values of row j
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "backend/cuda/cuda_common.cuh"

namespace densekv::cuda {

constexpr int kQBlock = 64;  // tokens per block of every quantized format (kQuantBlockSize)

__device__ __forceinline__ float half_bits_to_f32(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

// fp8 e4m3 ("fn") code -> fp32, exact.
__device__ __forceinline__ float e4m3_to_f32_dev(uint8_t code) {
  const __half_raw h = __nv_cvt_fp8_to_halfraw(code, __NV_E4M3);
  return __half2float(__half(h));
}

// Plain rows of element type E: row j at j * HD elements.
template <class E, int HD>
struct PlainCoding {
  static constexpr int kRowBytes = HD * static_cast<int>(sizeof(E));
  __device__ __forceinline__ void init(const uint8_t*, int) {}
  __device__ __forceinline__ void load(const uint8_t* sec, int j, int c8, float* x) const {
    load8(reinterpret_cast<const E*>(sec + j * kRowBytes) + c8 * 8, x);
  }
};

// fp8 e4m3 codes [64][HD], fp16 scale [64]: x = e4m3(code) * scale.
template <int HD>
struct Fp8Coding {
  static constexpr int kMeta = kQBlock * HD;
  __device__ __forceinline__ void init(const uint8_t*, int) {}
  __device__ __forceinline__ void load(const uint8_t* sec, int j, int c8, float* x) const {
    const uint2 u = *reinterpret_cast<const uint2*>(sec + j * HD + c8 * 8);
    const float scale = half_bits_to_f32(reinterpret_cast<const uint16_t*>(sec + kMeta)[j]);
    const uint8_t* c = reinterpret_cast<const uint8_t*>(&u);
#pragma unroll
    for (int i = 0; i < 8; ++i) x[i] = e4m3_to_f32_dev(c[i]) * scale;
  }
};

// u8 codes [64][HD], fp16 scale [64], u8 zero point [64]: x = (q - zp) * scale.
template <int HD>
struct Int8Coding {
  static constexpr int kMeta = kQBlock * HD;
  __device__ __forceinline__ void init(const uint8_t*, int) {}
  __device__ __forceinline__ void load(const uint8_t* sec, int j, int c8, float* x) const {
    const uint2 u = *reinterpret_cast<const uint2*>(sec + j * HD + c8 * 8);
    const float scale = half_bits_to_f32(reinterpret_cast<const uint16_t*>(sec + kMeta)[j]);
    const int zp = sec[kMeta + 2 * kQBlock + j];
    const uint8_t* c = reinterpret_cast<const uint8_t*>(&u);
#pragma unroll
    for (int i = 0; i < 8; ++i) x[i] = static_cast<float>(static_cast<int>(c[i]) - zp) * scale;
  }
};

// The 8 codes of channels [8 c8, 8 c8 + 8) of a BITS-bit row (4: one u32, 2: one u16).
template <int BITS, int HD>
__device__ __forceinline__ uint32_t load_codes8(const uint8_t* sec, int j, int c8) {
  constexpr int kRowBytes = HD * BITS / 8;
  if constexpr (BITS == 4) {
    return *reinterpret_cast<const uint32_t*>(sec + j * kRowBytes + c8 * 4);
  } else {
    return *reinterpret_cast<const uint16_t*>(sec + j * kRowBytes + c8 * 2);
  }
}

// BITS-bit codes in token rows, (scale, zero) fp16 pair per channel: x = zero + scale * q.
template <int BITS, int HD>
struct PerChannelCoding {
  static constexpr int kMeta = kQBlock * HD * BITS / 8;
  float scale[8], zero[8];
  __device__ __forceinline__ void init(const uint8_t* sec, int c8) {
    const uint4 a = *reinterpret_cast<const uint4*>(sec + kMeta + c8 * 32);
    const uint4 b = *reinterpret_cast<const uint4*>(sec + kMeta + c8 * 32 + 16);
    const uint16_t* pa = reinterpret_cast<const uint16_t*>(&a);
    const uint16_t* pb = reinterpret_cast<const uint16_t*>(&b);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      scale[i] = half_bits_to_f32(pa[2 * i]);
      zero[i] = half_bits_to_f32(pa[2 * i + 1]);
      scale[4 + i] = half_bits_to_f32(pb[2 * i]);
      zero[4 + i] = half_bits_to_f32(pb[2 * i + 1]);
    }
  }
  __device__ __forceinline__ void load(const uint8_t* sec, int j, int c8, float* x) const {
    const uint32_t w = load_codes8<BITS, HD>(sec, j, c8);
    constexpr uint32_t kMask = (1u << BITS) - 1;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      x[i] = __fadd_rn(zero[i], __fmul_rn(scale[i], static_cast<float>((w >> (i * BITS)) & kMask)));
    }
  }
};

// BITS-bit codes in token rows, (scale, zero) fp16 pair per (token, group of GROUP channels).
template <int BITS, int GROUP, int HD>
struct PerTokenGroupCoding {
  static constexpr int kMeta = kQBlock * HD * BITS / 8;
  static constexpr int kGroups = HD / GROUP;
  __device__ __forceinline__ void init(const uint8_t*, int) {}
  __device__ __forceinline__ void load(const uint8_t* sec, int j, int c8, float* x) const {
    const uint32_t w = load_codes8<BITS, HD>(sec, j, c8);
    const __half2 sz = reinterpret_cast<const __half2*>(sec + kMeta)[j * kGroups + c8 * 8 / GROUP];
    const float scale = __low2float(sz), zero = __high2float(sz);
    constexpr uint32_t kMask = (1u << BITS) - 1;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      x[i] = __fadd_rn(zero, __fmul_rn(scale, static_cast<float>((w >> (i * BITS)) & kMask)));
    }
  }
};

}  // namespace densekv::cuda
