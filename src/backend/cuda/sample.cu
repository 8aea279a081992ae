// CUDA backend: sampling of logits rows on the device (Backend::sample), Sampler::draw's algorithm
// (engine/sampler.cpp) with the sequence's RNG draw u given, so that only the token ids come to
// the host. One block of 1024 threads per row:
//   1. l = logit * (1 / temperature), m = max l, w = exp(l - m) (floats, as the host).
//   2. No filter (top_k off, top_p 1, min_p 0): the candidates are every id in id order; r = u x
//      sum(w) and the token is the first id whose running sum of w passes r (each warp scans a
//      contiguous range, the ranges in order).
//   3. Filters: a radix select over the order-preserving bits of l finds the threshold of the
//      top_k-th largest (count) or of the top_p mass (fixed-point sum of w, with a little slack);
//      the ids at or above it (and with w >= min_p) are collected and, when at most
//      kMaxCandidates, sorted by (l descending, id ascending) as the host orders them; then one
//      thread runs the host's cuts (top_k, top_p, min_p) and its draw over that list in double.
//   4. A row with more candidates (e.g. top_p 0.95 over nearly flat logits) draws by selects
//      instead of a sort (draw_by_selects): every cut is a prefix of the host's order, found by a
//      radix select over counts or exact fixed-point masses, and so is the draw point.
// Equal to the host's token except where u falls within rounding of a boundary (exp, the order
// of the double sums and, in step 4, the 2^-62 fixed point of w differ).
#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/row_select.cuh"

namespace densekv {

namespace {

using namespace row_select;

constexpr int kMaxCandidates = 4096;

struct SampleShared {
  float cand_l[kMaxCandidates];
  int cand_id[kMaxCandidates];
  SelectShared sel;
  double warp_sum[kWarps];
  Mass warp_mass[kWarps];
  uint32_t warp_key[kWarps];
  int n_cand;
  int token;
};

// Sum over the row of fixed weights of the ids with key > k, and the number with key == k.
template <class T>
__device__ void mass_above(const T* row, int vocab, float inv_t, float mx, uint32_t k, Mass& mass,
                           int& ties, SampleShared& sh) {
  Mass m = 0;
  int c = 0;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float l = scaled(row, i, inv_t);
    const uint32_t key = order_key(l);
    if (key > k) m += fixed_weight(l, mx);
    c += key == k;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t lo = __shfl_xor_sync(0xffffffffu, static_cast<uint64_t>(m), o);
    const uint64_t hi = __shfl_xor_sync(0xffffffffu, static_cast<uint64_t>(m >> 64), o);
    m += (static_cast<Mass>(hi) << 64) | lo;
    c += __shfl_xor_sync(0xffffffffu, c, o);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) sh.warp_mass[warp] = m, sh.sel.warp_count[warp] = c;
  __syncthreads();
  mass = 0;
  ties = 0;
  for (int w = 0; w < kWarps; ++w) mass += sh.warp_mass[w], ties += sh.sel.warp_count[w];
}

// A filtered draw without sorting the candidates (a row that keeps more than the sort holds):
// each of the host's cuts is a prefix of the (l descending, id ascending) order, i.e. the ids
// with key > k plus the first c ids (by id) with key k, found by a select over counts (top_k) or
// masses (top_p) or by the smallest key with w >= min_p; the shortest prefix is kept. The draw
// point r = u x kept mass is found by a mass select over the kept ids, then the tie by id.
template <class T>
__device__ int draw_by_selects(const T* row, int vocab, float inv_t, float mx, const DeviceDraw& p,
                               SampleShared& sh) {
  const bool use_top_k = p.top_k > 0 && p.top_k < vocab;
  const bool use_top_p = p.top_p < 1.0f;
  const bool use_min_p = p.min_p > 0.0f;
  uint32_t kf = 0;         // the kept prefix: ids with key > kf ...
  int64_t cf = INT64_MAX;  // ... and the first cf ids with key kf
  auto shorten = [&](uint32_t k, int64_t c) {
    if (k > kf || (k == kf && c < cf)) kf = k, cf = c;
  };
  Mass above = 0;
  int ties = 0;
  Mass total = 0;  // the top_p mass is relative to the top_k set, else to every id
  if (use_top_k) {
    const uint32_t k = select_key<T, false>(row, vocab, inv_t, mx, p.top_k, Eligible{}, sh.sel);
    mass_above(row, vocab, inv_t, mx, k, above, ties, sh);
    const int64_t c = p.top_k - static_cast<int64_t>(sh.sel.above);  // (ids with key > k)
    shorten(k, c);
    total = above + static_cast<Mass>(c) * fixed_weight(key_logit(k), mx);
  } else {
    mass_above(row, vocab, inv_t, mx, 0, above, ties, sh);  // (key 0 is a NaN: no logit has it)
    total = above;
  }
  if (use_top_p) {  // the host keeps the first ids whose running mass reaches top_p x total
    const Mass target =
        mass_from_double(ceil(static_cast<double>(p.top_p) * mass_to_double(total)));
    const uint32_t k = select_key<T, true>(row, vocab, inv_t, mx, target, Eligible{}, sh.sel);
    const Mass w = fixed_weight(key_logit(k), mx);
    const Mass need = target - sh.sel.above;
    shorten(k, w > 0 ? static_cast<int64_t>((need + w - 1) / w) : INT64_MAX);
  }
  if (use_min_p) {  // every id with w >= min_p: from the smallest such key
    uint32_t kmin = UINT32_MAX;
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      const float l = scaled(row, i, inv_t);
      if (static_cast<double>(expf(l - mx)) >= p.min_p) kmin = min(kmin, order_key(l));
    }
    kmin = __reduce_min_sync(0xffffffffu, kmin);
    __syncthreads();
    if (threadIdx.x % 32 == 0) sh.warp_key[threadIdx.x / 32] = kmin;
    __syncthreads();
    for (int w = 0; w < kWarps; ++w) kmin = min(kmin, sh.warp_key[w]);
    shorten(kmin, INT64_MAX);
  }
  // The kept mass and the draw point.
  mass_above(row, vocab, inv_t, mx, kf, above, ties, sh);
  const Mass wf = fixed_weight(key_logit(kf), mx);
  const Mass kept = above + static_cast<Mass>(cf < ties ? cf : static_cast<int64_t>(ties)) * wf;
  Mass r = mass_from_double(floor(p.u * mass_to_double(kept)));
  if (r >= kept) r = kept - 1;
  uint32_t kd = kf;
  Mass before = above;
  if (above > r) {  // among the ids with key > kf: weight(key > kd) <= r < weight(key >= kd)
    kd = select_key<T, true>(row, vocab, inv_t, mx, r + 1, Eligible{kf + 1, 0.0f}, sh.sel);
    before = sh.sel.above;
  }
  const Mass wd = fixed_weight(key_logit(kd), mx);
  const int j = wd > 0 ? static_cast<int>((r - before) / wd) : 0;
  return nth_with_key(row, vocab, inv_t, kd, j, sh.sel);
}

// The host's cuts and draw (Sampler::draw) over the n sorted candidates, by one thread; -1 when
// the list ends before the top_p mass (only where the threshold, not min_p, cut it).
__device__ int cuts_and_draw(const SampleShared& sh, int n, int vocab, float mx, double total_all,
                             const DeviceDraw& p) {
  const bool use_top_k = p.top_k > 0 && p.top_k < vocab;
  auto weight = [&](int i) { return static_cast<double>(expf(sh.cand_l[i] - mx)); };
  int size = n;
  double total = total_all;
  if (use_top_k) {
    size = min(size, p.top_k);
    total = 0;
    for (int i = 0; i < size; ++i) total += weight(i);
  }
  int keep = size;
  if (p.top_p < 1.0f) {
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
    if (!reached && !use_top_k && p.min_p <= 0.0f) return -1;
  }
  if (p.min_p > 0.0f) {
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
    if (r < 0) return sh.cand_id[i];
  }
  for (int i = keep; i-- > 0;) {  // rounding left r >= 0: the last candidate with mass
    if (weight(i) > 0) return sh.cand_id[i];
  }
  return sh.cand_id[0];
}

// (Launch bounds with 1 block per SM: without it ptxas took 32 registers and spilled.)
template <class T>
__global__ void __launch_bounds__(kThreads, 1)
    sample_kernel(const T* x, int64_t stride, int vocab, const DeviceDraw* draws, int max_cand,
                  bool selects, int32_t* out) {
  __shared__ SampleShared sh;
  const DeviceDraw p = draws[blockIdx.x];
  const T* row = x + p.row * stride;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float inv_t = 1.0f / p.temperature;

  const float mx = row_max(row, vocab, inv_t, sh.sel);

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
  uint32_t thr = 0;
  if (use_top_k) {
    thr = select_key<T, false>(row, vocab, inv_t, mx, p.top_k, Eligible{}, sh.sel);
  } else if (use_top_p) {
    // One pass for the total: the fixed-point sum is exact for every w >= 2^-38, so as a double it
    // is the host's double sum up to rounding.
    Mass fixed_total = 0;
    int ties = 0;
    mass_above(row, vocab, inv_t, mx, 0, fixed_total, ties, sh);  // (no logit has key 0)
    total_all = mass_to_double(fixed_total) * 0x1p-62;
    // (with a little slack: the candidates' double sum must reach the host's target)
    const double target = ceil(p.top_p * mass_to_double(fixed_total) * (1.0 + 1e-6));
    thr = select_key<T, true>(row, vocab, inv_t, mx, mass_from_double(target), Eligible{}, sh.sel);
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
  if (n > max_cand || n == 0) {  // more than the sort holds
    const int token = selects ? draw_by_selects(row, vocab, inv_t, mx, p, sh) : -1;
    if (threadIdx.x == 0) out[blockIdx.x] = token;
    return;
  }
  sort_candidates(sh.cand_l, sh.cand_id, n);
  if (threadIdx.x == 0) sh.token = cuts_and_draw(sh, n, vocab, mx, total_all, p);
  __syncthreads();
  if (sh.token >= 0 || !selects) {
    if (threadIdx.x == 0) out[blockIdx.x] = sh.token;
    return;
  }
  // The sorted list ends before the top_p mass (the threshold's slack was short): the selects.
  const int token = draw_by_selects(row, vocab, inv_t, mx, p, sh);
  if (threadIdx.x == 0) out[blockIdx.x] = token;
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
        std::min(sample_candidates_, kMaxCandidates), sample_selects_, d_out);
  });
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpyAsync(ids.data(), d_out, ids.size() * sizeof(int32_t),
                             cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return ids;
}

}  // namespace densekv
