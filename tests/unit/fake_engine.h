// A stand-in Engine for server tests: a step thread gives every running request one token per
// step from a fixed script (offset by the seed), ends it at max_tokens (length) or an eos id
// (stop), honours cancel and shutdown, and counts KV blocks (16 tokens each) of live requests.
#pragma once
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "core/errors.h"
#include "engine/engine.h"

namespace densekv::testing {

class FakeStream : public RequestStream {
 public:
  explicit FakeStream(uint64_t id) : id_(id) {}
  uint64_t id() const override { return id_; }
  std::optional<RequestOutput> next(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !q_.empty(); })) return std::nullopt;
    RequestOutput o = std::move(q_.front());
    q_.pop_front();
    return o;
  }
  void push(RequestOutput o) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(std::move(o));
    }
    cv_.notify_all();
  }

 private:
  uint64_t id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> q_;
};

class FakeEngine : public Engine {
 public:
  FakeEngine(std::vector<int32_t> script, int max_model_len,
             std::chrono::microseconds step = std::chrono::microseconds(500))
      : script_(std::move(script)), max_model_len_(max_model_len), step_(step) {
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeEngine() override { shutdown(false); }

  std::shared_ptr<RequestStream> submit(GenerationRequest req) override {
    if (req.prompt_ids.empty()) throw InvalidArgumentError("empty prompt");
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw Error("engine is shut down");
    if (req.id == 0) req.id = ++next_id_;
    auto s = std::make_shared<FakeStream>(req.id);
    Seq seq{std::move(req), s, 0};
    seq.offset = seq.req.params.seed.value_or(0) % script_.size();
    seqs_.emplace(seq.req.id, std::move(seq));
    return s;
  }
  void cancel(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_.push_back(id);
  }
  EngineMetrics metrics() const override {
    std::lock_guard<std::mutex> lock(mu_);
    EngineMetrics m;
    m.running = static_cast<int>(seqs_.size());
    m.kv_blocks_total = 100000;
    for (const auto& [id, s] : seqs_)
      m.kv_blocks_used += static_cast<int>((s.req.prompt_ids.size() + s.generated + 15) / 16);
    m.requests_finished = finished_;
    m.generation_tokens = generated_;
    return m;
  }
  int max_model_len() const override { return max_model_len_; }
  void shutdown(bool drain) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && !thread_.joinable()) return;
      stopping_ = true;
      abort_all_ = !drain;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Seq {
    GenerationRequest req;
    std::shared_ptr<FakeStream> stream;
    int generated = 0;
    size_t offset = 0;
  };

  void loop() {
    for (;;) {
      std::this_thread::sleep_for(step_);
      std::lock_guard<std::mutex> lock(mu_);
      for (uint64_t id : cancelled_) {
        auto it = seqs_.find(id);
        if (it != seqs_.end()) finish(it, FinishReason::Abort, {});
      }
      cancelled_.clear();
      if (abort_all_)
        while (!seqs_.empty()) finish(seqs_.begin(), FinishReason::Abort, {});
      if (stopping_ && seqs_.empty()) return;
      for (auto it = seqs_.begin(); it != seqs_.end();) {
        Seq& s = it->second;
        int32_t tok = script_[(s.offset + s.generated) % script_.size()];
        ++s.generated;
        ++generated_;
        auto next = std::next(it);
        const auto& eos = s.req.eos_token_ids;
        bool is_eos = !s.req.params.ignore_eos && std::count(eos.begin(), eos.end(), tok);
        bool stop_id =
            std::count(s.req.params.stop_token_ids.begin(), s.req.params.stop_token_ids.end(), tok);
        if (is_eos || stop_id) {
          finish(it, FinishReason::Stop, {tok});
        } else if (s.generated >= s.req.params.max_tokens) {
          finish(it, FinishReason::Length, {tok});
        } else {
          RequestOutput o;
          o.id = s.req.id;
          o.token_ids = {tok};
          add_logprobs(s, o);
          s.stream->push(std::move(o));
        }
        it = next;
      }
    }
  }

  void add_logprobs(const Seq& s, RequestOutput& o) {
    if (s.req.params.logprobs < 0) return;
    for (int32_t t : o.token_ids) {
      TokenLogprobs lp{t, -0.25f, {}};
      for (int k = 0; k < s.req.params.logprobs; ++k) lp.top.push_back({t + k, -0.25f * (k + 1)});
      o.logprobs.push_back(lp);
    }
  }

  void finish(std::map<uint64_t, Seq>::iterator it, FinishReason r, std::vector<int32_t> toks) {
    Seq& s = it->second;
    RequestOutput o;
    o.id = s.req.id;
    o.token_ids = std::move(toks);
    add_logprobs(s, o);
    o.finish = r;
    o.prompt_tokens = static_cast<int>(s.req.prompt_ids.size());
    o.completion_tokens = s.generated;
    o.ttft_seconds = 0.001;
    o.tpot_seconds = 0.0005;
    s.stream->push(std::move(o));
    ++finished_;
    seqs_.erase(it);
  }

  std::vector<int32_t> script_;
  int max_model_len_;
  std::chrono::microseconds step_;
  mutable std::mutex mu_;
  std::map<uint64_t, Seq> seqs_;
  std::vector<uint64_t> cancelled_;
  uint64_t next_id_ = 0;
  int64_t finished_ = 0, generated_ = 0;
  bool stopping_ = false, abort_all_ = false;
  std::thread thread_;
};

}  // namespace densekv::testing
