// GET /metrics: Prometheus text exposition (format 0.0.4) of the engine's gauges and counters
// (requests running and waiting, KV blocks in use, prefix-cache hits, preemptions, tokens) and the
// server's own histograms (time to first token, time per output token, end-to-end latency) and
// counters (finished requests by finish reason, HTTP replies by status). Names follow vLLM's with
// the prefix "densekv:" (e.g. densekv:num_requests_running, densekv:kv_cache_usage_perc).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace densekv {

// A cumulative histogram with fixed upper bounds (+Inf implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double x);
  // "# HELP", "# TYPE", then name_bucket{le=...}, name_sum, name_count.
  void render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // [bounds_.size() + 1], the last for +Inf; not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  // A finished generation request: its last output chunk (timings and token counts).
  void on_request_finished(const RequestOutput& last, FinishReason finish, double e2e_seconds);
  // A request dropped before its end (the client went away): counted as finished_reason abort.
  void on_request_cancelled();
  void on_http_reply(int status);
  // The whole exposition, engine gauges included. Thread-safe.
  std::string render(const EngineMetrics& engine) const;

 private:
  mutable std::mutex mu_;
  Histogram ttft_, tpot_, e2e_, queue_;
  std::map<std::string, uint64_t> finished_;  // by finish reason
  std::map<int, uint64_t> http_;              // by status
};

}  // namespace densekv
