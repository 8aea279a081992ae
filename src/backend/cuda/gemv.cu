// CUDA backend: out (+)= x @ w^T (+ bias) for a few rows of x (decode steps of batch 1-2), a
// matrix-vector kernel that streams each weight once. On the H100 at m = 1 it takes 0.88-0.98x
// cuBLASLt's time on the Llama-3.1-8B and Qwen2.5-7B decode shapes (Qwen's o 1.08x), 0.86-1.02
// of a plain read of the same bytes; from m = 3 cuBLASLt's kernels are faster
// (bench/gemv_bench.cpp, docs/benchmarks.md). fp32 products and sums, as CUBLAS_COMPUTE_32F.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_common.cuh"

namespace densekv {

namespace {

constexpr int kWarps = 8;          // a block's warps
constexpr int kUnroll = 8;         // 16-byte weight loads a lane issues before it uses the first
constexpr int kSwigluWpcLog2 = 2;  // the fused SwiGLU: 4 warps per column, gate and up

// 8 16-bit elements (one 16-byte chunk) to fp32 (bit operations: cuda::load8's per-element
// conversion took 5 more registers here).
template <class T>
__device__ __forceinline__ void unpack8(const uint4& u, float* f) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    } else {
      const float2 h = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
      f[2 * i] = h.x;
      f[2 * i + 1] = h.y;
    }
  }
}

// x [M, k], w [n, k] (rows 16-byte aligned, k a multiple of 8), out [M, n]; bias [n] or null.
// A block computes kWarps >> wpc_log2 output columns, each by 2^wpc_log2 warps (parts). Part p of
// column c takes w's row c in groups of 32 16-byte chunks, groups p, p + 2^wpc_log2, ...: lane l
// the group's chunk l, kUnroll groups in flight (streaming loads: the weights are read once), and
// the same chunks of each x row (L1). The parts' sums are added in a fixed order (deterministic).
// SWIGLU (2 columns per block, wpc_log2 = kSwigluWpcLog2): block j computes gate column j and up
// column n + j of w [2n, k] and writes out[., j] = silu(gate) * up (as swiglu.cu, from the fp32
// sums).
template <class T, class TO, int M, bool SWIGLU = false>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_kernel(const T* __restrict__ x, int64_t x_stride, const T* __restrict__ w,
                int64_t w_stride, const T* __restrict__ bias, TO* out, int64_t out_stride, int n,
                int k, int wpc_log2, bool accumulate) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int col = SWIGLU ? blockIdx.x + (warp >> wpc_log2) * n
                         : blockIdx.x * (kWarps >> wpc_log2) + (warp >> wpc_log2);
  const int part = warp & ((1 << wpc_log2) - 1);
  const int chunks = k / 8, step = 32 << wpc_log2;
  float acc[M] = {};
  // Launched as a programmatic dependent (launch_kernel): the first weight loads are issued before
  // the wait for the kernel before, whose output x (and out, when accumulating) is.
  if (col < (SWIGLU ? 2 * n : n)) {
    const auto* wrow = reinterpret_cast<const uint4*>(w + col * w_stride);
    uint4 wv[kUnroll];
    auto load_round = [&](int c0) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + step * u;
        wv[u] = c < chunks ? __ldcs(wrow + c) : make_uint4(0, 0, 0, 0);
      }
    };
    int c0 = part * 32 + lane;
    load_round(c0);
    cuda::grid_dependency_wait();
    cuda::launch_dependents();
    while (c0 < chunks) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + step * u;
        if (c >= chunks) break;
        float wf[8];
        unpack8<T>(wv[u], wf);
#pragma unroll
        for (int t = 0; t < M; ++t) {
          float xf[8];
          unpack8<T>(*reinterpret_cast<const uint4*>(x + t * x_stride + 8 * c), xf);
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[t] = fmaf(wf[i], xf[i], acc[t]);
        }
      }
      c0 += step * kUnroll;
      if (c0 < chunks) load_round(c0);
    }
  }
#pragma unroll
  for (int t = 0; t < M; ++t) acc[t] = cuda::warp_sum(acc[t]);
  if (wpc_log2 > 0) {
    __shared__ float sums[kWarps][M];
    if (lane == 0) {
#pragma unroll
      for (int t = 0; t < M; ++t) sums[warp][t] = acc[t];
    }
    __syncthreads();
    if constexpr (SWIGLU) {
      if (threadIdx.x != 0) return;
#pragma unroll
      for (int t = 0; t < M; ++t) {
        constexpr int kParts = kWarps / 2;
        float g = sums[0][t], u = sums[kParts][t];
        for (int p = 1; p < kParts; ++p) g += sums[p][t], u += sums[kParts + p][t];
        out[t * out_stride + blockIdx.x] = cuda::from_f32<TO>(g / (1.0f + expf(-g)) * u);
      }
      return;
    }
    if (part != 0) return;
#pragma unroll
    for (int t = 0; t < M; ++t) {
      for (int p = 1; p < (1 << wpc_log2); ++p) acc[t] += sums[warp + p][t];
    }
  }
  if (lane != 0 || col >= n) return;
  const float b = bias ? cuda::to_f32(bias[col]) : 0.0f;
#pragma unroll
  for (int t = 0; t < M; ++t) {
    TO* o = out + t * out_stride + col;
    const float prev = accumulate ? cuda::to_f32(*o) : 0.0f;
    *o = cuda::from_f32<TO>(acc[t] + prev + b);
  }
}

template <class T, class TO, int M, bool SWIGLU = false>
void launch(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
            bool accumulate, int wpc_log2, bool pdl, cudaStream_t stream) {
  if constexpr (M > 1) {
    if (x.rows < M) {
      return launch<T, TO, M - 1, SWIGLU>(x, w, bias, out, accumulate, wpc_log2, pdl, stream);
    }
  }
  const int n = static_cast<int>(SWIGLU ? w.rows / 2 : w.rows);
  const auto blocks = static_cast<unsigned>(SWIGLU ? n : cuda::ceil_div(n, kWarps >> wpc_log2));
  cuda::launch_kernel(gemv_kernel<T, TO, M, SWIGLU>, blocks, kWarps * 32, 0, stream, pdl,
                      x.ptr<T>(), x.stride, w.ptr<T>(), w.stride,
                      bias.empty() ? nullptr : bias.ptr<T>(), out.ptr<TO>(), out.stride, n,
                      static_cast<int>(w.cols), wpc_log2, accumulate);
}

}  // namespace

bool CudaBackend::gemv_fits(const Tensor& x, const Tensor& w, const Tensor& bias,
                            const Tensor& out) const {
  return x.rows >= 1 && x.rows <= gemv_rows_ && dtype_size(w.dtype) == 2 && w.cols % 8 == 0 &&
         x.stride % 8 == 0 && w.stride % 8 == 0 && cuda::aligned(x.data, 16) &&
         cuda::aligned(w.data, 16) && w.rows <= (int64_t{1} << 30) &&
         (bias.empty() || bias.dtype == w.dtype) &&
         (out.dtype == w.dtype || out.dtype == DType::F32);
}

void CudaBackend::gemv(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
                       bool accumulate) {
  CHECK(gemv_fits(x, w, bias, out));
  // Columns per block (H100, bench/gemv_bench.cpp, docs/benchmarks.md): 2 for 1-2 rows (4 warps
  // per column; on the 8B shapes within 2% of the best column count but for the o projections,
  // 6-7% slower than 8), 4 for more.
  const int cols = gemv_cols_ > 0 ? gemv_cols_ : x.rows <= 2 ? 2 : 4;
  int wpc_log2 = 0;
  while ((kWarps >> wpc_log2) > cols) ++wpc_log2;
  DENSEKV_DISPATCH_DTYPE(w.dtype, T, {
    if constexpr (sizeof(T) == 2) {
      if (out.dtype == DType::F32) {
        launch<T, float, kMaxGemvRows>(x, w, bias, out, accumulate, wpc_log2, pdl_, stream_);
      } else {
        launch<T, T, kMaxGemvRows>(x, w, bias, out, accumulate, wpc_log2, pdl_, stream_);
      }
    }
  });
  ++gemv_launches_;
}

bool CudaBackend::fuses_swiglu(const Tensor& x, const Tensor& w) const {
  const Tensor out = make_tensor(nullptr, w.dtype, x.rows, w.rows / 2);
  return w.rows % 2 == 0 && gemv_fits(x, w, Tensor{}, out);
}

void CudaBackend::matmul_swiglu(const Tensor& x, const Tensor& w, const Tensor& out) {
  CHECK(fuses_swiglu(x, w) && out.rows == x.rows && out.cols == w.rows / 2 &&
        out.dtype == w.dtype && x.cols == w.cols);
  DENSEKV_DISPATCH_DTYPE(w.dtype, T, {
    if constexpr (sizeof(T) == 2) {
      launch<T, T, kMaxGemvRows, true>(x, w, Tensor{}, out, false, kSwigluWpcLog2, pdl_, stream_);
    }
  });
  ++gemv_launches_;
}

}  // namespace densekv
