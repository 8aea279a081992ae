// The CPU reference backend: fp32 weights and activations in host memory, threaded loops on a
// small pool, a row-independent matmul (cpu_matmul.cpp). The KV cache keeps its own format
// (plain bf16/fp16/fp32, or quantized, kv_format.h) and attention converts to fp32 as it reads.
#pragma once
#include "backend/backend.h"
#include "core/thread_pool.h"

namespace densekv {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads = 0);
  std::string name() const override { return "cpu"; }

  void* alloc(size_t bytes) override;
  void release(void* p) override;
  void upload(void* dst, DType dst_dtype, const void* src, DType src_dtype, size_t n) override;
  void download_f32(const Tensor& src, float* dst) override;
  DType weight_dtype(DType) const override { return DType::F32; }
  DType activation_dtype() const override { return DType::F32; }
  BatchView upload_batch(const BatchLayout& batch) override;

  void gather_rows(const Tensor& src, const int32_t* idx, const Tensor& out) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) override;
  void matmul(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
              bool accumulate) override;
  void rope(const Tensor& x, int head_dim, const int32_t* positions,
            const Tensor& inv_freq) override;
  void kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                const BatchView& batch) override;
  void paged_attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch, float scale,
                       const Tensor& out) override;
  void swiglu(const Tensor& gate_up, const Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, const Tensor& out) override;
  std::vector<int32_t> argmax(const Tensor& x) override;

  ThreadPool& pool() { return pool_; }

 private:
  ThreadPool pool_;
};

}  // namespace densekv
