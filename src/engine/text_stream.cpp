#include "engine/text_stream.h"

#include <algorithm>

#include "core/check.h"
#include "text/tokenizer.h"

namespace densekv {

StopStringFilter::StopStringFilter(const Tokenizer& tok, const GenerationRequest& req,
                                   bool skip_special)
    : detok_(tok, skip_special), stop_(req.params.stop), stop_ids_(req.params.stop_token_ids) {
  if (!req.params.ignore_eos) {
    stop_ids_.insert(stop_ids_.end(), req.eos_token_ids.begin(), req.eos_token_ids.end());
  }
}

size_t StopStringFilter::find_stop() const {
  size_t best = std::string::npos;
  for (const std::string& s : stop_) best = std::min(best, pending_.find(s));
  return best;
}

void StopStringFilter::flush(std::string& out, bool final) {
  size_t hold = 0;
  if (!final) {
    // The longest end of pending_ that is a proper prefix of a stop string.
    for (const std::string& s : stop_) {
      for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
        if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
      }
    }
  }
  out.append(pending_, 0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
}

TextChunk StopStringFilter::push(const RequestOutput& chunk) {
  CHECK(!stopped_);
  TextChunk res;
  res.output = chunk;
  res.output.token_ids.clear();
  res.output.logprobs.clear();
  const size_t n = chunk.token_ids.size();
  for (size_t i = 0; i < n && !stopped_; ++i) {
    const int32_t t = chunk.token_ids[i];
    res.output.token_ids.push_back(t);
    if (i < chunk.logprobs.size()) res.output.logprobs.push_back(chunk.logprobs[i]);
    ++num_tokens_;
    const bool ends_by_id = chunk.finish == FinishReason::Stop && i + 1 == n &&
                            std::find(stop_ids_.begin(), stop_ids_.end(), t) != stop_ids_.end();
    if (ends_by_id) break;
    pending_ += detok_.push(t);
    if (const size_t pos = find_stop(); pos != std::string::npos) {
      pending_.resize(pos);
      stopped_ = true;
    }
  }
  if (!stopped_ && chunk.finish != FinishReason::None) {
    pending_ += detok_.finish();
    if (const size_t pos = find_stop(); pos != std::string::npos) {
      pending_.resize(pos);
      stopped_ = true;
    }
  }
  if (stopped_) {
    res.text = std::move(pending_);
    pending_.clear();
    res.output.finish = FinishReason::Stop;
    res.output.completion_tokens = num_tokens_;
  } else {
    flush(res.text, chunk.finish != FinishReason::None);
  }
  return res;
}

TextStream::TextStream(Engine& engine, std::shared_ptr<RequestStream> stream, const Tokenizer& tok,
                       const GenerationRequest& req, bool skip_special)
    : engine_(engine), stream_(std::move(stream)), filter_(tok, req, skip_special) {}

std::optional<TextChunk> TextStream::next(std::chrono::milliseconds timeout) {
  if (done_) return std::nullopt;
  std::optional<RequestOutput> chunk = stream_->next(timeout);
  if (!chunk) return std::nullopt;
  TextChunk res = filter_.push(*chunk);
  if (filter_.stopped() && chunk->finish == FinishReason::None) {
    // Stop string: the engine frees the request at its next step and then ends the stream; its
    // last chunk carries the usage and timings (its extra tokens are dropped).
    engine_.cancel(stream_->id());
    for (;;) {
      std::optional<RequestOutput> last = stream_->next(std::chrono::milliseconds(1000));
      if (!last) continue;
      if (last->finish == FinishReason::None) continue;
      res.output.prompt_tokens = last->prompt_tokens;
      res.output.cached_prompt_tokens = last->cached_prompt_tokens;
      res.output.queue_seconds = last->queue_seconds;
      res.output.ttft_seconds = last->ttft_seconds;
      res.output.tpot_seconds = last->tpot_seconds;
      break;
    }
  }
  if (res.output.finish != FinishReason::None) done_ = true;
  return res;
}

}  // namespace densekv
