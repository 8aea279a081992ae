// Paged decode attention on tensor cores, one template for every KV format (instantiated per
// (format, head_dim) in attention_*.cu). Its tile loaders (mma_load_tile, mma_load_tail) and value
// step (mma_accumulate_values) are shared with the prefill kernel (prefill_attention_mma.cuh),
// whose tile function mma_attend_rows takes two groups of 8 query rows per warp. One thread block
// (4 warps) handles one query token, one KV head and up to 8 of its query heads (GQA: the KV head
// is read once for all of them) over a range of 64-token tiles (split-K / flash-decoding: partial
// states merged by a combine kernel).
//
// Per tile:
//   1. The block copies the tile's raw bytes (sealed quantized sections, or 16-bit rows) to shared
//      memory with cp.async, ahead of the compute (plain: 2 stages; 8-bit: 4; 4- and 2-bit: 2
//      pairs of stages, the tiles computed two at a time; the 16-bit tail copied during the
//      last pair (up to mma_early_tail_rows rows) or after the sealed blocks), 16-byte chunks
//      swizzled (kv_fragments.cuh).
//   2. Each warp takes 16 of the tile's tokens and works alone (its own online softmax and output
//      accumulator, merged across warps at the end), mma_attend_tiles (one or two tiles):
//      scores S^T[16 tokens x 8 heads] = K . Q^T with mma.sync m16n8k16 (A = K codes from
//      ldmatrix, dequantized in registers by the format's coding; B = q);
//      online softmax in log2 units on the accumulator fragments (a head's 16 scores in the 8
//      lanes of its column);
//      O^T[HD x 8 heads] += V^T . P^T with A = V^T from ldmatrix.trans, dequantized in registers,
//      and B = P^T, transposed from the score fragments by movmatrix.
// Quantized formats read their sealed 64-token blocks in [0, n_ctx) through their coding and the
// newest partial block from the sequence's 16-bit tail (keys through the 16-bit coding; values
// gathered in the format's channel order so that one accumulator layout serves every tile).
#pragma once
#include <cstdint>
#include <type_traits>

#include "backend/cuda/kv_fragments.cuh"
#include "backend/cuda/paged_attention.cuh"

namespace densekv::cuda {

constexpr int kMmaHeads = 8;  // query heads per block (A rows 0..7)

template <class E>
struct MmaPlain {
  static constexpr bool kQuantized = false;
  template <int HD>
  using K = PlainFrag<E, HD>;
  template <int HD>
  using V = PlainFrag<E, HD>;
  static constexpr int kElem = sizeof(E);
};

template <template <int> class KCT, template <int> class VCT>
struct MmaQuant {
  static constexpr bool kQuantized = true;
  template <int HD>
  using K = KCT<HD>;
  template <int HD>
  using V = VCT<HD>;
  static constexpr int kElem = 2;  // tail rows
};

// A warp's online-softmax state for NQ groups of 8 query rows (the prefill kernel: NQ = 2, 16
// (token, head) rows; decode keeps MmaDecodeState). O^T of row group q: m-tile mt = V n-tiles 2mt
// (rows 0..7) and 2mt + 1 (rows 8..15), row gid = the n-tile's column gid (a channel, in the value
// coding's order), columns = query rows: acc[q][mt] = (2mt col gid, row 2t), (2mt col gid, row
// 2t+1), (2mt+1 col gid, 2t), (.., 2t+1), rows relative to 8q.
template <int HD, int NQ = 1>
struct MmaWarpState {
  float m[NQ];  // running max of row 8q + gid's scores (log2 units)
  float l[NQ];  // this lane's part of row 8q + gid's softmax denominator
  float acc[NQ][HD / 16][4];
  __host__ __device__ MmaWarpState() {
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      m[q] = -INFINITY;
      l[q] = 0.0f;
#pragma unroll
      for (int mt = 0; mt < HD / 16; ++mt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[q][mt][i] = 0.0f;
      }
    }
  }
};

// A fragments of q for coding C: qa[kk][0] pairs with B pair 2kk, qa[kk][1] with pair 2kk + 1,
// channels of query row `row` (of qs) in C's key order. sumq: sum over all channels of the
// rounded values.
template <class C, int HD>
__host__ __device__ __forceinline__ void make_q_frags(const float (*qs)[HD], int row, int t,
                                                      uint32_t (*qa)[2], float& sumq) {
  constexpr int P = 16 / C::kBits;
  float sum = 0.0f;
#pragma unroll
  for (int q = 0; q < HD / 8; ++q) {
    const float lo = qs[row][C::kchan(q / P, t, q % P, 0)];
    const float hi = qs[row][C::kchan(q / P, t, q % P, 1)];
    const uint32_t u = pack2<typename C::T>(lo, hi);
    qa[q / 2][q % 2] = u;
    if constexpr (std::is_same_v<typename C::T, __half>) {
      const float2 f = __half22float2(as_h2(u));
      sum += f.x + f.y;
    } else {
      const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u));
      sum += f.x + f.y;
    }
  }
  sum += shfl_xor(sum, 1);
  sum += shfl_xor(sum, 2);
  sumq = sum;
}

// The K codes of the tile's tokens [r0, r0 + 16) for one lane: w[i] = the words ldmatrix gives
// lane (gid, t) of token row r0 + 8i + gid (word t of each 16-byte chunk).
template <class KC>
__host__ __device__ __forceinline__ void mma_load_k_words(const uint8_t* ks, int r0, int lane,
                                                          uint32_t (&w)[2][KC::kCpr]) {
  constexpr int CPR = KC::kCpr;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if constexpr (CPR >= 4) {
#pragma unroll
      for (int cb = 0; cb < CPR; cb += 4) {
        ldsm_x4(&w[i][cb], ks + k_ldsm_offset(r0 + 8 * i, lane, cb, CPR));
      }
    } else if constexpr (CPR == 2) {
      ldsm_x2(w[i], ks + k_ldsm_offset(r0 + 8 * i, lane, 0, CPR));
    } else {
      ldsm_x1(w[i], ks + k_ldsm_offset(r0 + 8 * i, lane, 0, CPR));
    }
  }
}

// A sealed tile's values dequantized once per prefill block (prefill_dequant_tile): V^T in fp16,
// a row of the tile's 64 tokens (8 swizzled 16-byte chunks) per channel, the rows in the order of
// the main value coding's n-tiles (row 8 nt + col = that coding's channel of n-tile nt, column
// col), so that ldmatrix (no transpose) hands each lane the A fragment the coding's own decode
// makes, and the accumulator keeps that coding's channel order.
template <int HD>
struct DqValuesFrag {
  using T = __half;
  static constexpr int kBits = 16;
};

// The value fragments of a tile's tokens [r0, r0 + 16) in coding VC, dequantized: emit(nt, b0,
// b1) for each n-tile nt (16 / kBits per 16-byte chunk), b0 = tokens (r0 + 2t, +1) and b1 =
// (r0 + 8 + 2t, +1) of the n-tile's column gid (channel VC::vchan). 16-bit rows are loaded in the
// mma's A register order (v_ldsm_offset's a_order).
template <class VC, class Emit>
__host__ __device__ __forceinline__ void mma_decode_values(const uint8_t* vs, int r0, Emit&& emit) {
  const int lane = lane_id(), gid = lane >> 2, t = lane & 3;
  const VC vc;
  constexpr int CPR = VC::kCpr, EM = 16 / VC::kBits;
  constexpr bool kAOrder = VC::kBits == 16;
#pragma unroll
  for (int cb = 0; cb < CPR; cb += 2) {
    uint32_t w[4];
    if constexpr (CPR >= 2) {
      ldsm_x4_t(w, vs + v_ldsm_offset(r0, lane, cb, CPR, kAOrder));
    } else {
      ldsm_x2_t(w, vs + v_ldsm_offset(r0, lane, 0, CPR, kAOrder));
    }
#pragma unroll
    for (int j = 0; j < (CPR >= 2 ? 2 : 1); ++j) {
      const int c = cb + j;
      const auto f0 = vc.vaff(vs, r0 + 2 * t, VC::vgroup(c, gid));
      const auto f1 = vc.vaff(vs, r0 + 8 + 2 * t, VC::vgroup(c, gid));
#pragma unroll
      for (int e = 0; e < EM; ++e) {
        emit(c * EM + e, vc.vapply(VC::vdecode(w[v_ldsm_word(j, 0, CPR, kAOrder)], e), f0),
             vc.vapply(VC::vdecode(w[v_ldsm_word(j, 1, CPR, kAOrder)], e), f1));
      }
    }
  }
}

// Values of the tile's tokens [r0, r0 + 16): O^T += V^T P^T for NQ groups of 8 query rows. B =
// P^T (pb0[q]: tokens r0 + 2t, +1 of row 8q + gid; pb1[q]: r0 + 8 + 2t, +1); A = V^T from pairs
// of V n-tiles: (b0, b1) of n-tile nt = tokens (r0 + 2t, +1) and (r0 + 8 + 2t, +1) of column gid,
// dequantized in registers; rows past n_rows are zeroed (their bytes may be anything, and 0 * inf
// would poison the sum). VC reads the tile; VM is the main format's value coding, whose channel
// order acc uses (VC != VM: 16-bit tail rows of a quantized format, gathered in VM's order).
template <class VC, class VM, int HD, int NQ, bool FULL>
__host__ __device__ __forceinline__ void mma_accumulate_values(const uint8_t* vs, int r0,
                                                               int n_rows, const uint32_t* pb0,
                                                               const uint32_t* pb1,
                                                               float (&acc)[NQ][HD / 16][4]) {
  const int lane = lane_id(), gid = lane >> 2, t = lane & 3;
  using VT = typename VC::T;
  uint32_t mask0 = 0xffffffffu, mask1 = 0xffffffffu;
  if (!FULL && n_rows < r0 + 16) {
    const int ra = r0 + 2 * t, rb = r0 + 8 + 2 * t;
    mask0 = (ra < n_rows ? 0xffffu : 0u) | (ra + 1 < n_rows ? 0xffff0000u : 0u);
    mask1 = (rb < n_rows ? 0xffffu : 0u) | (rb + 1 < n_rows ? 0xffff0000u : 0u);
  }
  uint32_t va[2][2];  // (b0, b1) of the even n-tile, then the odd one
  auto put = [&](int nt, uint32_t b0, uint32_t b1) {
    va[nt & 1][0] = b0 & mask0;
    va[nt & 1][1] = b1 & mask1;
    if (nt & 1) {
#pragma unroll
      for (int q = 0; q < NQ; ++q) {
        mma_16816<VT>(acc[q][nt / 2], va[0][0], va[1][0], va[0][1], va[1][1], pb0[q], pb1[q]);
      }
    }
  };
  constexpr int EM = 16 / VM::kBits;  // n-tiles per chunk of the main coding
  if constexpr (std::is_same_v<VC, DqValuesFrag<HD>>) {
    // matrices: (channel rows 16 m..+7, tokens r0..+7), (rows +8..+15, same), then tokens r0 + 8..
    const int chunk = r0 / 8 + (lane >> 4);
#pragma unroll
    for (int m = 0; m < HD / 16; ++m) {
      const int row = 16 * m + (lane & 7) + ((lane >> 3) & 1) * 8;
      uint32_t a[4];
      ldsm_x4(a, vs + swizzle_chunk(row * 8 + chunk, 8) * 16);
#pragma unroll
      for (int q = 0; q < NQ; ++q) {
        mma_16816<__half>(acc[q][m], a[0] & mask0, a[1] & mask0, a[2] & mask1, a[3] & mask1, pb0[q],
                          pb1[q]);
      }
    }
  } else if constexpr (std::is_same_v<VC, VM>) {
    mma_decode_values<VC>(vs, r0, put);
  } else {
    // 16-bit rows (a quantized format's tail), gathered element by element in VM's channel order:
    // one tile per sequence, so the scalar loads cost little.
    static_assert(VC::kBits == 16, "tail rows are 16-bit");
    constexpr int CPR = VC::kCpr;
    auto ld = [&](int r, int ch) -> uint32_t {
      return *reinterpret_cast<const uint16_t*>(vs + swizzle_chunk(r * CPR + ch / 8, CPR) * 16 +
                                                (ch % 8) * 2);
    };
    const int ra = r0 + 2 * t, rb = r0 + 8 + 2 * t;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt) {
      const int ch = VM::vchan(nt / EM, gid, nt % EM);
      put(nt, ld(ra, ch) | (ld(ra + 1, ch) << 16), ld(rb, ch) | (ld(rb + 1, ch) << 16));
    }
  }
}

// The tile's tokens [r0, r0 + 16 NC) (NC chunks of 16, of n_rows in shared memory; one online-
// softmax step for all) for the warp's NQ groups of 8 query rows: row 8q + gid sees the tile's
// tokens j < lim[q] (its causal limit). The prefill kernel's tile step.
// A = the query rows (qa[q]: rows 8q..8q+7; NQ = 1 leaves rows 8..15 zero), B = K codes from
// ldmatrix, dequantized in registers; online softmax in log2 units on the accumulator fragments
// (one quad of lanes per row); O^T += V^T . P^T with P kept in registers as the B fragment. KC /
// VC read the tile; VM is the main format's value coding, whose channel order the accumulator
// uses (VC != VM: 16-bit tail rows of a quantized format, gathered in VM's order). FULL: every
// row sees all 16 tokens (n_rows >= r0 + 16, lim >= n_rows), so no masks are computed.
template <class KC, class VC, class VM, int HD, int NQ, bool FULL = false, int NC = 1>
__host__ __device__ __forceinline__ void mma_attend_rows(const uint8_t* ks, const uint8_t* vs,
                                                         int r0, int n_rows, const int* lim,
                                                         const uint32_t (*qa)[HD / 16][2],
                                                         const float* sumq, float sl2,
                                                         MmaWarpState<HD, NQ>& st) {
  const int lane = lane_id(), t = lane & 3;

  // Scores of chunk n's tokens r0 + 16n + 8i + 2t + e for row 8q + gid, log2 units, -inf where
  // not visible. The NC chunks' key steps are independent chains (two each: even / odd k-steps).
  float s[NC][NQ][2][2];
#pragma unroll
  for (int n = 0; n < NC; ++n) {
    const int rn = r0 + 16 * n;
    const KC kc;
    constexpr int CPR = KC::kCpr, P = 16 / KC::kBits;
    uint32_t w[2][CPR];  // token rows rn + 8i + gid
    mma_load_k_words<KC>(ks, rn, lane, w);
    float c[2][2][4] = {};  // [token group i][chain]
    typename KC::KAff f{};  // pairs 4 (kk / 2).. (codings with key affines: 4+ pairs per chunk)
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const int q0 = 2 * kk, q1 = 2 * kk + 1;
      if (q0 % kKAffPairs == 0) f = kc.kaff(ks, t, q0);
      const uint32_t a1 = NQ > 1 ? qa[NQ - 1][kk][0] : 0u, a3 = NQ > 1 ? qa[NQ - 1][kk][1] : 0u;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const uint32_t b0 = kc.kapply(KC::kdecode(w[i][q0 / P], q0 % P), f, q0);
        const uint32_t b1 = kc.kapply(KC::kdecode(w[i][q1 / P], q1 % P), f, q1);
        mma_16816<typename KC::T>(c[i][kk & 1], qa[0][kk][0], a1, qa[0][kk][1], a3, b0, b1);
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int r = rn + 8 * i + 2 * t + e;
#pragma unroll
        for (int q = 0; q < NQ; ++q) {
          float v = c[i][0][2 * q + e] + c[i][1][2 * q + e];
          if constexpr (KC::kPerToken) {
            const float2 fx = kc.kfix(ks, r);  // (scale, offset) of per-token keys
            v = fx.x * (v - fx.y * sumq[q]);
          }
          s[n][q][i][e] = FULL || (r < n_rows && r < lim[q]) ? v * sl2 : -INFINITY;
        }
      }
    }
  }

  // Online softmax (the quad of lanes t = 0..3 holds row 8q + gid's 16 NC scores). A row that
  // sees none of the tokens so far (m = -inf) keeps a zero state.
  float p[NC][NQ][2][2];
#pragma unroll
  for (int q = 0; q < NQ; ++q) {
    float mx = -INFINITY;
#pragma unroll
    for (int n = 0; n < NC; ++n) {
      mx = fmaxf(mx,
                 fmaxf(fmaxf(s[n][q][0][0], s[n][q][0][1]), fmaxf(s[n][q][1][0], s[n][q][1][1])));
    }
    mx = fmaxf(mx, shfl_xor(mx, 1));
    mx = fmaxf(mx, shfl_xor(mx, 2));
    const float m_new = fmaxf(st.m[q], mx);
    const bool none = m_new == -INFINITY;
    const float alpha = none ? 1.0f : exp2_approx(st.m[q] - m_new);
    float sum = 0.0f;
#pragma unroll
    for (int n = 0; n < NC; ++n) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          p[n][q][i][e] = none ? 0.0f : exp2_approx(s[n][q][i][e] - m_new);
          sum += p[n][q][i][e];
        }
      }
    }
    st.l[q] = st.l[q] * alpha + sum;
    st.m[q] = m_new;
    const float alpha_a = shfl_idx(alpha, 8 * t);      // row 2t
    const float alpha_b = shfl_idx(alpha, 8 * t + 4);  // row 2t + 1
#pragma unroll
    for (int mt = 0; mt < HD / 16; ++mt) {
      st.acc[q][mt][0] *= alpha_a;
      st.acc[q][mt][1] *= alpha_b;
      st.acc[q][mt][2] *= alpha_a;
      st.acc[q][mt][3] *= alpha_b;
    }
  }

  using VT = typename VC::T;
#pragma unroll
  for (int n = 0; n < NC; ++n) {
    uint32_t pb0[NQ], pb1[NQ];
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      pb0[q] = pack2<VT>(p[n][q][0][0], p[n][q][0][1]);
      pb1[q] = pack2<VT>(p[n][q][1][0], p[n][q][1][1]);
    }
    mma_accumulate_values<VC, VM, HD, NQ, FULL>(vs, r0 + 16 * n, n_rows, pb0, pb1, st.acc);
  }
}

// A decode warp's online-softmax state: this lane's two query heads 2t and 2t + 1 (the score
// fragments' columns). m: running max (log2 units, the same in the 8 lanes of a column); l: this
// lane's part of the denominator; acc: O^T as in MmaWarpState (rows = channels, columns = heads).
template <int HD>
struct MmaDecodeState {
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};
  float acc[1][HD / 16][4] = {};
};

// Decode: one warp's 16 tokens [r0, r0 + 16), r0 = 16 warp, of NT tiles of n_rows tokens each
// (ks[n], vs[n]) for the 8 query heads, every head seeing every token (FULL: n_rows = 64). The NT
// key steps are independent chains and share one online-softmax step (NT = 2: the 4- and 2-bit
// codings' sealed tiles; their loop is bound by each warp's chain of dependent steps, and two
// tiles' chains side by side: int2_kivi and k4v2 5-7% faster on the H100). Scores are S^T = K Q^T
// with the tokens as the mma's 16 rows, so no row is padding: A = K (a0/a2: token r0 + gid, a1/a3:
// r0 + 8 + gid; dequantized in registers as the B fragments of mma_attend_rows), B = q (qa: head
// gid); the accumulators hold (token r0 + gid (+8), heads 2t, 2t + 1). The softmax reduces a
// head over the 8 lanes of its column; P goes to the value step's B fragments (head gid, tokens
// 2t, 2t + 1) through one 8x8 transpose (movmatrix) per 8 tokens. sumq2: the sums of the rounded
// q of heads 2t, 2t + 1 (kfix's offset).
template <class KC, class VC, class VM, int HD, bool FULL = false, int NT = 1>
__host__ __device__ __forceinline__ void mma_attend_tiles(
    const uint8_t* const (&ks)[NT], const uint8_t* const (&vs)[NT], int n_rows,
    const uint32_t (&qa)[HD / 16][2], const float (&sumq2)[2], float sl2, MmaDecodeState<HD>& st) {
  const int r0 = warp_id() * 16;
  if (r0 >= n_rows) return;
  const int lane = lane_id(), gid = lane >> 2, t = lane & 3;

  // s[n][i][j]: tile n's token r0 + 8i + gid, head 2t + j (log2 units; -inf past n_rows). The NT
  // tiles' key steps are independent chains.
  float s[NT][2][2];
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    const KC kc;
    constexpr int CPR = KC::kCpr, P = 16 / KC::kBits;
    uint32_t w[2][CPR];  // token rows r0 + 8i + gid
    mma_load_k_words<KC>(ks[n], r0, lane, w);
    float c[2][4] = {};     // two accumulation chains (even / odd k-steps)
    typename KC::KAff f{};  // pairs 4 (kk / 2).. (codings with key affines: 4+ pairs per chunk)
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const int q0 = 2 * kk, q1 = 2 * kk + 1;
      if (q0 % kKAffPairs == 0) f = kc.kaff(ks[n], t, q0);
      const uint32_t a0 = kc.kapply(KC::kdecode(w[0][q0 / P], q0 % P), f, q0);
      const uint32_t a1 = kc.kapply(KC::kdecode(w[1][q0 / P], q0 % P), f, q0);
      const uint32_t a2 = kc.kapply(KC::kdecode(w[0][q1 / P], q1 % P), f, q1);
      const uint32_t a3 = kc.kapply(KC::kdecode(w[1][q1 / P], q1 % P), f, q1);
      mma_16816<typename KC::T>(c[kk & 1], a0, a1, a2, a3, qa[kk][0], qa[kk][1]);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = r0 + 8 * i + gid;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        float v = c[0][2 * i + j] + c[1][2 * i + j];
        if constexpr (KC::kPerToken) {
          const float2 fx = kc.kfix(ks[n], r);  // (scale, offset) of per-token keys
          v = fx.x * (v - fx.y * sumq2[j]);
        }
        s[n][i][j] = FULL || r < n_rows ? v * sl2 : -INFINITY;
      }
    }
  }

  // Online softmax per head column (8 lanes gid = 0..7 hold its 16 NT scores). A head that sees
  // none of the tokens so far (m = -inf) keeps a zero state.
  float p[NT][2][2];
  float alpha[2];
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    float mx = fmaxf(s[0][0][j], s[0][1][j]);
#pragma unroll
    for (int n = 1; n < NT; ++n) mx = fmaxf(mx, fmaxf(s[n][0][j], s[n][1][j]));
    mx = fmaxf(mx, shfl_xor(mx, 4));
    mx = fmaxf(mx, shfl_xor(mx, 8));
    mx = fmaxf(mx, shfl_xor(mx, 16));
    const float m_new = fmaxf(st.m[j], mx);
    const bool none = !FULL && m_new == -INFINITY;  // a full tile's scores are finite
    alpha[j] = none ? 1.0f : exp2_approx(st.m[j] - m_new);
    float sum = 0.0f;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        p[n][i][j] = none ? 0.0f : exp2_approx(s[n][i][j] - m_new);
        sum += p[n][i][j];
      }
    }
    st.l[j] = st.l[j] * alpha[j] + sum;
    st.m[j] = m_new;
  }
  // The accumulator rescale is skipped while no head's max grew (alpha = 1 exactly), the usual
  // case once a split has seen its first tiles.
  if (warp_any(alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
    for (int mt = 0; mt < HD / 16; ++mt) {
      st.acc[0][mt][0] *= alpha[0];
      st.acc[0][mt][1] *= alpha[1];
      st.acc[0][mt][2] *= alpha[0];
      st.acc[0][mt][3] *= alpha[1];
    }
  }

  // P (token rows, head columns) -> P^T fragments (head gid; tokens 2t, 2t + 1).
  using VT = typename VC::T;
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    const uint32_t pb0 = movmatrix_t(pack2<VT>(p[n][0][0], p[n][0][1]));
    const uint32_t pb1 = movmatrix_t(pack2<VT>(p[n][1][0], p[n][1][1]));
    mma_accumulate_values<VC, VM, HD, 1, FULL>(vs[n], r0, n_rows, &pb0, &pb1, st.acc);
  }
}
// One tile (NT = 1).
template <class KC, class VC, class VM, int HD, bool FULL = false>
__host__ __device__ __forceinline__ void mma_attend_tile(const uint8_t* ks, const uint8_t* vs,
                                                         int n_rows,
                                                         const uint32_t (&qa)[HD / 16][2],
                                                         const float (&sumq2)[2], float sl2,
                                                         MmaDecodeState<HD>& st) {
  const uint8_t* const k1[1] = {ks};
  const uint8_t* const v1[1] = {vs};
  mma_attend_tiles<KC, VC, VM, HD, FULL, 1>(k1, v1, n_rows, qa, sumq2, sl2, st);
}

// The sums of the rounded q of heads 2t and 2t + 1 (decode's kfix offset) from each lane's sum
// of head gid (make_q_frags).
__host__ __device__ __forceinline__ void decode_head_sums(float sumq, float (&sumq2)[2]) {
  const int t = lane_id() & 3;
  sumq2[0] = shfl_idx(sumq, 8 * t);
  sumq2[1] = shfl_idx(sumq, 8 * t + 4);
}

// Writes the accumulator of one group of 8 rows in natural channel order: ra[ch] = acc * fa for
// row 2t, rb[ch] = acc * fb for row 2t + 1.
template <class VM, int HD>
__host__ __device__ __forceinline__ void mma_store_acc(const float (&acc)[HD / 16][4], float* ra,
                                                       float* rb, float fa, float fb) {
  const int gid = lane_id() >> 2;
  constexpr int EM = 16 / VM::kBits;
#pragma unroll
  for (int mt = 0; mt < HD / 16; ++mt) {
    const int ch0 = VM::vchan((2 * mt) / EM, gid, (2 * mt) % EM);
    const int ch1 = VM::vchan((2 * mt + 1) / EM, gid, (2 * mt + 1) % EM);
    ra[ch0] = acc[mt][0] * fa;
    rb[ch0] = acc[mt][1] * fb;
    ra[ch1] = acc[mt][2] * fa;
    rb[ch1] = acc[mt][3] * fb;
  }
}

// Writes a decode warp's state for the merge: red[warp][head][channel] (unnormalized O, channels
// in natural order) and ml[warp][head] = (m, l), l summed over the head's column of lanes.
template <class VM, int HD>
__host__ __device__ __forceinline__ void mma_store_warp_state(MmaDecodeState<HD>& st, float* red,
                                                              float* ml) {
  const int lane = lane_id(), warp = warp_id(), gid = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    st.l[j] += shfl_xor(st.l[j], 4);
    st.l[j] += shfl_xor(st.l[j], 8);
    st.l[j] += shfl_xor(st.l[j], 16);
  }
  float* ra = red + (warp * kMmaHeads + 2 * t) * HD;  // head 2t
  mma_store_acc<VM, HD>(st.acc[0], ra, ra + HD, 1.0f, 1.0f);
  if (gid == 0) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      ml[(warp * kMmaHeads + 2 * t + j) * 2] = st.m[j];
      ml[(warp * kMmaHeads + 2 * t + j) * 2 + 1] = st.l[j];
    }
  }
}

// Copies `bytes` (a multiple of 16) from global to shared memory; the first `code_chunks` 16-byte
// chunks (token rows of `cpr` chunks) are swizzled, the rest (scales, zeros) copied in place.
__device__ __forceinline__ void copy_section_swizzled(uint8_t* dst, const uint8_t* src, int bytes,
                                                      int code_chunks, int cpr) {
  for (int i = threadIdx.x; i < bytes / 16; i += kAttnThreads) {
    cp_async16(dst + (i < code_chunks ? swizzle_chunk(i, cpr) : i) * 16, src + i * 16);
  }
}
// The same for one sealed section of coding C (dst: its shared-memory address, computed once per
// tile), its sizes known at compile time: each thread copies fixed chunks, whose shared-memory
// offsets do not depend on the tile. (Rewritten as two per-thread bases plus constant offsets it
// issued 6% fewer instructions but was 3% slower in decode and 4-5% in 8-bit prefill on the H100.)
template <class C>
__device__ __forceinline__ void copy_sealed_section(uint32_t dst, const uint8_t* src) {
  constexpr int N = C::kSectionBytes / 16, kCode = kQBlock * C::kCpr;
  static_assert(C::kSectionBytes % 16 == 0, "sections are whole 16-byte chunks");
#pragma unroll
  for (int j = 0; j < (N + kAttnThreads - 1) / kAttnThreads; ++j) {
    const int i = static_cast<int>(threadIdx.x) + j * kAttnThreads;
    if (N % kAttnThreads == 0 || i < N) {
      cp_async16(dst + (i < kCode ? swizzle_chunk(i, C::kCpr) : i) * 16, src + i * 16);
    }
  }
}

// Pipeline: plain formats 2 stages of 64 16-bit rows (32 KB at head_dim 128); quantized formats
// stages of one sealed block's K + V sections, and their 16-bit tail (up to 32 KB) loaded into the
// same memory after the sealed blocks: 3 stages (2 tiles per block in flight) for the 4- and 2-bit
// codings (9 KB a stage for int4_kivi; 4 stages were 2-5% slower on the H100 at launches of 64k-1M
// tokens: the deeper queue is a longer drain when the SMs' compute barely keeps up with the
// memory), 4 for the 8-bit ones (17 KB a stage, so 3 blocks per SM: with 3 stages 4 blocks fit,
// which moved the split choice and made shapes 15% faster and others 15% slower).
// The decode kernel runs the 4- and 2-bit codings' sealed tiles in pairs of stages instead
// (kMmaPairs, kMmaDecodeStages); the prefill kernel uses these.
// (a coding's kBits does not depend on the head_dim its fragments are instantiated for)
template <class F>
constexpr int kMmaStages = !F::kQuantized                  ? 2
                           : F::template K<128>::kBits < 8 ? 3
                                                           : 4;
// Resident blocks per SM the registers are budgeted for (launch bounds): 4 for the quantized
// formats (<= 128 registers, 16 warps per SM; their dequantization needs the warps to hide its
// latency), 3 for the 16-bit ones (2 stages of 32 KB shared memory each).
template <class F>
constexpr int kMmaMinBlocks = F::kQuantized ? 4 : 3;

// One stage: a sealed block's K and V sections of one KV head (quantized), or 64 rows of K and V.
template <class F, int HD>
__host__ __device__ constexpr int mma_stage_bytes() {
  if constexpr (F::kQuantized) {
    return F::template K<HD>::kSectionBytes + F::template V<HD>::kSectionBytes;
  } else {
    return 2 * 64 * HD * F::kElem;
  }
}
// The decode kernel takes the 4- and 2-bit codings' sealed tiles two at a time (mma_attend_tiles
// with NT = 2) in 2 units of 2 stages: one unit computed while the next is in flight, so 2 tiles
// ahead as with 3 single stages (3 tiles ahead, 5 stages: int4_kivi 2-8% slower at batch 16-64
// x 1k-4k and 16 x 16k on the H100). One barrier per unit: unit u's copies are awaited, then the
// barrier, then unit u + 1 is issued into the stages of unit u - 1 (a barrier more, with u + 1
// issued before the wait for u: int4_kivi 28/4 16 x 16k and 64 x 4k 2-2.5% slower on the H100).
template <class F>
constexpr bool kMmaPairs = F::kQuantized ? F::template K<128>::kBits < 8 : false;
template <class F>
constexpr int kMmaDecodeStages = kMmaPairs<F> ? 4 : kMmaStages<F>;
// The longest 16-bit tail that the decode kernel copies while its last unit of 2 sealed tiles is
// computed, into the unit's 2 free stages (K rows, then V rows after this many): a multiple of 16
// rows (a warp's) up to 32 (16 KB at head_dim 128).
template <class F, int HD>
__host__ __device__ constexpr int mma_early_tail_rows() {
  const int rows = 2 * mma_stage_bytes<F, HD>() / (2 * HD * 2) / 16 * 16;
  return rows < 32 ? rows : 32;
}
template <class F, int HD>
__host__ __device__ constexpr int mma_smem_bytes() {
  const int stages = kMmaDecodeStages<F> * mma_stage_bytes<F, HD>();
  const int tail = F::kQuantized ? 2 * 64 * HD * 2 : 0;
  const int merge = (kAttnWarps * kMmaHeads * (HD + 3) + 2 * kMmaHeads) * 4;  // red, ml, fw, m, l
  return stages > tail ? (stages > merge ? stages : merge) : (tail > merge ? tail : merge);
}

// The launch's sealed sections must be the sizes the kernel for F was compiled for.
template <class F, int HD>
void mma_check_sections(const AttnArgs& a) {
  if constexpr (F::kQuantized) {
    CHECK(a.k_bytes == static_cast<size_t>(F::template K<HD>::kSectionBytes) &&
          a.v_bytes == static_cast<size_t>(F::template V<HD>::kSectionBytes));
  }
}

// The block ids of a split's tiles in order, each read from the block table two tiles ahead of
// its use, so that a tile's copies do not wait for the load of its table entry (quantized
// formats: one tile = one block).
struct MmaTableCursor {
  const int32_t* table;
  int end;
  int32_t next, after;  // the blocks of the next two tiles
  __device__ MmaTableCursor(const int32_t* tbl, int first, int end_)
      : table(tbl),
        end(end_),
        next(first < end_ ? tbl[first] : 0),
        after(first + 1 < end_ ? tbl[first + 1] : 0) {}
  // the block of `tile`; tiles are taken in order
  __device__ __forceinline__ int32_t take(int tile) {
    const int32_t b = next;
    next = after;
    if (tile + 2 < end) after = table[tile + 2];
    return b;
  }
};

// Where a stage's V starts (its K starts at kd).
template <class F, int HD, class P>
__device__ __forceinline__ P* mma_stage_v(P* kd) {
  if constexpr (F::kQuantized) {
    return kd + F::template K<HD>::kSectionBytes;
  } else {
    return kd + mma_stage_bytes<F, HD>() / 2;
  }
}
// Issues the copies of full tile `tile` (a sealed block of a quantized format, block id `block`;
// 64 plain rows of [0, n_ctx) from the block table) of kv head `kvh` into the stage at `kd`: K at
// kd, V at mma_stage_v(kd). Shared by the decode and prefill kernels.
template <class F, int HD>
__device__ __forceinline__ void mma_load_tile(uint8_t* kd, const AttnArgs& a, const int32_t* table,
                                              int32_t block, int kvh, int tile, int n_ctx) {
  using KM = typename F::template K<HD>;
  using VM = typename F::template V<HD>;
  const uint32_t ks = smem_u32(kd), vs = smem_u32(mma_stage_v<F, HD>(kd));
  if constexpr (F::kQuantized) {
    const uint8_t* blk = a.base + static_cast<size_t>(block) * a.block_bytes;
    copy_sealed_section<KM>(ks, blk + kvh * KM::kSectionBytes);
    copy_sealed_section<VM>(vs, blk + a.n_kv_heads * KM::kSectionBytes + kvh * VM::kSectionBytes);
  } else {
    constexpr int kRow = HD * F::kElem;
    constexpr int CPR = kRow / 16;
    constexpr int kRowsPerPass = kAttnThreads / CPR;
    const int bs = a.block_size;
    const int r0 = tile * 64;
    const int n = min(64, n_ctx - r0);
    const int c = threadIdx.x % CPR;
    const size_t v_off = static_cast<size_t>(a.n_kv_heads) * bs * kRow;
#pragma unroll 2
    for (int r = threadIdx.x / CPR; r < n; r += kRowsPerPass) {
      const int p = r0 + r;
      const int blk = a.block_shift >= 0 ? p >> a.block_shift : p / bs;
      const int in = p - blk * bs;
      const uint8_t* src = a.base + static_cast<size_t>(table[blk]) * a.block_bytes +
                           (static_cast<size_t>(kvh) * bs + in) * kRow + c * 16;
      const int dst = swizzle_chunk(r * CPR + c, CPR) * 16;
      cp_async16(ks + dst, src);
      cp_async16(vs + dst, src + v_off);
    }
  }
}

// The cp.async pipeline over the full tiles [tile0, end) in S stages of stage_bytes at smem, shared
// by the decode and prefill kernels: mma_pipeline_start issues the first S - 1 tiles;
// mma_pipeline_next waits for tile `tile` (for every thread), issues tile + S - 1 into the stage
// that tile - 1 freed, and returns tile's stage. load(tile, stage) issues one tile's copies.
template <int S, class Load>
__device__ __forceinline__ void mma_pipeline_start(int tile0, int end, Load&& load) {
#pragma unroll
  for (int i = 0; i < S - 1; ++i) {
    if (tile0 + i < end) load(tile0 + i, i);
    cp_async_commit();
  }
}
template <int S, class Load>
__device__ __forceinline__ uint8_t* mma_pipeline_next(uint8_t* smem, int stage_bytes, int tile,
                                                      int tile0, int end, Load&& load) {
  cp_async_wait<S - 2>();  // tile's group is complete
  __syncthreads();         // ... for every thread; and the stage of tile - 1 is free
  const int next = tile + S - 1;
  if (next < end) load(next, (next - tile0) % S);
  cp_async_commit();
  return smem + ((tile - tile0) % S) * stage_bytes;
}

// Issues the copies of the first `rows` 16-bit rows of sequence `seq`'s tail (kv head `kvh`): K
// at smem, V at smem + v_off (default: 64 * HD * 2, one 16-bit tile), swizzled like 16-bit tiles.
template <int HD>
__device__ __forceinline__ void mma_load_tail(uint8_t* smem, const AttnArgs& a, int seq, int kvh,
                                              int rows, int v_off = 64 * HD * 2) {
  constexpr int kTail16 = 64 * HD * 2;  // one 16-bit K (or V) tile
  constexpr int kCpr16 = HD * 2 / 16;
  const uint8_t* tl = a.tail_base + static_cast<size_t>(a.tails[seq]) * a.tail_block_bytes;
  copy_section_swizzled(smem, tl + static_cast<size_t>(kvh) * kTail16, rows * HD * 2, rows * kCpr16,
                        kCpr16);
  copy_section_swizzled(smem + v_off, tl + static_cast<size_t>(a.n_kv_heads + kvh) * kTail16,
                        rows * HD * 2, rows * kCpr16, kCpr16);
}

// The same from the call's own rows (AttnArgs::own_k / own_v): rows [row0, row0 + rows) of kv head
// `kvh`.
template <int HD>
__device__ __forceinline__ void mma_load_own_rows(uint8_t* smem, const AttnArgs& a, int row0,
                                                  int kvh, int rows) {
  constexpr int kTail16 = 64 * HD * 2;
  constexpr int kCpr16 = HD * 2 / 16;
  const int64_t stride = a.own_stride * 2;  // bytes
  const int64_t base = row0 * stride + static_cast<int64_t>(kvh) * HD * 2;
  const auto* k = static_cast<const uint8_t*>(a.own_k) + base;
  const auto* v = static_cast<const uint8_t*>(a.own_v) + base;
  for (int i = threadIdx.x; i < rows * kCpr16; i += kAttnThreads) {
    const int64_t src = (i / kCpr16) * stride + (i % kCpr16) * 16;
    const int dst = swizzle_chunk(i, kCpr16) * 16;
    cp_async16(smem + dst, k + src);
    cp_async16(smem + kTail16 + dst, v + src);
  }
}

// A decode block's query rows, 8 channels per thread: thread i holds channels [8 (i % (HD / 8)),
// + 8) of head h0 + i / (HD / 8) as raw 16-bit values (one 16-byte load where q's address and
// stride allow it; zeros for heads past n_h). Loaded before the tile copies are issued, so that
// the load does not queue behind them, and stored to shared memory after.
struct MmaQueryChunk {
  uint4 raw;
  int g, c;  // head (of the block's 8) and first channel
};
template <int HD>
__device__ __forceinline__ MmaQueryChunk mma_load_query(const AttnArgs& a, int tok, int h0,
                                                        int n_h) {
  static_assert(kMmaHeads * HD / 8 <= kAttnThreads, "one chunk per thread");
  MmaQueryChunk q;
  q.raw = make_uint4(0, 0, 0, 0);
  q.g = static_cast<int>(threadIdx.x) / (HD / 8);
  q.c = static_cast<int>(threadIdx.x) % (HD / 8) * 8;
  if (q.g < n_h) {  // threads past the chunks have g >= kMmaHeads >= n_h
    const auto* src = static_cast<const uint16_t*>(a.q) + static_cast<int64_t>(tok) * a.q_stride +
                      (h0 + q.g) * HD + q.c;
    if (((reinterpret_cast<uintptr_t>(a.q) | (a.q_stride * 2)) & 15) == 0) {
      q.raw = *reinterpret_cast<const uint4*>(src);
    } else {
      uint16_t* e = reinterpret_cast<uint16_t*>(&q.raw);
#pragma unroll
      for (int i = 0; i < 8; ++i) e[i] = src[i];
    }
  }
  return q;
}
template <int HD>
__device__ __forceinline__ void mma_store_query(const MmaQueryChunk& q, bool bf16,
                                                float (*qs)[HD]) {
  if (q.g >= kMmaHeads) return;
  float x[8];
  if (bf16) {
#pragma unroll
    for (int i = 0; i < 8; ++i) x[i] = to_f32(reinterpret_cast<const __nv_bfloat16*>(&q.raw)[i]);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) x[i] = to_f32(reinterpret_cast<const __half*>(&q.raw)[i]);
  }
  float4* d = reinterpret_cast<float4*>(&qs[q.g][q.c]);
  d[0] = make_float4(x[0], x[1], x[2], x[3]);
  d[1] = make_float4(x[4], x[5], x[6], x[7]);
}

template <class F, int HD>
__global__ void __launch_bounds__(kAttnThreads, kMmaMinBlocks<F>)
    paged_attention_mma_kernel(const AttnArgs a) {
  using KM = typename F::template K<HD>;
  using VM = typename F::template V<HD>;
  // Static shared memory is qs alone, a multiple of 128 bytes, so that the dynamic stages after it
  // keep the 128-byte alignment their swizzle assumes (a 192-byte array here cost bf16 3%).
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ __align__(16) float qs[kMmaHeads][HD];
  constexpr int S = kMmaStages<F>;
  constexpr int stage_bytes = mma_stage_bytes<F, HD>();
  constexpr int kTail16 = 64 * HD * 2;  // one 16-bit K (or V) tile
  const int lane = threadIdx.x & 31, gid = lane >> 2, t = lane & 3;

  const AttnWork w = attn_work<F>(a, kMmaHeads);
  const int kvh = w.kvh, h0 = w.h0, n_h = w.n_h, tok = w.tok, split = w.split;
  const int seq = w.seq, n_ctx = w.n_ctx;
  const int32_t* table = w.table;
  const int n_sealed = w.n_sealed, tail_rows = w.tail_rows, tile0 = w.tile0, tile1 = w.tile1;

  // Full tiles (plain: all; quantized: the sealed blocks): S - 1 in flight ahead of the compute.
  const int main_end = F::kQuantized ? min(tile1, n_sealed) : tile1;
  MmaTableCursor blocks(table, tile0, F::kQuantized ? main_end : tile0);
  // Launched as a programmatic dependent: the batch arrays and the block table (written before
  // the kernel before this one) are read; the query, the cache and the outputs wait for its end.
  grid_dependency_wait();
  auto load_tile = [&](int tile, int stg) {
    const int32_t block = F::kQuantized ? blocks.take(tile) : 0;
    mma_load_tile<F, HD>(smem + stg * stage_bytes, a, table, block, kvh, tile, n_ctx);
  };
  // Query heads: loaded first, then to shared memory (rotated for k4v2) -> A fragments.
  const MmaQueryChunk q_chunk = mma_load_query<HD>(a, tok, h0, n_h);
  // Pairs: unit u = tiles tile0 + 2u, + 1 in stages 2 (u % 2), + 1; one commit group per unit.
  const int n_units = main_end > tile0 ? (main_end - tile0 + 1) / 2 : 0;
  auto load_unit = [&](int u) {
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      if (tile0 + 2 * u + k < main_end) load_tile(tile0 + 2 * u + k, 2 * (u % 2) + k);
    }
    cp_async_commit();
  };
  // A quantized format's 16-bit tail (the last split's), attended after the sealed tiles. The 4-
  // and 2-bit codings copy a tail of at most kEarlyTail rows while their last unit is computed;
  // a longer one (and the 8-bit codings' tail) is copied once the sealed tiles are done.
  constexpr int kEarlyTail = mma_early_tail_rows<F, HD>();
  const bool has_tail = F::kQuantized && n_sealed < tile1 && n_sealed >= tile0;
  const bool early_tail = kMmaPairs<F> && has_tail && n_units > 0 && tail_rows <= kEarlyTail;
  static_assert(stage_bytes % 128 == 0 && kEarlyTail * HD * 2 % 128 == 0, "swizzled at 128 B");
  if constexpr (kMmaPairs<F>) {
    if (n_units > 0) load_unit(0);
  } else {
    mma_pipeline_start<S>(tile0, main_end, load_tile);
  }
  mma_store_query<HD>(q_chunk, a.act_bf16, qs);
  __syncthreads();
  if (a.rotate) hadamard_rows_smem<HD>(&qs[0][0], kMmaHeads);
  uint32_t qa[HD / 16][2];
  float sumq = 0.0f, sumq2[2];
  make_q_frags<KM, HD>(qs, gid, t, qa, sumq);
  decode_head_sums(sumq, sumq2);
  const float sl2 = a.scale * 1.4426950408889634f;  // scores in log2 units: exp2
  MmaDecodeState<HD> st;

  if constexpr (kMmaPairs<F>) {
    for (int u = 0; u < n_units; ++u) {
      cp_async_wait<0>();  // unit u's group (the only one in flight) is complete
      __syncthreads();     // ... for every thread, and every warp is done with unit u - 1
      if (u + 1 < n_units) {
        load_unit(u + 1);  // into unit u - 1's stages
      } else if (early_tail) {
        mma_load_tail<HD>(smem + 2 * ((u + 1) % 2) * stage_bytes, a, seq, kvh, tail_rows,
                          kEarlyTail * HD * 2);
        cp_async_commit();
      }
      const uint8_t* const kd[2] = {smem + 2 * (u % 2) * stage_bytes,
                                    smem + (2 * (u % 2) + 1) * stage_bytes};
      const uint8_t* const vd[2] = {mma_stage_v<F, HD>(kd[0]), mma_stage_v<F, HD>(kd[1])};
      if (tile0 + 2 * u + 1 < main_end) {
        mma_attend_tiles<KM, VM, VM, HD, true, 2>(kd, vd, 64, qa, sumq2, sl2, st);
      } else {
        mma_attend_tile<KM, VM, VM, HD, true>(kd[0], vd[0], 64, qa, sumq2, sl2, st);
      }
    }
  } else {
    for (int tile = tile0; tile < main_end; ++tile) {
      const uint8_t* kd = mma_pipeline_next<S>(smem, stage_bytes, tile, tile0, main_end, load_tile);
      const uint8_t* vd = mma_stage_v<F, HD>(kd);
      const int n_rows = F::kQuantized ? 64 : min(64, n_ctx - tile * 64);
      mma_attend_tile<KM, VM, VM, HD, F::kQuantized>(kd, vd, n_rows, qa, sumq2, sl2, st);
    }
  }
  // The split merge (a programmatic dependent launch) may start now: its blocks take the SMs that
  // finished blocks leave and wait for this grid's end (triggered at the start instead, they
  // crowd onto the few free SMs: int4_kivi 32/8 1 x 4k 14% slower). Without splits the next
  // kernel starts when this one exits (a next attention kernel placed early: 6-7% slower at
  // 8-bit 28/4 64 x 1k).
  if (a.n_splits > 1) launch_dependents();
  cp_async_wait<0>();
  __syncthreads();
  // The tail, attended outside the loop so that its gather addresses are not held in registers
  // across it: from the last unit's free stages, or loaded into the stage memory now.
  if constexpr (F::kQuantized) {
    if (has_tail) {
      uint8_t* kd = smem;
      uint8_t* vd = smem + kTail16;
      if (early_tail) {
        kd = smem + 2 * (n_units % 2) * stage_bytes;
        vd = kd + kEarlyTail * HD * 2;
      } else {
        mma_load_tail<HD>(smem, a, seq, kvh, tail_rows);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
      }
      uint32_t qt[HD / 16][2];
      float sumt = 0.0f;
      const float no_offset[2] = {0.0f, 0.0f};  // 16-bit keys: kfix has no offset
      if (a.tail_bf16) {
        using P16 = PlainFrag<__nv_bfloat16, HD>;
        make_q_frags<P16, HD>(qs, gid, t, qt, sumt);
        mma_attend_tile<P16, P16, VM, HD>(kd, vd, tail_rows, qt, no_offset, sl2, st);
      } else {
        using P16 = PlainFrag<__half, HD>;
        make_q_frags<P16, HD>(qs, gid, t, qt, sumt);
        mma_attend_tile<P16, P16, VM, HD>(kd, vd, tail_rows, qt, no_offset, sl2, st);
      }
      __syncthreads();
    }
  }

  // Merge the 4 warps: red [warp][head][HD], ml [warp][head] (m, l); each head's max, warp
  // weights (fw) and denominator computed once, then 4 channels of a head per thread and step.
  float* red = reinterpret_cast<float*>(smem);
  float* ml = red + kAttnWarps * kMmaHeads * HD;
  float* fw = ml + kAttnWarps * kMmaHeads * 2;  // [warp][head]
  float* head_m = fw + kAttnWarps * kMmaHeads;
  float* head_l = head_m + kMmaHeads;
  // (mma_smem_bytes holds the merge)
  mma_store_warp_state<VM, HD>(st, red, ml);
  __syncthreads();
  if (threadIdx.x < kMmaHeads) {
    const int g = threadIdx.x;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) m = fmaxf(m, ml[(w * kMmaHeads + g) * 2]);
    float den = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) {
      const float mw = ml[(w * kMmaHeads + g) * 2];
      const float f = mw == -INFINITY ? 0.0f : exp2_approx(mw - m);
      fw[w * kMmaHeads + g] = f;
      den += f * ml[(w * kMmaHeads + g) * 2 + 1];
    }
    head_m[g] = m;
    head_l[g] = den;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kMmaHeads * HD / 4; i += kAttnThreads) {
    const int g = i / (HD / 4), c = i % (HD / 4) * 4;
    float4 num = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) {
      const float f = fw[w * kMmaHeads + g];
      const float4 r = *reinterpret_cast<const float4*>(red + (w * kMmaHeads + g) * HD + c);
      num.x += f * r.x, num.y += f * r.y, num.z += f * r.z, num.w += f * r.w;
    }
    if (a.n_splits == 1) {
      const float den = head_l[g];
      *reinterpret_cast<float4*>(&qs[g][c]) =
          den > 0.0f ? make_float4(num.x / den, num.y / den, num.z / den, num.w / den)
                     : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    } else if (g < n_h) {
      float* dst =
          a.part +
          ((static_cast<int64_t>(tok) * a.n_heads + h0 + g) * a.n_splits + split) * kPartRow<HD>;
      *reinterpret_cast<float4*>(dst + c) = num;
      if (c == 0) reinterpret_cast<float2*>(dst + HD)[0] = make_float2(head_m[g], head_l[g]);
    }
  }
  if (a.n_splits > 1) return;
  __syncthreads();
  if (a.rotate) hadamard_rows_smem<HD>(&qs[0][0], kMmaHeads);
  for (int i = threadIdx.x; i < n_h * HD; i += kAttnThreads) {
    const int g = i / HD, c = i % HD;
    const int64_t off = static_cast<int64_t>(tok) * a.out_stride + (h0 + g) * HD + c;
    if (a.act_bf16) {
      static_cast<__nv_bfloat16*>(a.out)[off] = __float2bfloat16_rn(qs[g][c]);
    } else {
      static_cast<__half*>(a.out)[off] = __float2half_rn(qs[g][c]);
    }
  }
}

// The kernel for (F, HD), its shared memory set up once, and how many of its blocks fit on one SM
// (the split model's slots).
template <class F, int HD>
struct MmaDecodeKernel {
  decltype(&paged_attention_mma_kernel<F, HD>) fn = &paged_attention_mma_kernel<F, HD>;
  int smem = 0;
  int blocks_per_sm = 0;
};
template <class F, int HD>
const MmaDecodeKernel<F, HD>& mma_decode_kernel() {
  static const MmaDecodeKernel<F, HD> k = [] {
    MmaDecodeKernel<F, HD> r;
    r.smem = mma_smem_bytes<F, HD>();
    CUDA_CHECK(cudaFuncSetAttribute(r.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, r.smem));
    CUDA_CHECK(cudaFuncSetAttribute(r.fn, cudaFuncAttributePreferredSharedMemoryCarveout,
                                    cudaSharedmemCarveoutMaxShared));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&r.blocks_per_sm, r.fn, kAttnThreads,
                                                             r.smem));
    return r;
  }();
  return k;
}

// Launches the kernel; with `blocks_per_sm` set, only reports its resident blocks per SM.
template <class F, int HD>
void launch_paged_attention_mma_hd(const AttnArgs& a, int n_tokens, cudaStream_t stream,
                                   int* blocks_per_sm) {
  const MmaDecodeKernel<F, HD>& k = mma_decode_kernel<F, HD>();
  mma_check_sections<F, HD>(a);
  if (blocks_per_sm != nullptr) {
    *blocks_per_sm = k.blocks_per_sm;
    return;
  }
  AttnArgs args = a;
  args.head_chunks = (a.group + kMmaHeads - 1) / kMmaHeads;
  const LaunchConfig lc(dim3(a.n_kv_heads * args.head_chunks, n_tokens, a.n_splits),
                        dim3(kAttnThreads), k.smem, stream, a.pdl);
  CUDA_CHECK(cudaLaunchKernelEx(&lc.cfg, k.fn, args));
}

template <class F>
void launch_paged_attention_mma(const AttnArgs& a, int head_dim, int n_tokens, cudaStream_t stream,
                                int* blocks_per_sm = nullptr) {
  if (head_dim == 64) {
    launch_paged_attention_mma_hd<F, 64>(a, n_tokens, stream, blocks_per_sm);
  } else {
    CHECK(head_dim == 128);
    launch_paged_attention_mma_hd<F, 128>(a, n_tokens, stream, blocks_per_sm);
  }
}

}  // namespace densekv::cuda
