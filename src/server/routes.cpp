#include "server/routes.h"

#include <httplib.h>

#include <chrono>

#include "core/log.h"
#include "server/generation.h"
#include "server/openai.h"
#include "server/openai_response.h"
#include "server/sse.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace densekv {

namespace {

using ojson = nlohmann::ordered_json;
using std::chrono::milliseconds;

constexpr milliseconds kPoll{100};        // wait for engine output in slices of this
constexpr milliseconds kKeepAlive{2000};  // SSE comment after this long without output

void send_json(httplib::Response& res, int status, const ojson& j) {
  res.status = status;
  res.set_content(json_text(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_body(e));
}

// The served model, or 503 while loading or draining.
const ServedModel& ready_model(const ServerState& st) {
  switch (st.phase.load()) {
    case ServerPhase::Ready:
      return st.model;
    case ServerPhase::Loading:
      throw ApiError(503, "The model is still loading; retry shortly.", "server_error", "",
                     "model_loading");
    case ServerPhase::Draining:
      break;
  }
  throw ApiError(503, "The server is shutting down and takes no new requests.", "server_error", "",
                 "server_draining");
}

void check_model(const ServedModel& m, const std::string& name) {
  if (!name.empty() && name != m.name) {
    throw ApiError(404,
                   "The model `" + name + "` does not exist. This server serves `" + m.name + "`.",
                   "invalid_request_error", "model", "model_not_found");
  }
}

// Renders messages through the chat template (InvalidArgumentError from the template -> 400).
std::string render_chat(const ServedModel& m, const ojson& messages, bool add_generation_prompt,
                        bool continue_final_message, const ojson& tools, const ojson& kwargs) {
  if (!m.chat_template)
    throw bad_request("This model has no chat template; use /v1/completions.", "messages");
  std::string text;
  try {
    text = m.chat_template->render(messages, add_generation_prompt, tools, kwargs);
  } catch (const InvalidArgumentError& e) {
    throw bad_request(std::string("chat template: ") + e.what(), "messages");
  }
  if (continue_final_message) {
    // Cut what the template adds after the final assistant message (as vLLM).
    const ojson& content = messages.back()["content"];
    std::string last = content.is_string() ? content.get<std::string>() : "";
    size_t p = last.empty() ? std::string::npos : text.rfind(last);
    if (p == std::string::npos)
      throw bad_request("continue_final_message: the final message is not in the rendered prompt",
                        "continue_final_message");
    text.resize(p + last.size());
  }
  return text;
}

std::vector<int32_t> encode(const Tokenizer& tok, const std::string& text, bool add_special,
                            const char* param) {
  try {
    return tok.encode(text, /*parse_special=*/true, add_special);
  } catch (const InvalidArgumentError& e) {
    throw bad_request(e.what(), param);
  }
}

// Prompt ids of a request, and the prompt text for echo.
struct Prompt {
  std::vector<int32_t> ids;
  std::string text;
};

Prompt build_prompt(const ServedModel& m, const ApiRequest& r) {
  Prompt p;
  if (r.endpoint == Endpoint::ChatCompletions) {
    p.text = render_chat(m, r.messages, r.add_generation_prompt, r.continue_final_message, r.tools,
                         r.chat_template_kwargs);
    p.ids = encode(*m.tokenizer, p.text, /*add_special=*/false, "messages");
  } else if (r.prompt_is_ids) {
    p.ids = r.prompt_ids;
    if (r.echo) p.text = m.tokenizer->decode(p.ids);
  } else {
    p.text = r.prompt_text;
    p.ids = encode(*m.tokenizer, p.text, /*add_special=*/true, "prompt");
  }
  return p;
}

// Counts a generation request in flight for as long as it lives; 503 beyond the limit.
class InFlight {
 public:
  explicit InFlight(ServerState& st) : st_(st) {
    int n = st_.in_flight.fetch_add(1);
    if (n >= st_.max_pending_requests) {
      st_.in_flight.fetch_sub(1);
      throw ApiError(
          503,
          "The server is overloaded (" + std::to_string(n) + " requests in flight); retry later.",
          "server_error", "", "overloaded");
    }
  }
  ~InFlight() { st_.in_flight.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  ServerState& st_;
};

// One streamed reply: owned by the content provider, so it lives until the connection is done
// with it; destroying it early (client gone) cancels the engine request.
struct StreamJob {
  StreamJob(ServerState& st, const ServedModel& m, const ApiRequest& r, GenerationRequest g,
            std::string echo)
      : in_flight(st),
        gen(*m.engine, *m.tokenizer, &st.metrics, std::move(g), r.skip_special_tokens,
            std::move(echo)),
        tok(*m.tokenizer),
        include_usage(r.include_usage) {}

  InFlight in_flight;
  Generation gen;
  const Tokenizer& tok;
  ReplyMeta meta;
  bool include_usage;
  bool started = false;
  milliseconds idle{0};

  bool write(httplib::DataSink& sink, const std::string& s) {
    return sink.write(s.data(), s.size());
  }

  // One call of the content provider: the next piece of the stream. false: stop (client gone).
  bool pump(httplib::DataSink& sink) {
    bool chat = meta.endpoint == Endpoint::ChatCompletions;
    if (!started) {
      started = true;
      if (chat) {
        ojson first = stream_chunk(meta, "", true, FinishReason::None, nullptr, include_usage);
        return write(sink, sse_event(json_text(first)));
      }
    }
    std::optional<GenerationStep> step;
    try {
      step = gen.next(kPoll);
    } catch (const Error& e) {
      ApiError err(500, e.what(), "server_error");
      write(sink, sse_event(json_text(error_body(err))));
      return false;
    }
    if (!step) {
      idle += kPoll;
      if (idle < kKeepAlive) return true;
      idle = milliseconds{0};
      return write(sink, ": keep-alive\n\n");  // an SSE comment; fails once the client is gone
    }
    idle = milliseconds{0};
    std::string out;
    ojson lp = nullptr;
    if (!step->logprobs.empty())
      lp = logprobs_json(meta.endpoint, tok, step->logprobs, step->text_offset);
    bool finished = step->finish != FinishReason::None;
    if (!step->text.empty() || !lp.is_null() || finished) {
      out += sse_event(
          json_text(stream_chunk(meta, step->text, false, step->finish, lp, include_usage)));
    }
    if (finished) {
      if (include_usage) out += sse_event(json_text(usage_chunk(meta, step->usage)));
      out += sse_done();
    }
    if (!out.empty() && !write(sink, out)) return false;
    if (finished) sink.done();
    return true;
  }
};

void run_generation(ServerState& st, Endpoint ep, const httplib::Request& req,
                    httplib::Response& res) {
  const ServedModel& m = ready_model(st);
  ApiRequest r = parse_api_request(ep, req.body);
  check_model(m, r.model);
  Prompt p = build_prompt(m, r);
  check_request_fits(r, static_cast<int>(p.ids.size()), m.max_model_len, m.tokenizer->vocab_size());
  GenerationRequest g;
  g.prompt_ids = std::move(p.ids);
  g.params = r.params;
  g.eos_token_ids = m.eos_token_ids;
  std::string echo = r.echo ? p.text : "";

  ReplyMeta meta;
  meta.endpoint = ep;
  meta.id = new_request_id(ep == Endpoint::ChatCompletions ? "chatcmpl-" : "cmpl-");
  meta.created = std::time(nullptr);
  meta.model = m.name;

  if (r.stream) {
    auto job = std::make_shared<StreamJob>(st, m, r, std::move(g), std::move(echo));
    job->meta = meta;
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Request-Id", meta.id);
    res.set_chunked_content_provider(
        "text/event-stream", [job](size_t, httplib::DataSink& sink) { return job->pump(sink); });
    return;
  }

  InFlight in_flight(st);
  Generation gen(*m.engine, *m.tokenizer, &st.metrics, std::move(g), r.skip_special_tokens,
                 std::move(echo));
  std::string text;
  ojson lp = nullptr;
  GenerationStep last;
  while (!gen.done()) {
    std::optional<GenerationStep> step = gen.next(kPoll);
    if (!step) continue;
    text += step->text;
    if (!step->logprobs.empty())
      append_logprobs(ep, lp, logprobs_json(ep, *m.tokenizer, step->logprobs, step->text_offset));
    if (step->finish != FinishReason::None) last = std::move(*step);
  }
  if (r.params.logprobs >= 0 && lp.is_null()) lp = logprobs_json(ep, *m.tokenizer, {}, 0);
  res.set_header("X-Request-Id", meta.id);
  send_json(res, 200, full_reply(meta, text, last.finish, lp, last.usage));
}

// Runs a handler body, turning typed errors into OpenAI error replies.
template <class F>
void guarded(httplib::Response& res, F&& body) {
  try {
    body();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const InvalidArgumentError& e) {
    send_error(res, bad_request(e.what()));
  } catch (const Error& e) {
    send_error(res, ApiError(500, e.what(), "server_error"));
  }
}

void tokenize(ServerState& st, const httplib::Request& req, httplib::Response& res) {
  const ServedModel& m = ready_model(st);
  TokenizeRequest r = parse_tokenize_request(req.body);
  check_model(m, r.model);
  std::vector<int32_t> ids;
  if (r.chat) {
    std::string text =
        render_chat(m, r.messages, r.add_generation_prompt, false, r.tools, r.chat_template_kwargs);
    ids = encode(*m.tokenizer, text, r.add_special_tokens, "messages");
  } else {
    ids = encode(*m.tokenizer, r.prompt, r.add_special_tokens, "prompt");
  }
  ojson j{{"count", ids.size()}, {"max_model_len", m.max_model_len}, {"tokens", ids}};
  ojson strs = nullptr;
  if (r.return_token_strs) {
    strs = ojson::array();
    for (int32_t id : ids) strs.push_back(m.tokenizer->id_to_token(id).value_or(""));
  }
  j["token_strs"] = strs;
  send_json(res, 200, j);
}

void detokenize(ServerState& st, const httplib::Request& req, httplib::Response& res) {
  const ServedModel& m = ready_model(st);
  DetokenizeRequest r = parse_detokenize_request(req.body);
  check_model(m, r.model);
  for (int32_t id : r.tokens)
    if (id >= m.tokenizer->vocab_size())
      throw bad_request("token id " + std::to_string(id) + " is not below the vocabulary size " +
                            std::to_string(m.tokenizer->vocab_size()),
                        "tokens");
  send_json(res, 200, ojson{{"prompt", m.tokenizer->decode(r.tokens)}});
}

}  // namespace

void install_routes(httplib::Server& svr, ServerState& st) {
  svr.Get("/health", [&st](const httplib::Request&, httplib::Response& res) {
    ServerPhase ph = st.phase.load();
    const char* status = ph == ServerPhase::Ready     ? "ready"
                         : ph == ServerPhase::Loading ? "loading"
                                                      : "draining";
    send_json(res, ph == ServerPhase::Ready ? 200 : 503, ojson{{"status", status}});
  });
  svr.Get("/v1/models", [&st](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      const ServedModel& m = ready_model(st);
      send_json(res, 200, model_list(m.name, m.created, m.max_model_len));
    });
  });
  svr.Post("/v1/completions", [&st](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { run_generation(st, Endpoint::Completions, req, res); });
  });
  svr.Post("/v1/chat/completions", [&st](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { run_generation(st, Endpoint::ChatCompletions, req, res); });
  });
  svr.Post("/tokenize", [&st](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { tokenize(st, req, res); });
  });
  svr.Post("/detokenize", [&st](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { detokenize(st, req, res); });
  });
  svr.Get("/metrics", [&st](const httplib::Request&, httplib::Response& res) {
    EngineMetrics em;
    if (st.phase.load() != ServerPhase::Loading) em = st.model.engine->metrics();
    res.status = 200;
    res.set_content(st.metrics.render(em), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace densekv
