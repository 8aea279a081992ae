// Causal prefill attention on tensor cores (FlashAttention-2 style), one template for every KV
// format (instantiated per (format, head_dim) in attention_*.cu next to the decode kernels).
//
// A thread block (4 warps) = (work item, KV head, split of the KV tiles). A work item is up to
// 64 query rows of one sequence: tokens [tok0, tok0 + n_tok) (consecutive positions; quantized
// formats: all in one KV block, which LlamaModel's rounds guarantee), row r = (token tok0 + r /
// group, query head kvh * group + r % group), so an M = 16 mma tile holds e.g. 4 tokens x 4
// heads (GQA 4) or 2 tokens x 8 heads. Warp w owns rows [16 w, 16 w + 16) and keeps their online
// softmax and O in registers; every KV tile is copied to shared memory once (the decode kernel's
// cp.async pipeline and swizzle, mma_load_tile) and read by all four warps, so the KV prefix is
// read once per 64 query rows instead of once per token.
//
// Each row has its own causal limit, from its position p (prefill_tile_limit):
//   plain formats: tile k holds positions [64 k, 64 k + 64), the row sees those <= p;
//   quantized formats: sealed block k is seen whole when k < (p + 1) / 64, else not at all; the
//   16-bit tail (tile n_sealed, after the sealed blocks) is seen up to row (p + 1) % 64. So the
//   token at row 63 of its block reads that block sealed (its write sealed it) and its
//   neighbours read the same block from the tail, exactly as kv_attention_context.
// The per-tile math is mma_attend_rows (two groups of 8 rows; the codings of kv_fragments.cuh):
// a whole tile as four 16-token chunks with one softmax step, the causal edge 16 tokens at a time,
// skipping tokens past a warp's largest limit; the 4- and 2-bit codings decode each sealed tile
// once per block into an fp16 tile first (prefill_dequant_tile). k4v2 rotates q in and the output
// back. With splits > 1 the blocks write partial states that the decode path's combine kernel
// merges.
#pragma once
#include <cstdint>

#include "backend/cuda/paged_attention_mma.cuh"

namespace densekv::cuda {

constexpr int kPrefillRows = 64;  // query rows per thread block (16 per warp)

// The query rows and KV tiles of one work item.
struct PrefillBlock {
  int tok0, n_tok, n_rows;  // tokens [tok0, tok0 + n_tok); rows [0, n_rows)
  int p0;                   // position of token tok0
  int n_ctx;                // context of the last row: p0 + n_tok
  int n_sealed;             // quantized: sealed blocks [0, n_sealed) are tiles 0..n_sealed-1
  int tail_rows;            // quantized: 16-bit tail rows to load (tile n_sealed), 0 = none
  int n_tiles;
};

template <bool Q>
__host__ __device__ __forceinline__ PrefillBlock prefill_block(int tok0, int n_tok, int p0,
                                                               int group) {
  PrefillBlock b;
  b.tok0 = tok0;
  b.n_tok = n_tok;
  b.n_rows = n_tok * group;
  b.p0 = p0;
  b.n_ctx = p0 + n_tok;
  if constexpr (Q) {
    b.n_sealed = b.n_ctx / kQBlock;
    // Every row but one at row 63 of its block reads the tail, up to the largest such position.
    const int last = b.n_ctx % kQBlock;
    b.tail_rows = last != 0 ? last : (n_tok > 1 ? kQBlock - 1 : 0);
    b.n_tiles = b.n_sealed + (b.tail_rows > 0);
  } else {
    b.n_sealed = 0;
    b.tail_rows = 0;
    b.n_tiles = (b.n_ctx + 63) / 64;
  }
  return b;
}

// Position of query row r, or -1 past the block's rows.
__host__ __device__ __forceinline__ int prefill_row_pos(const PrefillBlock& b, int r, int group) {
  return r < b.n_rows ? b.p0 + r / group : -1;
}

// How many of tile `tile`'s rows (a prefix) a query row at position p sees (0..64).
template <bool Q>
__host__ __device__ __forceinline__ int prefill_tile_limit(int p, int tile, int n_sealed) {
  if (p < 0) return 0;
  if constexpr (Q) {
    if (tile < n_sealed) return tile < (p + 1) / kQBlock ? kQBlock : 0;
    return (p + 1) % kQBlock;  // the tail
  } else {
    const int n = p + 1 - tile * 64;
    return n < 0 ? 0 : (n > 64 ? 64 : n);
  }
}

// One warp's 16 query rows (row gid: limit lim[0]; row gid + 8: lim[1]) over a tile of n_rows
// tokens in shared memory up to the largest limit of the warp: a tile the warp sees past its
// first 48 tokens as four chunks of 16 tokens side by side with one online-softmax step (their
// score mmas are independent chains; one chunk a step was 12-19% slower after 4096 cached tokens
// on the H100), without masks when all its rows see all 64 tokens (FULL), otherwise (the causal
// edge) 16 tokens at a time.
template <class KC, class VC, class VM, int HD>
__host__ __device__ __forceinline__ void mma_prefill_tile(const uint8_t* ks, const uint8_t* vs,
                                                          int n_rows, const int (&lim)[2],
                                                          const uint32_t (&qa)[2][HD / 16][2],
                                                          const float (&sumq)[2], float sl2,
                                                          MmaWarpState<HD, 2>& st) {
  float wl = static_cast<float>(lim[0] > lim[1] ? lim[0] : lim[1]);  // exact: <= 64
  float ws = static_cast<float>(lim[0] < lim[1] ? lim[0] : lim[1]);
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    wl = fmaxf(wl, shfl_xor(wl, o));
    ws = fminf(ws, shfl_xor(ws, o));
  }
  const int end = static_cast<int>(wl) < n_rows ? static_cast<int>(wl) : n_rows;
  if (n_rows == 64 && ws >= 64.0f) {  // every row sees the whole tile: no masks (FULL)
    mma_attend_rows<KC, VC, VM, HD, 2, true, 4>(ks, vs, 0, n_rows, lim, qa, sumq, sl2, st);
    return;
  }
  if (end > 48) {
    mma_attend_rows<KC, VC, VM, HD, 2, false, 4>(ks, vs, 0, n_rows, lim, qa, sumq, sl2, st);
    return;
  }
  for (int r0 = 0; r0 < end; r0 += 16) {
    mma_attend_rows<KC, VC, VM, HD, 2>(ks, vs, r0, n_rows, lim, qa, sumq, sl2, st);
  }
}

// The 4- and 2-bit codings (per-channel keys, per-token-group values) dequantize a sealed tile
// once per block instead of once per warp (each of the 4 warps used to decode every key and value
// of the tile for its 16 rows): warp w decodes tokens [16 w, 16 w + 16) exactly as
// mma_attend_rows would (the same words, affines and half2 FMAs) and stores the fragments as fp16
// rows in shared memory, keys in PlainFrag's layout with each pair where the coding's lane found
// it (so the coding's query fragments still match), values as DqValuesFrag's V^T; after a
// barrier every warp runs the 16-bit path over them, with the same mma inputs as before.
template <class F>
constexpr bool kPrefillDequantOnce = F::kQuantized ? F::template K<128>::kBits < 8 : false;

template <class KM, class VM, int HD>
__device__ __forceinline__ void prefill_dequant_tile(const uint8_t* ks, const uint8_t* vs, int r0,
                                                     uint8_t* dk, uint8_t* dv) {
  const int lane = lane_id(), gid = lane >> 2, t = lane & 3;
  auto sts = [](uint8_t* p, uint32_t x) { *reinterpret_cast<uint32_t*>(p) = x; };
  {  // keys: token rows r0 + 8 i + gid, pair q -> word t of 16-bit chunk q (HD / 8 per row)
    constexpr int CPR = KM::kCpr, P = 16 / KM::kBits, C16 = HD / 8;
    const KM kc;
    uint32_t w[2][CPR];
    mma_load_k_words<KM>(ks, r0, lane, w);
    typename KM::KAff f{};
#pragma unroll
    for (int q = 0; q < HD / 8; ++q) {
      if (q % kKAffPairs == 0) f = kc.kaff(ks, t, q);
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int r = r0 + 8 * i + gid;
        sts(dk + swizzle_chunk(r * C16 + q, C16) * 16 + 4 * t,
            kc.kapply(KM::kdecode(w[i][q / P], q % P), f, q));
      }
    }
  }
  // values: n-tile nt, column gid -> V^T row 8 nt + gid, tokens r0 + 2t (b0) and r0 + 8 + 2t (b1)
  mma_decode_values<VM>(vs, r0, [&](int nt, uint32_t b0, uint32_t b1) {
    const int row = 8 * nt + gid;
    sts(dv + swizzle_chunk(row * 8 + r0 / 8, 8) * 16 + 4 * t, b0);
    sts(dv + swizzle_chunk(row * 8 + r0 / 8 + 1, 8) * 16 + 4 * t, b1);
  });
}

// The 16-bit tail of a quantized format: keys through the 16-bit coding P16 (its own query
// fragments), values gathered in the main value coding VM's channel order.
template <class P16, class VM, int HD>
__host__ __device__ __forceinline__ void mma_prefill_tail(const uint8_t* ks, const uint8_t* vs,
                                                          const float (*qs)[HD], int row,
                                                          int n_rows, const int (&lim)[2],
                                                          float sl2, MmaWarpState<HD, 2>& st) {
  const int t = lane_id() & 3;
  uint32_t qt[2][HD / 16][2];
  float sumt[2];
  make_q_frags<P16, HD>(qs, row, t, qt[0], sumt[0]);
  make_q_frags<P16, HD>(qs, row + 8, t, qt[1], sumt[1]);
  mma_prefill_tile<P16, P16, VM, HD>(ks, vs, n_rows, lim, qt, sumt, sl2, st);
}

// Writes the warp's 16 rows: rows[r][channel] = O (divided by l when `normalize`), ml[r] = (m in
// log2 units, l), rows relative to the warp's first.
template <class VM, int HD>
__host__ __device__ __forceinline__ void mma_prefill_finish(const MmaWarpState<HD, 2>& st,
                                                            float (*rows)[HD], float* ml,
                                                            bool normalize) {
  const int lane = lane_id(), gid = lane >> 2, t = lane & 3;
#pragma unroll
  for (int q = 0; q < 2; ++q) {
    float l = st.l[q];
    l += shfl_xor(l, 1);
    l += shfl_xor(l, 2);
    const float la = shfl_idx(l, 8 * t), lb = shfl_idx(l, 8 * t + 4);  // rows 2t, 2t + 1
    const float fa = !normalize ? 1.0f : la > 0.0f ? 1.0f / la : 0.0f;
    const float fb = !normalize ? 1.0f : lb > 0.0f ? 1.0f / lb : 0.0f;
    mma_store_acc<VM, HD>(st.acc[q], rows[8 * q + 2 * t], rows[8 * q + 2 * t + 1], fa, fb);
    if (t == 0) {
      ml[(8 * q + gid) * 2] = st.m[q];
      ml[(8 * q + gid) * 2 + 1] = l;
    }
  }
}

__host__ __device__ __forceinline__ float act_to_f32(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
__host__ __device__ __forceinline__ float act_to_f32(__half x) {
  return __half2float(x);
}
template <class T>
__host__ __device__ __forceinline__ T act_from_f32(float x) {
  if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(x);
  } else {
    return __float2bfloat16_rn(x);
  }
}

// Address of chunk i (8 channels) of the block's rows in q / out [T, n_heads * HD] (row r = i /
// (HD / 8): token tok0 + r / group, head kvh * group + r % group), nullptr past n_rows.
template <class T, int HD>
__host__ __device__ __forceinline__ T* prefill_row_chunk(T* x, int64_t stride,
                                                         const PrefillBlock& b, int group, int kvh,
                                                         int i) {
  const int r = i / (HD / 8);
  if (r >= b.n_rows) return nullptr;
  const int64_t tok = b.tok0 + r / group, h = static_cast<int64_t>(kvh) * group + r % group;
  return x + tok * stride + h * HD + (i % (HD / 8)) * 8;
}

// Query rows of the block -> qs [64][HD] fp32 (zeros past n_rows); thread `tid` of `n_threads`.
// On the device (n_threads = kAttnThreads) each thread issues its 16-byte loads before it uses
// the first (rows 16-byte aligned: launch_prefill_attention_mma checks).
template <class T, int HD>
__host__ __device__ __forceinline__ void prefill_load_q(const T* q, int64_t q_stride,
                                                        float (*qs)[HD], const PrefillBlock& b,
                                                        int group, int kvh, int tid,
                                                        int n_threads) {
  constexpr int kChunks = kPrefillRows * HD / 8;
#ifdef __CUDA_ARCH__
  (void)n_threads;
  constexpr int kPer = kChunks / kAttnThreads;
  uint4 u[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const T* src =
        prefill_row_chunk<const T, HD>(q, q_stride, b, group, kvh, j * kAttnThreads + tid);
    u[j] = src != nullptr ? *reinterpret_cast<const uint4*>(src) : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = j * kAttnThreads + tid;
    const T* e = reinterpret_cast<const T*>(&u[j]);
#pragma unroll
    for (int c = 0; c < 8; ++c) qs[i / (HD / 8)][(i % (HD / 8)) * 8 + c] = act_to_f32(e[c]);
  }
#else
  for (int i = tid; i < kChunks; i += n_threads) {
    const T* src = prefill_row_chunk<const T, HD>(q, q_stride, b, group, kvh, i);
    for (int c = 0; c < 8; ++c) {
      qs[i / (HD / 8)][(i % (HD / 8)) * 8 + c] = src != nullptr ? act_to_f32(src[c]) : 0.0f;
    }
  }
#endif
}

// rows [64][HD] (normalized O) -> out, the block's rows only, 8 channels per step.
template <class T, int HD>
__host__ __device__ __forceinline__ void prefill_store_out(const float (*rows)[HD], T* out,
                                                           int64_t out_stride,
                                                           const PrefillBlock& b, int group,
                                                           int kvh, int tid, int n_threads) {
  for (int i = tid; i < b.n_rows * (HD / 8); i += n_threads) {
    T* dst = prefill_row_chunk<T, HD>(out, out_stride, b, group, kvh, i);
    const float* src = &rows[i / (HD / 8)][(i % (HD / 8)) * 8];
#ifdef __CUDA_ARCH__
    store8(dst, src);
#else
    for (int c = 0; c < 8; ++c) dst[c] = act_from_f32<T>(src[c]);
#endif
  }
}

// rows [64][HD] (unnormalized O) and ml [64][2] -> part [T, n_heads, n_splits, kPartRow<HD>]
// (the combine kernel's layout: O, m in log2 units, l, padding).
template <int HD>
__host__ __device__ __forceinline__ void prefill_store_part(const float (*rows)[HD],
                                                            const float* ml, float* part,
                                                            const PrefillBlock& b, int group,
                                                            int kvh, int n_heads, int n_splits,
                                                            int split, int tid, int n_threads) {
  for (int i = tid; i < b.n_rows * (HD + 2); i += n_threads) {
    const int r = i / (HD + 2), c = i % (HD + 2);
    const int64_t tok = b.tok0 + r / group, h = static_cast<int64_t>(kvh) * group + r % group;
    float* dst = part + ((tok * n_heads + h) * n_splits + split) * kPartRow<HD>;
    dst[c] = c < HD ? rows[r][c] : ml[r * 2 + (c - HD)];
  }
}

// Dynamic shared memory: the KV stages (and kPrefillDequantOnce's 16-bit tile after them; or the
// 16-bit tail), then qs [64][HD] and ml [64][2].
template <class F, int HD>
__host__ __device__ constexpr int prefill_kv_bytes() {
  static_assert(kMmaStages<F> * mma_stage_bytes<F, HD>() % 128 == 0, "the 16-bit tile's swizzle");
  const int stages =
      kMmaStages<F> * mma_stage_bytes<F, HD>() + (kPrefillDequantOnce<F> ? 2 * 64 * HD * 2 : 0);
  const int tail = F::kQuantized ? 2 * 64 * HD * 2 : 0;
  return stages > tail ? stages : tail;
}
template <class F, int HD>
__host__ __device__ constexpr int prefill_smem_bytes() {
  return prefill_kv_bytes<F, HD>() + kPrefillRows * (HD + 2) * 4;
}

template <class F, int HD>
__global__ void __launch_bounds__(kAttnThreads, 2) prefill_attention_mma_kernel(const AttnArgs a) {
  using KM = typename F::template K<HD>;
  using VM = typename F::template V<HD>;
  constexpr bool Q = F::kQuantized;
  constexpr int S = kMmaStages<F>;
  extern __shared__ __align__(16) uint8_t smem[];
  constexpr int stage_bytes = mma_stage_bytes<F, HD>();
  float(*qs)[HD] = reinterpret_cast<float(*)[HD]>(smem + prefill_kv_bytes<F, HD>());
  float* ml = &qs[kPrefillRows][0];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = lane & 3;
  const int kvh = blockIdx.y, split = blockIdx.z;

  const int tok0 = a.prefill_work[2 * blockIdx.x], n_tok = a.prefill_work[2 * blockIdx.x + 1];
  const int seq = a.seq_of_token[tok0];
  const PrefillBlock b = prefill_block<Q>(tok0, n_tok, a.positions[tok0], a.group);
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks;
  const int tile0 = split * a.tiles_per_split;
  const int tile1 = min(b.n_tiles, tile0 + a.tiles_per_split);
  const int main_end = Q ? min(tile1, b.n_sealed) : tile1;

  MmaTableCursor blocks(table, tile0, Q ? main_end : tile0);
  auto load_tile = [&](int tile, int stg) {
    const int32_t block = Q ? blocks.take(tile) : 0;
    mma_load_tile<F, HD>(smem + stg * stage_bytes, a, table, block, kvh, tile, b.n_ctx);
  };
  mma_pipeline_start<S>(tile0, main_end, load_tile);

  // Query rows -> shared memory (rotated for k4v2) -> A fragments of this lane's two rows.
  if (a.act_bf16) {
    prefill_load_q<__nv_bfloat16, HD>(static_cast<const __nv_bfloat16*>(a.q), a.q_stride, qs, b,
                                      a.group, kvh, threadIdx.x, kAttnThreads);
  } else {
    prefill_load_q<__half, HD>(static_cast<const __half*>(a.q), a.q_stride, qs, b, a.group, kvh,
                               threadIdx.x, kAttnThreads);
  }
  __syncthreads();
  if (a.rotate) hadamard_rows_smem<HD>(&qs[0][0], kPrefillRows);
  const int row = 16 * warp + (lane >> 2);
  const int pos[2] = {prefill_row_pos(b, row, a.group), prefill_row_pos(b, row + 8, a.group)};
  uint32_t qa[2][HD / 16][2];
  float sumq[2];
  make_q_frags<KM, HD>(qs, row, t, qa[0], sumq[0]);
  make_q_frags<KM, HD>(qs, row + 8, t, qa[1], sumq[1]);
  const float sl2 = a.scale * 1.4426950408889634f;  // scores in log2 units: exp2
  MmaWarpState<HD, 2> st;

  for (int tile = tile0; tile < main_end; ++tile) {
    const uint8_t* kd = mma_pipeline_next<S>(smem, stage_bytes, tile, tile0, main_end, load_tile);
    const uint8_t* vd = mma_stage_v<F, HD>(kd);
    const int n_rows = Q ? 64 : min(64, b.n_ctx - tile * 64);
    const int lim[2] = {prefill_tile_limit<Q>(pos[0], tile, b.n_sealed),
                        prefill_tile_limit<Q>(pos[1], tile, b.n_sealed)};
    if constexpr (kPrefillDequantOnce<F>) {
      uint8_t* dk = smem + S * stage_bytes;  // the 16-bit tile: K, then V^T
      prefill_dequant_tile<KM, VM, HD>(kd, vd, 16 * warp, dk, dk + 64 * HD * 2);
      __syncthreads();  // (the next tile's pipeline barrier frees it again)
      mma_prefill_tile<PlainFrag<__half, HD>, DqValuesFrag<HD>, DqValuesFrag<HD>, HD>(
          dk, dk + 64 * HD * 2, n_rows, lim, qa, sumq, sl2, st);
    } else {
      mma_prefill_tile<KM, VM, VM, HD>(kd, vd, n_rows, lim, qa, sumq, sl2, st);
    }
  }
  cp_async_wait<0>();
  __syncthreads();
  if constexpr (Q) {
    if (b.tail_rows > 0 && b.n_sealed >= tile0 && b.n_sealed < tile1) {
      if (a.own_k != nullptr) {  // the call's rows, from its block's first (position p0 - p0 % 64)
        mma_load_own_rows<HD>(smem, a, b.tok0 - b.p0 % kQBlock, kvh, b.tail_rows);
      } else {
        mma_load_tail<HD>(smem, a, seq, kvh, b.tail_rows);
      }
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();
      const uint8_t* kd = smem;
      const uint8_t* vd = smem + 64 * HD * 2;
      const int lim[2] = {prefill_tile_limit<Q>(pos[0], b.n_sealed, b.n_sealed),
                          prefill_tile_limit<Q>(pos[1], b.n_sealed, b.n_sealed)};
      if (a.tail_bf16) {
        mma_prefill_tail<PlainFrag<__nv_bfloat16, HD>, VM, HD>(kd, vd, qs, row, b.tail_rows, lim,
                                                               sl2, st);
      } else {
        mma_prefill_tail<PlainFrag<__half, HD>, VM, HD>(kd, vd, qs, row, b.tail_rows, lim, sl2, st);
      }
    }
  }

  // Each warp writes its own rows of qs (which it alone read), then the block stores them.
  mma_prefill_finish<VM, HD>(st, qs + 16 * warp, ml + 32 * warp, a.n_splits == 1);
  __syncthreads();
  if (a.n_splits > 1) {
    prefill_store_part<HD>(qs, ml, a.part, b, a.group, kvh, a.n_heads, a.n_splits, split,
                           threadIdx.x, kAttnThreads);
    return;
  }
  if (a.rotate) hadamard_rows_smem<HD>(&qs[0][0], kPrefillRows);
  if (a.act_bf16) {
    prefill_store_out<__nv_bfloat16, HD>(qs, static_cast<__nv_bfloat16*>(a.out), a.out_stride, b,
                                         a.group, kvh, threadIdx.x, kAttnThreads);
  } else {
    prefill_store_out<__half, HD>(qs, static_cast<__half*>(a.out), a.out_stride, b, a.group, kvh,
                                  threadIdx.x, kAttnThreads);
  }
}

// grid = (work items, KV heads, splits).
template <class F>
void launch_prefill_attention_mma(const AttnArgs& a, int head_dim, int n_work,
                                  cudaStream_t stream) {
  auto launch = [&](auto hd_tag) {
    constexpr int HD = decltype(hd_tag)::value;
    auto* kernel = &prefill_attention_mma_kernel<F, HD>;
    const int smem = prefill_smem_bytes<F, HD>();
    mma_check_sections<F, HD>(a);
    // prefill_load_q / prefill_store_out move 8 channels (16 bytes) at a time
    CHECK_MSG(reinterpret_cast<uintptr_t>(a.q) % 16 == 0 && a.q_stride % 8 == 0 &&
                  reinterpret_cast<uintptr_t>(a.out) % 16 == 0 && a.out_stride % 8 == 0,
              "the prefill kernel needs 16-byte aligned query and output rows");
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    const dim3 grid(n_work, a.n_kv_heads, a.n_splits);
    kernel<<<grid, kAttnThreads, smem, stream>>>(a);
    CUDA_CHECK_LAUNCH();
  };
  if (head_dim == 64) {
    launch(std::integral_constant<int, 64>{});
  } else {
    CHECK(head_dim == 128);
    launch(std::integral_constant<int, 128>{});
  }
}

// The kernel `k` for a format: SimtF = its CUDA-core traits, MmaF = its tensor-core traits; n =
// query tokens (decode kernels) or work items (prefill). With `blocks_per_sm` set nothing runs:
// it receives the tensor-core decode kernel's resident blocks per SM (0 for the others).
template <class SimtF, class MmaF>
void launch_attention_kernel(AttnKernel k, const AttnArgs& a, int head_dim, int n,
                             cudaStream_t stream, int* blocks_per_sm) {
  if (blocks_per_sm != nullptr && k != AttnKernel::kMma) {
    *blocks_per_sm = 0;  // only the tensor-core decode kernel reports it
    return;
  }
  switch (k) {
    case AttnKernel::kSimt:
      return launch_paged_attention<SimtF>(a, head_dim, n, stream);
    case AttnKernel::kMma:
      return launch_paged_attention_mma<MmaF>(a, head_dim, n, stream, blocks_per_sm);
    case AttnKernel::kPrefillMma:
      return launch_prefill_attention_mma<MmaF>(a, head_dim, n, stream);
  }
}

}  // namespace densekv::cuda
