// KV pool sizing from --gpu-memory-utilization (EngineConfig::gpu_memory_utilization): on a
// backend that reports device memory, the pool takes the allowed fraction of the device minus
// what is already allocated (weights, workspace), and never goes past it; explicit sizes win; a
// fraction that leaves no room is a clear error; the CPU backend (no device memory) keeps the
// 1 GiB default. The "device" is the CPU backend with a memory counter and a made-up capacity.
#include <gtest/gtest.h>

#include <unordered_map>

#include "backend/cpu/cpu_backend.h"
#include "core/errors.h"
#include "engine_test_util.h"
#include "kv/capacity.h"
#include "kv/kv_format.h"

using namespace densekv;
using namespace densekv::testing;

namespace {

// The CPU backend pretending to be a device of `total` bytes: free = total - allocated.
class FakeDevice final : public CpuBackend {
 public:
  explicit FakeDevice(size_t total) : CpuBackend(2), total_(total) {}
  MemoryInfo memory_info() const override { return {total_ - allocated_, total_}; }
  void* alloc(size_t bytes) override {
    void* p = CpuBackend::alloc(bytes);
    sizes_[p] = bytes;
    allocated_ += bytes;
    peak_ = std::max(peak_, allocated_);
    return p;
  }
  void release(void* p) override {
    auto it = sizes_.find(p);
    if (it != sizes_.end()) allocated_ -= it->second, sizes_.erase(it);
    CpuBackend::release(p);
  }
  size_t allocated() const { return allocated_; }
  size_t peak() const { return peak_; }

 private:
  size_t total_, allocated_ = 0, peak_ = 0;
  std::unordered_map<void*, size_t> sizes_;
};

constexpr size_t kMiB = 1 << 20;
const char* kModel = "llama31-tiny";

EngineConfig config(double util) {
  EngineConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 64;
  c.max_model_len = 256;
  c.kv_cache_dtype = "int4_kivi";
  c.gpu_memory_utilization = util;
  return c;
}

TEST(KvPoolSizing, TakesTheFractionLeftAfterWeightsAndWorkspace) {
  if (!std::filesystem::exists(tiny_model_dir(kModel) + "/config.json")) GTEST_SKIP();
  FakeDevice dev(512 * kMiB);
  auto model = load_llama(dev, tiny_model_dir(kModel));
  ASSERT_GT(dev.allocated(), 0u);  // the weights
  auto engine = make_llm_engine(*model, config(0.75));
  // Everything the engine holds (weights, workspace, pool, tails) stays within 0.75 of the
  // device, and the pool uses what is there: the 256 MiB margin plus less than a block is left.
  const KvBlockBytes bb = kv_block_bytes_all_layers(model->config(), KvFormat::INT4_KIVI);
  EXPECT_LE(dev.allocated(), 384 * kMiB);
  EXPECT_GE(dev.allocated() + 256 * kMiB + bb.block, 384 * kMiB);
  const int blocks = engine->metrics().kv_blocks_total;
  EXPECT_GE(static_cast<size_t>(blocks) * bb.block, 64 * kMiB);
  engine->shutdown(false);
  engine.reset();

  // A larger fraction gives a larger pool, still within the fraction.
  auto engine9 = make_llm_engine(*model, config(0.9));
  EXPECT_GT(engine9->metrics().kv_blocks_total, blocks);
  EXPECT_LE(dev.allocated(), static_cast<size_t>(0.9 * 512 * kMiB));
}

TEST(KvPoolSizing, ExplicitSizesWinAndTooLittleIsAnError) {
  if (!std::filesystem::exists(tiny_model_dir(kModel) + "/config.json")) GTEST_SKIP();
  FakeDevice dev(512 * kMiB);
  auto model = load_llama(dev, tiny_model_dir(kModel));
  const KvBlockBytes bb = kv_block_bytes_all_layers(model->config(), KvFormat::INT4_KIVI);

  EngineConfig c = config(0.9);
  c.kv_memory_gb = 0.0625;  // 64 MiB: wins over the fraction
  auto e = make_llm_engine(*model, c);
  EXPECT_EQ(static_cast<int64_t>(e->metrics().kv_blocks_total),
            (64 * int64_t(kMiB) - int64_t(c.max_num_seqs) * bb.tail) / bb.block);
  e->shutdown(false);
  e.reset();

  // 0.5 of 512 MiB minus the 256 MiB margin leaves nothing.
  try {
    make_llm_engine(*model, config(0.5));
    FAIL() << "expected InvalidArgumentError";
  } catch (const InvalidArgumentError& err) {
    EXPECT_NE(std::string(err.what()).find("--gpu-memory-utilization"), std::string::npos)
        << err.what();
  }
}

TEST(KvPoolSizing, CpuBackendKeepsTheDefault) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, kModel);
  EXPECT_EQ(model->backend().memory_info().total_bytes, 0u);
  auto e = make_llm_engine(*model, config(0.9));
  const KvBlockBytes bb = kv_block_bytes_all_layers(model->config(), KvFormat::INT4_KIVI);
  EXPECT_EQ(static_cast<int64_t>(e->metrics().kv_blocks_total),
            ((int64_t(1) << 30) - int64_t(8) * bb.tail) / bb.block);
}

}  // namespace
