// A host emulation of CUDA graphs for tests: wraps a backend (the CPU reference) and, between
// begin_capture and end_capture, records each op with its arguments copied (tensors, batch views,
// KV layer views: pointers and scalars, as a captured kernel's parameters) instead of running it;
// replay runs the recorded ops again, reading whatever the pointers hold then. So a graph that
// depends on anything that changes between replays other than the memory its pointers name
// (a host vector of the layout, a reallocated buffer, a scalar of another batch) computes wrong
// numbers here as it would on the GPU. Memory ops while capturing fail the test, as they fail a
// CUDA stream capture.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"

namespace densekv::testing {

class RecordingBackend final : public Backend {
 public:
  explicit RecordingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  std::string name() const override { return "recording " + inner_->name(); }
  MemoryInfo memory_info() const override { return inner_->memory_info(); }
  void* alloc(size_t bytes) override {
    no_capture("alloc");
    return inner_->alloc(bytes);
  }
  void release(void* p) override {
    no_capture("release");
    inner_->release(p);
  }
  void upload(void* dst, DType dd, const void* src, DType sd, size_t n) override {
    no_capture("upload");
    inner_->upload(dst, dd, src, sd, n);
  }
  void download_f32(const Tensor& src, float* dst) override {
    no_capture("download_f32");
    inner_->download_f32(src, dst);
  }
  DType weight_dtype(DType file_dtype) const override { return inner_->weight_dtype(file_dtype); }
  DType activation_dtype() const override { return inner_->activation_dtype(); }
  void set_model_dtype(DType d) override { inner_->set_model_dtype(d); }
  void fill_random(const Tensor& t, float a, float value, uint64_t seed) override {
    no_capture("fill_random");
    inner_->fill_random(t, a, value, seed);
  }
  BatchView upload_batch(const BatchLayout& b) override {
    no_capture("upload_batch");
    return inner_->upload_batch(b);
  }

  void gather_rows(const Tensor& src, const int32_t* idx, const Tensor& out) override {
    op([=, this] { inner_->gather_rows(src, idx, out); });
  }
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) override {
    op([=, this] { inner_->rmsnorm(x, w, eps, out); });
  }
  void matmul(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
              bool accumulate) override {
    op([=, this] { inner_->matmul(x, w, bias, out, accumulate); });
  }
  void rope(const Tensor& x, int head_dim, const int32_t* positions,
            const Tensor& inv_freq) override {
    op([=, this] { inner_->rope(x, head_dim, positions, inv_freq); });
  }
  void kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                const BatchView& batch) override {
    op([=, this] { inner_->kv_write(kv, k, v, batch); });
  }
  void paged_attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch, float scale,
                       const Tensor& out) override {
    op([=, this] { inner_->paged_attention(q, kv, batch, scale, out); });
  }
  void swiglu(const Tensor& gate_up, const Tensor& out) override {
    op([=, this] { inner_->swiglu(gate_up, out); });
  }
  void add(const Tensor& a, const Tensor& b, const Tensor& out) override {
    op([=, this] { inner_->add(a, b, out); });
  }
  std::vector<int32_t> argmax(const Tensor& x) override {
    no_capture("argmax");
    return inner_->argmax(x);
  }

  bool supports_graphs() const override { return true; }
  void begin_capture() override {
    EXPECT_FALSE(capturing_) << "begin_capture while capturing";
    capturing_ = true;
    recording_.clear();
  }
  std::unique_ptr<BackendGraph> end_capture() override {
    EXPECT_TRUE(capturing_) << "end_capture without begin_capture";
    capturing_ = false;
    auto g = std::make_unique<Graph>();
    g->ops = std::move(recording_);
    recording_.clear();
    return g;
  }
  void replay(BackendGraph& graph) override {
    no_capture("replay");
    ++replays_;
    for (const auto& f : dynamic_cast<Graph&>(graph).ops) f();
  }
  uint64_t graph_epoch() const override { return epoch_; }

  // Tests: pretend scratch memory moved (every graph must be captured again).
  void bump_epoch() { ++epoch_; }
  int64_t replays() const { return replays_; }
  Backend& inner() { return *inner_; }

 private:
  struct Graph final : BackendGraph {
    std::vector<std::function<void()>> ops;
  };
  void no_capture(const char* what) const {
    EXPECT_FALSE(capturing_) << what << " while capturing a graph";
  }
  void op(std::function<void()> f) {
    if (capturing_) {
      recording_.push_back(std::move(f));
    } else {
      f();
    }
  }

  std::unique_ptr<Backend> inner_;
  bool capturing_ = false;
  std::vector<std::function<void()>> recording_;
  uint64_t epoch_ = 0;
  int64_t replays_ = 0;
};

}  // namespace densekv::testing
