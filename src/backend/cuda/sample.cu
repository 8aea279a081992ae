// CUDA backend: sampling of logits rows on the device (Backend::sample), Sampler::draw's algorithm
// (engine/sampler.cpp) with the sequence's RNG draw u given, so that only the token ids come to
// the host. One block of 1024 threads per row:
//   1. l = logit * (1 / temperature), m = max l, w = exp(l - m) (floats, as the host).
//   2. No filter (top_k off, top_p 1, min_p 0): the candidates are every id in id order; r = u x
//      sum(w) and the token is the first id whose running sum of w passes r (each warp scans a
//      contiguous range, the ranges in order).
//   3. Filters: a radix select over the order-preserving bits of l finds the threshold of the
//      top_k-th largest (count) or of the top_p mass (sum of w, with a little slack); the ids at
//      or above it (and with w >= min_p) are collected, at most kMaxCandidates, and sorted by (l
//      descending, id ascending) as the host orders them; then one thread runs the host's cuts
//      (top_k, top_p, min_p) and its draw over that list in double precision. A row with more
//      candidates, or whose top_p mass the list does not reach, returns -1: the engine samples it
//      on the host.
// Equal to the host's token except where u falls within rounding of a boundary (exp and the
// order of a few double sums differ).
#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxCandidates = 4096;

// Larger float -> larger key (no NaN in logits).
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The host's candidate order: larger l first, then smaller id.
__device__ __forceinline__ bool before(float la, int ia, float lb, int ib) {
  return la > lb || (la == lb && ia < ib);
}

struct SampleShared {
  float cand_l[kMaxCandidates];
  int cand_id[kMaxCandidates];
  unsigned long long hist[256];
  double warp_sum[kWarps];
  float warp_max[kWarps];
  int n_cand;
  uint32_t prefix;
  double remaining;
  int token;
};

template <class T>
__device__ __forceinline__ float scaled(const T* row, int i, float inv_t) {
  return cuda::to_f32(row[i]) * inv_t;
}

__device__ double block_sum_d(double v, SampleShared& sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) sh.warp_sum[warp] = v;
  __syncthreads();
  double s = 0;
  for (int w = 0; w < kWarps; ++w) s += sh.warp_sum[w];
  return s;
}

// Fixed-point unit of the top_p masses in the radix select (w in (0, 1], truncated: a bin's mass
// is never overestimated, so the threshold's ids hold at least the target mass).
constexpr double kMassUnit = 1048576.0;  // 2^20

// The key threshold t with weight(key > t) < target <= weight(key >= t) over the row (weights: 1
// per id, or w in units of 2^-20), 8 bits a pass from the top; the smallest key when the row's
// weight is below target. The lanes of a warp with the same digit add up first (one atomic each).
template <class T, bool kMass>
__device__ uint32_t select_threshold(const T* row, int vocab, float inv_t, float mx, double target,
                                     SampleShared& sh) {
  const int lane = threadIdx.x % 32;
  uint32_t prefix = 0, mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += kThreads) sh.hist[d] = 0;
    __syncthreads();
    for (int base = 0; base < vocab; base += kThreads) {
      const int i = base + static_cast<int>(threadIdx.x);
      int digit = -1;
      uint32_t v = 0;
      if (i < vocab) {
        const float l = scaled(row, i, inv_t);
        const uint32_t key = order_key(l);
        if ((key & mask) == prefix) {
          digit = static_cast<int>((key >> shift) & 255);
          v = kMass ? static_cast<uint32_t>(expf(l - mx) * static_cast<float>(kMassUnit)) : 1u;
        }
      }
      const unsigned same = __match_any_sync(0xffffffffu, digit);
      const uint32_t sum = __reduce_add_sync(same, v);  // over the lanes of this digit
      if (digit >= 0 && lane == __ffs(same) - 1) {
        atomicAdd(&sh.hist[digit], static_cast<unsigned long long>(sum));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const double unit = kMass ? kMassUnit : 1.0;
      double acc = 0;
      int d = 255;
      for (; d > 0; --d) {
        const double h = static_cast<double>(sh.hist[d]) / unit;
        if (acc + h >= target) break;
        acc += h;
      }
      sh.prefix = prefix | (static_cast<uint32_t>(d) << shift);
      sh.remaining = target - acc;
    }
    __syncthreads();
    prefix = sh.prefix;
    target = sh.remaining;
    mask |= 255u << shift;
  }
  return prefix;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    sample_kernel(const T* x, int64_t stride, int vocab, const DeviceDraw* draws, int max_cand,
                  int32_t* out) {
  __shared__ SampleShared sh;
  const DeviceDraw p = draws[blockIdx.x];
  const T* row = x + p.row * stride;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float inv_t = 1.0f / p.temperature;

  float mx = -FLT_MAX;
  for (int i = threadIdx.x; i < vocab; i += kThreads) mx = fmaxf(mx, scaled(row, i, inv_t));
  mx = cuda::warp_max(mx);
  if (lane == 0) sh.warp_max[warp] = mx;
  __syncthreads();
  mx = sh.warp_max[0];
  for (int w = 1; w < kWarps; ++w) mx = fmaxf(mx, sh.warp_max[w]);

  const bool use_top_k = p.top_k > 0 && p.top_k < vocab;
  const bool use_top_p = p.top_p < 1.0f;
  const bool use_min_p = p.min_p > 0.0f;
  if (!use_top_k && !use_top_p && !use_min_p) {
    // Every id in id order: warp w scans ids [w * span, (w + 1) * span) 32 at a time.
    const int span = (vocab + kWarps - 1) / kWarps;
    const int lo = min(vocab, warp * span), hi = min(vocab, lo + span);
    double ws = 0;
    for (int i = lo + lane; i < hi; i += 32) ws += expf(scaled(row, i, inv_t) - mx);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ws += __shfl_xor_sync(0xffffffffu, ws, o);
    __syncthreads();
    if (lane == 0) sh.warp_sum[warp] = ws;
    if (threadIdx.x == 0) sh.token = INT32_MAX;
    __syncthreads();
    double before_w = 0, all = 0;
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) before_w += sh.warp_sum[w];
      all += sh.warp_sum[w];
    }
    double r = p.u * all - before_w;  // what is left of r when this warp's range starts
    if (r >= 0 && r < ws) {
      for (int base = lo; base < hi; base += 32) {
        const int i = base + lane;
        double v = i < hi ? static_cast<double>(expf(scaled(row, i, inv_t) - mx)) : 0.0;
        double inc = v;  // inclusive scan over the 32 ids
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
          const double n = __shfl_up_sync(0xffffffffu, inc, o);
          if (lane >= o) inc += n;
        }
        const unsigned hit = __ballot_sync(0xffffffffu, i < hi && r - inc < 0);
        if (hit != 0) {
          if (lane == __ffs(hit) - 1) atomicMin(&sh.token, i);  // (two warps only by rounding)
          break;
        }
        r -= __shfl_sync(0xffffffffu, inc, 31);
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int token = sh.token == INT32_MAX ? -1 : sh.token;
      if (token < 0) {  // rounding left r past the last id: the last id with mass
        for (int i = vocab - 1; i >= 0; --i) {
          if (expf(scaled(row, i, inv_t) - mx) > 0.0f) {
            token = i;
            break;
          }
        }
      }
      out[blockIdx.x] = token < 0 ? 0 : token;
    }
    return;
  }

  // Filters: the threshold, then the candidates at or above it. top_p without top_k is relative
  // to the mass of every id.
  double total_all = 0;
  if (!use_top_k && use_top_p) {
    double part = 0;
    for (int i = threadIdx.x; i < vocab; i += kThreads) part += expf(scaled(row, i, inv_t) - mx);
    total_all = block_sum_d(part, sh);
  }
  uint32_t thr = 0;
  if (use_top_k) {
    thr = select_threshold<T, false>(row, vocab, inv_t, mx, p.top_k, sh);
  } else if (use_top_p) {
    thr = select_threshold<T, true>(row, vocab, inv_t, mx, p.top_p * total_all * (1.0 + 1e-6), sh);
  }
  if (threadIdx.x == 0) sh.n_cand = 0;
  __syncthreads();
  for (int base = 0; base < vocab; base += kThreads) {
    const int i = base + static_cast<int>(threadIdx.x);
    const float l = i < vocab ? scaled(row, i, inv_t) : -INFINITY;
    const bool take = i < vocab && order_key(l) >= thr &&
                      (use_top_k || !use_min_p || static_cast<double>(expf(l - mx)) >= p.min_p);
    const unsigned ballot = __ballot_sync(0xffffffffu, take);
    if (ballot == 0) continue;
    int first = 0;
    if (lane == __ffs(ballot) - 1) first = atomicAdd(&sh.n_cand, __popc(ballot));
    first = __shfl_sync(0xffffffffu, first, __ffs(ballot) - 1);
    const int s = first + __popc(ballot & ((1u << lane) - 1));
    if (take && s < kMaxCandidates) sh.cand_l[s] = l, sh.cand_id[s] = i;
  }
  __syncthreads();
  const int n = sh.n_cand;
  if (n > max_cand || n == 0) {
    if (threadIdx.x == 0) out[blockIdx.x] = -1;
    return;
  }
  int np = 1;
  while (np < n) np *= 2;
  for (int i = n + threadIdx.x; i < np; i += kThreads)
    sh.cand_l[i] = -INFINITY, sh.cand_id[i] = INT32_MAX;
  __syncthreads();
  // Bitonic sort of np entries into the host's order.
  for (int k = 2; k <= np; k *= 2) {
    for (int j = k / 2; j > 0; j /= 2) {
      for (int i = threadIdx.x; i < np; i += kThreads) {
        const int o = i ^ j;
        if (o > i) {
          const bool up = (i & k) == 0;  // this run in the host's order
          const float li = sh.cand_l[i], lo = sh.cand_l[o];
          const int ii = sh.cand_id[i], io = sh.cand_id[o];
          if (before(lo, io, li, ii) == up) {
            sh.cand_l[i] = lo, sh.cand_id[i] = io;
            sh.cand_l[o] = li, sh.cand_id[o] = ii;
          }
        }
      }
      __syncthreads();
    }
  }
  if (threadIdx.x != 0) return;
  // The host's cuts and draw (Sampler::draw) over the sorted list.
  auto weight = [&](int i) { return static_cast<double>(expf(sh.cand_l[i] - mx)); };
  int size = n;
  double total = total_all;
  if (use_top_k) {
    size = min(size, p.top_k);
    total = 0;
    for (int i = 0; i < size; ++i) total += weight(i);
  }
  int keep = size;
  if (use_top_p) {
    double cum = 0;
    bool reached = false;
    for (int i = 0; i < keep; ++i) {
      cum += weight(i);
      if (cum >= p.top_p * total) {
        keep = i + 1;
        reached = true;
        break;
      }
    }
    // The list ends before the top_p mass (only where it was cut by the threshold, not by min_p):
    // the host sees more ids.
    if (!reached && !use_top_k && !use_min_p) {
      out[blockIdx.x] = -1;
      return;
    }
  }
  if (use_min_p) {
    const double floor = p.min_p * weight(0);
    int k = 1;
    while (k < keep && weight(k) >= floor) ++k;
    keep = k;
  }
  double mass = 0;
  for (int i = 0; i < keep; ++i) mass += weight(i);
  double r = p.u * mass;
  for (int i = 0; i < keep; ++i) {
    r -= weight(i);
    if (r < 0) {
      out[blockIdx.x] = sh.cand_id[i];
      return;
    }
  }
  for (int i = keep; i-- > 0;) {
    if (weight(i) > 0) {
      out[blockIdx.x] = sh.cand_id[i];
      return;
    }
  }
  out[blockIdx.x] = sh.cand_id[0];
}

}  // namespace

std::vector<int32_t> CudaBackend::sample(const Tensor& logits,
                                         const std::vector<DeviceDraw>& draws) {
  CHECK_MSG(!capturing_, "sample while capturing a graph");
  std::vector<int32_t> ids(draws.size());
  if (draws.empty()) return ids;
  CHECK(logits.cols > 0 && logits.cols <= INT32_MAX);
  const size_t bytes = draws.size() * (sizeof(DeviceDraw) + sizeof(int32_t));
  auto* dev = static_cast<uint8_t*>(picks_buffer(bytes));
  auto* d_draws = reinterpret_cast<DeviceDraw*>(dev);
  auto* d_out = reinterpret_cast<int32_t*>(dev + draws.size() * sizeof(DeviceDraw));
  CUDA_CHECK(cudaMemcpyAsync(d_draws, draws.data(), draws.size() * sizeof(DeviceDraw),
                             cudaMemcpyHostToDevice, stream_));
  DENSEKV_DISPATCH_DTYPE(logits.dtype, T, {
    sample_kernel<T><<<static_cast<unsigned>(draws.size()), kThreads, 0, stream_>>>(
        logits.ptr<T>(), logits.stride, static_cast<int>(logits.cols), d_draws,
        std::min(sample_candidates_, kMaxCandidates), d_out);
  });
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpyAsync(ids.data(), d_out, ids.size() * sizeof(int32_t),
                             cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return ids;
}

}  // namespace densekv
