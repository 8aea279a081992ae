#include "engine/llm_engine.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "core/check.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "engine/device_picks.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "kv/block_manager.h"
#include "kv/capacity.h"
#include "kv/kv_cache.h"

namespace densekv {

namespace {

using Clock = Sequence::Clock;

// A request's output queue: the engine thread pushes, the client thread pops. Chunks the client
// has not read yet are merged, so a slow reader costs one chunk, not one per step.
class StreamImpl final : public RequestStream {
 public:
  explicit StreamImpl(uint64_t id) : id_(id) {}
  uint64_t id() const override { return id_; }

  std::optional<RequestOutput> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty(); })) return std::nullopt;
    RequestOutput o = std::move(q_.front());
    q_.pop_front();
    return o;
  }

  void push(RequestOutput o) {
    {
      std::lock_guard lk(mu_);
      if (!q_.empty() && q_.back().finish == FinishReason::None) {
        // Not taken yet: o's tokens join it (appended: a reader that waits for the end must not
        // make every step copy all the tokens before).
        RequestOutput& b = q_.back();
        b.token_ids.insert(b.token_ids.end(), o.token_ids.begin(), o.token_ids.end());
        b.logprobs.insert(b.logprobs.end(), std::make_move_iterator(o.logprobs.begin()),
                          std::make_move_iterator(o.logprobs.end()));
        o.token_ids = std::move(b.token_ids);
        o.logprobs = std::move(b.logprobs);
        b = std::move(o);
      } else {
        q_.push_back(std::move(o));
      }
    }
    cv_.notify_all();
  }

 private:
  uint64_t id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> q_;
};

struct KvPoolSize {
  KvFormat format = KvFormat::BF16;
  int block_size = 16;
  int num_blocks = 0;
  int num_tail_blocks = 0;
  std::string source;  // what set the size (for the start-up log)
};

constexpr int64_t kKvMarginBytes = 256ll << 20;  // scratch, cuBLAS, batch uploads

KvPoolSize size_kv_pool(LlamaModel& model, const EngineConfig& cfg) {
  const ModelConfig& mc = model.config();
  KvPoolSize s;
  s.format = parse_kv_cache_dtype(cfg.kv_cache_dtype, mc.dtype);
  const KvBlockBytes bb = kv_block_bytes_all_layers(mc, s.format);
  s.block_size = bb.block_size;
  if (cfg.num_kv_blocks < 0) throw InvalidArgumentError("num_kv_blocks must be >= 0");
  if (cfg.kv_memory_gb < 0) throw InvalidArgumentError("kv_memory_gb must be >= 0");
  if (!(cfg.gpu_memory_utilization >= 0 && cfg.gpu_memory_utilization <= 1)) {
    throw InvalidArgumentError("gpu_memory_utilization must be in [0, 1] (0: not used)");
  }
  if (cfg.num_kv_blocks > 0) {
    s.num_blocks = cfg.num_kv_blocks;
    s.num_tail_blocks = bb.tail > 0 ? cfg.max_num_seqs : 0;
    s.source = "--num-kv-blocks";
    return s;
  }
  int64_t budget = int64_t(1) << 30;
  s.source = "default 1 GiB";
  if (cfg.kv_memory_gb > 0) {
    budget = static_cast<int64_t>(cfg.kv_memory_gb * (1ull << 30));
    s.source = "--kv-cache-memory-gb";
  } else if (cfg.gpu_memory_utilization > 0 && model.backend().memory_info().total_bytes > 0) {
    // As vLLM: what the weights, the workspace of the largest step and everything else use
    // (other processes included) comes off the allowed fraction of the device.
    model.reserve_workspace(cfg.max_num_batched_tokens, cfg.max_num_seqs);
    const MemoryInfo mem = model.backend().memory_info();
    const int64_t total = static_cast<int64_t>(mem.total_bytes);
    const int64_t used = total - static_cast<int64_t>(mem.free_bytes);
    budget = static_cast<int64_t>(cfg.gpu_memory_utilization * static_cast<double>(total)) - used -
             kKvMarginBytes;
    constexpr double kGiB = 1073741824.0;
    if (budget < bb.block + bb.tail) {  // one block and one tail (plan_kv_pools)
      throw InvalidArgumentError(fmt::format(
          "--gpu-memory-utilization {} of the device's {:.1f} GiB leaves no room for the KV "
          "cache: {:.1f} GiB are in use (weights, workspace for {} batched tokens, other "
          "processes) plus a {:.2f} GiB margin; raise it, lower --max-num-batched-tokens, or set "
          "--kv-cache-memory-gb",
          cfg.gpu_memory_utilization, total / kGiB, used / kGiB, cfg.max_num_batched_tokens,
          kKvMarginBytes / kGiB));
    }
    s.source = fmt::format("--gpu-memory-utilization {} of {:.1f} GiB, {:.1f} GiB in use",
                           cfg.gpu_memory_utilization, total / kGiB, used / kGiB);
  }
  const KvPoolPlan plan = plan_kv_pools(mc, s.format, budget, cfg.max_num_seqs);
  s.num_blocks = static_cast<int>(std::min<int64_t>(plan.num_blocks, INT32_MAX / 2));
  s.num_tail_blocks = static_cast<int>(plan.num_tail_blocks);
  return s;
}

KvCacheConfig cache_config(const ModelConfig& mc, const EngineConfig& cfg, const KvPoolSize& pool) {
  KvCacheConfig c = kv_cache_config(mc, pool.format, pool.num_blocks, cfg.max_num_seqs);
  c.block_size = pool.block_size;
  c.num_tail_blocks = pool.num_tail_blocks;
  c.prefix_caching = cfg.enable_prefix_caching;
  return c;
}

class LlmEngine final : public Engine {
 public:
  LlmEngine(LlamaModel& model, const EngineConfig& cfg, const KvPoolSize& pool, int max_model_len)
      : model_(model),
        cfg_(cfg),
        vocab_(model.config().vocab_size),
        max_model_len_(max_model_len),
        cache_(model.backend(), cache_config(model.config(), cfg, pool)),
        scheduler_(SchedulerConfig{cfg.max_num_seqs, cfg.max_num_batched_tokens}, cache_.blocks()),
        seed_rng_(std::random_device{}()) {
    metrics_.kv_blocks_total = pool.num_blocks;
    metrics_.kv_tails_total = pool.num_tail_blocks;
    probe();
    if (const char* f = std::getenv("DENSEKV_STEP_TRACE"); f != nullptr && *f != '\0') {
      trace_ = std::fopen(f, "w");
      if (trace_ == nullptr) {
        throw InvalidArgumentError(std::string("DENSEKV_STEP_TRACE: cannot write '") + f + "'");
      }
    }
    thread_ = std::thread([this] { loop(); });
  }

  ~LlmEngine() override {
    shutdown(false);
    if (trace_ != nullptr) std::fclose(trace_);
  }

  std::shared_ptr<RequestStream> submit(GenerationRequest req) override {
    const int n = static_cast<int>(req.prompt_ids.size());
    if (n == 0) throw InvalidArgumentError("the prompt has no tokens");
    if (n >= max_model_len_) {
      throw InvalidArgumentError(
          "the prompt has " + std::to_string(n) + " tokens; this engine's max_model_len is " +
          std::to_string(max_model_len_) + " (prompt plus at least one generated token)");
    }
    for (int32_t id : req.prompt_ids) {
      if (id < 0 || id >= vocab_) {
        throw InvalidArgumentError("prompt token id " + std::to_string(id) +
                                   " is outside the vocabulary [0, " + std::to_string(vocab_) +
                                   ")");
      }
    }
    validate_sampling_params(req.params, vocab_);
    std::shared_ptr<StreamImpl> stream;
    {
      std::lock_guard lk(mu_);
      if (stopping_) throw Error("the engine is shutting down and takes no new requests");
      if (req.id == 0) {
        while (req.id == 0 || live_ids_.count(req.id)) req.id = next_id_++;
      } else if (live_ids_.count(req.id)) {
        throw InvalidArgumentError("request id " + std::to_string(req.id) + " is already in use");
      }
      live_ids_.insert(req.id);
      stream = std::make_shared<StreamImpl>(req.id);
      const uint64_t seed = req.params.seed ? *req.params.seed : seed_rng_();
      inbox_.push_back(Incoming{std::move(req), seed, Clock::now(), stream});
    }
    cv_.notify_all();
    return stream;
  }

  void cancel(uint64_t id) override {
    {
      std::lock_guard lk(mu_);
      if (!live_ids_.count(id)) return;
      cancels_.push_back(id);
    }
    cv_.notify_all();
  }

  EngineMetrics metrics() const override {
    std::lock_guard lk(metrics_mu_);
    return metrics_;
  }

  int max_model_len() const override { return max_model_len_; }

  void shutdown(bool drain) override {
    {
      std::lock_guard lk(mu_);
      if (!stopping_) {
        stopping_ = true;
        drain_ = drain;
      }
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Incoming {
    GenerationRequest req;
    uint64_t seed;
    Clock::time_point arrived;
    std::shared_ptr<StreamImpl> stream;
  };
  struct Live {
    std::unique_ptr<Sequence> seq;
    std::shared_ptr<StreamImpl> stream;
  };

  // One forward of one token before the thread starts: a format or shape the forward cannot
  // run fails here (InvalidArgumentError from make_llm_engine), not on the first request.
  void probe();
  void loop();
  void step();
  void finish(Sequence* seq, FinishReason reason, const std::string& error = "");
  void emit(Sequence* seq, const std::string& error = "");
  void publish_metrics();
  // One line of DENSEKV_STEP_TRACE: step, chunks, tokens, decode rows, context (the chunks' ends
  // summed), then us since the last step's end, scheduling, forward call, waiting, committing.
  void trace_step(const SchedulerOutput& so, Clock::time_point start, Clock::time_point scheduled,
                  Clock::time_point launched, Clock::time_point done, Clock::time_point end);
  // Hands the step's outputs to the streams (after publish_metrics, so a client that sees its
  // last chunk also sees metrics that count it).
  void deliver();

  LlamaModel& model_;
  const EngineConfig cfg_;
  const int vocab_;
  const int max_model_len_;

  // Engine thread only.
  KvCache cache_;  // storage + block bookkeeping (cache_.blocks())
  Scheduler scheduler_;
  ThreadPool sample_pool_{std::min(8, static_cast<int>(std::thread::hardware_concurrency()))};
  std::unordered_map<uint64_t, Live> live_;
  uint64_t arrivals_ = 0;
  std::vector<float> logits_host_;  // [scheduled seqs, vocab]
  std::vector<std::pair<std::shared_ptr<StreamImpl>, RequestOutput>> outbox_;
  int64_t generated_ = 0, prompt_tokens_ = 0, finished_ = 0, steps_ = 0;
  int64_t greedy_device_steps_ = 0;
  int64_t device_draw_rows_ = 0, host_fallback_rows_ = 0, penalized_rows_ = 0;
  DevicePicks picks_{vocab_};  // the step's rows picked on the device
  int peak_running_ = 0;
  double schedule_s_ = 0, forward_s_ = 0, wait_s_ = 0, commit_s_ = 0;
  // DENSEKV_STEP_TRACE=FILE: one line per step (chunks, tokens, times in us), for profiling.
  std::FILE* trace_ = nullptr;
  Clock::time_point last_step_end_{};

  // Shared with client threads, under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Incoming> inbox_;
  std::vector<uint64_t> cancels_;
  std::unordered_set<uint64_t> live_ids_;
  uint64_t next_id_ = 1;
  std::mt19937_64 seed_rng_;
  bool stopping_ = false, drain_ = false;

  mutable std::mutex metrics_mu_;
  EngineMetrics metrics_;

  std::thread thread_;
};

void LlmEngine::probe() {
  KvBlockManager& kv = cache_.blocks();
  KvSeqBlocks seq;
  const int32_t token = 0;
  CHECK(kv.start(seq, std::span<const int32_t>()) == 0 && kv.reserve(seq, 1));
  SeqChunk c;
  c.ids = &token;
  c.n_ids = 1;
  c.kv = &seq;
  try {
    model_.forward({c}, cache_, /*last_only=*/true);
  } catch (...) {
    kv.release(seq);
    throw;
  }
  kv.release(seq);
}

void LlmEngine::loop() {
  for (;;) {
    std::deque<Incoming> incoming;
    std::vector<uint64_t> cancels;
    bool stopping, drain;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] {
        return stopping_ || !inbox_.empty() || !cancels_.empty() || !scheduler_.idle();
      });
      incoming.swap(inbox_);
      cancels.swap(cancels_);
      stopping = stopping_;
      drain = drain_;
    }
    for (Incoming& in : incoming) {
      auto seq = std::make_unique<Sequence>(std::move(in.req), arrivals_++, in.seed, in.arrived);
      scheduler_.add(seq.get());
      const uint64_t id = seq->id();
      live_[id] = Live{std::move(seq), std::move(in.stream)};
    }
    for (uint64_t id : cancels) {
      auto it = live_.find(id);
      if (it != live_.end()) finish(it->second.seq.get(), FinishReason::Abort);
    }
    if (stopping && !drain) {
      while (!live_.empty()) finish(live_.begin()->second.seq.get(), FinishReason::Abort);
    }
    if (!scheduler_.idle()) step();
    publish_metrics();
    deliver();
    if (stopping && scheduler_.idle()) return;
  }
}

void LlmEngine::step() {
  const Clock::time_point now = Clock::now();
  SchedulerOutput so = scheduler_.schedule(now);
  if (so.chunks.empty()) {
    // Nothing fits even with the pool to itself: cannot happen for a request that passed
    // submit() (max_model_len fits the pool), but never spin on it.
    CHECK(scheduler_.running().empty() && !scheduler_.waiting().empty());
    finish(scheduler_.waiting().front(), FinishReason::Abort,
           "the request does not fit in the KV cache");
    return;
  }
  ++steps_;
  peak_running_ = std::max(peak_running_, static_cast<int>(scheduler_.running().size()));

  std::vector<SeqChunk> batch;
  batch.reserve(so.chunks.size());
  for (const ScheduledChunk& c : so.chunks) {
    SeqChunk sc;
    sc.ids = c.seq->tokens().data() + c.start;
    sc.n_ids = c.n;
    sc.start_pos = c.start;
    sc.kv = &c.seq->kv;
    batch.push_back(sc);
  }
  // The chunks that reached their sequence's end sample. On a backend that samples on the device,
  // or when every one of them is greedy without penalties or logprobs (greedy_without_logits),
  // their tokens are picked where the logits are (DevicePicks) and only the ids come to the host;
  // rows that ask for logprobs get them there too (Backend::logprobs).
  std::vector<size_t> sampling;
  bool on_device = cfg_.greedy_on_device;
  const bool device_sampling = model_.backend().supports_device_sampling();
  for (size_t i = 0; i < so.chunks.size(); ++i) {
    if (!so.chunks[i].samples()) continue;
    sampling.push_back(i);
    const SamplingParams& p = so.chunks[i].seq->params();
    on_device = on_device && (device_sampling || greedy_without_logits(p));
  }
  picks_.clear();
  const Clock::time_point scheduled = Clock::now();
  Clock::time_point launched = scheduled;
  try {
    Tensor logits = model_.forward(batch, cache_, /*last_only=*/true);
    launched = Clock::now();
    // While the GPU runs the forward (queued, not waited for): the RNG draws and penalty entries.
    if (on_device) {
      for (size_t i : sampling) picks_.add(static_cast<int32_t>(i), *so.chunks[i].seq);
    }
    if (sampling.empty()) {
      // Partial prefill chunks only: nothing to sample.
    } else if (on_device) {
      picks_.pick(model_.backend(), logits);  // (copies the rows it leaves to the host)
    } else {
      logits_host_.resize(static_cast<size_t>(logits.numel()));
      model_.backend().download_f32(logits, logits_host_.data());
    }
  } catch (const std::exception& e) {
    // A failed forward fails the requests in it (the K/V they wrote is not committed).
    spdlog::error("engine: forward failed: {}", e.what());
    for (const ScheduledChunk& c : so.chunks) finish(c.seq, FinishReason::Abort, e.what());
    return;
  }

  std::vector<SampleResult> sampled(sampling.size());
  if (on_device && !sampling.empty()) {
    if (picks_.left_to_host() < sampling.size()) ++greedy_device_steps_;
    device_draw_rows_ += static_cast<int64_t>(picks_.draws());
    penalized_rows_ += static_cast<int64_t>(picks_.penalized());
    host_fallback_rows_ += static_cast<int64_t>(picks_.left_to_host());
    if (picks_.left_to_host() > 0) picks_.sample_left_on_host(sample_pool_);
    for (size_t j = 0; j < sampling.size(); ++j) sampled[j] = picks_.result(j);
  } else {
    // In parallel: each sequence has its own RNG and nothing else is shared, so the tokens do not
    // depend on the threads.
    sample_pool_.parallel_for(static_cast<int64_t>(sampling.size()), [&](int64_t b, int64_t e) {
      thread_local Sampler sampler;
      for (int64_t j = b; j < e; ++j) {
        const size_t i = sampling[static_cast<size_t>(j)];
        const Sequence* seq = so.chunks[i].seq;
        const std::span<const float> row(logits_host_.data() + i * static_cast<size_t>(vocab_),
                                         static_cast<size_t>(vocab_));
        const SamplingContext ctx{std::span<const int32_t>(seq->tokens().data(), seq->prompt_len()),
                                  &seq->output_counts()};
        sampled[static_cast<size_t>(j)] =
            sampler.sample(row, seq->params(), ctx, so.chunks[i].seq->rng);
      }
    });
  }

  const Clock::time_point done = Clock::now();
  const auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  schedule_s_ += seconds(scheduled - now);
  forward_s_ += seconds(launched - scheduled);
  wait_s_ += seconds(done - launched);
  size_t next_sample = 0;
  for (size_t i = 0; i < so.chunks.size(); ++i) {
    const ScheduledChunk& c = so.chunks[i];
    Sequence* seq = c.seq;
    scheduler_.commit(c);
    if (c.start < seq->prompt_len()) {
      prompt_tokens_ += std::min(c.start + c.n, seq->prompt_len()) - c.start;
    }
    if (!c.samples()) continue;
    const SampleResult& r = sampled[next_sample++];
    ++generated_;
    const FinishReason fr = seq->append(r.token, &r.logprobs, max_model_len_, done);
    if (fr != FinishReason::None) {
      finish(seq, fr);
    } else {
      emit(seq);
    }
  }
  const Clock::time_point end = Clock::now();
  commit_s_ += seconds(end - done);
  if (trace_ != nullptr) trace_step(so, now, scheduled, launched, done, end);
  last_step_end_ = end;
  if (cfg_.check_invariants) {
    std::vector<const KvSeqBlocks*> held;
    for (const Sequence* s : scheduler_.running()) held.push_back(&s->kv);
    cache_.blocks().check_invariants(held);
  }
}

void LlmEngine::trace_step(const SchedulerOutput& so, Clock::time_point start,
                           Clock::time_point scheduled, Clock::time_point launched,
                           Clock::time_point done, Clock::time_point end) {
  int decode_rows = 0;
  long long context = 0;
  for (const ScheduledChunk& c : so.chunks) {
    decode_rows += c.n == 1;
    context += c.start + c.n;
  }
  const auto us = [](Clock::duration d) {
    return static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  };
  const long long gap = last_step_end_ == Clock::time_point{} ? 0 : us(start - last_step_end_);
  std::fprintf(trace_, "%lld %zu %d %d %lld %lld %lld %lld %lld %lld\n",
               static_cast<long long>(steps_), so.chunks.size(), so.num_tokens, decode_rows,
               context, gap, us(scheduled - start), us(launched - scheduled), us(done - launched),
               us(end - done));
}

void LlmEngine::emit(Sequence* seq, const std::string& error) {
  if (!seq->has_unsent_output()) return;
  RequestOutput out = seq->take_output();
  out.error = error;
  outbox_.emplace_back(live_.at(seq->id()).stream, std::move(out));
}

void LlmEngine::deliver() {
  for (auto& [stream, out] : outbox_) stream->push(std::move(out));
  outbox_.clear();
}

void LlmEngine::finish(Sequence* seq, FinishReason reason, const std::string& error) {
  const uint64_t id = seq->id();
  scheduler_.remove(seq);
  seq->set_finished(reason, Clock::now());
  ++finished_;
  emit(seq, error);
  live_.erase(id);  // seq is gone from here on
  std::lock_guard lk(mu_);
  live_ids_.erase(id);
}

void LlmEngine::publish_metrics() {
  std::lock_guard lk(metrics_mu_);
  metrics_.running = static_cast<int>(scheduler_.running().size());
  metrics_.waiting = static_cast<int>(scheduler_.waiting().size());
  const KvBlockManager& kv = cache_.blocks();
  metrics_.kv_blocks_used = kv.blocks().num_blocks() - kv.blocks().num_available();
  metrics_.prefix_hit_tokens = kv.prefix_hit_tokens();
  metrics_.prefix_query_tokens = kv.prefix_query_tokens();
  metrics_.preemptions = scheduler_.num_preemptions();
  metrics_.requests_finished = finished_;
  metrics_.prompt_tokens = prompt_tokens_;
  metrics_.generation_tokens = generated_;
  metrics_.steps = steps_;
  metrics_.greedy_device_steps = greedy_device_steps_;
  metrics_.device_draw_rows = device_draw_rows_;
  metrics_.host_fallback_rows = host_fallback_rows_;
  metrics_.penalized_rows = penalized_rows_;
  metrics_.peak_running = peak_running_;
  metrics_.schedule_seconds = schedule_s_;
  metrics_.forward_seconds = forward_s_;
  metrics_.wait_seconds = wait_s_;
  metrics_.commit_seconds = commit_s_;
}

}  // namespace

std::unique_ptr<Engine> make_llm_engine(LlamaModel& model, const EngineConfig& cfg) {
  const ModelConfig& mc = model.config();
  if (cfg.max_num_seqs < 1) throw InvalidArgumentError("max_num_seqs must be >= 1");
  if (cfg.max_num_batched_tokens < 1) {
    throw InvalidArgumentError("max_num_batched_tokens must be >= 1");
  }
  if (cfg.max_model_len < 0) throw InvalidArgumentError("max_model_len must be >= 0");
  if (cfg.max_model_len > mc.max_position_embeddings) {
    throw InvalidArgumentError("max_model_len " + std::to_string(cfg.max_model_len) +
                               " exceeds the model's max_position_embeddings " +
                               std::to_string(mc.max_position_embeddings));
  }
  // Decode graphs (where the model has them on): one bucket at most per running-sequence limit, so
  // the workspace reserved for max_num_seqs logits rows holds every bucket.
  if (model.decode_graphs()) model.set_decode_graphs(true, cfg.max_num_seqs);
  const KvPoolSize pool = size_kv_pool(model, cfg);
  {
    const KvBlockBytes bb = kv_block_bytes_all_layers(mc, pool.format);
    const double bytes =
        double(pool.num_blocks) * bb.block + double(pool.num_tail_blocks) * bb.tail;
    spdlog::info(
        "engine: KV cache {} ({}): {:.2f} GiB, {} blocks of {} tokens{} = {} tokens "
        "({:.0f} bytes/token)",
        kv_format_name(pool.format), pool.source, bytes / 1073741824.0, pool.num_blocks,
        pool.block_size,
        pool.num_tail_blocks > 0 ? fmt::format(" + {} 16-bit tails", pool.num_tail_blocks) : "",
        int64_t(pool.num_blocks) * pool.block_size, double(bb.block) / pool.block_size);
  }
  // Tokens one sequence can hold when it has the whole pool (a quantized format adds its tail).
  const int64_t fits = static_cast<int64_t>(pool.num_blocks) * pool.block_size +
                       (pool.num_tail_blocks > 0 ? pool.block_size - 1 : 0);
  int max_len = cfg.max_model_len;
  if (max_len == 0) {
    max_len = static_cast<int>(std::min<int64_t>(mc.max_position_embeddings, fits));
    if (max_len < mc.max_position_embeddings) {
      spdlog::warn(
          "engine: the KV pool holds {} tokens, so max_model_len is {} (the model allows {})", fits,
          max_len, mc.max_position_embeddings);
    }
  } else if (max_len > fits) {
    throw InvalidArgumentError(
        "max_model_len " + std::to_string(max_len) + " does not fit in the KV pool, which holds " +
        std::to_string(fits) +
        " tokens; give more KV memory or blocks, or a smaller max_model_len");
  }
  if (max_len < 2) throw InvalidArgumentError("the KV pool holds fewer than 2 tokens");
  return std::make_unique<LlmEngine>(model, cfg, pool, max_len);
}

}  // namespace densekv
