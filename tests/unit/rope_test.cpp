// rope_inv_freq against values computed by hand (Python, float64) from the transformers formulas.
#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace densekv;

TEST(Rope, DefaultInvFreq) {
  RopeConfig r;
  r.theta = 10000.0f;
  auto inv = rope_inv_freq(r, 64);
  ASSERT_EQ(inv.size(), 32u);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_NEAR(inv[1], 1.0 / std::pow(10000.0, 2.0 / 64), 1e-7);
  EXPECT_NEAR(inv[31] / (1.0 / std::pow(10000.0, 62.0 / 64)), 1.0, 1e-6);
}

TEST(Rope, Llama3InvFreqMatchesHandComputedBands) {
  // Llama 3.1: theta 500000, factor 8, low 1, high 4, original 8192, head_dim 128.
  RopeConfig r;
  r.theta = 500000.0f;
  r.type = "llama3";
  r.factor = 8.0f;
  r.low_freq_factor = 1.0f;
  r.high_freq_factor = 4.0f;
  r.original_max_position_embeddings = 8192;
  auto inv = rope_inv_freq(r, 128);
  ASSERT_EQ(inv.size(), 64u);
  struct Case {
    int i;
    double expected;
  };
  const Case cases[] = {
      {0, 1.0},                      // high frequency: unchanged
      {1, 0.8146172338565447},       //
      {28, 0.0032114459947525913},   // last unchanged band
      {29, 0.002166570763503359},    // smooth interpolation band
      {31, 0.0008567514129196321},   //
      {34, 0.00017850781276799638},  // last interpolated
      {35, 9.556212353964683e-05},   // low frequency: divided by factor
      {50, 4.411534674558404e-06},   //
      {63, 3.068925988914511e-07},   //
  };
  for (const auto& c : cases) EXPECT_NEAR(inv[c.i] / c.expected, 1.0, 2e-6) << "i=" << c.i;
}
