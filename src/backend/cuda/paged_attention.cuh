// Paged attention kernel template, instantiated per (KV format, head_dim, query heads per block)
// by attention_*.cu. One thread block handles one query token, one KV head and up to G of its
// query heads (GQA: the KV head's keys and values are read once for all of them), over a range of
// context tiles (split-K / flash-decoding: partial softmax states merged by a combine kernel).
//
// Per tile of kTile tokens:
//   1. cp.async copies the tile's raw bytes (quantized sections or 16-bit rows) to shared memory,
//      one tile ahead of the compute (two stages).
//   2. Scores: HD / 8 lanes per token, each dequantizes 8 channels and dots them with its 8 query
//      channels of every head; a transpose-reduce over the lanes leaves one head's sum per lane.
//   3. Online softmax per head (one warp per head).
//   4. Values: each thread owns 8 channels of a slice of the tile's tokens and accumulates
//      p * v for every head; slices are summed once at the end.
// Quantized formats read the sealed blocks in [0, n_ctx) through their coding and the newest
// partial block from the sequence's 16-bit tail.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kv_coding.cuh"
#include "kv/kv_format.h"

namespace densekv::cuda {

// The tensor-core kernel (paged_attention_mma.cuh) is the default decode kernel: verified against
// the CPU reference and timed on the H100 (docs/benchmarks.md). DENSEKV_ATTENTION=simt selects
// this CUDA-core kernel instead (kept as the simpler second implementation, and for comparison).
inline bool use_simt_attention() {
  static const bool simt = [] {
    const char* e = std::getenv("DENSEKV_ATTENTION");
    return e != nullptr && std::strcmp(e, "simt") == 0;
  }();
  return simt;
}

constexpr int kAttnThreads = 128;
constexpr int kAttnWarps = kAttnThreads / 32;

// A split's partial state in AttnArgs::part: HD unnormalized output channels, m (log2 units), l,
// and 2 floats of padding, so that rows are 16-byte aligned (the combine kernel reads float4s).
constexpr int part_row(int hd) {
  return hd + 4;
}
template <int HD>
constexpr int kPartRow = part_row(HD);

struct AttnArgs {
  const void* q = nullptr;  // [T, n_heads * HD] of act dtype
  int64_t q_stride = 0;
  void* out = nullptr;  // like q
  int64_t out_stride = 0;
  bool act_bf16 = true;  // q/out dtype: bf16, else fp16

  const uint8_t* base = nullptr;  // main pool of the layer
  size_t block_bytes = 0;
  int block_size = 0;
  int block_shift = -1;             // log2(block_size) where it is a power of two, else -1
  size_t k_bytes = 0, v_bytes = 0;  // quantized: one head's K / V section of a sealed block
  const uint8_t* tail_base = nullptr;
  size_t tail_block_bytes = 0;
  bool tail_bf16 = true;

  const int32_t* positions = nullptr;     // [T]
  const int32_t* seq_of_token = nullptr;  // [T]
  const int32_t* block_tables = nullptr;  // [n_seqs, max_blocks]
  const int32_t* tails = nullptr;         // [n_seqs] quantized: each sequence's tail
  // Prefill kernel, quantized: the tail rows from these rows of the call (act dtype, row stride
  // own_stride elements) instead of the tails (Backend::paged_attention_own_rows).
  const void* own_k = nullptr;
  const void* own_v = nullptr;
  int64_t own_stride = 0;
  int max_blocks = 0;

  int n_heads = 0, n_kv_heads = 0;
  int group = 0;        // query heads per KV head
  int head_chunks = 0;  // blocks per KV head (group split in chunks of G)
  float scale = 1.0f;
  bool rotate = false;  // k4v2: q is rotated in, the output rotated back (Hadamard)

  int tiles_per_split = 0;
  int n_splits = 1;
  float* part = nullptr;  // n_splits > 1: [T, n_heads, n_splits, kPartRow<HD>] (see there)
  // Host: launch the tensor-core decode kernel as a programmatic dependent of the kernel before it
  // (sm_90): its blocks read the batch arrays and block table, then wait for that kernel's end.
  bool pdl = false;

  // Prefill kernel (prefill_attention_mma.cuh): [n_work][2] = (first token, token count) of
  // each thread block's query rows.
  const int32_t* prefill_work = nullptr;
};

// What one thread block of either attention kernel works on: blockIdx = (kv head x chunk of
// `heads` query heads, query token, split). Tiles are 64 tokens: plain formats ceil(n_ctx / 64)
// from the table; quantized formats the n_ctx / 64 sealed blocks, then the 16-bit tail.
struct AttnWork {
  int kvh, h0, n_h;            // kv head; first query head and number of query heads of this block
  int tok, split, seq, n_ctx;  // query token, split, its sequence, its context length
  const int32_t* table;        // the sequence's block table
  int n_sealed, tail_rows, n_tiles, tile0, tile1;  // this block's tiles are [tile0, tile1)
};

template <class F>
__device__ __forceinline__ AttnWork attn_work(const AttnArgs& a, int heads) {
  AttnWork w;
  w.kvh = blockIdx.x / a.head_chunks;
  w.h0 = w.kvh * a.group + (blockIdx.x % a.head_chunks) * heads;
  w.n_h = min(heads, w.kvh * a.group + a.group - w.h0);
  w.tok = blockIdx.y;
  w.split = blockIdx.z;
  w.seq = a.seq_of_token[w.tok];
  w.n_ctx = a.positions[w.tok] + 1;
  w.table = a.block_tables + static_cast<int64_t>(w.seq) * a.max_blocks;
  w.n_sealed = 0;
  w.tail_rows = 0;
  if constexpr (F::kQuantized) {
    w.n_sealed = w.n_ctx / 64;
    w.tail_rows = w.n_ctx - w.n_sealed * 64;
    w.n_tiles = w.n_sealed + (w.tail_rows > 0);
  } else {
    w.n_tiles = (w.n_ctx + 63) / 64;
  }
  w.tile0 = w.split * a.tiles_per_split;
  w.tile1 = min(w.n_tiles, w.tile0 + a.tiles_per_split);
  return w;
}

// ---- cp.async (sm_80+) ----
// smem: a shared-memory address, computed once per tile by the callers that issue many copies
// (the generic-pointer overload converts on every call).
__device__ __forceinline__ void cp_async16(uint32_t smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem), "l"(gmem));
}
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  cp_async16(static_cast<uint32_t>(__cvta_generic_to_shared(smem)), gmem);
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// In-place normalized Walsh-Hadamard transform of rows x [rows][HD] in shared memory (all
// threads of the block take part, blockDim.x a multiple of 32; ends with a barrier). A warp per
// row: lane l holds elements l + 32 e, the butterflies of width 1..16 pair it with lane l ^ h,
// the wider ones (32, 64) are between its own registers. The same butterflies in the same order
// as kv/hadamard.cpp (a + b and a - b of the same a and b), so the rows equal the CPU's bit for
// bit. (A thread per butterfly, with a barrier after each width, took ~5 us for a prefill
// block's 64 query rows on the H100.)
template <int HD>
__device__ void hadamard_rows_smem(float* x, int rows) {
  static_assert(HD >= 32 && (HD & (HD - 1)) == 0, "HD: a power of two >= 32");
  constexpr int E = HD / 32;
  const int lane = threadIdx.x & 31;
  const float s = 1.0f / sqrtf(static_cast<float>(HD));  // as kv/hadamard.cpp
  for (int r = threadIdx.x >> 5; r < rows; r += blockDim.x >> 5) {
    float* row = x + r * HD + lane;
    float v[E];
#pragma unroll
    for (int e = 0; e < E; ++e) v[e] = row[32 * e];
#pragma unroll
    for (int h = 1; h < 32; h *= 2) {
      const bool hi = (lane & h) != 0;  // this lane holds the b of a - b
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const float o = __shfl_xor_sync(0xffffffffu, v[e], h);
        v[e] = hi ? o - v[e] : v[e] + o;
      }
    }
#pragma unroll
    for (int h = 1; h < E; h *= 2) {
#pragma unroll
      for (int e = 0; e < E; ++e) {
        if ((e & h) == 0) {
          const float a = v[e], b = v[e + h];
          v[e] = a + b;
          v[e + h] = a - b;
        }
      }
    }
#pragma unroll
    for (int e = 0; e < E; ++e) row[32 * e] = v[e] * s;
  }
  __syncthreads();
}

// Sums v[0..N) pairwise across the LPT lanes of a token group so that afterwards lane l holds the
// full sum of value index head_of_lane(l) (transpose-reduce: N/2 + N/4 + ... shuffles instead of
// N * log2(LPT)).
template <int N, int O>
__device__ __forceinline__ void transpose_reduce(float* v, int lane) {
  if constexpr (O >= 1) {
    if constexpr (N > 1) {
      const bool upper = (lane & O) != 0;
#pragma unroll
      for (int i = 0; i < N / 2; ++i) {
        const float send = upper ? v[i] : v[i + N / 2];
        const float keep = upper ? v[i + N / 2] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, O);
      }
      transpose_reduce<N / 2, O / 2>(v, lane);
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], O);
      transpose_reduce<1, O / 2>(v, lane);
    }
  }
}

// The value index whose full sum lane `lane` holds after transpose_reduce<G, LPT / 2>: the step
// at offset LPT / 2 picks the upper half (+G/2), the one at LPT / 4 the upper quarter (+G/4), ...
template <int G, int LPT>
__device__ __forceinline__ int head_of_lane(int lane) {
  int g = 0;
#pragma unroll
  for (int k = 0; (1 << k) < G; ++k) {
    if (lane & (LPT >> (k + 1))) g += G >> (k + 1);
  }
  return g;
}

// Shared state of one block.
template <int HD, int G>
struct AttnShared {
  float s[G][64];  // scores, then probabilities, of the current tile
  float m[G], l[G], alpha[G];
};

// Per-block compute state in registers.
template <int HD, int G>
struct AttnRegs {
  float q[G][8];    // this lane's 8 query channels of every head (scores phase)
  float acc[G][8];  // this thread's 8 value channels of every head (values phase)
};

// Scores, softmax and value accumulation of one tile of n_rows tokens held in shared memory.
template <int HD, int G, class KC, class VC>
__device__ __forceinline__ void attend_tile(const uint8_t* ks, const uint8_t* vs, int n_rows,
                                            float scale, AttnShared<HD, G>& sh,
                                            AttnRegs<HD, G>& rg) {
  constexpr int LPT = HD / 8;                 // lanes per token in the scores phase
  constexpr int TPW = 32 / LPT;               // tokens per warp per pass
  constexpr int NSLICE = kAttnThreads / LPT;  // token slices in the values phase
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int c8 = lane % LPT;

  // 2. scores
  {
    KC kc;
    kc.init(ks, c8);
    const int g_lane = head_of_lane<G, LPT>(lane);
    const bool writer = (c8 % (LPT / G)) == 0;
    for (int j0 = 0; j0 < 64; j0 += kAttnWarps * TPW) {
      const int j = j0 + warp * TPW + lane / LPT;
      float x[8];
      if (j < n_rows) {
        kc.load(ks, j, c8, x);
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) x[i] = 0.0f;
      }
      float d[G];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float a = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) a = fmaf(rg.q[g][i], x[i], a);
        d[g] = a;
      }
      transpose_reduce<G, LPT / 2>(d, lane);
      if (writer) sh.s[g_lane][j] = j < n_rows ? d[0] * scale : -INFINITY;
    }
  }
  __syncthreads();

  // 3. online softmax, one warp per head
  for (int g = warp; g < G; g += kAttnWarps) {
    const float s0 = sh.s[g][lane], s1 = sh.s[g][lane + 32];
    const float m_old = sh.m[g];
    const float m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1)));
    const bool none = m_new == -INFINITY;
    const float p0 = none ? 0.0f : expf(s0 - m_new);
    const float p1 = none ? 0.0f : expf(s1 - m_new);
    const float sum = warp_sum(p0 + p1);
    sh.s[g][lane] = p0;
    sh.s[g][lane + 32] = p1;
    __syncwarp();
    if (lane == 0) {
      const float a = none ? 1.0f : expf(m_old - m_new);  // 0 on the first tile
      sh.alpha[g] = a;
      sh.l[g] = sh.l[g] * a + sum;
      sh.m[g] = m_new;
    }
  }
  __syncthreads();

  // 4. values: thread = (channel chunk, token slice)
  {
    VC vc;
    const int vc8 = threadIdx.x % LPT, slice = threadIdx.x / LPT;
    vc.init(vs, vc8);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float a = sh.alpha[g];
#pragma unroll
      for (int i = 0; i < 8; ++i) rg.acc[g][i] *= a;
    }
    for (int j = slice; j < n_rows; j += NSLICE) {
      float x[8];
      vc.load(vs, j, vc8, x);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float p = sh.s[g][j];
#pragma unroll
        for (int i = 0; i < 8; ++i) rg.acc[g][i] = fmaf(p, x[i], rg.acc[g][i]);
      }
    }
  }
  __syncthreads();
}

__device__ __forceinline__ void copy_bytes_async(uint8_t* dst, const uint8_t* src, int bytes) {
  for (int i = threadIdx.x * 16; i < bytes; i += blockDim.x * 16) cp_async16(dst + i, src + i);
}

// Format traits: Plain<E> (every tile from the block table, any block size) or Quant<KC, VC>
// (sealed 64-token blocks plus the 16-bit tail).
template <class E>
struct PlainFormat {
  static constexpr bool kQuantized = false;
  template <int HD>
  using K = PlainCoding<E, HD>;
  template <int HD>
  using V = PlainCoding<E, HD>;
  static constexpr int kElem = sizeof(E);
};

template <template <int> class KCT, template <int> class VCT>
struct QuantFormat {
  static constexpr bool kQuantized = true;
  template <int HD>
  using K = KCT<HD>;
  template <int HD>
  using V = VCT<HD>;
  static constexpr int kElem = 2;  // tail rows
};

// Dynamic shared memory of the kernel: two stages of (K, V) tiles of 16-bit (or fp32) rows, which
// also hold sealed quantized sections (always smaller), plus room for the slice reduction.
template <class F, int HD>
__host__ __device__ constexpr int attn_stage_bytes() {
  return 2 * 64 * HD * F::kElem;
}
template <class F, int HD>
__host__ __device__ constexpr int attn_smem_bytes() {
  return 2 * attn_stage_bytes<F, HD>();
}

template <class F, int HD, int G>
__global__ void __launch_bounds__(kAttnThreads) paged_attention_kernel(const AttnArgs a) {
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ AttnShared<HD, G> sh;
  __shared__ float qs[G][HD];
  constexpr int LPT = HD / 8;
  constexpr int kStage = attn_stage_bytes<F, HD>();
  constexpr int kTail16 = 64 * HD * 2;  // one 16-bit K (or V) tile

  const AttnWork w = attn_work<F>(a, G);
  const int kvh = w.kvh, h0 = w.h0, n_h = w.n_h, t = w.tok, split = w.split;
  const int seq = w.seq, n_ctx = w.n_ctx;
  const int32_t* table = w.table;
  const int n_sealed = w.n_sealed, tail_rows = w.tail_rows, tile0 = w.tile0, tile1 = w.tile1;

  // Query heads -> smem (rotated for k4v2) -> registers.
  for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
    const int g = i / HD, c = i % HD;
    float v = 0.0f;
    if (g < n_h) {
      const int64_t off = static_cast<int64_t>(t) * a.q_stride + (h0 + g) * HD + c;
      v = a.act_bf16 ? to_f32(static_cast<const __nv_bfloat16*>(a.q)[off])
                     : to_f32(static_cast<const __half*>(a.q)[off]);
    }
    qs[g][c] = v;
  }
  if (threadIdx.x < G) {
    sh.m[threadIdx.x] = -INFINITY;
    sh.l[threadIdx.x] = 0.0f;
  }
  __syncthreads();
  if (a.rotate) hadamard_rows_smem<HD>(&qs[0][0], G);
  AttnRegs<HD, G> rg;
  {
    const int c8 = (threadIdx.x % 32) % LPT;
#pragma unroll
    for (int g = 0; g < G; ++g) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        rg.q[g][i] = qs[g][c8 * 8 + i];
        rg.acc[g][i] = 0.0f;
      }
    }
  }

  // Issues the copies of tile `tile` into stage `st`.
  auto load_tile = [&](int tile, int st) {
    uint8_t* kd = smem + st * kStage;
    uint8_t* vd = kd + kStage / 2;
    const int bs = a.block_size;
    if constexpr (F::kQuantized) {
      if (tile < n_sealed) {
        const uint8_t* blk = a.base + static_cast<size_t>(table[tile]) * a.block_bytes;
        copy_bytes_async(kd, blk + kvh * a.k_bytes, static_cast<int>(a.k_bytes));
        copy_bytes_async(vd, blk + a.n_kv_heads * a.k_bytes + kvh * a.v_bytes,
                         static_cast<int>(a.v_bytes));
      } else {
        const uint8_t* tl = a.tail_base + static_cast<size_t>(a.tails[seq]) * a.tail_block_bytes;
        copy_bytes_async(kd, tl + static_cast<size_t>(kvh) * kTail16, tail_rows * HD * 2);
        copy_bytes_async(vd, tl + static_cast<size_t>(a.n_kv_heads + kvh) * kTail16,
                         tail_rows * HD * 2);
      }
    } else {
      constexpr int kRow = HD * F::kElem;
      constexpr int kChunks = kRow / 16;
      const int r0 = tile * 64;
      const int n = min(64, n_ctx - r0);
      for (int i = threadIdx.x; i < 2 * n * kChunks; i += blockDim.x) {
        const int which = i / (n * kChunks), r = (i / kChunks) % n, c = i % kChunks;
        const int p = r0 + r;
        const size_t row = (static_cast<size_t>(which) * a.n_kv_heads + kvh) * bs + p % bs;
        const uint8_t* src =
            a.base + static_cast<size_t>(table[p / bs]) * a.block_bytes + row * kRow + c * 16;
        cp_async16((which == 0 ? kd : vd) + r * kRow + c * 16, src);
      }
    }
  };

  if (tile0 < tile1) load_tile(tile0, 0);
  cp_async_commit();
  for (int tile = tile0; tile < tile1; ++tile) {
    const int st = (tile - tile0) & 1;
    if (tile + 1 < tile1) load_tile(tile + 1, st ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const uint8_t* kd = smem + st * kStage;
    const uint8_t* vd = kd + kStage / 2;
    if constexpr (F::kQuantized) {
      if (tile < n_sealed) {
        attend_tile<HD, G, typename F::template K<HD>, typename F::template V<HD>>(kd, vd, 64,
                                                                                   a.scale, sh, rg);
      } else if (a.tail_bf16) {
        attend_tile<HD, G, PlainCoding<__nv_bfloat16, HD>, PlainCoding<__nv_bfloat16, HD>>(
            kd, vd, tail_rows, a.scale, sh, rg);
      } else {
        attend_tile<HD, G, PlainCoding<__half, HD>, PlainCoding<__half, HD>>(kd, vd, tail_rows,
                                                                             a.scale, sh, rg);
      }
    } else {
      attend_tile<HD, G, typename F::template K<HD>, typename F::template V<HD>>(
          kd, vd, min(64, n_ctx - tile * 64), a.scale, sh, rg);
    }
  }
  cp_async_wait<0>();
  __syncthreads();

  // Sum the token slices: red [NSLICE][G][HD] in the stage buffers.
  constexpr int NSLICE = kAttnThreads / LPT;
  static_assert(NSLICE * G * HD * 4 <= attn_smem_bytes<F, HD>(), "slice reduction fits");
  float* red = reinterpret_cast<float*>(smem);
  {
    const int vc8 = threadIdx.x % LPT, slice = threadIdx.x / LPT;
#pragma unroll
    for (int g = 0; g < G; ++g) {
#pragma unroll
      for (int i = 0; i < 8; ++i) red[(slice * G + g) * HD + vc8 * 8 + i] = rg.acc[g][i];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
    float s = 0.0f;
#pragma unroll
    for (int sl = 0; sl < NSLICE; ++sl) s += red[sl * G * HD + i];
    qs[i / HD][i % HD] = s;  // qs is free now
  }
  __syncthreads();

  if (a.n_splits == 1) {
    for (int g = threadIdx.x / 32; g < n_h; g += kAttnWarps) {
      const float inv = sh.l[g] > 0.0f ? 1.0f / sh.l[g] : 0.0f;
      for (int c = threadIdx.x % 32; c < HD; c += 32) qs[g][c] *= inv;
    }
    __syncthreads();
    if (a.rotate) hadamard_rows_smem<HD>(&qs[0][0], G);
    for (int i = threadIdx.x; i < n_h * HD; i += blockDim.x) {
      const int g = i / HD, c = i % HD;
      const int64_t off = static_cast<int64_t>(t) * a.out_stride + (h0 + g) * HD + c;
      if (a.act_bf16) {
        static_cast<__nv_bfloat16*>(a.out)[off] = __float2bfloat16_rn(qs[g][c]);
      } else {
        static_cast<__half*>(a.out)[off] = __float2half_rn(qs[g][c]);
      }
    }
  } else {
    for (int i = threadIdx.x; i < n_h * (HD + 2); i += blockDim.x) {
      const int g = i / (HD + 2), c = i % (HD + 2);
      float* dst = a.part + ((static_cast<int64_t>(t) * a.n_heads + h0 + g) * a.n_splits + split) *
                                kPartRow<HD>;
      // m in log2 units, as the tensor-core kernel and the combine kernel use
      dst[c] = c < HD ? qs[g][c] : (c == HD ? sh.m[g] * 1.4426950408889634f : sh.l[g]);
    }
  }
}

// Launches the kernel for format F and head_dim HD with G = the smallest of 1, 2, 4, 8 that
// holds the group (larger groups are split over several blocks per KV head).
template <class F, int HD>
void launch_paged_attention_hd(const AttnArgs& a, int n_tokens, cudaStream_t stream) {
  auto launch = [&](auto g_tag) {
    constexpr int G = decltype(g_tag)::value;
    auto* kernel = &paged_attention_kernel<F, HD, G>;
    constexpr int smem = attn_smem_bytes<F, HD>();
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    AttnArgs args = a;
    args.head_chunks = (a.group + G - 1) / G;
    const dim3 grid(a.n_kv_heads * args.head_chunks, n_tokens, a.n_splits);
    kernel<<<grid, kAttnThreads, smem, stream>>>(args);
    CUDA_CHECK_LAUNCH();
  };
  if (a.group <= 1) {
    launch(std::integral_constant<int, 1>{});
  } else if (a.group <= 2) {
    launch(std::integral_constant<int, 2>{});
  } else if (a.group <= 4) {
    launch(std::integral_constant<int, 4>{});
  } else {
    launch(std::integral_constant<int, 8>{});
  }
}

template <class F>
void launch_paged_attention(const AttnArgs& a, int head_dim, int n_tokens, cudaStream_t stream) {
  if (head_dim == 64) {
    launch_paged_attention_hd<F, 64>(a, n_tokens, stream);
  } else {
    CHECK(head_dim == 128);
    launch_paged_attention_hd<F, 128>(a, n_tokens, stream);
  }
}

// Which kernel a launcher runs: the CUDA-core decode kernel (this file), the tensor-core decode
// kernel (paged_attention_mma.cuh) or the tensor-core prefill kernel (prefill_attention_mma.cuh).
enum class AttnKernel { kSimt, kMma, kPrefillMma };

// One launcher per group of formats (attention_*.cu), so their instantiations compile in
// parallel. n: query tokens (decode kernels) or work items (prefill). blocks_per_sm: see
// launch_attention_kernel.
void launch_attention_plain(KvFormat f, AttnKernel k, const AttnArgs& a, int head_dim, int n,
                            cudaStream_t stream, int* blocks_per_sm = nullptr);
void launch_attention_8bit(KvFormat f, AttnKernel k, const AttnArgs& a, int head_dim, int n,
                           cudaStream_t stream, int* blocks_per_sm = nullptr);
void launch_attention_kivi(KvFormat f, AttnKernel k, const AttnArgs& a, int head_dim, int n,
                           cudaStream_t stream, int* blocks_per_sm = nullptr);

}  // namespace densekv::cuda
