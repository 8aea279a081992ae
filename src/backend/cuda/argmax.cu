// CUDA backend: index of the largest value of each row (the first one on ties), to the host: the
// row's slices on many blocks, then their results per row (deterministic: by index, not by order).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

// (value, index) order: larger value wins, then smaller index. NaN never wins (as the CPU's `>`
// scan, unless it is element 0).
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}

// The best (value, index) of the warp, in every lane.
__device__ __forceinline__ void warp_best(float& bv, int& bi) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(ov, oi, bv, bi)) bv = ov, bi = oi;
  }
}

constexpr int kThreads = 256;

// Block (s, r): the best of row r's elements [s * slice, (s + 1) * slice) and of element 0 (the
// CPU scan's start) -> part_v / part_i [r * gridDim.x + s].
template <class T>
__global__ void argmax_slices_kernel(const T* x, int64_t stride, int cols, int slice, float* part_v,
                                     int* part_i) {
  cuda::grid_dependency_wait();  // the logits are the kernel before's (launch_kernel)
  cuda::launch_dependents();
  const T* row = x + blockIdx.y * stride;
  float bv = cuda::to_f32(row[0]);
  int bi = 0;
  const int end = min(cols, (blockIdx.x + 1) * slice);
#pragma unroll 4
  for (int c = blockIdx.x * slice + threadIdx.x; c < end; c += kThreads) {
    const float v = cuda::to_f32(row[c]);
    if (better(v, c, bv, bi)) bv = v, bi = c;
  }
  warp_best(bv, bi);
  __shared__ float sv[kThreads / 32];
  __shared__ int si[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) sv[warp] = bv, si[warp] = bi;
  __syncthreads();
  if (warp != 0) return;
  bv = lane < kThreads / 32 ? sv[lane] : sv[0];
  bi = lane < kThreads / 32 ? si[lane] : si[0];
  warp_best(bv, bi);
  if (lane == 0) {
    part_v[blockIdx.y * gridDim.x + blockIdx.x] = bv;
    part_i[blockIdx.y * gridDim.x + blockIdx.x] = bi;
  }
}

// A warp per row: the best of its `slices` partial results.
__global__ void argmax_rows_kernel(const float* part_v, const int* part_i, int slices,
                                   int32_t* out) {
  cuda::grid_dependency_wait();  // argmax_slices_kernel's partials
  cuda::launch_dependents();
  const float* pv = part_v + blockIdx.x * slices;
  const int* pi = part_i + blockIdx.x * slices;
  float bv = pv[0];
  int bi = pi[0];
  for (int s = threadIdx.x; s < slices; s += 32) {
    if (better(pv[s], pi[s], bv, bi)) bv = pv[s], bi = pi[s];
  }
  warp_best(bv, bi);
  if (threadIdx.x == 0) out[blockIdx.x] = bi;
}

}  // namespace

std::vector<int32_t> CudaBackend::argmax(const Tensor& x) {
  CHECK_MSG(!capturing_, "argmax while capturing a graph");
  std::vector<int32_t> ids(static_cast<size_t>(x.rows));
  if (x.rows == 0) return ids;
  CHECK(x.cols > 0);
  CHECK(x.cols <= INT32_MAX);
  // Each row in slices of 1024 to 8192 elements: about two blocks per SM in all where that fits.
  const int cols = static_cast<int>(x.cols);
  const int64_t want = std::max<int64_t>(cuda::ceil_div(cols, 8192), 2 * sm_count_ / x.rows);
  const int slices = static_cast<int>(std::min<int64_t>(want, cuda::ceil_div(cols, 1024)));
  const int slice = static_cast<int>(cuda::ceil_div(cols, slices));
  const size_t n_part = static_cast<size_t>(x.rows) * slices;
  auto* out = static_cast<int32_t*>(picks_buffer(ids.size() * 4 + n_part * 8));
  auto* part_v = reinterpret_cast<float*>(out + ids.size());
  auto* part_i = reinterpret_cast<int*>(part_v + n_part);
  DENSEKV_DISPATCH_DTYPE(x.dtype, T, {
    cuda::launch_kernel(argmax_slices_kernel<T>, dim3(slices, static_cast<unsigned>(x.rows)),
                        kThreads, 0, stream_, pdl_, x.ptr<T>(), x.stride, cols, slice, part_v,
                        part_i);
  });
  cuda::launch_kernel(argmax_rows_kernel, static_cast<unsigned>(x.rows), 32, 0, stream_, pdl_,
                      part_v, part_i, slices, out);
  CUDA_CHECK(cudaMemcpyAsync(ids.data(), out, ids.size() * sizeof(int32_t), cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return ids;
}

}  // namespace densekv
