// The memory traffic a run achieved, against the device's roofline (peak memory bandwidth) where
// the backend knows it: every generate and bench run prints it.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_format.h"
#include "model/llama.h"

namespace densekv {

// "2450 GB/s" (no known peak, cpu) or "2450 GB/s, 0.73 of the 3352 GB/s peak".
std::string bandwidth_text(double bytes, double seconds, const Backend& backend);

// The bytes an engine run must read under a simple model: the weights once per step, and every
// generated token its sequence's whole KV context at the format's sealed density (prompt + the
// tokens before it). `seqs` are (prompt tokens, completion tokens) per request.
struct RunBytes {
  double weight_bytes = 0;        // read once per engine step
  double kv_bytes_per_token = 0;  // all layers, K and V
};
RunBytes run_bytes(const LlamaModel& model, KvFormat kv_format);
double engine_run_bytes(const RunBytes& b, int64_t steps,
                        const std::vector<std::pair<int64_t, int64_t>>& seqs);

}  // namespace densekv
