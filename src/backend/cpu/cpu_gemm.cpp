#include "backend/cpu/cpu_gemm.h"

#include <algorithm>

namespace densekv::cpu {

namespace {

constexpr int kRows = 4;  // rows of x per tile
constexpr int kCols = 2;  // rows of w (output columns) per tile
constexpr int kLanes = 8;

// 8 floats; GCC/Clang lower it to whatever vectors the target has (2 x SSE, 1 x AVX).
typedef float v8 __attribute__((vector_size(32)));

// res[r][c] = dot(xr[r], wc[c]) over K, in the one fixed order: lane l sums the products at
// k = l (mod 8) below K - K % 8 in increasing k, the lanes are added in order 0..7, then the
// rest of K. On x86-64 the AVX2+FMA clone runs where the CPU has it (one machine always runs the
// same clone, and every element of every call goes through it).
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

void gemm_nt_invariant(ThreadPool& pool, const float* x, int64_t x_stride, const float* w,
                       int64_t w_stride, float* out, int64_t out_stride, int64_t T, int64_t N,
                       int64_t K, bool accumulate) {
  if (T <= 0 || N <= 0) return;
  const int64_t col_tiles = (N + kCols - 1) / kCols;
  // Threads split the output columns; each walks every row tile over its (cached) weight rows.
  pool.parallel_for(col_tiles, [&](int64_t b, int64_t e) {
    const float* xr[kRows];
    const float* wc[kCols];
    float res[kRows][kCols];
    for (int64_t ct = b; ct < e; ++ct) {
      const int64_t n0 = ct * kCols;
      const int nc = static_cast<int>(std::min<int64_t>(kCols, N - n0));
      for (int c = 0; c < kCols; ++c) wc[c] = w + (n0 + std::min(c, nc - 1)) * w_stride;
      for (int64_t t0 = 0; t0 < T; t0 += kRows) {
        const int nr = static_cast<int>(std::min<int64_t>(kRows, T - t0));
        for (int r = 0; r < kRows; ++r) xr[r] = x + (t0 + std::min(r, nr - 1)) * x_stride;
        tile(xr, wc, K, res);
        for (int r = 0; r < nr; ++r) {
          float* o = out + (t0 + r) * out_stride + n0;
          for (int c = 0; c < nc; ++c) o[c] = accumulate ? o[c] + res[r][c] : res[r][c];
        }
      }
    }
  });
}

}  // namespace densekv::cpu
