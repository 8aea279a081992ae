// CUDA backend: out = a + b, element-wise, fp32 arithmetic.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

template <class T>
__global__ void add_kernel(const T* a, int64_t a_stride, const T* b, int64_t b_stride, T* out,
                           int64_t out_stride, int64_t n) {
  const int64_t r = blockIdx.y;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    out[r * out_stride + i] =
        cuda::from_f32<T>(cuda::to_f32(a[r * a_stride + i]) + cuda::to_f32(b[r * b_stride + i]));
  }
}

}  // namespace

void CudaBackend::add(const Tensor& a, const Tensor& b, const Tensor& out) {
  CHECK(a.rows == b.rows && a.cols == b.cols && a.rows == out.rows && a.cols == out.cols);
  CHECK(a.dtype == out.dtype && b.dtype == out.dtype);
  if (out.rows == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(cuda::ceil_div(out.cols, 256), 64)),
                  static_cast<unsigned>(out.rows));
  DENSEKV_DISPATCH_DTYPE(out.dtype, T, {
    add_kernel<T><<<grid, 256, 0, stream_>>>(a.ptr<T>(), a.stride, b.ptr<T>(), b.stride,
                                             out.ptr<T>(), out.stride, out.cols);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace densekv
