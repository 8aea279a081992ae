// CUDA backend: out = silu(gate) * up, gate_up [T, 2I] = [gate | up], fp32 arithmetic.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

template <class T>
__global__ void swiglu_kernel(const T* gate_up, int64_t gu_stride, T* out, int64_t out_stride,
                              int64_t n) {
  cuda::grid_dependency_wait();  // gate_up is the kernel before's (launch_kernel)
  cuda::launch_dependents();
  const T* g = gate_up + blockIdx.y * gu_stride;
  T* o = out + blockIdx.y * out_stride;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float gv = cuda::to_f32(g[i]);
    o[i] = cuda::from_f32<T>(gv / (1.0f + expf(-gv)) * cuda::to_f32(g[n + i]));
  }
}

}  // namespace

void CudaBackend::swiglu(const Tensor& gate_up, const Tensor& out) {
  CHECK(gate_up.cols == 2 * out.cols && gate_up.rows == out.rows && gate_up.dtype == out.dtype);
  if (out.rows == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(cuda::ceil_div(out.cols, 256), 64)),
                  static_cast<unsigned>(out.rows));
  DENSEKV_DISPATCH_DTYPE(out.dtype, T, {
    cuda::launch_kernel(swiglu_kernel<T>, grid, 256, 0, stream_, pdl_, gate_up.ptr<T>(),
                        gate_up.stride, out.ptr<T>(), out.stride, out.cols);
  });
}

}  // namespace densekv
