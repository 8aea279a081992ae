// CUDA backend: rotary embedding in place (rotate-half pairs i, i + head_dim / 2), angle
// positions[t] * inv_freq[i] in fp32 as transformers computes it, precise sinf/cosf.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

// Block per row; thread per (head, pair).
template <class T>
__global__ void rope_kernel(T* x, int64_t stride, int n_heads, int half, const int32_t* positions,
                            const float* inv_freq) {
  cuda::grid_dependency_wait();  // x is the kernel before's (launch_kernel)
  cuda::launch_dependents();
  T* row = x + blockIdx.x * stride;
  const float pos = static_cast<float>(positions[blockIdx.x]);
  for (int j = threadIdx.x; j < n_heads * half; j += blockDim.x) {
    const int h = j / half, i = j % half;
    float s, c;
    sincosf(pos * inv_freq[i], &s, &c);
    T* v = row + h * 2 * half;
    const float x1 = cuda::to_f32(v[i]), x2 = cuda::to_f32(v[half + i]);
    v[i] = cuda::from_f32<T>(x1 * c - x2 * s);
    v[half + i] = cuda::from_f32<T>(x2 * c + x1 * s);
  }
}

}  // namespace

void CudaBackend::rope(const Tensor& x, int head_dim, const int32_t* positions,
                       const Tensor& inv_freq) {
  CHECK(head_dim % 2 == 0 && x.cols % head_dim == 0 && inv_freq.cols == head_dim / 2);
  CHECK(inv_freq.dtype == DType::F32);
  if (x.rows == 0) return;
  const int n_heads = static_cast<int>(x.cols / head_dim), half = head_dim / 2;
  const int threads = std::min(512, (n_heads * half + 31) / 32 * 32);
  DENSEKV_DISPATCH_DTYPE(x.dtype, T, {
    cuda::launch_kernel(rope_kernel<T>, x.rows, threads, 0, stream_, pdl_, x.ptr<T>(), x.stride,
                        n_heads, half, positions, inv_freq.ptr<float>());
  });
}

}  // namespace densekv
