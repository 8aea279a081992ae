// CPU backend: out (+)= x @ w^T (+ bias), fp32. A row's result never depends on the other rows
// of the call: every output element is the same fixed-order sum (8 partial sums over k, lane
// k % 8, accumulated in k order, then combined pairwise), computed by the same code whatever the
// number of rows. So a token's logits are bit-identical whether it is run alone (decode), in a
// chunk, or in a whole-prompt prefill; a BLAS sgemm picks kernels by shape and is not.
//
// Loop order: tasks over tiles of 16 weight rows (they stay in cache), each running all x rows
// in tiles of 4 (the last tile padded by repeating its last row, so every row takes the same
// path).
#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "core/check.h"

namespace densekv {

namespace {

constexpr int kLanes = 8;
constexpr int kRowTile = 4;
constexpr int64_t kColTile = 16;

// res[r] = x[r] . w for kRowTile rows x[r] of length K.
void dot_rows(const float* const* x, const float* w, int64_t K, float* res) {
  float acc[kRowTile][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    for (int r = 0; r < kRowTile; ++r) {
      for (int l = 0; l < kLanes; ++l) acc[r][l] += x[r][k + l] * w[k + l];
    }
  }
  for (int l = 0; k < K; ++k, ++l) {
    for (int r = 0; r < kRowTile; ++r) acc[r][l] += x[r][k] * w[k];
  }
  for (int r = 0; r < kRowTile; ++r) {
    const float* a = acc[r];
    res[r] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
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
  const int64_t col_tiles = (N + kColTile - 1) / kColTile;
  pool_.parallel_for(col_tiles, [&](int64_t cb, int64_t ce) {
    for (int64_t n0 = cb * kColTile; n0 < std::min(N, ce * kColTile); n0 += kColTile) {
      const int64_t n1 = std::min(N, n0 + kColTile);
      for (int64_t t0 = 0; t0 < T; t0 += kRowTile) {
        const float* xr[kRowTile];
        for (int r = 0; r < kRowTile; ++r) {
          xr[r] = x.ptr<float>() + std::min(t0 + r, T - 1) * x.stride;
        }
        for (int64_t n = n0; n < n1; ++n) {
          float res[kRowTile];
          dot_rows(xr, w.ptr<float>() + n * w.stride, K, res);
          for (int r = 0; r < kRowTile && t0 + r < T; ++r) {
            float& o = out.ptr<float>()[(t0 + r) * out.stride + n];
            float val = accumulate ? o + res[r] : res[r];
            if (bp) val += bp[n];
            o = val;
          }
        }
      }
    }
  });
}

}  // namespace densekv
