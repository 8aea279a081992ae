// Shared device helpers of the CUDA backend: error checks, element loads/stores between fp32 and
// the storage dtypes, 16-byte vector loads of 8 elements, warp reductions, launch shapes.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "core/dtype.h"

namespace densekv::cuda {

inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// ---- element access: T is float, __nv_bfloat16 or __half ----

__device__ __forceinline__ float to_f32(float x) {
  return x;
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
__device__ __forceinline__ float to_f32(__half x) {
  return __half2float(x);
}

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) {
  return __float2half_rn(x);
}

// 8 consecutive elements <-> fp32 (16-byte access for 16-bit types, 2 x 16 bytes for fp32). The
// pointer must be aligned to 8 elements.
template <class T>
__device__ __forceinline__ void load8(const T* p, float* x) {
  if constexpr (sizeof(T) == 4) {
    const float4 a = reinterpret_cast<const float4*>(p)[0];
    const float4 b = reinterpret_cast<const float4*>(p)[1];
    x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
  } else {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const T* e = reinterpret_cast<const T*>(&u);
#pragma unroll
    for (int i = 0; i < 8; ++i) x[i] = to_f32(e[i]);
  }
}

template <class T>
__device__ __forceinline__ void store8(T* p, const float* x) {
  if constexpr (sizeof(T) == 4) {
    reinterpret_cast<float4*>(p)[0] = make_float4(x[0], x[1], x[2], x[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(x[4], x[5], x[6], x[7]);
  } else {
    uint4 u;
    T* e = reinterpret_cast<T*>(&u);
#pragma unroll
    for (int i = 0; i < 8; ++i) e[i] = from_f32<T>(x[i]);
    *reinterpret_cast<uint4*>(p) = u;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int n_warps = blockDim.x / 32;
  v = lane < n_warps ? part[lane] : 0.0f;
  return warp_sum(v);
}

// Programmatic dependent launch (sm_90+; no-ops before): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start once every block of the kernel
// before it has called launch_dependents (or exited); grid_dependency_wait blocks until that
// kernel has completed and its writes are visible.
__device__ __forceinline__ void launch_dependents() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void grid_dependency_wait() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// A cudaLaunchKernelEx configuration; pdl: as a programmatic dependent of the kernel before it
// (the attribute points into this object, which is therefore not copied).
struct LaunchConfig {
  cudaLaunchConfig_t cfg{};
  cudaLaunchAttribute attr{};
  LaunchConfig(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, bool pdl) {
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = pdl ? 1 : 0;
  }
  LaunchConfig(const LaunchConfig&) = delete;
  LaunchConfig& operator=(const LaunchConfig&) = delete;
};

// kernel<<<grid, block, smem, stream>>>(args...), as a programmatic dependent of the kernel
// before it where pdl: such a kernel calls grid_dependency_wait() before it reads what an earlier
// kernel wrote (and before it writes), then launch_dependents().
template <class... P, class... A>
void launch_kernel(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   bool pdl, A&&... args) {
  const LaunchConfig lc(grid, block, smem, stream, pdl);
  CUDA_CHECK(cudaLaunchKernelEx(&lc.cfg, kernel, static_cast<P>(args)...));
}

// True when p is aligned to `bytes`.
inline bool aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

}  // namespace densekv::cuda

// Runs `body` with `T` bound to the device element type of dtype `dt` (float, __nv_bfloat16,
// __half). Used by the host-side launchers to instantiate a kernel per dtype.
#define DENSEKV_DISPATCH_DTYPE(dt, T, ...) \
  do {                                     \
    switch (dt) {                          \
      case ::densekv::DType::F32: {        \
        using T = float;                   \
        __VA_ARGS__;                       \
        break;                             \
      }                                    \
      case ::densekv::DType::BF16: {       \
        using T = __nv_bfloat16;           \
        __VA_ARGS__;                       \
        break;                             \
      }                                    \
      case ::densekv::DType::F16: {        \
        using T = __half;                  \
        __VA_ARGS__;                       \
        break;                             \
      }                                    \
    }                                      \
  } while (0)
