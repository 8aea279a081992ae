// CUDA backend: sampling penalties where the logits are (Backend::penalize). Each output row is an
// fp32 copy of one logits row with its penalty entries applied (apply_penalty, backend.h: the
// host Sampler's rounding), so that argmax and sample pick a penalized request's token on the
// device and only token ids come to the host.
#include <cstring>
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

#include "core/check.h"

namespace densekv {

namespace {

constexpr int kThreads = 256;

// One block per output row: copy (to fp32), then the row's entries (ids unique within a row).
template <class T>
__global__ void penalize_kernel(const T* logits, int64_t stride, int64_t cols, const int32_t* src,
                                const int32_t* begins, const PenaltyEntry* entries, float* out) {
  const T* in = logits + src[blockIdx.x] * stride;
  float* o = out + blockIdx.x * cols;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) o[c] = cuda::to_f32(in[c]);
  __syncthreads();  // the copies above are visible to the block before the entries overwrite
  for (int e = begins[blockIdx.x] + threadIdx.x; e < begins[blockIdx.x + 1]; e += kThreads) {
    const PenaltyEntry pe = entries[e];
    o[pe.id] = apply_penalty(cuda::to_f32(in[pe.id]), pe);
  }
}

}  // namespace

Tensor CudaBackend::penalize(const Tensor& logits, const std::vector<int32_t>& src_rows,
                             const std::vector<int32_t>& begins,
                             const std::vector<PenaltyEntry>& entries) {
  CHECK_MSG(!capturing_, "penalize while capturing a graph");
  const size_t n = src_rows.size();
  CHECK(begins.size() == n + 1 && begins[0] == 0 &&
        begins[n] == static_cast<int32_t>(entries.size()));
  for (size_t r = 0; r < n; ++r) {
    CHECK(src_rows[r] >= 0 && src_rows[r] < logits.rows && begins[r] <= begins[r + 1]);
  }
  for (const PenaltyEntry& e : entries) CHECK(e.id >= 0 && e.id < logits.cols);
  if (n == 0) return make_tensor(nullptr, DType::F32, 0, logits.cols);
  // One buffer: [n, cols] fp32 rows | entries | src_rows | begins.
  const size_t rows_bytes = n * static_cast<size_t>(logits.cols) * sizeof(float);
  const size_t entry_bytes = entries.size() * sizeof(PenaltyEntry);
  const size_t index_bytes = (2 * n + 1) * sizeof(int32_t);
  if (penalized_bytes_ < rows_bytes + entry_bytes + index_bytes) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaFree(penalized_dev_));
    penalized_bytes_ = (rows_bytes + entry_bytes + index_bytes) * 5 / 4;
    CUDA_CHECK(cudaMalloc(&penalized_dev_, penalized_bytes_));
  }
  auto* base = static_cast<uint8_t*>(penalized_dev_);
  auto* d_rows = reinterpret_cast<float*>(base);
  auto* d_entries = reinterpret_cast<PenaltyEntry*>(base + rows_bytes);
  auto* d_src = reinterpret_cast<int32_t*>(base + rows_bytes + entry_bytes);
  auto* d_begins = d_src + n;
  // One copy up, from pinned staging so that it is queued behind the forward without waiting
  // for it. The previous call's copy has finished: every call is followed by a synchronizing
  // argmax or sample (and the event says so).
  if (penalty_staging_bytes_ < entry_bytes + index_bytes) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaFreeHost(penalty_staging_));
    penalty_staging_bytes_ = (entry_bytes + index_bytes) * 2;
    CUDA_CHECK(cudaMallocHost(&penalty_staging_, penalty_staging_bytes_));
  }
  if (penalty_copied_ == nullptr)
    CUDA_CHECK(cudaEventCreateWithFlags(&penalty_copied_, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventSynchronize(penalty_copied_));
  auto* up = static_cast<uint8_t*>(penalty_staging_);
  std::memcpy(up, entries.data(), entry_bytes);
  std::memcpy(up + entry_bytes, src_rows.data(), n * sizeof(int32_t));
  std::memcpy(up + entry_bytes + n * sizeof(int32_t), begins.data(), (n + 1) * sizeof(int32_t));
  CUDA_CHECK(
      cudaMemcpyAsync(d_entries, up, entry_bytes + index_bytes, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaEventRecord(penalty_copied_, stream_));
  DENSEKV_DISPATCH_DTYPE(logits.dtype, T, {
    penalize_kernel<T><<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(
        logits.ptr<T>(), logits.stride, logits.cols, d_src, d_begins, d_entries, d_rows);
  });
  CUDA_CHECK_LAUNCH();
  return make_tensor(d_rows, DType::F32, static_cast<int64_t>(n), logits.cols);
}

}  // namespace densekv
