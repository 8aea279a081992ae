// The OpenAI API schema on the reply side: completion and chat completion objects, their stream
// chunks, usage, logprobs, the model list. JSON only; the routes decide what to send when.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "engine/request.h"
#include "server/openai.h"

namespace densekv {

class Tokenizer;

// What every object of one reply shares.
struct ReplyMeta {
  Endpoint endpoint = Endpoint::Completions;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;  // prefix-cache hits among the prompt tokens
};

// Logprobs of `tokens` in the endpoint's shape. Completions: {tokens, token_logprobs,
// top_logprobs, text_offset} with offsets counted from text_offset (bytes of text before these
// tokens). Chat: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
nlohmann::ordered_json logprobs_json(Endpoint endpoint, const Tokenizer& tok,
                                     std::span<const TokenLogprobs> tokens, int64_t text_offset);

// Adds chat entries / completion arrays of `more` to `into` (both from logprobs_json).
void append_logprobs(Endpoint endpoint, nlohmann::ordered_json& into,
                     const nlohmann::ordered_json& more);

nlohmann::ordered_json usage_json(const Usage& u);

// "stop", "length", "abort", or null for FinishReason::None.
nlohmann::ordered_json finish_reason_json(FinishReason r);

// The whole reply of a non-streamed request.
nlohmann::ordered_json full_reply(const ReplyMeta& meta, const std::string& text,
                                  FinishReason finish, const nlohmann::ordered_json& logprobs,
                                  const Usage& usage);

// One stream chunk with a text delta (chat: first = true adds role "assistant"). finish is None
// on all but the last chunk. with_usage_null: the request asked for include_usage, so every
// chunk carries "usage": null until the final usage chunk.
nlohmann::ordered_json stream_chunk(const ReplyMeta& meta, const std::string& delta, bool first,
                                    FinishReason finish, const nlohmann::ordered_json& logprobs,
                                    bool with_usage_null);

// The final chunk of stream_options.include_usage: no choices, the usage.
nlohmann::ordered_json usage_chunk(const ReplyMeta& meta, const Usage& usage);

// GET /v1/models
nlohmann::ordered_json model_list(const std::string& model, int64_t created, int max_model_len);

// JSON text with invalid UTF-8 (never expected) replaced instead of thrown.
std::string json_text(const nlohmann::ordered_json& j);

// A random request id with the prefix ("cmpl-", "chatcmpl-").
std::string new_request_id(const char* prefix);

}  // namespace densekv
