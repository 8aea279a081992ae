// The bandwidth every generate / bench run prints: the byte model of an engine run (weights once
// per step, every generated token its whole KV context) and the text against the device's peak.
#include "cli/bandwidth_report.h"

#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"

using namespace densekv;

namespace {

// The CPU backend reporting a device's peak bandwidth (the H100's 3352 GB/s).
class PeakDevice final : public CpuBackend {
 public:
  PeakDevice() : CpuBackend(1) {}
  MemoryInfo memory_info() const override { return {0, 0, 3352.0}; }
};

TEST(BandwidthReport, EngineRunBytes) {
  const RunBytes b{.weight_bytes = 100, .kv_bytes_per_token = 2};
  // 10 steps x 100; prompt 5, 3 generated tokens read 6, 7 and 8 positions: 21 x 2
  EXPECT_DOUBLE_EQ(engine_run_bytes(b, 10, {{5, 3}}), 1042.0);
  // two sequences add their KV reads; no generated token reads nothing
  EXPECT_DOUBLE_EQ(engine_run_bytes(b, 1, {{5, 3}, {100, 0}, {0, 1}}), 100 + 42 + 0 + 2);
}

TEST(BandwidthReport, TextAgainstThePeak) {
  CpuBackend cpu(1);
  EXPECT_EQ(bandwidth_text(2.5e9, 1.0, cpu), "2.50 GB/s");  // no known peak on the cpu
  PeakDevice dev;
  EXPECT_EQ(bandwidth_text(2450e9, 1.0, dev), "2450.00 GB/s, 0.73 of the 3352 GB/s peak");
  EXPECT_EQ(bandwidth_text(0, 0, dev), "0.00 GB/s, 0.00 of the 3352 GB/s peak");
}

}  // namespace
