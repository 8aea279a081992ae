// CUDA backend: random (or constant) fill of a dense tensor on the device, element i from
// random_unit(seed, i) exactly as the host default of Backend::fill_random (dummy weights of 8B
// models in well under a second instead of minutes of host generation and uploads).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

template <class T>
__global__ void fill_random_kernel(T* out, int64_t n, float a, float value, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float x =
        a == 0.0f ? value : a * (2.0f * random_unit(seed, static_cast<uint64_t>(i)) - 1.0f);
    out[i] = cuda::from_f32<T>(x);
  }
}

}  // namespace

void CudaBackend::fill_random(const Tensor& t, float a, float value, uint64_t seed) {
  CHECK(t.stride == t.cols);
  const int64_t n = t.rows * t.cols;
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(cuda::ceil_div(n, 256), 65536));
  DENSEKV_DISPATCH_DTYPE(t.dtype, T, {
    fill_random_kernel<T><<<blocks, 256, 0, stream_>>>(t.ptr<T>(), n, a, value, seed);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace densekv
