// CUDA backend: out (+)= x @ w^T (+ bias) through cuBLASLt, fp32 accumulation.
//
// Up to gemv_rows() rows of x go to the matrix-vector kernel instead (gemv.cu).
//
// Row-major out [T, N] = x [T, K] @ w [N, K]^T is, read column-major, out^T [N, T] = w^T^T x^T:
// cuBLASLt's A = w (column-major [K, N], op T), B = x (column-major [K, T], op N), D = out
// (column-major [N, T]). The bias (one per output column of the row-major result) is the
// BIAS epilogue's per-row vector of D. One plan (descriptor, layouts, heuristic algorithm) is
// cached per shape, stride, dtype and alignment.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/errors.h"

#define LT_CHECK(expr)                                                                         \
  do {                                                                                         \
    cublasStatus_t st_ = (expr);                                                               \
    if (st_ != CUBLAS_STATUS_SUCCESS) DENSEKV_CHECK_FAIL(#expr, cublasLtGetStatusString(st_)); \
  } while (0)

namespace densekv {

struct CudaGemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

void destroy_gemm_plan(CudaGemmPlan* p) {
  if (!p) return;
  cublasLtMatrixLayoutDestroy(p->a);
  cublasLtMatrixLayoutDestroy(p->b);
  cublasLtMatrixLayoutDestroy(p->d);
  cublasLtMatmulDescDestroy(p->desc);
  delete p;
}

namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::BF16:
      return CUDA_R_16BF;
    case DType::F16:
      return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

// Largest power of two <= 16 dividing the address.
int alignment_of(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  int a = 16;
  while (a > 1 && u % a != 0) a /= 2;
  return a;
}

}  // namespace

int CudaBackend::gemv_rows_from_env() {
  const char* e = std::getenv("DENSEKV_GEMV_ROWS");
  if (e == nullptr || *e == '\0') return kDefaultGemvRows;
  char* end = nullptr;
  const long v = std::strtol(e, &end, 10);
  if (*end != '\0' || v < 0 || v > kMaxGemvRows) {
    throw InvalidArgumentError("DENSEKV_GEMV_ROWS must be an integer from 0 to " +
                               std::to_string(kMaxGemvRows) + ", got '" + e + "'");
  }
  return static_cast<int>(v);
}

CudaGemmPlan& CudaBackend::gemm_plan(const Tensor& x, const Tensor& w, const Tensor& bias,
                                     const Tensor& out, bool accumulate) {
  const int align = alignment_of(x.data) | (alignment_of(w.data) << 5) |
                    (alignment_of(out.data) << 10) |
                    ((bias.empty() ? 16 : alignment_of(bias.data)) << 15);
  const auto key =
      std::make_tuple(w.rows, x.rows, x.cols, w.stride, x.stride, out.stride,
                      static_cast<int>(w.dtype), static_cast<int>(out.dtype),
                      static_cast<int>(!bias.empty()), static_cast<int>(accumulate), align);
  auto it = gemm_plans_.find(key);
  if (it != gemm_plans_.end()) return *it->second;

  auto* p = new CudaGemmPlan;
  const cudaDataType_t in_t = cuda_type(w.dtype), out_t = cuda_type(out.dtype);
  LT_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  LT_CHECK(
      cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof(op_t)));
  LT_CHECK(
      cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof(op_n)));
  if (!bias.empty()) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    LT_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    const cudaDataType_t bias_t = cuda_type(bias.dtype);
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_t,
                                            sizeof(bias_t)));
  }
  LT_CHECK(cublasLtMatrixLayoutCreate(&p->a, in_t, x.cols, w.rows, w.stride));
  LT_CHECK(cublasLtMatrixLayoutCreate(&p->b, in_t, x.cols, x.rows, x.stride));
  LT_CHECK(cublasLtMatrixLayoutCreate(&p->d, out_t, w.rows, x.rows, out.stride));

  cublasLtMatmulPreference_t pref = nullptr;
  LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &gemm_workspace_bytes_,
                                                sizeof(gemm_workspace_bytes_)));
  const uint32_t al_a = alignment_of(w.data), al_b = alignment_of(x.data),
                 al_d = alignment_of(out.data);
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                &al_a, sizeof(al_a)));
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                &al_b, sizeof(al_b)));
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                &al_d, sizeof(al_d)));
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                &al_d, sizeof(al_d)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_, p->desc, p->a, p->b, p->d, p->d, pref, 1, &result,
                                          &found));
  cublasLtMatmulPreferenceDestroy(pref);
  CHECK_MSG(found > 0, "cuBLASLt found no algorithm for this matmul");
  p->algo = result.algo;
  gemm_plans_.emplace(key, p);
  return *p;
}

void CudaBackend::matmul(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
                         bool accumulate) {
  CHECK(x.cols == w.cols && out.rows == x.rows && out.cols == w.rows);
  CHECK_MSG(x.dtype == w.dtype, "matmul: activations and weights must have the same dtype");
  CHECK(out.dtype == DType::F32 || out.dtype == w.dtype);
  CHECK(bias.empty() || bias.cols == out.cols);
  CHECK_MSG(bias.empty() || out.dtype == w.dtype,
            "matmul: a bias needs the output in the weights' dtype (cuBLASLt's bias epilogue)");
  if (x.rows == 0) return;
  if (gemv_fits(x, w, bias, out)) return gemv(x, w, bias, out, accumulate);
  CudaGemmPlan& p = gemm_plan(x, w, bias, out, accumulate);
  if (!bias.empty()) {
    LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias.data,
                                            sizeof(bias.data)));
  }
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  LT_CHECK(cublasLtMatmul(lt_, p.desc, &alpha, w.data, p.a, x.data, p.b, &beta, out.data, p.d,
                          out.data, p.d, &p.algo, gemm_workspace_, gemm_workspace_bytes_, stream_));
}

}  // namespace densekv
