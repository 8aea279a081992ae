// The CUDA backend: the same ops as the CPU reference (backend/cpu) on one GPU, one op per .cu.
//
// Dtypes: weights are stored in the model's 16-bit dtype (set_model_dtype: bf16, or fp16 for fp16
// models; fp32 checkpoints run in bf16), activations between ops are that same 16-bit dtype
// (GEMM inputs and outputs, residual stream), logits are fp32. Every op computes in fp32
// internally (norms, softmax, GEMM accumulation via cuBLASLt COMPUTE_32F).
//
// All work is queued on one stream; host-visible results (download_f32, argmax) synchronize it.
// Index arrays of a forward live in one device buffer refilled by upload_batch.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"

namespace densekv {

struct CudaGemmPlan;  // a cuBLASLt matmul descriptor, layouts and chosen algorithm (matmul.cu)
void destroy_gemm_plan(CudaGemmPlan* plan);
namespace cuda {
struct AttnArgs;  // paged_attention.cuh
}

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int device = 0);
  ~CudaBackend() override;
  std::string name() const override { return "cuda"; }
  MemoryInfo memory_info() const override;
  void fill_random(const Tensor& t, float a, float value, uint64_t seed) override;

  void* alloc(size_t bytes) override;
  void release(void* p) override;
  void upload(void* dst, DType dst_dtype, const void* src, DType src_dtype, size_t n) override;
  void download_f32(const Tensor& src, float* dst) override;
  DType weight_dtype(DType) const override { return dtype_; }
  DType activation_dtype() const override { return dtype_; }
  void set_model_dtype(DType model_dtype) override;
  BatchView upload_batch(const BatchLayout& batch) override;

  void gather_rows(const Tensor& src, const int32_t* idx, const Tensor& out) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) override;
  void matmul(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
              bool accumulate) override;
  void rope(const Tensor& x, int head_dim, const int32_t* positions,
            const Tensor& inv_freq) override;
  void kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                const BatchView& batch) override;
  void kv_write_blocks(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                       const BatchView& batch) override;
  void paged_attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch, float scale,
                       const Tensor& out) override;
  // With the prefill kernel on, for the quantized formats (k4v2: kv_write_blocks leaves the call's
  // K/V rows rotated, as its tails hold them).
  bool supports_own_rows(const KvLayerView& kv) const override;
  void paged_attention_own_rows(const Tensor& q, const KvLayerView& kv, const BatchView& batch,
                                const Tensor& own_k, const Tensor& own_v, float scale,
                                const Tensor& out) override;
  void swiglu(const Tensor& gate_up, const Tensor& out) override;
  // The matrix-vector kernel's 2 columns of a block are gate column j and up column j (gemv.cu).
  bool fuses_swiglu(const Tensor& x, const Tensor& w) const override;
  void matmul_swiglu(const Tensor& x, const Tensor& w, const Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, const Tensor& out) override;
  std::vector<int32_t> argmax(const Tensor& x) override;
  bool supports_device_sampling() const override { return true; }
  // The most candidates a device draw sorts (sample.cu: at most 4096), and whether a row with more
  // is drawn by selects (default) or left to the host (-1). Tests lower the first to send rows
  // down the other paths.
  void set_sample_limits(int sort_candidates, bool draw_by_selects) {
    sample_candidates_ = sort_candidates;
    sample_selects_ = draw_by_selects;
  }
  std::vector<int32_t> sample(const Tensor& logits,
                              const std::vector<DeviceDraw>& draws) override;  // sample.cu
  std::vector<RowLogprobs> logprobs(
      const Tensor& logits, const std::vector<LogprobsQuery>& queries) override;  // logprobs.cu
  Tensor penalize(const Tensor& logits, const std::vector<int32_t>& src_rows,
                  const std::vector<int32_t>& begins,
                  const std::vector<PenaltyEntry>& entries) override;  // penalize.cu

  // CUDA graphs (cuda_graph.cpp): stream capture of the ops, replayed with cudaGraphLaunch.
  bool supports_graphs() const override { return true; }
  void begin_capture() override;
  std::unique_ptr<BackendGraph> end_capture() override;
  void replay(BackendGraph& graph) override;
  uint64_t graph_epoch() const override { return epoch_; }

  // The tensor-core prefill attention kernel (prefill_attention_mma.cuh) for segments of many
  // query tokens of one sequence; on by default (verified and timed on the H100). The
  // constructor turns it off when DENSEKV_PREFILL=off.
  void set_prefill_kernel(bool on) { prefill_mma_ = on; }
  // matmul with at most this many rows of x runs the matrix-vector kernel (gemv.cu) instead of
  // cuBLASLt, where the shapes allow it (gemv_fits); 0 turns it off. Default kDefaultGemvRows,
  // DENSEKV_GEMV_ROWS=N sets it (0..kMaxGemvRows).
  static constexpr int kMaxGemvRows = 4, kDefaultGemvRows = 2;
  void set_gemv_rows(int rows) { gemv_rows_ = std::clamp(rows, 0, kMaxGemvRows); }
  int gemv_rows() const { return gemv_rows_; }
  // Output columns per block of the matrix-vector kernel (1, 2, 4 or 8; its 8 warps split each
  // column's k evenly); 0: chosen per shape. Tests and bench/gemv_bench.cpp set it.
  void set_gemv_cols(int cols) { gemv_cols_ = cols; }
  // How many matmul calls ran the matrix-vector kernel (tests check it was used).
  int64_t gemv_launches() const { return gemv_launches_; }
  bool prefill_kernel() const { return prefill_mma_; }
  // How many paged_attention calls launched the prefill kernel (tests check it was used).
  int64_t prefill_launches() const { return prefill_launches_; }

  cudaStream_t stream() const { return stream_; }
  int sm_count() const { return sm_count_; }
  void synchronize();
  // Scratch device memory of at least `bytes` (slot i: independent buffers), valid until the next
  // call with the same slot; grows, never shrinks (growing bumps graph_epoch(); it cannot happen
  // while capturing).
  void* scratch(int slot, size_t bytes);

 private:
  static bool prefill_kernel_from_env();
  static int gemv_rows_from_env();
  bool gemv_fits(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) const;
  void gemv(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
            bool accumulate);  // gemv.cu
  // Host copy (upload_batch's pinned staging) of a device index array of the current batch, or
  // nullptr when `dev` does not point into it.
  const int32_t* host_batch(const int32_t* dev) const;
  void attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch,
                 const Tensor* own_k, const Tensor* own_v, float scale, const Tensor& out);
  void decode_attention(const cuda::AttnArgs& a, KvFormat format, int hd, int n_tokens,
                        int max_context, DType act);
  void prefill_attention(const cuda::AttnArgs& a, KvFormat format, int hd,
                         const std::vector<int32_t>& work, int max_context, DType act,
                         int n_tokens);
  CudaGemmPlan& gemm_plan(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
                          bool accumulate);

  int device_ = 0;
  int sm_count_ = 0;
  // sm_90+: the tensor-core decode kernel, the matrix-vector kernel, RMSNorm, RoPE, SwiGLU and the
  // KV writes are launched as programmatic dependents of the kernel before them (cuda_common.cuh
  // launch_kernel), and the split merge as one of the decode kernel (paged_attention.cu), so that
  // each is placed while the kernel before it ends; DENSEKV_PDL=off turns it off.
  bool pdl_ = false;
  double peak_gbs_ = 0;  // memory clock x bus width x 2 (DDR), from the device attributes
  bool prefill_mma_ = prefill_kernel_from_env();
  int gemv_rows_ = gemv_rows_from_env();
  int gemv_cols_ = 0;
  int64_t gemv_launches_ = 0;
  int64_t prefill_launches_ = 0;
  DType dtype_ = DType::BF16;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* gemm_workspace_ = nullptr;
  size_t gemm_workspace_bytes_ = 0;
  std::map<
      std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int, int, int>,
      CudaGemmPlan*>
      gemm_plans_;

  // Batch index arrays: pinned host staging and one device buffer.
  int32_t* batch_host_ = nullptr;
  int32_t* batch_dev_ = nullptr;
  size_t batch_cap_ = 0;  // int32 elements

  struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
  };
  Scratch scratch_[4];
  // argmax's and sample's device inputs and outputs (picks_buffer): outside any graph, so unlike
  // scratch() its growth leaves graph_epoch() alone.
  void* picks_buffer(size_t bytes);
  void* picks_dev_ = nullptr;
  size_t picks_bytes_ = 0;
  int sample_candidates_ = 4096;
  bool sample_selects_ = true;
  // penalize's rows and inputs, also outside any graph: at most max_num_seqs x vocab fp32, taken
  // on first use from the memory that --gpu-memory-utilization leaves.
  void* penalized_dev_ = nullptr;
  size_t penalized_bytes_ = 0;
  void* penalty_staging_ = nullptr;  // pinned: penalize's entries on their way up
  size_t penalty_staging_bytes_ = 0;
  cudaEvent_t penalty_copied_ = nullptr;

  bool capturing_ = false;
  uint64_t epoch_ = 0;
};

}  // namespace densekv
