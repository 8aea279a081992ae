// CPU backend ops against naive double-precision formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "model/generate.h"

using namespace densekv;

namespace {

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Tensor host(std::vector<float>& v, int64_t rows, int64_t cols) {
  return make_tensor(v.data(), DType::F32, rows, cols);
}

}  // namespace

TEST(ThreadPool, CoversEveryIndexOnce) {
  ThreadPool pool(4);
  for (int64_t n : {1, 3, 4, 17, 1000}) {
    std::vector<int> hits(static_cast<size_t>(n), 0);
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
}

TEST(CpuOps, RmsNormMatchesFormula) {
  CpuBackend be(2);
  const int T = 5, D = 64;
  auto x = random_vec(T * D, 1), w = random_vec(D, 2), out = std::vector<float>(T * D);
  be.rmsnorm(host(x, T, D), host(w, 1, D), 1e-5f, host(out, T, D));
  for (int t = 0; t < T; ++t) {
    double ss = 0;
    for (int i = 0; i < D; ++i) ss += double(x[t * D + i]) * x[t * D + i];
    double inv = 1.0 / std::sqrt(ss / D + 1e-5);
    for (int i = 0; i < D; ++i) ASSERT_NEAR(out[t * D + i], w[i] * x[t * D + i] * inv, 1e-5);
  }
}

TEST(CpuOps, MatmulBiasAccumulateAndStridedViews) {
  CpuBackend be(2);
  const int T = 7, K = 33, N = 19;
  auto x = random_vec(T * (K + 5), 3), w = random_vec(N * K, 4), b = random_vec(N, 5);
  Tensor xv = host(x, T, K + 5).slice_cols(5, K);  // strided input view
  std::vector<float> out(T * (N + 3), 0.5f);
  Tensor ov = host(out, T, N + 3).slice_cols(3, N);
  be.matmul(xv, host(w, N, K), host(b, 1, N), ov, /*accumulate=*/true);
  for (int t = 0; t < T; ++t) {
    for (int n = 0; n < N; ++n) {
      double acc = 0.5 + b[n];
      for (int k = 0; k < K; ++k) acc += double(x[t * (K + 5) + 5 + k]) * w[n * K + k];
      ASSERT_NEAR(out[t * (N + 3) + 3 + n], acc, 1e-4);
    }
    for (int c = 0; c < 3; ++c) ASSERT_EQ(out[t * (N + 3) + c], 0.5f);  // outside the view
  }
  be.matmul(xv, host(w, N, K), Tensor{}, ov, false);
  double acc = 0;
  for (int k = 0; k < K; ++k) acc += double(x[5 + k]) * w[k];
  EXPECT_NEAR(out[3], acc, 1e-4);
}

TEST(CpuOps, RopeRotatesHalfPairsByPositionTimesFrequency) {
  CpuBackend be(2);
  const int T = 4, H = 3, hd = 8;
  auto x = random_vec(T * H * hd, 6), orig = x;
  std::vector<float> inv = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<int32_t> pos = {0, 5, 17, 1000};
  be.rope(host(x, T, H * hd), hd, pos.data(), host(inv, 1, hd / 2));
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < hd / 2; ++i) {
        double a = double(pos[t]) * inv[i];
        double x1 = orig[(t * H + h) * hd + i], x2 = orig[(t * H + h) * hd + i + hd / 2];
        ASSERT_NEAR(x[(t * H + h) * hd + i], x1 * std::cos(a) - x2 * std::sin(a), 1e-4);
        ASSERT_NEAR(x[(t * H + h) * hd + i + hd / 2], x2 * std::cos(a) + x1 * std::sin(a), 1e-4);
      }
    }
  }
}

TEST(CpuOps, SwigluGatherAddArgmax) {
  CpuBackend be(2);
  const int T = 3, I = 10;
  auto gu = random_vec(T * 2 * I, 7), out = std::vector<float>(T * I);
  be.swiglu(host(gu, T, 2 * I), host(out, T, I));
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < I; ++i) {
      double g = gu[t * 2 * I + i], u = gu[t * 2 * I + I + i];
      ASSERT_NEAR(out[t * I + i], g / (1 + std::exp(-g)) * u, 1e-5);
    }
  }
  // gather from a bf16 table (the CUDA layout of embeddings): rows converted to fp32
  std::vector<uint16_t> table(4 * 3);
  for (int i = 0; i < 12; ++i) table[i] = f32_to_bf16(float(i) * 0.5f);
  std::vector<int32_t> idx = {3, 0, 3};
  std::vector<float> g(9);
  be.gather_rows(make_tensor(table.data(), DType::BF16, 4, 3), idx.data(), host(g, 3, 3));
  EXPECT_EQ(g, (std::vector<float>{4.5f, 5.0f, 5.5f, 0.0f, 0.5f, 1.0f, 4.5f, 5.0f, 5.5f}));

  std::vector<float> a = {1, 2, 3, 4}, b = {10, 20, 30, 40}, s(4);
  be.add(host(a, 2, 2), host(b, 2, 2), host(s, 2, 2));
  EXPECT_EQ(s, (std::vector<float>{11, 22, 33, 44}));

  std::vector<float> logits = {0.1f, 3.0f, 3.0f, -1.0f, -5.0f, -4.0f, -4.5f, -6.0f};
  EXPECT_EQ(be.argmax(host(logits, 2, 4)), (std::vector<int32_t>{1, 1}));  // first max on ties
}

TEST(CpuOps, UploadConvertsDtypes) {
  CpuBackend be(2);
  std::vector<uint16_t> src = {f32_to_bf16(1.5f), f32_to_bf16(-2.0f), f32_to_bf16(0.25f)};
  std::vector<float> dst(3);
  be.upload(dst.data(), DType::F32, src.data(), DType::BF16, 3);
  EXPECT_EQ(dst, (std::vector<float>{1.5f, -2.0f, 0.25f}));
  std::vector<uint16_t> h = {f32_to_f16(3.0f)};
  be.upload(dst.data(), DType::F32, h.data(), DType::F16, 1);
  EXPECT_EQ(dst[0], 3.0f);
}

TEST(Sampling, GreedyAndTemperature) {
  std::vector<float> logits = {0.0f, 2.0f, 5.0f, 5.0f, -1.0f};
  uint64_t rng = 7;
  EXPECT_EQ(sample_token(logits.data(), 5, 0.0f, rng), 2);  // argmax, first on ties
  // A very low temperature concentrates on the two maxima; never picks the others.
  std::vector<int> hits(5, 0);
  for (int i = 0; i < 200; ++i) hits[sample_token(logits.data(), 5, 0.05f, rng)]++;
  EXPECT_EQ(hits[0] + hits[1] + hits[4], 0);
  EXPECT_GT(hits[2], 50);
  EXPECT_GT(hits[3], 50);
  // Temperature 1 follows softmax: p(1) / p(0) = e^2; sample frequencies roughly agree.
  std::vector<float> two = {0.0f, 2.0f};
  int ones = 0;
  for (int i = 0; i < 4000; ++i) ones += sample_token(two.data(), 2, 1.0f, rng);
  EXPECT_NEAR(ones / 4000.0, std::exp(2.0) / (1 + std::exp(2.0)), 0.03);
  // The same seed gives the same sequence.
  uint64_t s1 = 3, s2 = 3;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(sample_token(two.data(), 2, 1.0f, s1), sample_token(two.data(), 2, 1.0f, s2));
  }
}

namespace {

// The CPU matmul is batch invariant: a row's result is bit-identical alone, in any batch size
// and at any position (what makes the engine's outputs independent of batching).
TEST(CpuOps, MatmulRowsAreBatchInvariant) {
  auto backend = densekv::make_backend("cpu", 2);
  const int64_t K = 77, N = 37;  // odd sizes: partial tiles and a K rest
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(N * K)), x(static_cast<size_t>(9 * K));
  for (float& v : w) v = u(rng);
  for (float& v : x) v = u(rng);
  densekv::Buffer wb(*backend, w.size() * 4), xb(*backend, x.size() * 4), ob(*backend, 9 * N * 4);
  std::memcpy(wb.data(), w.data(), w.size() * 4);
  std::memcpy(xb.data(), x.data(), x.size() * 4);
  auto W = densekv::make_tensor(wb.data(), densekv::DType::F32, N, K);
  auto run = [&](int64_t first, int64_t rows) {
    auto X = densekv::make_tensor(static_cast<float*>(xb.data()) + first * K, densekv::DType::F32,
                                  rows, K);
    auto O = densekv::make_tensor(ob.data(), densekv::DType::F32, rows, N);
    backend->matmul(X, W, densekv::Tensor{}, O);
    return std::vector<float>(static_cast<float*>(ob.data()),
                              static_cast<float*>(ob.data()) + rows * N);
  };
  const std::vector<float> all = run(0, 9);
  for (int64_t r = 0; r < 9; ++r) {
    const std::vector<float> alone = run(r, 1);
    EXPECT_EQ(0, std::memcmp(alone.data(), all.data() + r * N, N * 4)) << "row " << r;
  }
  const std::vector<float> tail = run(5, 4);
  EXPECT_EQ(0, std::memcmp(tail.data(), all.data() + 5 * N, 4 * N * 4));
}

}  // namespace
