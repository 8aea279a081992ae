// CUDA backend: index of the largest value of each row (the first one on ties), to the host.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

// (value, index) order: larger value wins, then smaller index. NaN never wins (as the CPU's `>`
// scan, unless it is element 0).
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}

// One block (1024 threads) per row.
template <class T>
__global__ void argmax_kernel(const T* x, int64_t stride, int64_t cols, int32_t* out) {
  const T* row = x + blockIdx.x * stride;
  float bv = cuda::to_f32(row[0]);
  int bi = 0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = cuda::to_f32(row[c]);
    if (better(v, static_cast<int>(c), bv, bi)) bv = v, bi = static_cast<int>(c);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(ov, oi, bv, bi)) bv = ov, bi = oi;
  }
  __shared__ float sv[32];
  __shared__ int si[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) sv[warp] = bv, si[warp] = bi;
  __syncthreads();
  if (warp == 0) {
    const int n_warps = blockDim.x / 32;
    bv = lane < n_warps ? sv[lane] : sv[0];
    bi = lane < n_warps ? si[lane] : si[0];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(ov, oi, bv, bi)) bv = ov, bi = oi;
    }
    if (lane == 0) out[blockIdx.x] = bi;
  }
}

}  // namespace

std::vector<int32_t> CudaBackend::argmax(const Tensor& x) {
  CHECK_MSG(!capturing_, "argmax while capturing a graph");
  std::vector<int32_t> ids(static_cast<size_t>(x.rows));
  if (x.rows == 0) return ids;
  CHECK(x.cols > 0);
  auto* out = static_cast<int32_t*>(picks_buffer(ids.size() * sizeof(int32_t)));
  DENSEKV_DISPATCH_DTYPE(x.dtype, T, {
    argmax_kernel<T><<<x.rows, 1024, 0, stream_>>>(x.ptr<T>(), x.stride, x.cols, out);
  });
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpyAsync(ids.data(), out, ids.size() * sizeof(int32_t), cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return ids;
}

}  // namespace densekv
