// Backend::fill_random (dummy weights): the CUDA kernel produces the host default's numbers
// (rounded to the tensor's 16-bit dtype), and the numbers are uniform in [-a, a].
#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.h"
#include "kernel_test_util.h"

using namespace densekv;
using namespace densekv::test;

TEST(FillRandom, HostStreamIsUniformInRange) {
  auto cpu = make_backend("cpu", 1);
  auto t = make_owned(*cpu, DType::F32, 100, 1000);
  cpu->fill_random(t.t, 0.5f, 0.0f, 42);
  const auto v = download(*cpu, t.t);
  double sum = 0, sq = 0;
  for (float x : v) {
    ASSERT_TRUE(x >= -0.5f && x < 0.5f) << x;
    sum += x, sq += double(x) * x;
  }
  EXPECT_NEAR(sum / v.size(), 0.0, 0.005);
  EXPECT_NEAR(std::sqrt(sq / v.size()), 0.5 / std::sqrt(3.0), 0.005);  // uniform std = a / sqrt 3
  cpu->fill_random(t.t, 0.0f, 1.25f, 42);
  for (float x : download(*cpu, t.t)) ASSERT_EQ(x, 1.25f);
}

TEST(FillRandom, CudaMatchesHost) {
  std::string why;
  auto gpu = cuda_backend_or_null(why);
  if (!gpu) GTEST_SKIP() << "no CUDA backend (" << why << ")";
  auto cpu = make_backend("cpu", 1);
  for (DType dt : {DType::BF16, DType::F16}) {
    auto g = make_owned(*gpu, dt, 333, 777);
    auto c = make_owned(*cpu, DType::F32, 333, 777);
    gpu->fill_random(g.t, 0.0346f, 0.0f, 7);
    cpu->fill_random(c.t, 0.0346f, 0.0f, 7);
    const auto got = download(*gpu, g.t), want = download(*cpu, c.t);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], round_to(want[i], dt)) << i;
    }
  }
}
