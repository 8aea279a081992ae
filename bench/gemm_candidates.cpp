// Every cuBLASLt heuristic candidate (up to 16) for the decode GEMMs of the Llama-3.1-8B shape
// (bf16, x [m, K] @ w [N, K]^T as CudaBackend::matmul lays them out; o and down accumulate into
// the residual), each timed as a CUDA graph of 20 calls over rotating weight copies of >= 600 MB
// (so no call finds its weights in L2), median of 5 replays. Candidate 0 is the one the backend
// takes (cuBLASLt's first heuristic). Usage: gemm_candidates > OUT.txt
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x) /* exit on any non-zero status */                        \
  do {                                                                 \
    auto e_ = (x);                                                     \
    if ((int)e_ != 0) {                                                \
      std::printf("error %d at %s:%d\n", (int)e_, __FILE__, __LINE__); \
      std::exit(1);                                                    \
    }                                                                  \
  } while (0)

int main() {
  cublasLtHandle_t lt;
  CK(cublasLtCreate(&lt));
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  size_t ws_bytes = 32u << 20;
  void* ws;
  CK(cudaMalloc(&ws, ws_bytes));
  struct Shape {
    const char* name;
    int n, k;
    bool acc;
  };
  const Shape shapes[] = {{"qkv", 6144, 4096, false},
                          {"o", 4096, 4096, true},
                          {"gate_up", 28672, 4096, false},
                          {"down", 4096, 14336, true},
                          {"lm_head", 128256, 4096, false}};
  for (int m : {1, 4, 16, 64}) {
    for (const Shape& s : shapes) {
      const size_t wbytes = (size_t)s.n * s.k * 2;
      const int copies = (int)std::max<size_t>(2, (600u << 20) / wbytes + 1);
      std::vector<void*> w(copies);
      for (auto& p : w) {
        CK(cudaMalloc(&p, wbytes));
        CK(cudaMemset(p, 0, wbytes));
      }
      void *x, *d;
      CK(cudaMalloc(&x, (size_t)m * s.k * 2));
      CK(cudaMemset(x, 0, (size_t)m * s.k * 2));
      CK(cudaMalloc(&d, (size_t)m * s.n * 2));
      CK(cudaMemset(d, 0, (size_t)m * s.n * 2));
      cublasLtMatmulDesc_t desc;
      CK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
      cublasOperation_t t = CUBLAS_OP_T, nn = CUBLAS_OP_N;
      CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
      CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &nn, sizeof(nn)));
      cublasLtMatrixLayout_t la, lb, ld;
      CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, s.k, s.n, s.k));
      CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, s.k, m, s.k));
      CK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, s.n, m, s.n));
      cublasLtMatmulPreference_t pref;
      CK(cublasLtMatmulPreferenceCreate(&pref));
      CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                              &ws_bytes, sizeof(ws_bytes)));
      cublasLtMatmulHeuristicResult_t res[16];
      int found = 0;
      CK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 16, res, &found));
      const float alpha = 1.0f, beta = s.acc ? 1.0f : 0.0f;
      std::printf("m %d %s (%d x %d, %.1f MB): %d candidates\n", m, s.name, s.n, s.k, wbytes / 1e6,
                  found);
      for (int a = 0; a < found; ++a) {
        int splitk = 0, tile = 0, stages = 0, red = 0;
        size_t sz;
        cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk,
                                             sizeof(splitk), &sz);
        cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile,
                                             sizeof(tile), &sz);
        cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages,
                                             sizeof(stages), &sz);
        cublasLtMatmulAlgoConfigGetAttribute(&res[a].algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                             &red, sizeof(red), &sz);
        // warm up, then a graph of 20 calls
        bool ok = true;
        for (int i = 0; i < 3 && ok; ++i) {
          ok = cublasLtMatmul(lt, desc, &alpha, w[i % copies], la, x, lb, &beta, d, ld, d, ld,
                              &res[a].algo, ws, ws_bytes, st) == CUBLAS_STATUS_SUCCESS;
        }
        if (!ok) {
          std::printf("  cand %2d: failed\n", a);
          continue;
        }
        CK(cudaStreamSynchronize(st));
        cudaGraph_t g;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
        for (int i = 0; i < 20; ++i) {
          cublasLtMatmul(lt, desc, &alpha, w[i % copies], la, x, lb, &beta, d, ld, d, ld,
                         &res[a].algo, ws, ws_bytes, st);
        }
        CK(cudaStreamEndCapture(st, &g));
        cudaGraphExec_t ge;
        CK(cudaGraphInstantiate(&ge, g, 0));
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        std::vector<float> ts;
        for (int r = 0; r < 5; ++r) {
          cudaEventRecord(e0, st);
          cudaGraphLaunch(ge, st);
          cudaEventRecord(e1, st);
          cudaEventSynchronize(e1);
          float ms;
          cudaEventElapsedTime(&ms, e0, e1);
          ts.push_back(ms * 1000 / 20);
        }
        std::sort(ts.begin(), ts.end());
        std::printf("  cand %2d: %8.2f us  %7.0f GB/s  splitk %d red %d tile %d stages %d ws %zu\n",
                    a, ts[2], wbytes / (ts[2] * 1e3), splitk, red, tile, stages,
                    res[a].workspaceSize);
        cudaGraphExecDestroy(ge);
        cudaGraphDestroy(g);
      }
      for (auto& p : w) cudaFree(p);
      cudaFree(x);
      cudaFree(d);
      cublasLtMatmulPreferenceDestroy(pref);
      cublasLtMatrixLayoutDestroy(la);
      cublasLtMatrixLayoutDestroy(lb);
      cublasLtMatrixLayoutDestroy(ld);
      cublasLtMatmulDescDestroy(desc);
    }
  }
  return 0;
}
