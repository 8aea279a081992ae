// One generation request seen from an HTTP worker thread: submits it to the engine, reads its
// output chunks and turns them into text deltas (incremental detokenize, stop strings, the stop
// token's text dropped), with logprobs and, on the last step, usage. Destroying an unfinished
// Generation cancels its engine request, so a client that goes away frees its KV blocks.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/openai_response.h"
#include "text/detokenizer.h"

namespace densekv {

class ServerMetrics;

struct GenerationStep {
  std::string text;                     // new text (valid UTF-8; may be empty)
  std::vector<TokenLogprobs> logprobs;  // of the tokens consumed in this step (when requested)
  int64_t text_offset = 0;              // bytes of text before this step's tokens
  FinishReason finish = FinishReason::None;
  nlohmann::ordered_json stop_reason;  // the stop string or stop token id; null otherwise
  Usage usage;                         // filled on the last step
};

class Generation {
 public:
  // Submits the request (InvalidArgumentError from the engine passes through). echo_text is
  // emitted first (completions with echo).
  Generation(Engine& engine, const Tokenizer& tok, ServerMetrics* metrics, GenerationRequest req,
             bool skip_special, bool include_stop_str, std::string echo_text);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Waits up to `timeout` for output; nullopt when none came. After the step whose finish is
  // set, done() is true and next() must not be called again.
  std::optional<GenerationStep> next(std::chrono::milliseconds timeout);
  bool done() const { return done_; }
  uint64_t id() const { return stream_->id(); }

 private:
  // Feeds one token's text; returns true when a stop string matched (text cut there).
  bool add_text(const std::string& piece);
  // Moves the text that can no longer be part of a stop string into `out`.
  void release_text(std::string& out, bool all);
  void finish_step(GenerationStep& step, const RequestOutput& last, FinishReason finish);

  Engine& engine_;
  const Tokenizer& tok_;
  ServerMetrics* metrics_;
  GenerationRequest req_;
  std::shared_ptr<RequestStream> stream_;
  Detokenizer detok_;
  bool include_stop_str_;
  std::string echo_;
  size_t max_stop_len_ = 0;
  std::string held_;     // decoded text not yet emitted (may start a stop string)
  int64_t emitted_ = 0;  // bytes of text emitted so far
  int completion_tokens_ = 0;
  bool stopped_ = false;  // a stop string matched: the engine request was cancelled
  nlohmann::ordered_json stop_reason_;
  bool done_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace densekv
