// CUDA backend: stores each new token's K and V rows in the paged cache (backend.h kv_write).
//  - plain formats: in the token's slot, converted to the cache's element type;
//  - quantized formats: 16-bit into row p % B of the sequence's tail (Hadamard-rotated first for
//    k4v2), then every tail whose row B - 1 was written is quantized into its main block
//    ("sealed") by a second kernel, with the rounding rules of kv_format.cpp bit for bit.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kv_coding.cuh"
#include "backend/cuda/paged_attention.cuh"  // hadamard_rows_smem
#include "core/errors.h"

namespace densekv {

namespace {

// Block per token; thread per (K or V, kv head, 8-channel chunk).
template <class TA, class E>
__global__ void kv_write_plain_kernel(const TA* k, int64_t k_stride, const TA* v, int64_t v_stride,
                                      const int32_t* slots, uint8_t* base, size_t block_bytes,
                                      int block_size, int n_kv_heads, int head_dim) {
  const int t = blockIdx.x;
  const int slot = slots[t];
  if (slot < 0) return;  // never for a plain format (the forward holds every block)
  const int block = slot / block_size, off = slot % block_size;
  const int chunks = head_dim / 8;
  for (int i = threadIdx.x; i < 2 * n_kv_heads * chunks; i += blockDim.x) {
    const int which = i / (n_kv_heads * chunks), h = (i / chunks) % n_kv_heads, c = i % chunks;
    const TA* src = (which == 0 ? k + t * k_stride : v + t * v_stride) + h * head_dim + c * 8;
    float x[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) x[e] = cuda::to_f32(src[e]);
    const size_t row = (static_cast<size_t>(which) * n_kv_heads + h) * block_size + off;
    E* dst = reinterpret_cast<E*>(base + static_cast<size_t>(block) * block_bytes) +
             row * head_dim + c * 8;
    cuda::store8(dst, x);
  }
}

// Block per (token, kv head): the head's K and V rows (rotated for k4v2) -> tail row p % 64.
template <class TA, class TT, int HD>
__global__ void kv_write_tail_kernel(const TA* k, int64_t k_stride, const TA* v, int64_t v_stride,
                                     const int32_t* positions, const int32_t* seq_of_token,
                                     const int32_t* tails, uint8_t* tail_base,
                                     size_t tail_block_bytes, int n_kv_heads, bool rotate) {
  __shared__ float rows[2][HD];
  const int t = blockIdx.x, h = blockIdx.y;
  for (int i = threadIdx.x; i < 2 * HD; i += blockDim.x) {
    const TA* src = i < HD ? k + t * k_stride : v + t * v_stride;
    rows[i / HD][i % HD] = cuda::to_f32(src[h * HD + i % HD]);
  }
  __syncthreads();
  if (rotate) cuda::hadamard_rows_smem<HD>(&rows[0][0], 2);
  const int row = positions[t] % cuda::kQBlock;
  uint8_t* tail = tail_base + static_cast<size_t>(tails[seq_of_token[t]]) * tail_block_bytes;
  for (int i = threadIdx.x; i < 2 * HD; i += blockDim.x) {
    const int which = i / HD;
    TT* dst = reinterpret_cast<TT*>(tail) +
              ((static_cast<size_t>(which) * n_kv_heads + h) * cuda::kQBlock + row) * HD;
    dst[i % HD] = cuda::from_f32<TT>(rows[which][i % HD]);
  }
}

// ---- the reference's scalar rounding (kv_format.cpp), on the device ----

__device__ __forceinline__ uint16_t f16_bits(float x) {
  return __half_as_ushort(__float2half_rn(x));
}
__device__ __forceinline__ float f16_value(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}
// The smallest fp16 >= x, for x >= 0.
__device__ __forceinline__ uint16_t f16_round_up(float x) {
  uint16_t h = f16_bits(x);
  if (f16_value(h) < x) ++h;
  return h;
}
__device__ __forceinline__ int round_clamp(float t, int qmax) {
  if (!(t > 0.0f)) return 0;
  if (t >= static_cast<float>(qmax)) return qmax;
  return static_cast<int>(rintf(t));
}
__device__ __forceinline__ uint8_t f32_to_e4m3_dev(float x) {
  const uint32_t u = __float_as_uint(x);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const float a = fabsf(x);
  if (isnan(x)) return 0x7f;
  if (a >= 448.0f) return sign | 0x7e;
  if (a < 0.015625f) return sign | static_cast<uint8_t>(rintf(a * 512.0f));
  uint32_t b = __float_as_uint(a);
  b += 0x7ffffu + ((b >> 20) & 1u);
  const uint32_t exp = (b >> 23) - 127 + 7;
  const uint32_t code = (exp << 3) | ((b >> 20) & 7u);
  return sign | static_cast<uint8_t>(min(code, 0x7eu));
}

constexpr float kF16Max = 65504.0f;

// Asymmetric b-bit (scale, zero) of values in [lo, hi] (choose_scale_zero).
__device__ __forceinline__ void scale_zero(float lo, float hi, int bits, uint16_t& scale_h,
                                           uint16_t& zero_h) {
  zero_h = f16_bits(fminf(fmaxf(lo, -kF16Max), kF16Max));
  const float span = hi - f16_value(zero_h);
  const float scale = span > 0.0f ? span / static_cast<float>((1 << bits) - 1) : 0.0f;
  scale_h = f16_round_up(fminf(scale, kF16Max));
}
__device__ __forceinline__ int asym_code(float x, uint16_t scale_h, uint16_t zero_h, int bits) {
  const float scale = f16_value(scale_h);
  if (scale == 0.0f) return 0;
  return round_clamp((x - f16_value(zero_h)) / scale, (1 << bits) - 1);
}

struct SectionDesc {
  int coding = 0;  // KvCoding
  int bits = 0, group = 0;
  int row_bytes = 0, meta_offset = 0;
};

SectionDesc section_desc(const KvSection& s) {
  SectionDesc d;
  d.coding = static_cast<int>(s.coding);
  d.bits = s.bits;
  d.group = s.group;
  d.row_bytes = static_cast<int>(s.row_bytes);
  d.meta_offset = static_cast<int>(s.meta_offset);
  return d;
}

// Block per (token, kv head, K or V): when the token wrote row 63 of its tail, quantizes the
// tail's 64 rows of that head into section `which` of main block slots[t] / 64.
constexpr int kSealThreads = 128;

template <class TT, int HD>
__global__ void __launch_bounds__(kSealThreads)
    kv_seal_kernel(const int32_t* positions, const int32_t* seq_of_token, const int32_t* slots,
                   const int32_t* tails, const uint8_t* tail_base, size_t tail_block_bytes,
                   uint8_t* base, size_t block_bytes, int n_kv_heads, size_t k_bytes,
                   size_t v_bytes, SectionDesc kd, SectionDesc vd) {
  constexpr int B = cuda::kQBlock;
  const int t = blockIdx.x, h = blockIdx.y, which = blockIdx.z;
  if (positions[t] % B != B - 1) return;
  __shared__ float x[B][HD];
  __shared__ uint8_t codes[B][HD];
  const SectionDesc s = which == 0 ? kd : vd;
  const TT* src = reinterpret_cast<const TT*>(
                      tail_base + static_cast<size_t>(tails[seq_of_token[t]]) * tail_block_bytes) +
                  (static_cast<size_t>(which) * n_kv_heads + h) * B * HD;
  // The 64 rows as 16-byte loads, all issued before the first is used: one round of memory
  // latency instead of one per element (the scalar loop took ~34 us a launch on the H100).
  constexpr int kLoads = B * HD / 8 / kSealThreads;
  float v[kLoads][8];
#pragma unroll
  for (int j = 0; j < kLoads; ++j) cuda::load8(src + (j * kSealThreads + threadIdx.x) * 8, v[j]);
#pragma unroll
  for (int j = 0; j < kLoads; ++j) {
    const int e = (j * kSealThreads + threadIdx.x) * 8;
#pragma unroll
    for (int i = 0; i < 8; ++i) x[e / HD][e % HD + i] = v[j][i];
  }
  uint8_t* out = base + static_cast<size_t>(slots[t] / B) * block_bytes +
                 (which == 0 ? h * k_bytes : n_kv_heads * k_bytes + h * v_bytes);
  uint8_t* meta = out + s.meta_offset;
  __syncthreads();

  const auto coding = static_cast<KvCoding>(s.coding);
  if (coding == KvCoding::Fp8PerToken) {
    for (int r = threadIdx.x; r < B; r += blockDim.x) {
      float amax = 0.0f;
      for (int c = 0; c < HD; ++c) amax = fmaxf(amax, fabsf(x[r][c]));
      const uint16_t scale_h = f16_round_up(fminf(amax / 448.0f, kF16Max));
      const float scale = f16_value(scale_h);
      reinterpret_cast<uint16_t*>(meta)[r] = scale_h;
      for (int c = 0; c < HD; ++c) {
        out[r * HD + c] = scale == 0.0f ? 0 : f32_to_e4m3_dev(x[r][c] / scale);
      }
    }
    return;
  }
  if (coding == KvCoding::Int8PerToken) {
    for (int r = threadIdx.x; r < B; r += blockDim.x) {
      float lo = 0.0f, hi = 0.0f;
      for (int c = 0; c < HD; ++c) lo = fminf(lo, x[r][c]), hi = fmaxf(hi, x[r][c]);
      const uint16_t scale_h = f16_round_up(fminf((hi - lo) / 254.0f, kF16Max));
      const float scale = f16_value(scale_h);
      const int zp = scale == 0.0f ? 0 : round_clamp(-lo / scale, 255);
      reinterpret_cast<uint16_t*>(meta)[r] = scale_h;
      meta[2 * B + r] = static_cast<uint8_t>(zp);
      for (int c = 0; c < HD; ++c) {
        const float q = scale == 0.0f ? 0.0f : rintf(x[r][c] / scale);
        out[r * HD + c] = static_cast<uint8_t>(round_clamp(q + static_cast<float>(zp), 255));
      }
    }
    return;
  }
  // b-bit asymmetric: codes to shared memory, then packed rows.
  if (coding == KvCoding::PerChannel) {
    for (int c = threadIdx.x; c < HD; c += blockDim.x) {
      float lo = x[0][c], hi = x[0][c];
      for (int r = 1; r < B; ++r) lo = fminf(lo, x[r][c]), hi = fmaxf(hi, x[r][c]);
      uint16_t scale_h, zero_h;
      scale_zero(lo, hi, s.bits, scale_h, zero_h);
      reinterpret_cast<uint16_t*>(meta)[2 * c] = scale_h;
      reinterpret_cast<uint16_t*>(meta)[2 * c + 1] = zero_h;
      for (int r = 0; r < B; ++r) codes[r][c] = asym_code(x[r][c], scale_h, zero_h, s.bits);
    }
  } else {  // PerTokenGroup
    const int groups = HD / s.group;
    for (int u = threadIdx.x; u < B * groups; u += blockDim.x) {
      const int r = u / groups, c0 = (u % groups) * s.group;
      float lo = x[r][c0], hi = x[r][c0];
      for (int c = c0 + 1; c < c0 + s.group; ++c) lo = fminf(lo, x[r][c]), hi = fmaxf(hi, x[r][c]);
      uint16_t scale_h, zero_h;
      scale_zero(lo, hi, s.bits, scale_h, zero_h);
      reinterpret_cast<uint16_t*>(meta)[2 * u] = scale_h;
      reinterpret_cast<uint16_t*>(meta)[2 * u + 1] = zero_h;
      for (int c = c0; c < c0 + s.group; ++c)
        codes[r][c] = asym_code(x[r][c], scale_h, zero_h, s.bits);
    }
  }
  __syncthreads();
  const int per_word = 32 / s.bits, words = HD / per_word;
  for (int i = threadIdx.x; i < B * words; i += blockDim.x) {
    const int r = i / words, w = i % words;
    uint32_t packed = 0;
    for (int j = 0; j < per_word; ++j)
      packed |= static_cast<uint32_t>(codes[r][w * per_word + j]) << (j * s.bits);
    reinterpret_cast<uint32_t*>(out + r * s.row_bytes)[w] = packed;
  }
}

template <int HD>
void launch_quantized_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                            const BatchView& batch, cudaStream_t stream) {
  const KvFormatInfo info = kv_format_info(kv.format, HD, kv.block_size);
  const dim3 grid_w(k.rows, kv.n_kv_heads);
  const bool tail_bf16 = kv.tail_format == KvFormat::BF16;
  CHECK(tail_bf16 || kv.tail_format == KvFormat::F16);
  DENSEKV_DISPATCH_DTYPE(k.dtype, TA, {
    if (tail_bf16) {
      kv_write_tail_kernel<TA, __nv_bfloat16, HD><<<grid_w, 128, 0, stream>>>(
          k.ptr<TA>(), k.stride, v.ptr<TA>(), v.stride, batch.positions, batch.seq_of_token,
          batch.tails, static_cast<uint8_t*>(kv.tail_base), kv.tail_block_bytes, kv.n_kv_heads,
          info.rotated);
    } else {
      kv_write_tail_kernel<TA, __half, HD><<<grid_w, 128, 0, stream>>>(
          k.ptr<TA>(), k.stride, v.ptr<TA>(), v.stride, batch.positions, batch.seq_of_token,
          batch.tails, static_cast<uint8_t*>(kv.tail_base), kv.tail_block_bytes, kv.n_kv_heads,
          info.rotated);
    }
  });
  CUDA_CHECK_LAUNCH();
  const dim3 grid_s(k.rows, kv.n_kv_heads, 2);
  auto seal = [&](auto* kernel) {
    kernel<<<grid_s, kSealThreads, 0, stream>>>(
        batch.positions, batch.seq_of_token, batch.slots, batch.tails,
        static_cast<const uint8_t*>(kv.tail_base), kv.tail_block_bytes,
        static_cast<uint8_t*>(kv.base), kv.block_bytes, kv.n_kv_heads, info.k.bytes, info.v.bytes,
        section_desc(info.k), section_desc(info.v));
  };
  if (tail_bf16) {
    seal(&kv_seal_kernel<__nv_bfloat16, HD>);
  } else {
    seal(&kv_seal_kernel<__half, HD>);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void CudaBackend::kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                           const BatchView& batch) {
  const int hd = kv.head_dim;
  CHECK(k.cols == static_cast<int64_t>(kv.n_kv_heads) * hd && v.cols == k.cols);
  CHECK(k.rows == v.rows && k.dtype == v.dtype && hd % 8 == 0 && k.rows == batch.n_tokens);
  if (k.rows == 0) return;
  if (kv_format_is_quantized(kv.format)) {
    if (hd == 64) {
      launch_quantized_write<64>(kv, k, v, batch, stream_);
    } else if (hd == 128) {
      launch_quantized_write<128>(kv, k, v, batch, stream_);
    } else {
      throw InvalidArgumentError(
          "the CUDA KV write of quantized formats supports head_dim 64 "
          "and 128, the model has " +
          std::to_string(hd));
    }
    return;
  }
  const int threads = std::min(256, (2 * kv.n_kv_heads * hd / 8 + 31) / 32 * 32);
  DENSEKV_DISPATCH_DTYPE(k.dtype, TA, DENSEKV_DISPATCH_DTYPE(kv_format_dtype(kv.format), E, {
                           kv_write_plain_kernel<TA, E><<<k.rows, threads, 0, stream_>>>(
                               k.ptr<TA>(), k.stride, v.ptr<TA>(), v.stride, batch.slots,
                               static_cast<uint8_t*>(kv.base), kv.block_bytes, kv.block_size,
                               kv.n_kv_heads, hd);
                         }));
  CUDA_CHECK_LAUNCH();
}

}  // namespace densekv
