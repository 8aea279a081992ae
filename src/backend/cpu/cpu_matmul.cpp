// CPU backend: out (+)= x @ w^T (+ bias), fp32, batch invariant. A row's result never depends on
// the other rows of the call: every output element is computed by the same instruction sequence
// in the same order (8 partial sums, lane l taking k = l mod 8 below K - K % 8 in increasing k,
// the lanes added in order 0..7, then the K % 8 rest), whatever the number of rows, the row's
// place in the batch or the thread. So a token's logits are bit-identical whether it runs alone
// (decode), in a chunk, in a whole-prompt prefill or among other sequences; a BLAS sgemm picks
// kernels by shape and is not (its rows differed in the last bits with the batch, which a 16-bit
// KV cache turned into different sampled tokens).
//
// Loop order: tasks over tiles of kCols weight rows (they stay in cache), each running all x rows
// in tiles of kRows; partial tiles repeat their last row / column and drop the extra results, so
// every element goes through the one full-tile kernel.
#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "core/check.h"

namespace densekv {

namespace {

constexpr int kRows = 4;  // rows of x per tile
constexpr int kCols = 2;  // rows of w (output columns) per tile
constexpr int kLanes = 8;

// 8 floats; GCC/Clang lower it to the target's vectors (2 x SSE, 1 x AVX).
typedef float v8 __attribute__((vector_size(32)));

// res[r][c] = dot(xr[r], wc[c]) over K in the fixed order above. On x86-64 with GCC the AVX2+FMA
// clone runs where the CPU has it: one machine always runs the same clone for every element.
#if defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void tile(const float* const* xr, const float* const* wc, int64_t K, float res[kRows][kCols]) {
  v8 acc[kRows][kCols] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    v8 wv[kCols];
    for (int c = 0; c < kCols; ++c) __builtin_memcpy(&wv[c], wc[c] + k, sizeof(v8));
    for (int r = 0; r < kRows; ++r) {
      v8 xv;
      __builtin_memcpy(&xv, xr[r] + k, sizeof(v8));
      for (int c = 0; c < kCols; ++c) acc[r][c] += xv * wv[c];
    }
  }
  float rest[kRows][kCols] = {};
  for (; k < K; ++k) {
    for (int r = 0; r < kRows; ++r) {
      for (int c = 0; c < kCols; ++c) rest[r][c] += xr[r][k] * wc[c][k];
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int c = 0; c < kCols; ++c) {
      float s = 0.0f;
      for (int l = 0; l < kLanes; ++l) s += acc[r][c][l];
      res[r][c] = s + rest[r][c];
    }
  }
}

}  // namespace

void CpuBackend::matmul(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
                        bool accumulate) {
  CHECK(x.dtype == DType::F32 && w.dtype == DType::F32 && out.dtype == DType::F32);
  CHECK(x.cols == w.cols && out.rows == x.rows && out.cols == w.rows);
  CHECK(bias.empty() || (bias.dtype == DType::F32 && bias.cols == out.cols));
  if (x.rows == 0) return;
  const int64_t T = x.rows, N = w.rows, K = x.cols;
  const float* bp = bias.empty() ? nullptr : bias.ptr<float>();
  const int64_t col_tiles = (N + kCols - 1) / kCols;
  pool_.parallel_for(col_tiles, [&](int64_t b, int64_t e) {
    const float* xr[kRows];
    const float* wc[kCols];
    float res[kRows][kCols];
    for (int64_t ct = b; ct < e; ++ct) {
      const int64_t n0 = ct * kCols;
      const int nc = static_cast<int>(std::min<int64_t>(kCols, N - n0));
      for (int c = 0; c < kCols; ++c)
        wc[c] = w.ptr<float>() + (n0 + std::min(c, nc - 1)) * w.stride;
      for (int64_t t0 = 0; t0 < T; t0 += kRows) {
        const int nr = static_cast<int>(std::min<int64_t>(kRows, T - t0));
        for (int r = 0; r < kRows; ++r) {
          xr[r] = x.ptr<float>() + (t0 + std::min(r, nr - 1)) * x.stride;
        }
        tile(xr, wc, K, res);
        for (int r = 0; r < nr; ++r) {
          float* o = out.ptr<float>() + (t0 + r) * out.stride + n0;
          for (int c = 0; c < nc; ++c) {
            float v = accumulate ? o[c] + res[r][c] : res[r][c];
            if (bp) v += bp[n0 + c];
            o[c] = v;
          }
        }
      }
    }
  });
}

}  // namespace densekv
