// CUDA backend: out = x / sqrt(mean(x^2) + eps) * w per row, fp32 arithmetic.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

// One block per row. vec: rows and w in 16-byte chunks of 8 elements (cols % 8 == 0, aligned);
// each thread's first chunk of x and of w is loaded before the sum, so that a row of up to
// 8 x blockDim elements takes one round of memory latency before the reduction.
template <class T, class TW>
__global__ void rmsnorm_kernel(const T* x, int64_t x_stride, const TW* w, float eps, T* out,
                               int64_t out_stride, int64_t cols, bool vec) {
  cuda::grid_dependency_wait();  // x is the kernel before's (launch_kernel)
  cuda::launch_dependents();
  const T* xr = x + blockIdx.x * x_stride;
  T* o = out + blockIdx.x * out_stride;
  float ss = 0.0f;
  if (vec) {
    const int64_t chunks = cols / 8, first = threadIdx.x;
    float x0[8], w0[8];
    if (first < chunks) {
      cuda::load8(xr + 8 * first, x0);
      cuda::load8(w + 8 * first, w0);
#pragma unroll
      for (int e = 0; e < 8; ++e) ss += x0[e] * x0[e];
    }
    for (int64_t c = first + blockDim.x; c < chunks; c += blockDim.x) {
      float xv[8];
      cuda::load8(xr + 8 * c, xv);
#pragma unroll
      for (int e = 0; e < 8; ++e) ss += xv[e] * xv[e];
    }
    ss = cuda::block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / static_cast<float>(cols) + eps);
    if (first < chunks) {
#pragma unroll
      for (int e = 0; e < 8; ++e) x0[e] = w0[e] * (x0[e] * inv);
      cuda::store8(o + 8 * first, x0);
    }
    for (int64_t c = first + blockDim.x; c < chunks; c += blockDim.x) {
      float xv[8], wv[8];
      cuda::load8(xr + 8 * c, xv);
      cuda::load8(w + 8 * c, wv);
#pragma unroll
      for (int e = 0; e < 8; ++e) xv[e] = wv[e] * (xv[e] * inv);
      cuda::store8(o + 8 * c, xv);
    }
    return;
  }
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
  const size_t xs = dtype_size(x.dtype), ws = dtype_size(w.dtype);
  const bool vec = x.cols % 8 == 0 && x.stride % 8 == 0 && out.stride % 8 == 0 &&
                   cuda::aligned(x.data, 8 * xs) && cuda::aligned(out.data, 8 * xs) &&
                   cuda::aligned(w.data, 8 * ws);
  const int64_t lanes = vec ? x.cols / 8 : x.cols;
  const int threads = static_cast<int>(std::min<int64_t>(1024, (lanes + 31) / 32 * 32));
  DENSEKV_DISPATCH_DTYPE(x.dtype, T, DENSEKV_DISPATCH_DTYPE(w.dtype, TW, {
                           cuda::launch_kernel(rmsnorm_kernel<T, TW>, x.rows, threads, 0, stream_,
                                               pdl_, x.ptr<T>(), x.stride, w.ptr<TW>(), eps,
                                               out.ptr<T>(), out.stride, x.cols, vec);
                         }));
}

}  // namespace densekv
