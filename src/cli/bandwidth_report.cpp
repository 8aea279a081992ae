#include "cli/bandwidth_report.h"

#include <fmt/format.h>

#include <algorithm>

#include "kv/capacity.h"

namespace densekv {

std::string bandwidth_text(double bytes, double seconds, const Backend& backend) {
  const double gbs = bytes / std::max(seconds, 1e-12) / 1e9;
  const double peak = backend.memory_info().peak_gbs;
  if (peak <= 0) return fmt::format("{:.2f} GB/s", gbs);
  return fmt::format("{:.2f} GB/s, {:.2f} of the {:.0f} GB/s peak", gbs, gbs / peak, peak);
}

RunBytes run_bytes(const LlamaModel& model, KvFormat kv_format) {
  const KvBlockBytes kb = kv_block_bytes_all_layers(model.config(), kv_format);
  RunBytes b;
  b.weight_bytes = static_cast<double>(model.weights().bytes_per_token);
  b.kv_bytes_per_token = static_cast<double>(kb.block) / kb.block_size;
  return b;
}

double engine_run_bytes(const RunBytes& b, int64_t steps,
                        const std::vector<std::pair<int64_t, int64_t>>& seqs) {
  double bytes = static_cast<double>(steps) * b.weight_bytes;
  for (const auto& [prompt, out] : seqs) {
    // generated token i (0-based) reads prompt + i + 1 positions
    const double p = static_cast<double>(prompt), n = static_cast<double>(out);
    bytes += b.kv_bytes_per_token * (n * p + n * (n + 1) / 2);
  }
  return bytes;
}

}  // namespace densekv
