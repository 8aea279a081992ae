// Dense CUDA ops vs the CPU reference on random inputs: gather_rows, rmsnorm, matmul (bias,
// accumulate, fp32 output), rope, swiglu, add, argmax. Inputs are bf16 (fp16) values, so the
// two backends see the same numbers; the CUDA outputs are 16-bit, hence bf16-level tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "kernel_test_util.h"

#ifdef DENSEKV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

using namespace densekv;
using namespace densekv::test;

namespace {

class CudaOps : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    std::string why;
    gpu_ = cuda_backend_or_null(why);
    if (!gpu_) GTEST_SKIP() << "no CUDA backend (" << why << ")";
    gpu_->set_model_dtype(GetParam());
    cpu_ = make_backend("cpu", 2);
    at_ = gpu_->activation_dtype();
    ASSERT_EQ(at_, GetParam());
  }
  // bf16: 8 mantissa bits (2^-9 relative rounding); fp16: 11.
  double tol() const { return at_ == DType::BF16 ? 8e-3 : 1.5e-3; }

  std::unique_ptr<Backend> gpu_, cpu_;
  DType at_ = DType::BF16;
  std::mt19937 rng_{1234};
};

TEST_P(CudaOps, GatherRows) {
  const int64_t rows = 50, cols = 264;
  auto src = random_values(rows * cols, 2.0f, rng_, at_);
  std::vector<int32_t> idx = {3, 0, 49, 3, 17, 25};
  auto g_src = make_owned(*gpu_, at_, rows, cols, &src);
  auto c_src = make_owned(*cpu_, DType::F32, rows, cols, &src);
  auto g_idx = upload_index(*gpu_, idx);
  auto c_idx = upload_index(*cpu_, idx);
  const int64_t n = static_cast<int64_t>(idx.size());
  auto g_out = make_owned(*gpu_, at_, n, cols);
  auto c_out = make_owned(*cpu_, DType::F32, n, cols);
  gpu_->gather_rows(g_src.t, g_idx.ptr(), g_out.t);
  cpu_->gather_rows(c_src.t, c_idx.ptr(), c_out.t);
  EXPECT_EQ(download(*gpu_, g_out.t), download(*cpu_, c_out.t));  // a copy: exact
}

TEST_P(CudaOps, RmsNorm) {
  for (int64_t cols : {64, 256, 4096, 3000, 1001, 10240}) {  // 1001: not in chunks of 8
    const int64_t rows = 7;
    auto x = random_values(rows * cols, 3.0f, rng_, at_);
    auto w = random_values(cols, 1.5f, rng_, at_);
    auto gx = make_owned(*gpu_, at_, rows, cols, &x), gw = make_owned(*gpu_, at_, 1, cols, &w);
    auto cx = make_owned(*cpu_, DType::F32, rows, cols, &x);
    auto cw = make_owned(*cpu_, DType::F32, 1, cols, &w);
    auto go = make_owned(*gpu_, at_, rows, cols), co = make_owned(*cpu_, DType::F32, rows, cols);
    gpu_->rmsnorm(gx.t, gw.t, 1e-5f, go.t);
    cpu_->rmsnorm(cx.t, cw.t, 1e-5f, co.t);
    EXPECT_LT(rel_max_err(download(*gpu_, go.t), download(*cpu_, co.t)), tol()) << cols;
  }
}

TEST_P(CudaOps, MatmulBiasAccumulateAndF32Out) {
  struct Shape {
    int64_t t, n, k;
  };
  for (Shape s : {Shape{1, 384, 256}, Shape{5, 1024, 512}, Shape{77, 520, 264}}) {
    auto x = random_values(s.t * s.k, 1.0f, rng_, at_);
    auto w = random_values(s.n * s.k, 0.1f, rng_, at_);
    auto b = random_values(s.n, 0.5f, rng_, at_);
    auto o0 = random_values(s.t * s.n, 1.0f, rng_, at_);
    auto gx = make_owned(*gpu_, at_, s.t, s.k, &x), gw = make_owned(*gpu_, at_, s.n, s.k, &w);
    auto gb = make_owned(*gpu_, at_, 1, s.n, &b);
    auto cx = make_owned(*cpu_, DType::F32, s.t, s.k, &x);
    auto cw = make_owned(*cpu_, DType::F32, s.n, s.k, &w);
    auto cb = make_owned(*cpu_, DType::F32, 1, s.n, &b);
    // out = x w^T + b (16-bit out)
    auto go = make_owned(*gpu_, at_, s.t, s.n), co = make_owned(*cpu_, DType::F32, s.t, s.n);
    gpu_->matmul(gx.t, gw.t, gb.t, go.t, false);
    cpu_->matmul(cx.t, cw.t, cb.t, co.t, false);
    EXPECT_LT(rel_max_err(download(*gpu_, go.t), download(*cpu_, co.t)), tol()) << s.t;
    // out += x w^T (the residual stream)
    auto ga = make_owned(*gpu_, at_, s.t, s.n, &o0),
         ca = make_owned(*cpu_, DType::F32, s.t, s.n, &o0);
    gpu_->matmul(gx.t, gw.t, Tensor{}, ga.t, true);
    cpu_->matmul(cx.t, cw.t, Tensor{}, ca.t, true);
    EXPECT_LT(rel_max_err(download(*gpu_, ga.t), download(*cpu_, ca.t)), tol()) << s.t;
    // fp32 out (logits)
    auto gf = make_owned(*gpu_, DType::F32, s.t, s.n);
    gpu_->matmul(gx.t, gw.t, Tensor{}, gf.t, false);
    cpu_->matmul(cx.t, cw.t, Tensor{}, co.t, false);
    EXPECT_LT(rel_max_err(download(*gpu_, gf.t), download(*cpu_, co.t)), 1e-4) << s.t;
  }
}

#ifdef DENSEKV_HAVE_CUDA
// matmul of 1..4 rows through the matrix-vector kernel (gemv.cu) and through cuBLASLt, each
// against the CPU: bias (16-bit out), accumulate, fp32 out, x as a column slice, k whose 16-byte
// chunks do not fill the kernel's unrolled rounds, n not a multiple of its 8 columns per block. A k
// that is not a multiple of 8 must go to cuBLASLt.
TEST_P(CudaOps, MatmulOfFewRowsByTheGemvKernel) {
  auto* cuda = dynamic_cast<CudaBackend*>(gpu_.get());
  ASSERT_NE(cuda, nullptr);
  struct Shape {
    int64_t n, k;
    bool gemv;
  };
  for (Shape s : {Shape{1000, 264, true}, Shape{77, 4104, true}, Shape{40, 260, false}}) {
    for (int64_t t = 1; t <= CudaBackend::kMaxGemvRows; ++t) {
      auto wide = random_values(t * 2 * s.k, 1.0f, rng_, at_);
      auto w = random_values(s.n * s.k, 0.1f, rng_, at_);
      auto b = random_values(s.n, 0.5f, rng_, at_);
      auto o0 = random_values(t * s.n, 1.0f, rng_, at_);
      auto gwide = make_owned(*gpu_, at_, t, 2 * s.k, &wide);
      auto gw = make_owned(*gpu_, at_, s.n, s.k, &w), gb = make_owned(*gpu_, at_, 1, s.n, &b);
      auto cwide = make_owned(*cpu_, DType::F32, t, 2 * s.k, &wide);
      auto cw = make_owned(*cpu_, DType::F32, s.n, s.k, &w);
      auto cb = make_owned(*cpu_, DType::F32, 1, s.n, &b);
      const Tensor gx = gwide.t.slice_cols(s.k, s.k), cx = cwide.t.slice_cols(s.k, s.k);
      auto co = make_owned(*cpu_, DType::F32, t, s.n),
           ca = make_owned(*cpu_, DType::F32, t, s.n, &o0);
      auto cf = make_owned(*cpu_, DType::F32, t, s.n);
      cpu_->matmul(cx, cw.t, cb.t, co.t, false);
      cpu_->matmul(cx, cw.t, Tensor{}, ca.t, true);
      cpu_->matmul(cx, cw.t, Tensor{}, cf.t, false);
      // (gemv rows, columns per block): the kernel in each of its shapes, then cuBLASLt.
      for (auto [rows, cols] :
           {std::pair{CudaBackend::kMaxGemvRows, 8}, std::pair{CudaBackend::kMaxGemvRows, 4},
            std::pair{CudaBackend::kMaxGemvRows, 2}, std::pair{CudaBackend::kMaxGemvRows, 1},
            std::pair{0, 0}}) {
        cuda->set_gemv_rows(rows);
        cuda->set_gemv_cols(cols);
        const int64_t before = cuda->gemv_launches();
        auto go = make_owned(*gpu_, at_, t, s.n), ga = make_owned(*gpu_, at_, t, s.n, &o0);
        auto gf = make_owned(*gpu_, DType::F32, t, s.n);
        gpu_->matmul(gx, gw.t, gb.t, go.t, false);
        gpu_->matmul(gx, gw.t, Tensor{}, ga.t, true);
        gpu_->matmul(gx, gw.t, Tensor{}, gf.t, false);
        const std::string where = "n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
                                  " rows " + std::to_string(t) + " gemv rows " +
                                  std::to_string(rows) + " cols " + std::to_string(cols);
        EXPECT_EQ(cuda->gemv_launches() - before, rows > 0 && s.gemv ? 3 : 0) << where;
        EXPECT_LT(rel_max_err(download(*gpu_, go.t), download(*cpu_, co.t)), tol()) << where;
        EXPECT_LT(rel_max_err(download(*gpu_, ga.t), download(*cpu_, ca.t)), tol()) << where;
        EXPECT_LT(rel_max_err(download(*gpu_, gf.t), download(*cpu_, cf.t)), 1e-4) << where;
      }
      cuda->set_gemv_rows(CudaBackend::kDefaultGemvRows);
      cuda->set_gemv_cols(0);
    }
  }
}
#endif

#ifdef DENSEKV_HAVE_CUDA
// The gate/up matmul and SwiGLU in one launch (1-2 rows, the model's decode steps) against the
// CPU's matmul then swiglu; 3 rows are not fused.
TEST_P(CudaOps, MatmulSwigluFusedForFewRows) {
  auto* cuda = dynamic_cast<CudaBackend*>(gpu_.get());
  ASSERT_NE(cuda, nullptr);
  const int64_t inter = 1000, k = 264;
  for (int64_t t = 1; t <= 3; ++t) {
    auto x = random_values(t * k, 1.0f, rng_, at_);
    auto w = random_values(2 * inter * k, 0.2f, rng_, at_);
    auto gx = make_owned(*gpu_, at_, t, k, &x), gw = make_owned(*gpu_, at_, 2 * inter, k, &w);
    auto cx = make_owned(*cpu_, DType::F32, t, k, &x);
    auto cw = make_owned(*cpu_, DType::F32, 2 * inter, k, &w);
    auto cgu = make_owned(*cpu_, DType::F32, t, 2 * inter);
    auto co = make_owned(*cpu_, DType::F32, t, inter), go = make_owned(*gpu_, at_, t, inter);
    cpu_->matmul(cx.t, cw.t, Tensor{}, cgu.t, false);
    cpu_->swiglu(cgu.t, co.t);
    ASSERT_EQ(gpu_->fuses_swiglu(gx.t, gw.t), t <= cuda->gemv_rows()) << t;
    if (t > cuda->gemv_rows()) continue;
    const int64_t before = cuda->gemv_launches();
    gpu_->matmul_swiglu(gx.t, gw.t, go.t);
    EXPECT_EQ(cuda->gemv_launches(), before + 1);
    EXPECT_LT(rel_max_err(download(*gpu_, go.t), download(*cpu_, co.t)), tol()) << t;
  }
}
#endif

TEST_P(CudaOps, MatmulOnColumnSlices) {
  // x is a column slice of a wider buffer (stride > cols), as q/k/v inside qkv.
  const int64_t t = 9, k = 128, n = 64;
  auto wide = random_values(t * 3 * k, 1.0f, rng_, at_);
  auto w = random_values(n * k, 0.2f, rng_, at_);
  auto gwide = make_owned(*gpu_, at_, t, 3 * k, &wide), gw = make_owned(*gpu_, at_, n, k, &w);
  auto cwide = make_owned(*cpu_, DType::F32, t, 3 * k, &wide);
  auto cw = make_owned(*cpu_, DType::F32, n, k, &w);
  auto go = make_owned(*gpu_, at_, t, n), co = make_owned(*cpu_, DType::F32, t, n);
  gpu_->matmul(gwide.t.slice_cols(k, k), gw.t, Tensor{}, go.t, false);
  cpu_->matmul(cwide.t.slice_cols(k, k), cw.t, Tensor{}, co.t, false);
  EXPECT_LT(rel_max_err(download(*gpu_, go.t), download(*cpu_, co.t)), tol());
}

TEST_P(CudaOps, Rope) {
  for (int hd : {64, 128, 24}) {  // 24: pairs not in chunks of 8
    const int64_t t = 6, heads = 6;
    auto x = random_values(t * heads * hd, 2.0f, rng_, at_);
    std::vector<float> inv(hd / 2);
    for (int i = 0; i < hd / 2; ++i) inv[i] = std::pow(500000.0f, -2.0f * i / hd);
    std::vector<int32_t> pos = {0, 1, 17, 1000, 32767, 131071};
    auto gx = make_owned(*gpu_, at_, t, heads * hd, &x);
    auto cx = make_owned(*cpu_, DType::F32, t, heads * hd, &x);
    auto gi = make_owned(*gpu_, DType::F32, 1, hd / 2, &inv);
    auto ci = make_owned(*cpu_, DType::F32, 1, hd / 2, &inv);
    auto gp = upload_index(*gpu_, pos), cp = upload_index(*cpu_, pos);
    // Rotate only q and k heads of a qkv-like slice: first 4 heads.
    gpu_->rope(gx.t.slice_cols(0, 4 * hd), hd, gp.ptr(), gi.t);
    cpu_->rope(cx.t.slice_cols(0, 4 * hd), hd, cp.ptr(), ci.t);
    EXPECT_LT(rel_max_err(download(*gpu_, gx.t), download(*cpu_, cx.t)), tol()) << hd;
  }
}

TEST_P(CudaOps, SwigluAndAdd) {
  // 16-byte chunks (1000), single elements (1001: rows not in whole chunks), and rows of more
  // chunks than the grid has threads (the grid-stride loop).
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5, 1000}, {2, 1001}, {2, 140008}}) {
    auto gu = random_values(rows * 2 * cols, 6.0f, rng_, at_);
    auto ggu = make_owned(*gpu_, at_, rows, 2 * cols, &gu);
    auto cgu = make_owned(*cpu_, DType::F32, rows, 2 * cols, &gu);
    auto go = make_owned(*gpu_, at_, rows, cols), co = make_owned(*cpu_, DType::F32, rows, cols);
    gpu_->swiglu(ggu.t, go.t);
    cpu_->swiglu(cgu.t, co.t);
    EXPECT_LT(rel_max_err(download(*gpu_, go.t), download(*cpu_, co.t)), tol()) << cols;
  }
  // add, the first operand a column slice of a wider tensor.
  const int64_t t = 5, inter = 1000;
  auto gu = random_values(t * 2 * inter, 6.0f, rng_, at_);
  auto ggu = make_owned(*gpu_, at_, t, 2 * inter, &gu);
  auto cgu = make_owned(*cpu_, DType::F32, t, 2 * inter, &gu);
  auto b = random_values(t * inter, 3.0f, rng_, at_);
  auto gb = make_owned(*gpu_, at_, t, inter, &b), cb = make_owned(*cpu_, DType::F32, t, inter, &b);
  auto gs = make_owned(*gpu_, at_, t, inter), cs = make_owned(*cpu_, DType::F32, t, inter);
  auto gx = make_owned(*gpu_, at_, t, inter, &b);  // same values as cb, 16-bit
  gpu_->add(ggu.t.slice_cols(0, inter), gx.t, gs.t);
  cpu_->add(cgu.t.slice_cols(0, inter), cb.t, cs.t);
  EXPECT_LT(rel_max_err(download(*gpu_, gs.t), download(*cpu_, cs.t)), tol());
}

TEST_P(CudaOps, ArgmaxFirstOnTies) {
  const int64_t rows = 4, cols = 50000;
  std::vector<float> x(rows * cols);
  std::iota(x.begin(), x.end(), 0.0f);
  std::shuffle(x.begin(), x.end(), rng_);
  for (float& v : x) v = std::fmod(v, 3000.0f) * 0.01f;  // exactly representable? ties anyway
  auto gx = make_owned(*gpu_, DType::F32, rows, cols, &x);
  auto cx = make_owned(*cpu_, DType::F32, rows, cols, &x);
  EXPECT_EQ(gpu_->argmax(gx.t), cpu_->argmax(cx.t));
  auto x16 = random_values(rows * cols, 5.0f, rng_, at_);  // many ties in 16 bits
  auto g16 = make_owned(*gpu_, at_, rows, cols, &x16);
  auto c16 = make_owned(*cpu_, DType::F32, rows, cols, &x16);
  EXPECT_EQ(gpu_->argmax(g16.t), cpu_->argmax(c16.t));
}

// Rows of a Llama-3 vocabulary, split into slices over many blocks: the largest value appears
// twice, in different slices (the first wins), and once at element 0; every row as the CPU's.
TEST_P(CudaOps, ArgmaxOverSlices) {
  for (int64_t rows : {1, 3, 300}) {
    const int64_t cols = 128256;
    std::vector<float> x(rows * cols);
    std::uniform_real_distribution<float> u(-10.0f, 10.0f);
    for (float& v : x) v = u(rng_);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = x.data() + r * cols;
      if (r % 3 == 0) row[5000 + r] = row[120000 - r] = 11.0f;
      if (r % 3 == 1) row[0] = row[64000] = 12.0f;
    }
    auto gx = make_owned(*gpu_, DType::F32, rows, cols, &x);
    auto cx = make_owned(*cpu_, DType::F32, rows, cols, &x);
    const std::vector<int32_t> got = gpu_->argmax(gx.t), want = cpu_->argmax(cx.t);
    EXPECT_EQ(got, want) << rows << " rows";
    EXPECT_EQ(got[0], 5000);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOps, ::testing::Values(DType::BF16, DType::F16),
                         [](const auto& info) {
                           return std::string(info.param == DType::BF16 ? "bf16" : "fp16");
                         });

}  // namespace
