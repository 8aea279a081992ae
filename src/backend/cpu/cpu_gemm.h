// The CPU backend's matmul: out[t, n] (+)= dot(x[t, :], w[n, :]), batch invariant.
//
// Every output element is computed by the same instruction sequence in the same summation order
// (a fixed 8-lane split of K, the lanes summed in order, then the K % 8 rest), whatever the
// number of rows, the row's place in the batch or the thread that computes it: partial tiles
// are padded by repeating a row / column and dropping the extra results. So a sequence's logits
// are bit-identical whether it runs alone or among other sequences, in one prefill chunk or in
// several, which is what makes the engine's greedy outputs independent of batching (OpenBLAS
// picks kernels by shape, so its rows differ in the last bits with the batch).
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace densekv::cpu {

// x [T, K] (row stride x_stride), w [N, K] (w_stride), out [T, N] (out_stride), fp32.
void gemm_nt_invariant(ThreadPool& pool, const float* x, int64_t x_stride, const float* w,
                       int64_t w_stride, float* out, int64_t out_stride, int64_t T, int64_t N,
                       int64_t K, bool accumulate);

}  // namespace densekv::cpu
