// The engine: one thread owns the model, the backend and the KV block manager and runs the step
// loop (scheduler.h picks decode tokens and prefill chunks under the token budget and free KV
// blocks; preemption by recompute; the model forward; sampling). Other threads talk to it only
// through this thread-safe API. See docs/engine.md.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/request.h"

namespace densekv {

struct EngineConfig {
  int max_num_seqs = 256;
  int max_num_batched_tokens = 2048;  // per step: decode tokens + prefill chunk tokens
  int max_model_len = 0;              // 0: the model's max_position_embeddings
  bool enable_prefix_caching = true;
  // The KV cache: format ("auto" = the model's dtype, bf16, int8, int4_kivi, ...) and pool size:
  // num_kv_blocks > 0 wins, else kv_memory_gb > 0 (GiB, main pool + tails), else
  // gpu_memory_utilization > 0 on a backend with device memory (as vLLM: the pool takes this
  // fraction of the device's memory minus what the weights, the activation workspace for
  // max_num_batched_tokens and everything else already use, less a 256 MiB margin for scratch
  // buffers), else 1 GiB. The pool must hold one sequence of max_model_len tokens
  // (max_model_len 0 is lowered to fit).
  std::string kv_cache_dtype = "auto";
  int num_kv_blocks = 0;
  double kv_memory_gb = 0;
  double gpu_memory_utilization = 0;
  // Steps whose sampled rows are all greedy without penalties or logprobs
  // (greedy_without_logits, sampler.h), and every step on a backend that samples on the device
  // (Backend::penalize, argmax, sample), take the tokens from the backend and copy only the ids
  // to the host, not [rows, vocab] fp32 logits (DevicePicks; logprobs by Backend::logprobs).
  // Off: every step copies the logits.
  bool greedy_on_device = true;
  // Tests: CHECK the KV block invariants after every step (slow for big pools).
  bool check_invariants = false;
};

struct EngineMetrics {
  int running = 0, waiting = 0;
  int kv_blocks_used = 0, kv_blocks_total = 0;
  int kv_tails_total = 0;  // 16-bit tails of a quantized cache (one per running sequence)
  int64_t prefix_hit_tokens = 0, prefix_query_tokens = 0;
  int64_t preemptions = 0;
  int64_t requests_finished = 0, prompt_tokens = 0, generation_tokens = 0;
  int64_t steps = 0;
  int64_t greedy_device_steps = 0;  // steps sampled on the device (greedy_on_device)
  int64_t device_draw_rows = 0;     // ... rows of them drawn by Backend::sample
  int64_t host_fallback_rows = 0;   // ... rows of them the host sampled (draws the device left)
  int64_t penalized_rows = 0;       // rows picked on the device with penalties (Backend::penalize)
  int peak_running = 0;             // most sequences running in one step
  // Where the engine thread's steps went (seconds): scheduling and the batch's chunks, the
  // forward call (the host's layout, uploads and launches; the device starts on them meanwhile),
  // waiting for the step's tokens (the device's work not yet done when the host got there), and
  // committing them (appends, finishes, outputs). The device idles while the host schedules and
  // commits (and between steps); it may already run during the forward call.
  double schedule_seconds = 0, forward_seconds = 0, wait_seconds = 0, commit_seconds = 0;
};

// A request's outputs in order. next() blocks until a chunk is ready (nullopt on timeout).
// The stream ends after the chunk whose finish != None.
class RequestStream {
 public:
  virtual ~RequestStream() = default;
  virtual uint64_t id() const = 0;
  virtual std::optional<RequestOutput> next(std::chrono::milliseconds timeout) = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Thread-safe. Throws InvalidArgumentError for a bad request (empty prompt, too long for
  // max_model_len, bad sampling parameter); never blocks on the step loop.
  virtual std::shared_ptr<RequestStream> submit(GenerationRequest req) = 0;
  // Thread-safe; a message to the engine thread, which frees the request's blocks at its next
  // step and ends its stream with FinishReason::Abort. Unknown or finished ids are ignored.
  virtual void cancel(uint64_t id) = 0;
  virtual EngineMetrics metrics() const = 0;
  virtual int max_model_len() const = 0;
  // Stops taking requests, finishes (drain = true) or aborts the in-flight ones, joins the thread.
  virtual void shutdown(bool drain) = 0;
};

}  // namespace densekv
