// Block-wide passes over one logits row by kThreads threads (the sample and logprobs kernels): ids
// ordered by (logit descending, id ascending), the host Sampler's candidate order, through
// order_key (a larger logit has a larger key); radix selects over counts or exact fixed-point
// masses of the weights w = exp(l - max); a bitonic sort of candidates; vectorized row passes.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "backend/cuda/cuda_common.cuh"

namespace densekv::row_select {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

// Larger float -> larger key (no NaN in logits).
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The host's candidate order: larger l first, then smaller id.
__device__ __forceinline__ bool before(float la, int ia, float lb, int ib) {
  return la > lb || (la == lb && ia < ib);
}

// Sorts (l, id)[0, n) into the host's order (before) by a bitonic sort over the next power of two,
// padded with (-inf, INT32_MAX): the arrays hold at least that many. Ends with a barrier.
__device__ inline void sort_candidates(float* l, int* id, int n) {
  int np = 1;
  while (np < n) np *= 2;
  for (int i = n + threadIdx.x; i < np; i += kThreads) l[i] = -INFINITY, id[i] = INT32_MAX;
  __syncthreads();
  for (int k = 2; k <= np; k *= 2) {
    for (int j = k / 2; j > 0; j /= 2) {
      for (int i = threadIdx.x; i < np; i += kThreads) {
        const int o = i ^ j;
        if (o > i) {
          const bool up = (i & k) == 0;  // this run in the host's order
          const float li = l[i], lo = l[o];
          const int ii = id[i], io = id[o];
          if (before(lo, io, li, ii) == up) {
            l[i] = lo, id[i] = io;
            l[o] = li, id[o] = ii;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Calls f(id, l) for each id of this thread's share of the row: groups of 8 consecutive ids by
// 16-byte loads, kAhead groups in flight (when the row is 16-byte aligned), then the rest one by
// one. The share depends only on (vocab, alignment): every pass gives a thread the same ids.
template <int kAhead = 2, class T, class F>
__device__ __forceinline__ void for_row(const T* row, int vocab, F f) {
  int done = 0;
  if (reinterpret_cast<uintptr_t>(row) % 16 == 0) {
    const int groups = vocab / 8;
    for (int g0 = threadIdx.x; g0 < groups; g0 += kAhead * kThreads) {
      float x[kAhead][8];
#pragma unroll
      for (int a = 0; a < kAhead; ++a) {
        if (g0 + a * kThreads < groups) cuda::load8(row + 8 * (g0 + a * kThreads), x[a]);
      }
#pragma unroll
      for (int a = 0; a < kAhead; ++a) {
        const int g = g0 + a * kThreads;
        if (g < groups) {
#pragma unroll
          for (int e = 0; e < 8; ++e) f(8 * g + e, x[a][e]);
        }
      }
    }
    done = groups * 8;
  }
  for (int i = done + static_cast<int>(threadIdx.x); i < vocab; i += kThreads) {
    f(i, cuda::to_f32(row[i]));
  }
}

using Mass = unsigned __int128;

// What the selects keep in shared memory.
struct SelectShared {
  unsigned long long hist[4][256];  // select_key: [16-bit piece][digit]
  int warp_count[kWarps];
  float warp_max[kWarps];
  uint32_t prefix;
  Mass above;
  int token;
};

template <class T>
__device__ __forceinline__ float scaled(const T* row, int i, float inv_t) {
  return cuda::to_f32(row[i]) * inv_t;
}

// The largest l = logit x inv_t of the row.
template <class T>
__device__ float row_max(const T* row, int vocab, float inv_t, SelectShared& sh) {
  float mx = -FLT_MAX;
  for (int i = threadIdx.x; i < vocab; i += kThreads) mx = fmaxf(mx, scaled(row, i, inv_t));
  mx = cuda::warp_max(mx);
  if (threadIdx.x % 32 == 0) sh.warp_max[threadIdx.x / 32] = mx;
  __syncthreads();
  mx = sh.warp_max[0];
  for (int w = 1; w < kWarps; ++w) mx = fmaxf(mx, sh.warp_max[w]);
  return mx;
}

// Weights w = exp(l - m) in (0, 1] as fixed point with 2^62 units (truncated below 2^-62: exact
// for every float w >= 2^-38), so that masses are sums of integers, exact whatever their order
// (deterministic), as 128-bit Mass (at most 2^17 ids x 2^62).
__device__ __forceinline__ uint64_t fixed_weight(float l, float mx) {
  const float a = expf(l - mx) * 2147483648.0f;  // w 2^31: exact
  const float hi = floorf(a);
  return (static_cast<uint64_t>(hi) << 31) | static_cast<uint64_t>((a - hi) * 2147483648.0f);
}
__device__ __forceinline__ double mass_to_double(Mass m) {
  return static_cast<double>(static_cast<uint64_t>(m >> 64)) * 18446744073709551616.0 +
         static_cast<double>(static_cast<uint64_t>(m));
}
// x: a non-negative integer below 2^117.
__device__ __forceinline__ Mass mass_from_double(double x) {
  const double hi = floor(x / 18446744073709551616.0);
  return (static_cast<Mass>(static_cast<uint64_t>(hi)) << 64) |
         static_cast<uint64_t>(x - hi * 18446744073709551616.0);
}
// The logit of a key (order_key's inverse).
__device__ __forceinline__ float key_logit(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// Which ids a select or sum counts: key >= lo, and w >= min_p when min_p > 0.
struct Eligible {
  uint32_t lo = 0;
  float min_p = 0.0f;
  __device__ bool operator()(uint32_t key, float l, float mx) const {
    return key >= lo && (min_p <= 0.0f || static_cast<double>(expf(l - mx)) >= min_p);
  }
};

// The key t with weight(key > t) < target <= weight(key >= t) over the eligible ids (weights: 1
// per id, or fixed_weight), 8 bits a pass from the top; sh.above = weight(key > t). The smallest
// key when the eligible weight is below target. The lanes of a warp with the same digit add up
// first (a weight < 2^32 split in 16-bit halves for the 32-bit warp sums), then one atomic each.
template <class T, bool kMass>
__device__ uint32_t select_key(const T* row, int vocab, float inv_t, float mx, Mass target,
                               Eligible el, SelectShared& sh) {
  const int lane = threadIdx.x % 32;
  uint32_t prefix = 0, mask = 0;
  Mass above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 4 * 256; d += kThreads) (&sh.hist[0][0])[d] = 0;
    __syncthreads();
    for (int base = 0; base < vocab; base += kThreads) {
      const int i = base + static_cast<int>(threadIdx.x);
      int digit = -1;
      uint64_t v = 0;
      if (i < vocab) {
        const float l = scaled(row, i, inv_t);
        const uint32_t key = order_key(l);
        if ((key & mask) == prefix && el(key, l, mx)) {
          digit = static_cast<int>((key >> shift) & 255);
          v = kMass ? fixed_weight(l, mx) : 1u;
        }
      }
      const unsigned same = __match_any_sync(0xffffffffu, digit);
      const bool leader = digit >= 0 && lane == __ffs(same) - 1;
#pragma unroll
      for (int k = 0; k < (kMass ? 4 : 1); ++k) {  // 16-bit pieces: warp sums < 2^21
        const uint32_t piece =
            __reduce_add_sync(same, static_cast<uint32_t>(v >> (16 * k)) & 0xffffu);
        if (leader) atomicAdd(&sh.hist[k][digit], static_cast<unsigned long long>(piece));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      Mass acc = above;
      int d = 255;
      for (; d > 0; --d) {
        const Mass h = static_cast<Mass>(sh.hist[0][d]) + (static_cast<Mass>(sh.hist[1][d]) << 16) +
                       (static_cast<Mass>(sh.hist[2][d]) << 32) +
                       (static_cast<Mass>(sh.hist[3][d]) << 48);
        if (acc + h >= target) break;
        acc += h;
      }
      sh.prefix = prefix | (static_cast<uint32_t>(d) << shift);
      sh.above = acc;
    }
    __syncthreads();
    prefix = sh.prefix;
    above = sh.above;
    mask |= 255u << shift;
  }
  return prefix;
}

// Calls f(rank, id) for each id with key k whose rank among the ids with key k (0-based, in id
// order) is in [lo, hi), in one thread each.
template <class T, class F>
__device__ void ids_with_key(const T* row, int vocab, float inv_t, uint32_t k, int lo, int hi, F f,
                             SelectShared& sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int seen = 0;  // ids with key k before this chunk
  for (int base = 0; base < vocab; base += kThreads) {
    const int i = base + static_cast<int>(threadIdx.x);
    const bool hit = i < vocab && order_key(scaled(row, i, inv_t)) == k;
    const unsigned ballot = __ballot_sync(0xffffffffu, hit);
    __syncthreads();  // (the previous chunk's counts are read)
    if (lane == 0) sh.warp_count[warp] = __popc(ballot);
    __syncthreads();
    int before = seen, total = 0;
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) before += sh.warp_count[w];
      total += sh.warp_count[w];
    }
    const int rank = before + __popc(ballot & ((1u << lane) - 1));
    if (hit && rank >= lo && rank < hi) f(rank, i);
    seen += total;
    if (seen >= hi) break;  // uniform: every thread has the same seen
  }
  __syncthreads();
}

// The j-th id (0-based, in id order) with key k, or -1.
template <class T>
__device__ int nth_with_key(const T* row, int vocab, float inv_t, uint32_t k, int j,
                            SelectShared& sh) {
  if (threadIdx.x == 0) sh.token = -1;
  ids_with_key(
      row, vocab, inv_t, k, j, j + 1, [&](int, int i) { sh.token = i; }, sh);
  return sh.token;
}

}  // namespace densekv::row_select
