// A streaming read of device memory (stream_read.h).
#include "backend/cuda/cuda_check.h"
#include "stream_read.h"

namespace densekv {

namespace {

constexpr int kThreads = 512;
constexpr int kBlocksPerSm = 4;  // 2048 threads per SM, 4 loads each in flight

__global__ void __launch_bounds__(kThreads)
    stream_read_kernel(const uint4* __restrict__ src, size_t n, unsigned* sink) {
  unsigned acc = 0;
  const size_t step = static_cast<size_t>(gridDim.x) * kThreads;
#pragma unroll 4
  for (size_t i = static_cast<size_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += step) {
    const uint4 v = __ldcs(src + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

}  // namespace

void stream_read(const void* src, size_t bytes, unsigned* sink, int sm_count, cudaStream_t stream) {
  stream_read_kernel<<<sm_count * kBlocksPerSm, kThreads, 0, stream>>>(
      static_cast<const uint4*>(src), bytes / 16, sink);
  CUDA_CHECK_LAUNCH();
}

}  // namespace densekv
