// One generation request seen from an HTTP worker thread: submits it to the engine and reads its
// text through engine/text_stream.h (incremental detokenize, stop strings, no text for the stop
// token), adding the echoed prompt, logprobs, usage and the request's metrics. Destroying an
// unfinished Generation cancels its engine request, so a client that goes away frees its KV
// blocks at the engine's next step.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/text_stream.h"
#include "server/openai_response.h"

namespace densekv {

class ServerMetrics;

struct GenerationStep {
  std::string text;                     // new text (valid UTF-8; may be empty)
  std::vector<TokenLogprobs> logprobs;  // of this step's tokens (when requested)
  int64_t text_offset = 0;              // bytes of text before this step's tokens
  FinishReason finish = FinishReason::None;
  Usage usage;  // filled on the last step
};

class Generation {
 public:
  // Submits the request (InvalidArgumentError from the engine passes through). echo_text is
  // emitted first (completions with echo).
  Generation(Engine& engine, const Tokenizer& tok, ServerMetrics* metrics, GenerationRequest req,
             bool skip_special, std::string echo_text);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Waits up to `timeout` for output; nullopt when none came. After the step whose finish is
  // set, done() is true and next() must not be called again. Throws Error when the engine
  // failed the request.
  std::optional<GenerationStep> next(std::chrono::milliseconds timeout);
  bool done() const { return done_; }

 private:
  Engine& engine_;
  ServerMetrics* metrics_;
  int prompt_tokens_;
  uint64_t id_ = 0;
  std::unique_ptr<TextStream> text_;
  std::string echo_;
  int64_t emitted_ = 0;  // bytes of text emitted so far
  bool done_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace densekv
