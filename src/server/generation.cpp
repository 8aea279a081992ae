#include "server/generation.h"

#include <algorithm>

#include "server/metrics.h"
#include "text/tokenizer.h"

namespace densekv {

namespace {

bool contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The largest n <= limit such that s[0, n) ends on a UTF-8 character boundary.
size_t utf8_boundary(const std::string& s, size_t limit) {
  size_t n = std::min(limit, s.size());
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

Generation::Generation(Engine& engine, const Tokenizer& tok, ServerMetrics* metrics,
                       GenerationRequest req, bool skip_special, bool include_stop_str,
                       std::string echo_text)
    : engine_(engine),
      tok_(tok),
      metrics_(metrics),
      req_(std::move(req)),
      detok_(tok, skip_special),
      include_stop_str_(include_stop_str),
      echo_(std::move(echo_text)),
      start_(std::chrono::steady_clock::now()) {
  for (const std::string& s : req_.params.stop) max_stop_len_ = std::max(max_stop_len_, s.size());
  stream_ = engine_.submit(req_);
}

Generation::~Generation() {
  if (!done_) engine_.cancel(stream_->id());
}

bool Generation::add_text(const std::string& piece) {
  size_t search_from = held_.size() >= max_stop_len_ ? held_.size() - max_stop_len_ + 1 : 0;
  held_ += piece;
  if (max_stop_len_ == 0) return false;
  size_t best = std::string::npos;
  const std::string* match = nullptr;
  for (const std::string& s : req_.params.stop) {
    size_t p = held_.find(s, search_from);
    if (p != std::string::npos && p < best) {
      best = p;
      match = &s;
    }
  }
  if (!match) return false;
  held_.resize(best + (include_stop_str_ ? match->size() : 0));
  stop_reason_ = *match;
  return true;
}

void Generation::release_text(std::string& out, bool all) {
  size_t keep = all || max_stop_len_ == 0 ? 0 : max_stop_len_ - 1;
  size_t n = held_.size() > keep ? utf8_boundary(held_, held_.size() - keep) : 0;
  out.append(held_, 0, n);
  held_.erase(0, n);
}

void Generation::finish_step(GenerationStep& step, const RequestOutput& last, FinishReason finish) {
  if (!stopped_) held_ += detok_.finish();
  release_text(step.text, /*all=*/true);
  step.finish = finish;
  step.stop_reason = stop_reason_;
  step.usage.prompt_tokens =
      last.prompt_tokens > 0 ? last.prompt_tokens : static_cast<int>(req_.prompt_ids.size());
  step.usage.cached_tokens = last.cached_prompt_tokens;
  step.usage.completion_tokens = completion_tokens_;
  done_ = true;
  if (metrics_) {
    double e2e = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    metrics_->on_request_finished(last, finish, e2e);
  }
}

std::optional<GenerationStep> Generation::next(std::chrono::milliseconds timeout) {
  GenerationStep step;
  step.text = std::move(echo_);
  echo_.clear();
  step.text_offset = emitted_ + static_cast<int64_t>(step.text.size());
  std::optional<RequestOutput> out = stream_->next(timeout);
  if (!out) {
    if (step.text.empty()) return std::nullopt;
    emitted_ += static_cast<int64_t>(step.text.size());
    return step;
  }
  if (!out->error.empty()) throw Error("the engine failed the request: " + out->error);
  bool last_chunk = out->finish != FinishReason::None;
  if (stopped_) {
    // Cancelled after a stop string: wait for the engine's last chunk (usage), drop its tokens.
    if (last_chunk) finish_step(step, *out, FinishReason::Stop);
    emitted_ += static_cast<int64_t>(step.text.size());
    return step;
  }
  for (size_t i = 0; i < out->token_ids.size(); ++i) {
    int32_t id = out->token_ids[i];
    ++completion_tokens_;
    if (req_.params.logprobs >= 0 && i < out->logprobs.size())
      step.logprobs.push_back(out->logprobs[i]);
    bool final_token = last_chunk && i + 1 == out->token_ids.size();
    bool stop_token = contains(req_.params.stop_token_ids, id);
    if (final_token && out->finish == FinishReason::Stop &&
        (stop_token || contains(req_.eos_token_ids, id))) {
      if (stop_token) stop_reason_ = id;
      if (include_stop_str_) held_ += detok_.push(id);
      break;
    }
    if (add_text(detok_.push(id))) {
      stopped_ = true;
      engine_.cancel(stream_->id());
      break;
    }
  }
  if (last_chunk) {
    finish_step(step, *out, stopped_ ? FinishReason::Stop : out->finish);
  } else if (!stopped_) {
    release_text(step.text, /*all=*/false);
  } else {
    release_text(step.text, /*all=*/true);
  }
  emitted_ += static_cast<int64_t>(step.text.size());
  return step;
}

}  // namespace densekv
