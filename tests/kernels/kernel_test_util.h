// Helpers of the CUDA kernel tests: a CUDA backend (or a skip), tensors filled from host data on
// any backend, and error measures. Every CUDA op is compared with the CPU reference backend on the
// same (16-bit-rounded) inputs.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/errors.h"
#include "engine/request.h"

namespace densekv::test {

// The CUDA backend, or nullptr with the reason (the test then skips).
inline std::unique_ptr<Backend> cuda_backend_or_null(std::string& why) {
  try {
    return make_backend("cuda");
  } catch (const Error& e) {
    why = e.what();
    return nullptr;
  }
}

#define DENSEKV_REQUIRE_CUDA(var)                                                  \
  std::string why_##var;                                                           \
  std::unique_ptr<Backend> var = ::densekv::test::cuda_backend_or_null(why_##var); \
  if (!var) GTEST_SKIP() << "no CUDA backend (" << why_##var << ")";

// x rounded to a 16-bit dtype (unchanged for F32).
inline float round_to(float x, DType dt) {
  if (dt == DType::BF16) return bf16_to_f32(f32_to_bf16(x));
  if (dt == DType::F16) return f16_to_f32(f32_to_f16(x));
  return x;
}

// Random values in [-a, a], rounded to dtype `dt` (so every backend sees the same numbers).
inline std::vector<float> random_values(size_t n, float a, std::mt19937& rng,
                                        DType dt = DType::BF16) {
  std::uniform_real_distribution<float> d(-a, a);
  std::vector<float> v(n);
  for (float& x : v) x = round_to(d(rng), dt);
  return v;
}

// A tensor owning its backend memory.
struct OwnedTensor {
  Buffer buf;
  Tensor t;
};

inline OwnedTensor make_owned(Backend& b, DType dt, int64_t rows, int64_t cols,
                              const std::vector<float>* host = nullptr) {
  OwnedTensor o;
  o.buf = Buffer(b, static_cast<size_t>(rows * cols) * dtype_size(dt));
  o.t = make_tensor(o.buf.data(), dt, rows, cols);
  if (host) b.upload(o.buf.data(), dt, host->data(), DType::F32, host->size());
  return o;
}

inline std::vector<float> download(Backend& b, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  b.download_f32(t, v.data());
  return v;
}

// Int32 array in backend memory (index arrays of ops).
struct OwnedIndex {
  Buffer buf;
  const int32_t* ptr() const { return static_cast<const int32_t*>(buf.data()); }
};

inline OwnedIndex upload_index(Backend& b, const std::vector<int32_t>& v) {
  OwnedIndex o;
  o.buf = Buffer(b, std::max<size_t>(4, v.size() * 4));
  // int32 through the float path would round: upload as raw bytes of F32 width.
  b.upload(o.buf.data(), DType::F32, v.data(), DType::F32, v.size());
  return o;
}

// max |a - b| / max(max |b|, floor)
inline double rel_max_err(const std::vector<float>& a, const std::vector<float>& b,
                          double floor = 1e-6) {
  EXPECT_EQ(a.size(), b.size());
  double err = 0, ref = floor;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
    ref = std::max(ref, static_cast<double>(std::fabs(b[i])));
  }
  return err / ref;
}

// Logprobs from the device (Backend::logprobs) against the host's (token_logprobs): the same
// chosen and top ids exactly, each value equal or one float step apart (the two sum the row's
// exp in double in different orders).
inline bool within_one_step(float got, float want) {
  return got == want || std::nextafter(want, got) == got;
}
inline ::testing::AssertionResult same_logprobs(const TokenLogprobs& got,
                                                const TokenLogprobs& want) {
  if (got.token_id != want.token_id) {
    return ::testing::AssertionFailure() << "token " << got.token_id << " vs " << want.token_id;
  }
  if (!within_one_step(got.logprob, want.logprob)) {
    return ::testing::AssertionFailure() << "logprob " << got.logprob << " vs " << want.logprob;
  }
  if (got.top.size() != want.top.size()) {
    return ::testing::AssertionFailure() << got.top.size() << " top vs " << want.top.size();
  }
  for (size_t i = 0; i < got.top.size(); ++i) {
    if (got.top[i].first != want.top[i].first ||
        !within_one_step(got.top[i].second, want.top[i].second)) {
      return ::testing::AssertionFailure()
             << "top " << i << ": (" << got.top[i].first << ", " << got.top[i].second << ") vs ("
             << want.top[i].first << ", " << want.top[i].second << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace densekv::test
