#include "server/generation.h"

#include "server/metrics.h"

namespace densekv {

Generation::Generation(Engine& engine, const Tokenizer& tok, ServerMetrics* metrics,
                       GenerationRequest req, bool skip_special, std::string echo_text)
    : engine_(engine),
      metrics_(metrics),
      prompt_tokens_(static_cast<int>(req.prompt_ids.size())),
      echo_(std::move(echo_text)),
      start_(std::chrono::steady_clock::now()) {
  std::shared_ptr<RequestStream> stream = engine_.submit(req);
  id_ = stream->id();
  text_ = std::make_unique<TextStream>(engine_, std::move(stream), tok, req, skip_special);
}

Generation::~Generation() {
  if (done_) return;
  engine_.cancel(id_);
  if (metrics_) metrics_->on_request_cancelled();
}

std::optional<GenerationStep> Generation::next(std::chrono::milliseconds timeout) {
  GenerationStep step;
  step.text = std::move(echo_);
  echo_.clear();
  std::optional<TextChunk> chunk = text_->next(timeout);
  if (!chunk) {
    if (step.text.empty()) return std::nullopt;
    emitted_ += static_cast<int64_t>(step.text.size());
    return step;
  }
  const RequestOutput& out = chunk->output;
  if (!out.error.empty()) {
    done_ = true;
    throw Error("the engine failed the request: " + out.error);
  }
  step.text_offset = emitted_ + static_cast<int64_t>(step.text.size());
  step.text += chunk->text;
  step.logprobs = out.logprobs;
  step.finish = out.finish;
  emitted_ += static_cast<int64_t>(step.text.size());
  if (out.finish != FinishReason::None) {
    done_ = true;
    step.usage.prompt_tokens = out.prompt_tokens > 0 ? out.prompt_tokens : prompt_tokens_;
    step.usage.cached_tokens = out.cached_prompt_tokens;
    step.usage.completion_tokens = out.completion_tokens;
    if (metrics_) {
      double e2e = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->on_request_finished(out, out.finish, e2e);
    }
  }
  return step;
}

}  // namespace densekv
