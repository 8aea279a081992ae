// CUDA backend: writes each new token's K and V rows into the paged cache (plain formats: in its
// slot, converted to the cache's element type).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "core/errors.h"

namespace densekv {

namespace {

// Block per token; thread per (K or V, kv head, 8-channel chunk).
template <class TA, class E>
__global__ void kv_write_plain_kernel(const TA* k, int64_t k_stride, const TA* v, int64_t v_stride,
                                      const int32_t* slots, uint8_t* base, size_t block_bytes,
                                      int block_size, int n_kv_heads, int head_dim) {
  const int t = blockIdx.x;
  const int slot = slots[t];
  const int block = slot / block_size, off = slot % block_size;
  const int chunks = head_dim / 8;
  for (int i = threadIdx.x; i < 2 * n_kv_heads * chunks; i += blockDim.x) {
    const int which = i / (n_kv_heads * chunks), h = (i / chunks) % n_kv_heads, c = i % chunks;
    const TA* src = (which == 0 ? k + t * k_stride : v + t * v_stride) + h * head_dim + c * 8;
    float x[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) x[e] = cuda::to_f32(src[e]);
    const size_t row = (static_cast<size_t>(which) * n_kv_heads + h) * block_size + off;
    E* dst = reinterpret_cast<E*>(base + static_cast<size_t>(block) * block_bytes) +
             row * head_dim + c * 8;
    cuda::store8(dst, x);
  }
}

}  // namespace

void CudaBackend::kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                           const int32_t* slots) {
  const int hd = kv.head_dim;
  CHECK(k.cols == static_cast<int64_t>(kv.n_kv_heads) * hd && v.cols == k.cols);
  CHECK(k.rows == v.rows && k.dtype == v.dtype && hd % 8 == 0);
  if (kv_format_is_quantized(kv.format)) {
    throw InvalidArgumentError(std::string("--kv-cache-dtype ") + kv_format_name(kv.format) +
                               " is not wired into the CUDA forward yet");
  }
  if (k.rows == 0) return;
  const int threads = std::min(256, (2 * kv.n_kv_heads * hd / 8 + 31) / 32 * 32);
  DENSEKV_DISPATCH_DTYPE(k.dtype, TA, DENSEKV_DISPATCH_DTYPE(kv_format_dtype(kv.format), E, {
    kv_write_plain_kernel<TA, E><<<k.rows, threads, 0, stream_>>>(
        k.ptr<TA>(), k.stride, v.ptr<TA>(), v.stride, slots, static_cast<uint8_t*>(kv.base),
        kv.block_bytes, kv.block_size, kv.n_kv_heads, hd);
  }));
  CUDA_CHECK_LAUNCH();
}

}  // namespace densekv
