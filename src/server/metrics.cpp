#include "server/metrics.h"

#include <cstdio>

namespace densekv {

namespace {

std::string num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.10g", x);
  return buf;
}

void metric(std::string& out, const std::string& name, const char* type, const char* help,
            double value) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  out += name + " " + num(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double x) {
  size_t i = 0;
  while (i < bounds_.size() && x > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += x;
  ++count_;
}

void Histogram::render(const std::string& name, const std::string& help, std::string& out) const {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

ServerMetrics::ServerMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
             10.0, 20.0, 40.0, 80.0}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
             0.075, 0.1,    0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1.0,  2.5}),
      e2e_({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
            240.0, 480.0}),
      queue_({0.001, 0.01, 0.1, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0}) {}

void ServerMetrics::on_request_finished(const RequestOutput& last, FinishReason finish,
                                        double e2e_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  if (last.completion_tokens > 0) ttft_.observe(last.ttft_seconds);
  if (last.completion_tokens > 1) tpot_.observe(last.tpot_seconds);
  queue_.observe(last.queue_seconds);
  e2e_.observe(e2e_seconds);
  const char* reason = finish == FinishReason::Stop     ? "stop"
                       : finish == FinishReason::Length ? "length"
                                                        : "abort";
  ++finished_[reason];
}

void ServerMetrics::on_request_cancelled() {
  std::lock_guard<std::mutex> lock(mu_);
  ++finished_["abort"];
}

void ServerMetrics::on_http_reply(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++http_[status];
}

std::string ServerMetrics::render(const EngineMetrics& m) const {
  std::string out;
  metric(out, "densekv:num_requests_running", "gauge", "Requests in the running batch.", m.running);
  metric(out, "densekv:num_requests_waiting", "gauge", "Requests waiting to be scheduled.",
         m.waiting);
  metric(out, "densekv:kv_cache_usage_perc", "gauge", "Fraction of KV cache blocks in use (0-1).",
         m.kv_blocks_total > 0 ? double(m.kv_blocks_used) / m.kv_blocks_total : 0.0);
  metric(out, "densekv:kv_blocks_used", "gauge", "KV cache blocks in use.", m.kv_blocks_used);
  metric(out, "densekv:kv_blocks_total", "gauge", "KV cache blocks in the pool.",
         m.kv_blocks_total);
  metric(out, "densekv:prefix_cache_queries_total", "counter",
         "Prompt tokens looked up in the prefix cache.", double(m.prefix_query_tokens));
  metric(out, "densekv:prefix_cache_hits_total", "counter",
         "Prompt tokens found in the prefix cache.", double(m.prefix_hit_tokens));
  metric(out, "densekv:prefix_cache_hit_rate", "gauge",
         "Prefix cache hits / queries since start (0-1).",
         m.prefix_query_tokens > 0 ? double(m.prefix_hit_tokens) / m.prefix_query_tokens : 0.0);
  metric(out, "densekv:num_preemptions_total", "counter", "Sequences preempted (recomputed).",
         double(m.preemptions));
  metric(out, "densekv:prompt_tokens_total", "counter", "Prefill tokens processed.",
         double(m.prompt_tokens));
  metric(out, "densekv:generation_tokens_total", "counter", "Generated tokens.",
         double(m.generation_tokens));
  metric(out, "densekv:requests_finished_total", "counter", "Requests the engine finished.",
         double(m.requests_finished));
  metric(out, "densekv:engine_steps_total", "counter", "Engine steps (forwards) run.",
         double(m.steps));
  // The engine thread's time per part of its steps: a device that waits on the host shows as
  // schedule + forward + commit growing against wait.
  out +=
      "# HELP densekv:engine_step_seconds_total Engine thread seconds per part of its steps "
      "(schedule, forward call, wait for the tokens, commit).\n"
      "# TYPE densekv:engine_step_seconds_total counter\n";
  for (auto [phase, secs] :
       {std::pair{"schedule", m.schedule_seconds}, std::pair{"forward", m.forward_seconds},
        std::pair{"wait", m.wait_seconds}, std::pair{"commit", m.commit_seconds}}) {
    out += std::string("densekv:engine_step_seconds_total{phase=\"") + phase + "\"} " + num(secs) +
           "\n";
  }

  std::lock_guard<std::mutex> lock(mu_);
  ttft_.render("densekv:time_to_first_token_seconds", "Time to first token.", out);
  tpot_.render("densekv:time_per_output_token_seconds",
               "Mean time per output token after the first.", out);
  e2e_.render("densekv:e2e_request_latency_seconds", "End-to-end request latency.", out);
  queue_.render("densekv:request_queue_time_seconds", "Time requests spent waiting.", out);
  out +=
      "# HELP densekv:request_success_total Finished requests by finish reason.\n"
      "# TYPE densekv:request_success_total counter\n";
  for (const char* r : {"stop", "length", "abort"}) {
    auto it = finished_.find(r);
    out += std::string("densekv:request_success_total{finished_reason=\"") + r + "\"} " +
           std::to_string(it == finished_.end() ? 0 : it->second) + "\n";
  }
  out +=
      "# HELP densekv:http_responses_total HTTP replies by status code.\n"
      "# TYPE densekv:http_responses_total counter\n";
  for (const auto& [status, n] : http_) {
    out += "densekv:http_responses_total{status=\"" + std::to_string(status) + "\"} " +
           std::to_string(n) + "\n";
  }
  return out;
}

}  // namespace densekv
