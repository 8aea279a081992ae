// CUDA backend: logprobs of logits rows on the device (Backend::logprobs), with the numbers of the
// host's token_logprobs (engine/sampler.cpp): log_z = max + log(sum of exp(l - max)), summed in
// double, then l - log_z in double rounded to float, for the chosen token and the top n ids in
// the host's order (l descending, id ascending). One block of 1024 threads per query, two passes
// over the row (for_row: 16-byte loads, several in flight):
//   1. each thread's largest logit; sorted, they give the row's max and a threshold t, the n-th
//      largest of them (at least n ids are >= t, so the top n are among the ids >= t);
//   2. the double sum, and the ids >= t collected; when they fit (kMaxCandidates) they are sorted
//      and the first n taken. More (nearly flat rows): a radix select over counts finds the key k
//      of the n-th id, and the ids with key > k plus the first ids with key k in id order are the
//      n (more passes).
// The top ids are exactly the host's; the values differ from the host's only where the two sums'
// order moves log_z across a float rounding boundary of l - log_z.
#include <algorithm>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/row_select.cuh"

namespace densekv {

namespace {

using namespace row_select;

constexpr int kMaxCandidates = 2048;  // >= kThreads: the threads' maxima are sorted here too

struct LogprobsShared {
  SelectShared sel;
  float cand_l[kMaxCandidates];
  int cand_id[kMaxCandidates];
  double warp_sum[kWarps];
  int n_cand;
};

// The top n (n <= kMaxTopLogprobs) of a row with more than kMaxCandidates ids >= the threshold,
// into cand[0, n): the ids with key > k (the n-th id's key) and the first with key k in id order.
template <class T>
__device__ __noinline__ void top_by_select(const T* row, int vocab, float mx, int n,
                                           LogprobsShared& sh) {
  const uint32_t k = select_key<T, false>(row, vocab, 1.0f, mx, n, Eligible{}, sh.sel);
  const int above = static_cast<int>(sh.sel.above);  // ids with key > k: fewer than n
  if (threadIdx.x == 0) sh.n_cand = 0;
  __syncthreads();
  for_row(row, vocab, [&](int i, float l) {
    if (order_key(l) > k) {
      const int slot = atomicAdd(&sh.n_cand, 1);
      sh.cand_l[slot] = l, sh.cand_id[slot] = i;
    }
  });
  ids_with_key(
      row, vocab, 1.0f, k, 0, n - above,
      [&](int rank, int i) {
        sh.cand_l[above + rank] = cuda::to_f32(row[i]);
        sh.cand_id[above + rank] = i;
      },
      sh.sel);
}

template <class T>
__global__ void __launch_bounds__(kThreads, 1)
    logprobs_kernel(const T* x, int64_t stride, int vocab, const LogprobsQuery* queries,
                    RowLogprobs* out) {
  __shared__ LogprobsShared sh;
  const LogprobsQuery q = queries[blockIdx.x];
  const T* row = x + q.row * stride;
  const int n = min(q.top_n, vocab);

  // 1. The threads' maxima (-inf for a thread without ids), sorted: the max and the threshold.
  float tmax = -INFINITY;
  for_row(row, vocab, [&](int, float l) { tmax = fmaxf(tmax, l); });
  sh.cand_l[threadIdx.x] = tmax;
  sh.cand_id[threadIdx.x] = static_cast<int>(threadIdx.x);
  sort_candidates(sh.cand_l, sh.cand_id, kThreads);
  const float mx = sh.cand_l[0];
  const uint32_t t = n > 0 ? order_key(sh.cand_l[n - 1]) : UINT32_MAX;
  __syncthreads();  // (everyone has read the maxima)
  if (threadIdx.x == 0) sh.n_cand = 0;
  __syncthreads();

  // 2. The sum, and the ids >= t.
  double s = 0;
  for_row<1>(row, vocab, [&](int i, float l) {  // (2 groups ahead: spills)
    s += exp(static_cast<double>(l) - static_cast<double>(mx));
    if (order_key(l) >= t) {
      const int slot = atomicAdd(&sh.n_cand, 1);
      if (slot < kMaxCandidates) sh.cand_l[slot] = l, sh.cand_id[slot] = i;
    }
  });
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (threadIdx.x % 32 == 0) sh.warp_sum[threadIdx.x / 32] = s;
  __syncthreads();
  s = 0;
  for (int w = 0; w < kWarps; ++w) s += sh.warp_sum[w];
  const double log_z = static_cast<double>(mx) + log(s);

  if (n > 0) {
    int nc = sh.n_cand;
    if (nc > kMaxCandidates) {
      top_by_select(row, vocab, mx, n, sh);
      nc = n;
    }
    sort_candidates(sh.cand_l, sh.cand_id, nc);
    if (threadIdx.x < n) {
      out[blockIdx.x].top_ids[threadIdx.x] = sh.cand_id[threadIdx.x];
      out[blockIdx.x].top_values[threadIdx.x] = static_cast<float>(sh.cand_l[threadIdx.x] - log_z);
    }
  }
  if (threadIdx.x == 0) {
    out[blockIdx.x].n = n;
    out[blockIdx.x].chosen = static_cast<float>(cuda::to_f32(row[q.chosen]) - log_z);
  }
}

}  // namespace

std::vector<RowLogprobs> CudaBackend::logprobs(const Tensor& logits,
                                               const std::vector<LogprobsQuery>& queries) {
  CHECK_MSG(!capturing_, "logprobs while capturing a graph");
  std::vector<RowLogprobs> res(queries.size());
  if (queries.empty()) return res;
  CHECK(logits.cols > 0 && logits.cols <= INT32_MAX);
  for (const LogprobsQuery& q : queries) {
    CHECK(q.row >= 0 && q.row < logits.rows);
    CHECK(q.chosen >= 0 && q.chosen < logits.cols);
    CHECK(q.top_n >= 0 && q.top_n <= kMaxTopLogprobs);
  }
  const size_t bytes = queries.size() * (sizeof(LogprobsQuery) + sizeof(RowLogprobs));
  auto* dev = static_cast<uint8_t*>(picks_buffer(bytes));
  auto* d_queries = reinterpret_cast<LogprobsQuery*>(dev);
  auto* d_out = reinterpret_cast<RowLogprobs*>(dev + queries.size() * sizeof(LogprobsQuery));
  CUDA_CHECK(cudaMemcpyAsync(d_queries, queries.data(), queries.size() * sizeof(LogprobsQuery),
                             cudaMemcpyHostToDevice, stream_));
  DENSEKV_DISPATCH_DTYPE(logits.dtype, T, {
    logprobs_kernel<T><<<static_cast<unsigned>(queries.size()), kThreads, 0, stream_>>>(
        logits.ptr<T>(), logits.stride, static_cast<int>(logits.cols), d_queries, d_out);
  });
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpyAsync(res.data(), d_out, res.size() * sizeof(RowLogprobs),
                             cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return res;
}

}  // namespace densekv
