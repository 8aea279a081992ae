#include "kv/hadamard.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "kv/kv_format.h"

using namespace densekv;

namespace {

// Column j of the transform = H e_j.
std::vector<float> explicit_matrix(int n) {
  std::vector<float> h(static_cast<size_t>(n) * n);
  std::vector<float> e(n);
  for (int j = 0; j < n; ++j) {
    std::fill(e.begin(), e.end(), 0.0f);
    e[j] = 1.0f;
    hadamard_transform(e.data(), n);
    for (int i = 0; i < n; ++i) h[static_cast<size_t>(i) * n + j] = e[i];
  }
  return h;
}

}  // namespace

TEST(KvHadamard, MatchesSylvesterDefinition) {
  for (int n : {1, 2, 4, 8, 64, 128}) {
    std::vector<float> h = explicit_matrix(n);
    const float norm = 1.0f / std::sqrt(static_cast<float>(n));
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        const float want = (std::popcount(static_cast<unsigned>(i & j)) % 2 ? -norm : norm);
        ASSERT_NEAR(h[static_cast<size_t>(i) * n + j], want, 1e-6f) << n << " " << i << " " << j;
      }
    }
  }
}

TEST(KvHadamard, OrthonormalAndSymmetric) {
  for (int n : {64, 128}) {
    std::vector<float> h = explicit_matrix(n);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        double dot = 0.0;
        for (int k = 0; k < n; ++k) dot += double(h[i * n + k]) * h[j * n + k];  // (H H^T)[i][j]
        ASSERT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-6) << n << " " << i << " " << j;
        ASSERT_EQ(h[i * n + j], h[j * n + i]);
      }
    }
  }
}

TEST(KvHadamard, RotateTwiceIsIdentityAndKeepsDotProducts) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int n : {64, 128}) {
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; ++i) {
      x[i] = nd(rng);
      y[i] = nd(rng);
    }
    double dot = 0.0;
    for (int i = 0; i < n; ++i) dot += double(x[i]) * y[i];
    std::vector<float> rx = x, ry = y;
    hadamard_transform(rx.data(), n);
    hadamard_transform(ry.data(), n);
    double rdot = 0.0;
    for (int i = 0; i < n; ++i) rdot += double(rx[i]) * ry[i];
    EXPECT_NEAR(rdot, dot, 1e-3 * (1.0 + std::fabs(dot)));
    hadamard_transform(rx.data(), n);
    for (int i = 0; i < n; ++i) ASSERT_NEAR(rx[i], x[i], 1e-5f);
  }
}

TEST(KvHadamard, RotationHookOnlyForK4v2) {
  std::vector<float> x(2 * 128);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
  std::vector<float> plain = x;
  kv_rotate_rows(kv_format_info(KvFormat::INT4_KIVI, 128), plain.data(), 2);
  EXPECT_EQ(plain, x);
  std::vector<float> rot = x, want = x;
  hadamard_transform_rows(want.data(), 2, 128);
  kv_rotate_rows(kv_format_info(KvFormat::K4V2, 128), rot.data(), 2);
  EXPECT_EQ(rot, want);
  EXPECT_NE(rot, x);
}
