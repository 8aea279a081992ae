#include "engine/sequence.h"

#include <algorithm>

#include "core/check.h"

namespace densekv {

namespace {

double seconds(Sequence::Clock::time_point a, Sequence::Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

bool contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None:
      return "";
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Length:
      return "length";
    case FinishReason::Abort:
      return "abort";
  }
  return "";
}

const char* seq_state_name(SeqState s) {
  switch (s) {
    case SeqState::Waiting:
      return "waiting";
    case SeqState::Running:
      return "running";
    case SeqState::Preempted:
      return "preempted";
    case SeqState::Finished:
      return "finished";
  }
  return "";
}

Sequence::Sequence(GenerationRequest req, uint64_t arrival, uint64_t rng_seed,
                   Clock::time_point now)
    : rng(rng_seed),
      req_(std::move(req)),
      arrival_(arrival),
      tokens_(req_.prompt_ids),
      prompt_len_(static_cast<int>(req_.prompt_ids.size())),
      arrived_(now) {
  CHECK(prompt_len_ > 0);
}

void Sequence::set_running(int prefix_hit_tokens, Clock::time_point now) {
  CHECK_MSG(state_ == SeqState::Waiting || state_ == SeqState::Preempted,
            "only a waiting or preempted sequence can be admitted");
  state_ = SeqState::Running;
  if (cached_prompt_tokens_ < 0) cached_prompt_tokens_ = std::min(prefix_hit_tokens, prompt_len_);
  if (!was_scheduled_) {
    was_scheduled_ = true;
    scheduled_ = now;
  }
}

void Sequence::set_preempted() {
  CHECK_MSG(state_ == SeqState::Running, "only a running sequence can be preempted");
  state_ = SeqState::Preempted;
  ++num_preemptions_;
}

void Sequence::set_finished(FinishReason reason, Clock::time_point now) {
  CHECK(state_ != SeqState::Finished && reason != FinishReason::None);
  state_ = SeqState::Finished;
  finish_ = reason;
  finished_at_ = now;
}

FinishReason Sequence::append(int32_t token, const TokenLogprobs* logprobs, int max_model_len,
                              Clock::time_point now) {
  CHECK(state_ == SeqState::Running && num_uncomputed() == 0);
  if (num_generated() == 0) first_token_ = now;
  tokens_.push_back(token);
  ++output_counts_[token];
  if (req_.params.logprobs >= 0) {
    CHECK(logprobs != nullptr);
    logprobs_.push_back(*logprobs);
  }
  const SamplingParams& p = req_.params;
  if (!p.ignore_eos && contains(req_.eos_token_ids, token)) return FinishReason::Stop;
  if (contains(p.stop_token_ids, token)) return FinishReason::Stop;
  if (num_generated() >= p.max_tokens) return FinishReason::Length;
  if (max_model_len > 0 && num_tokens() >= max_model_len) return FinishReason::Length;
  return FinishReason::None;
}

bool Sequence::has_unsent_output() const {
  return sent_ < static_cast<size_t>(num_generated()) || (finished() && !final_sent_);
}

RequestOutput Sequence::take_output() {
  RequestOutput out;
  out.id = req_.id;
  auto gen = generated();
  out.token_ids.assign(gen.begin() + static_cast<std::ptrdiff_t>(sent_), gen.end());
  if (req_.params.logprobs >= 0) {
    out.logprobs.assign(logprobs_.begin() + static_cast<std::ptrdiff_t>(sent_), logprobs_.end());
  }
  sent_ = gen.size();
  if (finished()) {
    CHECK(!final_sent_);
    final_sent_ = true;
    out.finish = finish_;
    out.prompt_tokens = prompt_len_;
    out.cached_prompt_tokens = std::max(cached_prompt_tokens_, 0);
    out.completion_tokens = num_generated();
    out.queue_seconds = seconds(arrived_, was_scheduled_ ? scheduled_ : finished_at_);
    if (num_generated() > 0) {
      out.ttft_seconds = seconds(arrived_, first_token_);
      if (num_generated() > 1) {
        out.tpot_seconds = seconds(first_token_, finished_at_) / (num_generated() - 1);
      }
    }
  }
  return out;
}

}  // namespace densekv
