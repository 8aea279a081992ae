// CUDA backend: out[i] = src[idx[i]] (embedding lookup, selecting rows), converting the dtype.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

// One block per output row; a bad index (outside [0, n_src)) leaves a NaN row and sets *bad.
template <class TI, class TO>
__global__ void gather_rows_kernel(const TI* src, int64_t src_stride, int64_t n_src,
                                   const int32_t* idx, TO* out, int64_t out_stride, int64_t cols) {
  const int64_t r = blockIdx.x;
  const int32_t i = idx[r];
  TO* o = out + r * out_stride;
  if (i < 0 || i >= n_src) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = cuda::from_f32<TO>(NAN);
    return;
  }
  const TI* s = src + static_cast<int64_t>(i) * src_stride;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    o[c] = cuda::from_f32<TO>(cuda::to_f32(s[c]));
}

}  // namespace

void CudaBackend::gather_rows(const Tensor& src, const int32_t* idx, const Tensor& out) {
  CHECK(src.cols == out.cols);
  if (out.rows == 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(256, (out.cols + 31) / 32 * 32));
  DENSEKV_DISPATCH_DTYPE(src.dtype, TI, DENSEKV_DISPATCH_DTYPE(out.dtype, TO, {
                           gather_rows_kernel<TI, TO><<<out.rows, threads, 0, stream_>>>(
                               src.ptr<TI>(), src.stride, src.rows, idx, out.ptr<TO>(), out.stride,
                               out.cols);
                         }));
  CUDA_CHECK_LAUNCH();
}

}  // namespace densekv
