#include "server/openai_response.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <random>

#include "text/tokenizer.h"

namespace densekv {

using ojson = nlohmann::ordered_json;

namespace {

// JSON has no -inf: a logprob of a token with probability 0 is reported as -9999 (as vLLM).
double finite_logprob(float x) {
  return std::isfinite(x) ? x : -9999.0;
}

std::string token_text(const Tokenizer& tok, int32_t id) {
  std::string s;
  tok.append_token_bytes(id, /*skip_special=*/false, s);
  return s;
}

ojson byte_list(const std::string& s) {
  ojson b = ojson::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

// Token text for JSON: the bytes of a token may be a part of a UTF-8 character; json_text
// replaces such bytes, and `bytes` carries them exactly.
ojson chat_entry(const Tokenizer& tok, int32_t id, float logprob) {
  std::string s = token_text(tok, id);
  return ojson{{"token", s}, {"logprob", finite_logprob(logprob)}, {"bytes", byte_list(s)}};
}

}  // namespace

ojson logprobs_json(Endpoint endpoint, const Tokenizer& tok, std::span<const TokenLogprobs> tokens,
                    int64_t text_offset) {
  if (endpoint == Endpoint::ChatCompletions) {
    ojson content = ojson::array();
    for (const TokenLogprobs& t : tokens) {
      ojson e = chat_entry(tok, t.token_id, t.logprob);
      ojson top = ojson::array();
      for (const auto& [id, lp] : t.top) top.push_back(chat_entry(tok, id, lp));
      e["top_logprobs"] = top;
      content.push_back(e);
    }
    return ojson{{"content", content}};
  }
  ojson toks = ojson::array(), lps = ojson::array(), tops = ojson::array(), offs = ojson::array();
  for (const TokenLogprobs& t : tokens) {
    std::string s = token_text(tok, t.token_id);
    toks.push_back(s);
    lps.push_back(finite_logprob(t.logprob));
    ojson top = ojson::object();
    for (const auto& [id, lp] : t.top) top[token_text(tok, id)] = finite_logprob(lp);
    tops.push_back(top);
    offs.push_back(text_offset);
    text_offset += static_cast<int64_t>(s.size());
  }
  return ojson{
      {"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

void append_logprobs(Endpoint endpoint, ojson& into, const ojson& more) {
  if (into.is_null()) {
    into = more;
    return;
  }
  for (auto it = more.begin(); it != more.end(); ++it) {
    for (const ojson& x : it.value()) into[it.key()].push_back(x);
  }
  (void)endpoint;
}

ojson usage_json(const Usage& u) {
  ojson j{{"prompt_tokens", u.prompt_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"completion_tokens", u.completion_tokens}};
  j["prompt_tokens_details"] = ojson{{"cached_tokens", u.cached_tokens}};
  return j;
}

ojson finish_reason_json(FinishReason r) {
  switch (r) {
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Length:
      return "length";
    case FinishReason::Abort:
      return "abort";
    case FinishReason::None:
      break;
  }
  return nullptr;
}

ojson full_reply(const ReplyMeta& meta, const std::string& text, FinishReason finish,
                 const ojson& logprobs, const Usage& usage) {
  bool chat = meta.endpoint == Endpoint::ChatCompletions;
  ojson choice{{"index", 0}};
  if (chat) {
    choice["message"] = ojson{{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason_json(finish);
  return ojson{{"id", meta.id},
               {"object", chat ? "chat.completion" : "text_completion"},
               {"created", meta.created},
               {"model", meta.model},
               {"choices", ojson::array({choice})},
               {"usage", usage_json(usage)}};
}

ojson stream_chunk(const ReplyMeta& meta, const std::string& delta, bool first, FinishReason finish,
                   const ojson& logprobs, bool with_usage_null) {
  bool chat = meta.endpoint == Endpoint::ChatCompletions;
  ojson choice{{"index", 0}};
  if (chat) {
    ojson d = ojson::object();
    if (first) d["role"] = "assistant";
    if (first || !delta.empty()) d["content"] = delta;
    choice["delta"] = d;
  } else {
    choice["text"] = delta;
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason_json(finish);
  ojson j{{"id", meta.id},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices", ojson::array({choice})}};
  if (with_usage_null) j["usage"] = nullptr;
  return j;
}

ojson usage_chunk(const ReplyMeta& meta, const Usage& usage) {
  bool chat = meta.endpoint == Endpoint::ChatCompletions;
  return ojson{{"id", meta.id},
               {"object", chat ? "chat.completion.chunk" : "text_completion"},
               {"created", meta.created},
               {"model", meta.model},
               {"choices", ojson::array()},
               {"usage", usage_json(usage)}};
}

ojson model_list(const std::string& model, int64_t created, int max_model_len) {
  ojson m{{"id", model},
          {"object", "model"},
          {"created", created},
          {"owned_by", "densekv"},
          {"root", model},
          {"parent", nullptr},
          {"max_model_len", max_model_len}};
  return ojson{{"object", "list"}, {"data", ojson::array({m})}};
}

std::string json_text(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

std::string new_request_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   std::chrono::steady_clock::now().time_since_epoch().count());
  static const char* hex = "0123456789abcdef";
  std::string id = prefix;
  uint64_t a = rng() ^ counter.fetch_add(1);
  uint64_t b = rng();
  for (int i = 0; i < 16; ++i) id += hex[(a >> (i * 4)) & 15];
  for (int i = 0; i < 16; ++i) id += hex[(b >> (i * 4)) & 15];
  return id;
}

}  // namespace densekv
