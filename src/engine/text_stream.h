// Client side of one request (runs on the HTTP worker / CLI thread, not the engine thread): reads
// the engine's token chunks, detokenizes them incrementally (text/detokenizer.h) and applies the
// stop strings:
//   - text that might still become the start of a stop string is held back, so a stop string is
//     cut exactly even when it spans several tokens and never reaches the client in part;
//   - on a hit the text ends right before the stop string, the tokens end with the one that
//     completed it, the engine is told to cancel the request (it frees the blocks at its next
//     step) and the finish reason is "stop";
//   - a final eos / stop-token id is counted in token_ids but adds no text (as vLLM).
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/request.h"
#include "text/detokenizer.h"

namespace densekv {

class Tokenizer;

struct TextChunk {
  std::string text;      // new text since the previous chunk
  RequestOutput output;  // new token ids, logprobs; finish and usage on the last chunk
};

// The detokenize + stop-string logic alone, fed with the engine's chunks (testable without an
// engine).
class StopStringFilter {
 public:
  StopStringFilter(const Tokenizer& tok, const GenerationRequest& req, bool skip_special = true);
  // Processes one engine chunk. After a stop-string hit (stopped() true) the result has finish
  // Stop; later chunks must not be fed.
  TextChunk push(const RequestOutput& chunk);
  bool stopped() const { return stopped_; }
  int num_tokens() const { return num_tokens_; }  // tokens handed out so far

 private:
  // Moves the text that can no longer be part of a stop string from pending_ to out.
  void flush(std::string& out, bool final);
  // Position of the earliest stop string in pending_, or npos.
  size_t find_stop() const;

  Detokenizer detok_;
  std::vector<std::string> stop_;
  std::vector<int32_t> stop_ids_;  // eos (unless ignore_eos) + stop_token_ids: no text
  std::string pending_;            // decoded, not yet handed out
  bool stopped_ = false;
  int num_tokens_ = 0;
};

// A request's text as the client reads it, over the engine's RequestStream.
class TextStream {
 public:
  TextStream(Engine& engine, std::shared_ptr<RequestStream> stream, const Tokenizer& tok,
             const GenerationRequest& req, bool skip_special = true);
  uint64_t id() const { return stream_->id(); }
  // The next chunk (nullopt on timeout or after the last chunk). On a stop-string hit this
  // cancels the request and waits for the engine's final chunk (one step) for the usage.
  std::optional<TextChunk> next(std::chrono::milliseconds timeout);
  bool done() const { return done_; }

 private:
  Engine& engine_;
  std::shared_ptr<RequestStream> stream_;
  StopStringFilter filter_;
  bool done_ = false;
};

}  // namespace densekv
