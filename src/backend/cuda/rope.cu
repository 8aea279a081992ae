// CUDA backend: rotary embedding in place (rotate-half pairs i, i + head_dim / 2), angle
// positions[t] * inv_freq[i] in fp32 as transformers computes it, precise sinf/cosf.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

// Block per row: the half cos/sin pairs once, then every head's pairs, 8 at a time by 16-byte
// loads where vec (half % 8 == 0, 16-byte aligned rows), else one at a time.
template <class T>
__global__ void rope_kernel(T* x, int64_t stride, int n_heads, int half, const int32_t* positions,
                            const float* inv_freq, bool vec) {
  extern __shared__ float cs[];  // cos [half], then sin [half]
  cuda::grid_dependency_wait();  // x is the kernel before's (launch_kernel)
  cuda::launch_dependents();
  T* row = x + blockIdx.x * stride;
  const float pos = static_cast<float>(positions[blockIdx.x]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    sincosf(pos * inv_freq[i], &cs[half + i], &cs[i]);
  }
  __syncthreads();
  const int width = vec ? 8 : 1, per_head = half / width;
  for (int j = threadIdx.x; j < n_heads * per_head; j += blockDim.x) {
    const int h = j / per_head, i0 = j % per_head * width;
    T* v = row + h * 2 * half + i0;
    float a[8], b[8];
    if (vec) {
      cuda::load8(v, a);
      cuda::load8(v + half, b);
    } else {
      a[0] = cuda::to_f32(v[0]);
      b[0] = cuda::to_f32(v[half]);
    }
    for (int e = 0; e < width; ++e) {
      const float c = cs[i0 + e], s = cs[half + i0 + e], x1 = a[e], x2 = b[e];
      a[e] = x1 * c - x2 * s;
      b[e] = x2 * c + x1 * s;
    }
    if (vec) {
      cuda::store8(v, a);
      cuda::store8(v + half, b);
    } else {
      v[0] = cuda::from_f32<T>(a[0]);
      v[half] = cuda::from_f32<T>(b[0]);
    }
  }
}

}  // namespace

void CudaBackend::rope(const Tensor& x, int head_dim, const int32_t* positions,
                       const Tensor& inv_freq) {
  CHECK(head_dim % 2 == 0 && x.cols % head_dim == 0 && inv_freq.cols == head_dim / 2);
  CHECK(inv_freq.dtype == DType::F32);
  if (x.rows == 0) return;
  const int n_heads = static_cast<int>(x.cols / head_dim), half = head_dim / 2;
  const bool vec =
      half % 8 == 0 && x.stride % 8 == 0 && cuda::aligned(x.data, 8 * dtype_size(x.dtype));
  const int lanes = n_heads * (vec ? half / 8 : half);
  const int threads = std::min(512, (lanes + 31) / 32 * 32);
  DENSEKV_DISPATCH_DTYPE(x.dtype, T, {
    cuda::launch_kernel(rope_kernel<T>, x.rows, threads, 2 * half * sizeof(float), stream_, pdl_,
                        x.ptr<T>(), x.stride, n_heads, half, positions, inv_freq.ptr<float>(), vec);
  });
}

}  // namespace densekv
