// CUDA backend: out = x / sqrt(mean(x^2) + eps) * w per row, fp32 arithmetic.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

// One block per row.
template <class T, class TW>
__global__ void rmsnorm_kernel(const T* x, int64_t x_stride, const TW* w, float eps, T* out,
                               int64_t out_stride, int64_t cols) {
  cuda::grid_dependency_wait();  // x is the kernel before's (launch_kernel)
  cuda::launch_dependents();
  const T* xr = x + blockIdx.x * x_stride;
  T* o = out + blockIdx.x * out_stride;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = cuda::to_f32(xr[c]);
    ss += v * v;
  }
  ss = cuda::block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(cols) + eps);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    o[c] = cuda::from_f32<T>(cuda::to_f32(w[c]) * (cuda::to_f32(xr[c]) * inv));
  }
}

}  // namespace

void CudaBackend::rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  CHECK(x.cols == w.cols && x.rows == out.rows && x.cols == out.cols && x.dtype == out.dtype);
  if (x.rows == 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(1024, (x.cols + 31) / 32 * 32));
  DENSEKV_DISPATCH_DTYPE(x.dtype, T, DENSEKV_DISPATCH_DTYPE(w.dtype, TW, {
                           cuda::launch_kernel(rmsnorm_kernel<T, TW>, x.rows, threads, 0, stream_,
                                               pdl_, x.ptr<T>(), x.stride, w.ptr<TW>(), eps,
                                               out.ptr<T>(), out.stride, x.cols);
                         }));
}

}  // namespace densekv
