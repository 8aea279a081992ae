// CUDA backend: logprobs of logits rows on the device (Backend::logprobs), with the numbers of the
// host's token_logprobs (engine/sampler.cpp): log_z = max + log(sum of exp(l - max)), summed in
// double, then l - log_z in double rounded to float, for the chosen token and the top n ids in
// the host's order (l descending, id ascending). One block of 1024 threads per query:
//   1. the row's max, then the double sum (each thread its ids, then the warps, then the block);
//   2. top n: a radix select over counts finds the key k of the n-th id in that order; the ids
//      with key > k (fewer than n) and the first ids with key k in id order are the n, which one
//      thread sorts.
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

struct LogprobsShared {
  SelectShared sel;
  double warp_sum[kWarps];
  float top_l[kMaxTopLogprobs];
  int top_id[kMaxTopLogprobs];
  int n_top;
};

template <class T>
__global__ void __launch_bounds__(kThreads, 1)
    logprobs_kernel(const T* x, int64_t stride, int vocab, const LogprobsQuery* queries,
                    RowLogprobs* out) {
  __shared__ LogprobsShared sh;
  const LogprobsQuery q = queries[blockIdx.x];
  const T* row = x + q.row * stride;
  const float mx = row_max(row, vocab, 1.0f, sh.sel);
  double s = 0;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    s += exp(static_cast<double>(cuda::to_f32(row[i])) - static_cast<double>(mx));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (threadIdx.x % 32 == 0) sh.warp_sum[threadIdx.x / 32] = s;
  __syncthreads();
  s = 0;
  for (int w = 0; w < kWarps; ++w) s += sh.warp_sum[w];
  const double log_z = static_cast<double>(mx) + log(s);

  const int n = min(q.top_n, vocab);
  if (n > 0) {
    const uint32_t k = select_key<T, false>(row, vocab, 1.0f, mx, n, Eligible{}, sh.sel);
    const int above = static_cast<int>(sh.sel.above);  // ids with key > k: fewer than n
    if (threadIdx.x == 0) sh.n_top = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      const float l = cuda::to_f32(row[i]);
      if (order_key(l) > k) {
        const int slot = atomicAdd(&sh.n_top, 1);
        sh.top_l[slot] = l, sh.top_id[slot] = i;
      }
    }
    ids_with_key(
        row, vocab, 1.0f, k, 0, n - above,
        [&](int rank, int i) {
          sh.top_l[above + rank] = cuda::to_f32(row[i]);
          sh.top_id[above + rank] = i;
        },
        sh.sel);
    if (threadIdx.x == 0) {
      for (int a = 1; a < n; ++a) {  // insertion sort into the host's order
        const float l = sh.top_l[a];
        const int id = sh.top_id[a];
        int b = a;
        for (; b > 0 && before(l, id, sh.top_l[b - 1], sh.top_id[b - 1]); --b) {
          sh.top_l[b] = sh.top_l[b - 1], sh.top_id[b] = sh.top_id[b - 1];
        }
        sh.top_l[b] = l, sh.top_id[b] = id;
      }
      for (int a = 0; a < n; ++a) {
        out[blockIdx.x].top_ids[a] = sh.top_id[a];
        out[blockIdx.x].top_values[a] = static_cast<float>(sh.top_l[a] - log_z);
      }
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
