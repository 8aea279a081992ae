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
  cuda::grid_dependency_wait();  // k and v are the kernels before's (launch_kernel)
  cuda::launch_dependents();
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

// The arrays of one write call. sealed_in_call(t): token t's block ends at a later (or the same)
// token of this call, which holds its position's row B - 1 (a block's tokens are consecutive).
template <class TA>
struct KvWriteArgs {
  TA* k;  // [n_tokens, n_kv_heads * HD] (keys after RoPE, unrotated; kv_write_blocks of a
  TA* v;  // rotated format leaves them rotated: kv_write_tail_kernel)
  int64_t k_stride, v_stride;
  const int32_t* positions;
  const int32_t* seq_of_token;
  const int32_t* slots;
  const int32_t* tails;
  int n_tokens, n_kv_heads;
  uint8_t* tail_base;
  size_t tail_block_bytes;
  bool rotate;  // k4v2: Hadamard-rotated rows

  __device__ bool sealed_in_call(int t) const {
    const int p = positions[t], te = t + (cuda::kQBlock - 1 - p % cuda::kQBlock);
    return te < n_tokens && seq_of_token[te] == seq_of_token[t] && positions[te] == p + (te - t);
  }
};

// Block per (token, kv head): the head's K and V rows (rotated for k4v2) -> tail row p % 64.
// blocks (kv_write_blocks): not the rows of a block that this call seals (no later attention
// reads them from the tail, and a later block of the call may be using its rows); and a rotated
// format's rows are written back to k / v rotated, as the tail holds them, for
// paged_attention_own_rows (the seal kernel before this one has read them unrotated).
template <class TA, class TT, int HD>
__global__ void kv_write_tail_kernel(KvWriteArgs<TA> a, bool blocks) {
  __shared__ float rows[2][HD];
  cuda::grid_dependency_wait();  // k and v are the kernels before's (launch_kernel)
  cuda::launch_dependents();
  const int t = blockIdx.x, h = blockIdx.y;
  const bool to_tail = !(blocks && a.sealed_in_call(t));
  const bool back = blocks && a.rotate;
  if (!to_tail && !back) return;
  for (int i = threadIdx.x; i < 2 * HD; i += blockDim.x) {
    const TA* src = i < HD ? a.k + t * a.k_stride : a.v + t * a.v_stride;
    rows[i / HD][i % HD] = cuda::to_f32(src[h * HD + i % HD]);
  }
  __syncthreads();
  if (a.rotate) cuda::hadamard_rows_smem<HD>(&rows[0][0], 2);
  const int row = a.positions[t] % cuda::kQBlock;
  uint8_t* tail =
      a.tail_base + static_cast<size_t>(a.tails[a.seq_of_token[t]]) * a.tail_block_bytes;
  for (int i = threadIdx.x; i < 2 * HD; i += blockDim.x) {
    const int which = i / HD;
    const float x = rows[which][i % HD];
    if (to_tail) {
      TT* dst = reinterpret_cast<TT*>(tail) +
                ((static_cast<size_t>(which) * a.n_kv_heads + h) * cuda::kQBlock + row) * HD;
      dst[i % HD] = cuda::from_f32<TT>(x);
    }
    if (back) {
      TA* dst = (which == 0 ? a.k + t * a.k_stride : a.v + t * a.v_stride) + h * HD;
      dst[i % HD] = cuda::from_f32<TA>(x);
    }
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

// 512: the per-channel pass splits a channel's 64 rows over 4 threads (head_dim 128), the
// per-token codings take a warp per 4 rows.
constexpr int kSealThreads = 512;
constexpr int kSealWindow = 8;  // tokens a seal block looks at (grid.x = ceil(tokens / 8))

// Quantizes the 64 rows x of one kv head into a section (`out`: its codes, then meta at
// s.meta_offset), with the rounding rules of kv_format.cpp bit for bit. All threads; x is read
// only.
template <int HD>
__device__ void seal_section(const float (*x)[HD], uint8_t (*codes)[HD], uint8_t* out,
                             const SectionDesc& s) {
  constexpr int B = cuda::kQBlock;
  constexpr int PL = HD / 32;  // per-token codings: a warp per row, lane l channels l + 32 j
  static_assert(HD % 32 == 0, "whole warps per row");
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
  uint8_t* meta = out + s.meta_offset;
  auto* meta16 = reinterpret_cast<uint16_t*>(meta);
  const auto coding = static_cast<KvCoding>(s.coding);
  // A row's values of this lane (lane-strided: no shared-memory bank conflicts), and the row's
  // min / max over the warp (exact in any order).
  auto load_row = [&](int r, float* v) {
#pragma unroll
    for (int j = 0; j < PL; ++j) v[j] = x[r][lane + 32 * j];
  };
  auto warp_min = [](float v) { return -cuda::warp_max(-v); };
  if (coding == KvCoding::Fp8PerToken) {
    for (int r = warp; r < B; r += n_warps) {
      float v[PL], amax = 0.0f;
      load_row(r, v);
#pragma unroll
      for (int j = 0; j < PL; ++j) amax = fmaxf(amax, fabsf(v[j]));
      amax = cuda::warp_max(amax);
      const uint16_t scale_h = f16_round_up(fminf(amax / 448.0f, kF16Max));
      const float scale = f16_value(scale_h);
      if (lane == 0) meta16[r] = scale_h;
#pragma unroll
      for (int j = 0; j < PL; ++j) {
        out[r * HD + lane + 32 * j] = scale == 0.0f ? 0 : f32_to_e4m3_dev(v[j] / scale);
      }
    }
    return;
  }
  if (coding == KvCoding::Int8PerToken) {
    for (int r = warp; r < B; r += n_warps) {
      float v[PL], lo = 0.0f, hi = 0.0f;
      load_row(r, v);
#pragma unroll
      for (int j = 0; j < PL; ++j) lo = fminf(lo, v[j]), hi = fmaxf(hi, v[j]);
      lo = warp_min(lo);
      hi = cuda::warp_max(hi);
      const uint16_t scale_h = f16_round_up(fminf((hi - lo) / 254.0f, kF16Max));
      const float scale = f16_value(scale_h);
      const int zp = scale == 0.0f ? 0 : round_clamp(-lo / scale, 255);
      if (lane == 0) {
        meta16[r] = scale_h;
        meta[2 * B + r] = static_cast<uint8_t>(zp);
      }
#pragma unroll
      for (int j = 0; j < PL; ++j) {
        const float q = scale == 0.0f ? 0.0f : rintf(v[j] / scale);
        out[r * HD + lane + 32 * j] =
            static_cast<uint8_t>(round_clamp(q + static_cast<float>(zp), 255));
      }
    }
    return;
  }
  // b-bit asymmetric: codes to shared memory, then packed rows.
  if (coding == KvCoding::PerChannel) {  // thread (part, c): rows [r0, r1) of channel c
    constexpr int kParts = kSealThreads / HD;
    static_assert(kParts * HD == kSealThreads && B % kParts == 0, "whole parts of the rows");
    __shared__ float part_lo[kParts][HD], part_hi[kParts][HD];
    const int c = threadIdx.x % HD, part = threadIdx.x / HD;
    const int r0 = part * (B / kParts), r1 = r0 + B / kParts;
    float lo = x[r0][c], hi = x[r0][c];
    for (int r = r0 + 1; r < r1; ++r) lo = fminf(lo, x[r][c]), hi = fmaxf(hi, x[r][c]);
    part_lo[part][c] = lo;
    part_hi[part][c] = hi;
    __syncthreads();
#pragma unroll
    for (int p = 0; p < kParts; ++p) lo = fminf(lo, part_lo[p][c]), hi = fmaxf(hi, part_hi[p][c]);
    uint16_t scale_h, zero_h;
    scale_zero(lo, hi, s.bits, scale_h, zero_h);
    if (part == 0) {
      meta16[2 * c] = scale_h;
      meta16[2 * c + 1] = zero_h;
    }
    for (int r = r0; r < r1; ++r) codes[r][c] = asym_code(x[r][c], scale_h, zero_h, s.bits);
  } else {  // PerTokenGroup, groups of a multiple of 32 channels: lanes' chunks j of group g
    const int groups = HD / s.group, per_group = s.group / 32;
    for (int r = warp; r < B; r += n_warps) {
      float v[PL];
      load_row(r, v);
      for (int g = 0; g < groups; ++g) {
        float lo = INFINITY, hi = -INFINITY;
#pragma unroll
        for (int j = 0; j < PL; ++j) {
          if (j / per_group == g) lo = fminf(lo, v[j]), hi = fmaxf(hi, v[j]);
        }
        lo = warp_min(lo);
        hi = cuda::warp_max(hi);
        uint16_t scale_h, zero_h;
        scale_zero(lo, hi, s.bits, scale_h, zero_h);
        if (lane == 0) {
          meta16[2 * (r * groups + g)] = scale_h;
          meta16[2 * (r * groups + g) + 1] = zero_h;
        }
#pragma unroll
        for (int j = 0; j < PL; ++j) {
          if (j / per_group == g) {
            codes[r][lane + 32 * j] = asym_code(v[j], scale_h, zero_h, s.bits);
          }
        }
      }
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

// Block per (window of kSealWindow tokens, kv head, K or V): every token of the window that
// holds row 63 of its block seals the block: its 64 rows of that head are quantized into section
// `which` of main block slots[t] / 64. The rows come from the sequence's tail, or with from_call
// (kv_write_blocks) those of the block's tokens in this call from k / v (rotated and rounded to
// the tail's type as kv_write_tail_kernel stores them) and only the earlier ones from the tail.
template <class TA, class TT, int HD>
__global__ void __launch_bounds__(kSealThreads)
    kv_seal_kernel(KvWriteArgs<TA> a, bool from_call, uint8_t* base, size_t block_bytes,
                   size_t k_bytes, size_t v_bytes, SectionDesc kd, SectionDesc vd) {
  constexpr int B = cuda::kQBlock;
  static_assert(kSealWindow <= 32 && B <= kSealThreads, "one warp finds the window's ends");
  const int h = blockIdx.y, which = blockIdx.z, t0 = blockIdx.x * kSealWindow;
  __shared__ __align__(16) float x[B][HD];
  __shared__ uint8_t codes[B][HD];
  __shared__ uint32_t ends;
  cuda::grid_dependency_wait();  // k, v and the tails are the kernels before's (launch_kernel)
  cuda::launch_dependents();
  if (threadIdx.x < 32) {
    const int t = t0 + threadIdx.x;
    const bool end = threadIdx.x < kSealWindow && t < a.n_tokens && a.positions[t] % B == B - 1;
    const uint32_t m = __ballot_sync(0xffffffffu, end);
    if (threadIdx.x == 0) ends = m;
  }
  __syncthreads();
  const SectionDesc s = which == 0 ? kd : vd;
  const TA* rows = which == 0 ? a.k : a.v;
  const int64_t stride = which == 0 ? a.k_stride : a.v_stride;
  for (uint32_t m = ends; m != 0; m &= m - 1) {
    const int t = t0 + __ffs(m) - 1, p = a.positions[t], seq = a.seq_of_token[t];
    // The block's rows in this call: tokens t - j at positions p - j (consecutive, so a count).
    const int j = threadIdx.x;
    const bool in_call = from_call && j < B && t - j >= 0 && a.seq_of_token[t - j] == seq &&
                         a.positions[t - j] == p - j;
    const int first = B - __syncthreads_count(in_call);  // rows [first, B) from the call
    const TT* tail = reinterpret_cast<const TT*>(a.tail_base + static_cast<size_t>(a.tails[seq]) *
                                                                   a.tail_block_bytes) +
                     (static_cast<size_t>(which) * a.n_kv_heads + h) * B * HD;
    // 16-byte loads, all issued before the first is used: one round of memory latency.
    constexpr int kLoads = B * HD / 8 / kSealThreads;
    float v[kLoads][8];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int e = (i * kSealThreads + threadIdx.x) * 8, r = e / HD;
      if (r < first) {
        cuda::load8(tail + e, v[i]);
      } else {
        cuda::load8(rows + (t - (B - 1 - r)) * stride + h * HD + e % HD, v[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int e = (i * kSealThreads + threadIdx.x) * 8;
      auto* d = reinterpret_cast<float4*>(&x[e / HD][e % HD]);
      d[0] = make_float4(v[i][0], v[i][1], v[i][2], v[i][3]);
      d[1] = make_float4(v[i][4], v[i][5], v[i][6], v[i][7]);
    }
    __syncthreads();
    if (first < B) {  // the call's rows as the tail holds them
      if (a.rotate) cuda::hadamard_rows_smem<HD>(&x[first][0], B - first);
      for (int e = first * HD + threadIdx.x; e < B * HD; e += kSealThreads) {
        x[e / HD][e % HD] = cuda::to_f32(cuda::from_f32<TT>(x[e / HD][e % HD]));
      }
      __syncthreads();
    }
    uint8_t* out = base + static_cast<size_t>(a.slots[t] / B) * block_bytes +
                   (which == 0 ? h * k_bytes : a.n_kv_heads * k_bytes + h * v_bytes);
    seal_section<HD>(x, codes, out, s);
    __syncthreads();  // x and codes are free for the next block
  }
}

// kv_write (blocks = false): every row to the tail, then the tails that filled are sealed from
// it. kv_write_blocks: the filled blocks sealed from the call's rows, then the rows of the blocks
// left partly filled to the tail.
template <int HD>
void launch_quantized_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                            const BatchView& batch, bool blocks, cudaStream_t stream, bool pdl) {
  const KvFormatInfo info = kv_format_info(kv.format, HD, kv.block_size);
  for (const KvSection* sec : {&info.k, &info.v}) {  // seal_section: a group in whole warps
    CHECK(sec->coding != KvCoding::PerTokenGroup || sec->group % 32 == 0);
  }
  const bool tail_bf16 = kv.tail_format == KvFormat::BF16;
  CHECK(tail_bf16 || kv.tail_format == KvFormat::F16);
  if (blocks) {  // the seal's 16-byte loads of k / v rows
    const size_t es = dtype_size(k.dtype);
    for (const Tensor* x : {&k, &v}) {
      CHECK_MSG(reinterpret_cast<uintptr_t>(x->data) % 16 == 0 && x->stride * es % 16 == 0,
                "kv_write_blocks needs 16-byte aligned K/V rows");
    }
  }
  const dim3 grid_w(k.rows, kv.n_kv_heads);
  const dim3 grid_s((k.rows + kSealWindow - 1) / kSealWindow, kv.n_kv_heads, 2);
  DENSEKV_DISPATCH_DTYPE(k.dtype, TA, {
    const KvWriteArgs<TA> a{k.ptr<TA>(),
                            v.ptr<TA>(),
                            k.stride,
                            v.stride,
                            batch.positions,
                            batch.seq_of_token,
                            batch.slots,
                            batch.tails,
                            static_cast<int>(k.rows),
                            kv.n_kv_heads,
                            static_cast<uint8_t*>(kv.tail_base),
                            kv.tail_block_bytes,
                            info.rotated};
    auto run = [&](auto tt) {
      using TT = decltype(tt);
      auto seal = [&] {
        cuda::launch_kernel(kv_seal_kernel<TA, TT, HD>, grid_s, kSealThreads, 0, stream, pdl, a,
                            blocks, static_cast<uint8_t*>(kv.base), kv.block_bytes, info.k.bytes,
                            info.v.bytes, section_desc(info.k), section_desc(info.v));
      };
      if (blocks) seal();
      cuda::launch_kernel(kv_write_tail_kernel<TA, TT, HD>, grid_w, 128, 0, stream, pdl, a, blocks);
      if (!blocks) seal();
    };
    if (tail_bf16) {
      run(__nv_bfloat16{});
    } else {
      run(__half{});
    }
  });
}

void write_kv(const KvLayerView& kv, const Tensor& k, const Tensor& v, const BatchView& batch,
              bool blocks, cudaStream_t stream, bool pdl) {
  const int hd = kv.head_dim;
  CHECK(k.cols == static_cast<int64_t>(kv.n_kv_heads) * hd && v.cols == k.cols);
  CHECK(k.rows == v.rows && k.dtype == v.dtype && hd % 8 == 0 && k.rows == batch.n_tokens);
  if (k.rows == 0) return;
  if (kv_format_is_quantized(kv.format)) {
    if (hd == 64) {
      launch_quantized_write<64>(kv, k, v, batch, blocks, stream, pdl);
    } else if (hd == 128) {
      launch_quantized_write<128>(kv, k, v, batch, blocks, stream, pdl);
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
                           cuda::launch_kernel(kv_write_plain_kernel<TA, E>, k.rows, threads, 0,
                                               stream, pdl, k.ptr<TA>(), k.stride, v.ptr<TA>(),
                                               v.stride, batch.slots,
                                               static_cast<uint8_t*>(kv.base), kv.block_bytes,
                                               kv.block_size, kv.n_kv_heads, hd);
                         }));
}

}  // namespace

void CudaBackend::kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                           const BatchView& batch) {
  write_kv(kv, k, v, batch, /*blocks=*/false, stream_, pdl_);
}

void CudaBackend::kv_write_blocks(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                                  const BatchView& batch) {
  write_kv(kv, k, v, batch, /*blocks=*/true, stream_, pdl_);
}

}  // namespace densekv
