// CUDA_CHECK: abort with file:line and the CUDA error string on a failed runtime call (host code).
#pragma once
#include <cuda_runtime.h>

#include "core/check.h"

#define CUDA_CHECK(expr)                                                          \
  do {                                                                            \
    cudaError_t err_ = (expr);                                                    \
    if (err_ != cudaSuccess) DENSEKV_CHECK_FAIL(#expr, cudaGetErrorString(err_)); \
  } while (0)

// After a kernel launch: catches bad launch configurations at once (asynchronous faults show up
// at the next synchronizing call).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
