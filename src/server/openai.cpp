#include "server/openai.h"

#include <cmath>
#include <limits>
#include <set>

namespace densekv {

using ojson = nlohmann::ordered_json;

ApiError::ApiError(int status_, const std::string& message, std::string type_, std::string param_,
                   std::string code_)
    : Error(message),
      status(status_),
      type(std::move(type_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

ApiError bad_request(const std::string& message, const std::string& param) {
  return ApiError(400, message, "invalid_request_error", param);
}

ojson error_body(const ApiError& e) {
  ojson err = ojson::object();
  err["message"] = e.what();
  err["type"] = e.type;
  err["param"] = e.param.empty() ? ojson() : ojson(e.param);
  err["code"] = e.code.empty() ? ojson() : ojson(e.code);
  return ojson{{"error", err}};
}

namespace {

constexpr int kMaxLogprobs = 20;
constexpr size_t kMaxStops = 64;

const char* json_type_name(const ojson& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

ApiError wrong_type(const std::string& name, const char* expected, const ojson& v) {
  return bad_request("'" + name + "' must be " + expected + ", got " + json_type_name(v), name);
}

// Reads the fields of one request object; a null field counts as absent.
class Fields {
 public:
  explicit Fields(const ojson& body) : body_(body) {}

  const ojson* get(const char* name) {
    seen_.insert(name);
    auto it = body_.find(name);
    if (it == body_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  bool boolean(const char* name, bool fallback) {
    const ojson* v = get(name);
    if (!v) return fallback;
    if (!v->is_boolean()) throw wrong_type(name, "a boolean", *v);
    return v->get<bool>();
  }

  // A number in [lo, hi]; lo_open / hi_open exclude the bound.
  float number(const char* name, float fallback, double lo, double hi, bool lo_open = false) {
    const ojson* v = get(name);
    if (!v) return fallback;
    if (!v->is_number()) throw wrong_type(name, "a number", *v);
    double x = v->get<double>();
    bool below = lo_open ? !(x > lo) : !(x >= lo);
    if (below || !(x <= hi)) {
      throw bad_request("'" + std::string(name) + "' must be in " + (lo_open ? "(" : "[") +
                            fmt_num(lo) + ", " + fmt_num(hi) + "], got " + v->dump(),
                        name);
    }
    return static_cast<float>(x);
  }

  // An integer (a float with an integral value counts) in [lo, hi].
  int64_t integer(const char* name, int64_t fallback, int64_t lo, int64_t hi) {
    const ojson* v = get(name);
    if (!v) return fallback;
    return to_integer(name, *v, lo, hi);
  }

  void refuse_unknown(const std::set<std::string>& ignored) const {
    for (auto it = body_.begin(); it != body_.end(); ++it) {
      if (!seen_.count(it.key()) && !ignored.count(it.key())) {
        throw bad_request("Unrecognized request argument supplied: " + it.key(), it.key());
      }
    }
  }

  static int64_t to_integer(const std::string& name, const ojson& v, int64_t lo, int64_t hi) {
    int64_t x = 0;
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      x = u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
    } else if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else if (v.is_number_float()) {
      double d = v.get<double>();
      if (!std::isfinite(d) || d != std::floor(d)) throw wrong_type(name, "an integer", v);
      if (d >= 9.2e18)
        x = INT64_MAX;
      else if (d <= -9.2e18)
        x = INT64_MIN;
      else
        x = static_cast<int64_t>(d);
    } else {
      throw wrong_type(name, "an integer", v);
    }
    if (x < lo || x > hi) {
      throw bad_request("'" + name + "' must be in [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "], got " + v.dump(),
                        name);
    }
    return x;
  }

 private:
  static std::string fmt_num(double x) {
    std::string s = std::to_string(x);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  }

  const ojson& body_;
  std::set<std::string> seen_;
};

// OpenAI fields accepted and ignored (they do not change what a single local model generates).
const std::set<std::string> kIgnored = {
    "user",       "metadata", "store",      "service_tier",     "parallel_tool_calls",
    "modalities", "audio",    "prediction", "reasoning_effort", "web_search_options"};

std::vector<int32_t> token_id_list(const std::string& name, const ojson& v) {
  if (!v.is_array()) throw wrong_type(name, "an array of token ids", v);
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (const ojson& x : v)
    ids.push_back(
        static_cast<int32_t>(Fields::to_integer(name, x, 0, std::numeric_limits<int32_t>::max())));
  return ids;
}

void parse_stop(Fields& f, SamplingParams& p) {
  if (const ojson* v = f.get("stop")) {
    if (v->is_string()) {
      p.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > kMaxStops)
        throw bad_request("'stop' holds at most " + std::to_string(kMaxStops) + " strings", "stop");
      for (const ojson& s : *v) {
        if (!s.is_string()) throw wrong_type("stop", "a string or an array of strings", s);
        p.stop.push_back(s.get<std::string>());
      }
    } else {
      throw wrong_type("stop", "a string or an array of strings", *v);
    }
    for (const std::string& s : p.stop)
      if (s.empty()) throw bad_request("'stop' strings must not be empty", "stop");
  }
  if (const ojson* v = f.get("stop_token_ids"))
    p.stop_token_ids = token_id_list("stop_token_ids", *v);
}

// The fields both endpoints share.
void parse_common(Fields& f, ApiRequest& r) {
  if (const ojson* v = f.get("model")) {
    if (!v->is_string()) throw wrong_type("model", "a string", *v);
    r.model = v->get<std::string>();
  }
  SamplingParams& p = r.params;
  r.stream = f.boolean("stream", false);
  if (const ojson* v = f.get("stream_options")) {
    if (!v->is_object()) throw wrong_type("stream_options", "an object", *v);
    if (!r.stream)
      throw bad_request("'stream_options' can only be given when 'stream' is true",
                        "stream_options");
    Fields so(*v);
    r.include_usage = so.boolean("include_usage", false);
    so.boolean("continuous_usage_stats", false);
    so.refuse_unknown({});
  }
  p.temperature = f.number("temperature", 1.0f, 0.0, 2.0);
  p.top_p = f.number("top_p", 1.0f, 0.0, 1.0, /*lo_open=*/true);
  p.top_k = static_cast<int>(f.integer("top_k", -1, -1, std::numeric_limits<int32_t>::max()));
  p.min_p = f.number("min_p", 0.0f, 0.0, 1.0);
  p.presence_penalty = f.number("presence_penalty", 0.0f, -2.0, 2.0);
  p.frequency_penalty = f.number("frequency_penalty", 0.0f, -2.0, 2.0);
  p.repetition_penalty = f.number("repetition_penalty", 1.0f, 0.0, 2.0, /*lo_open=*/true);
  if (const ojson* v = f.get("seed")) {
    int64_t s = Fields::to_integer("seed", *v, INT64_MIN, INT64_MAX);
    p.seed = static_cast<uint64_t>(s);
  }
  parse_stop(f, p);
  p.ignore_eos = f.boolean("ignore_eos", false);
  r.skip_special_tokens = f.boolean("skip_special_tokens", true);
  if (f.integer("n", 1, 1, INT32_MAX) != 1) throw bad_request("only n = 1 is supported", "n");
  if (const ojson* v = f.get("logit_bias")) {
    if (!v->is_object()) throw wrong_type("logit_bias", "an object", *v);
    if (!v->empty()) throw bad_request("'logit_bias' is not supported", "logit_bias");
  }
}

// max_tokens (and chat's max_completion_tokens, which wins): >= 1 when given.
void parse_max_tokens(Fields& f, ApiRequest& r, bool chat) {
  const int64_t hi = std::numeric_limits<int64_t>::max();
  int64_t n = f.integer("max_tokens", 0, 1, hi);
  bool given = f.get("max_tokens") != nullptr;
  if (chat && f.get("max_completion_tokens")) {
    n = f.integer("max_completion_tokens", 0, 1, hi);
    given = true;
  }
  r.max_tokens_given = given;
  // Values past int range cannot fit any context; check_request_fits reports them.
  r.params.max_tokens = given ? static_cast<int>(std::min<int64_t>(n, INT32_MAX)) : 0;
}

void parse_prompt(Fields& f, ApiRequest& r) {
  const ojson* v = f.get("prompt");
  if (!v) throw bad_request("'prompt' is required", "prompt");
  const char* expected = "a string, an array of token ids, or an array holding one of those";
  const ojson* one = v;
  if (v->is_array() && !v->empty() && (v->front().is_string() || v->front().is_array())) {
    if (v->size() != 1)
      throw bad_request(
          "only one prompt per request is supported (got " + std::to_string(v->size()) + ")",
          "prompt");
    one = &v->front();
  }
  if (one->is_string()) {
    r.prompt_text = one->get<std::string>();
  } else if (one->is_array()) {
    r.prompt_ids = token_id_list("prompt", *one);
    r.prompt_is_ids = true;
  } else {
    throw wrong_type("prompt", expected, *one);
  }
}

ApiRequest parse_completions(const ojson& body) {
  ApiRequest r;
  r.endpoint = Endpoint::Completions;
  Fields f(body);
  parse_prompt(f, r);
  parse_common(f, r);
  parse_max_tokens(f, r, /*chat=*/false);
  r.echo = f.boolean("echo", false);
  r.params.logprobs = static_cast<int>(f.integer("logprobs", -1, 0, kMaxLogprobs));
  if (f.integer("best_of", 1, 1, INT32_MAX) != 1)
    throw bad_request("only best_of = 1 is supported", "best_of");
  if (const ojson* v = f.get("suffix")) {
    if (!v->is_string()) throw wrong_type("suffix", "a string", *v);
    if (!v->get_ref<const std::string&>().empty())
      throw bad_request("'suffix' is not supported", "suffix");
  }
  f.refuse_unknown(kIgnored);
  return r;
}

// One message: role a string, content a string, null, or an array of text parts (joined with
// "\n", as vLLM does for string-content templates). Other keys (name, tool_calls, tool_call_id,
// reasoning_content, ...) pass through to the template as they are.
ojson parse_message(const ojson& m, size_t i) {
  std::string where = "messages[" + std::to_string(i) + "]";
  if (!m.is_object()) throw wrong_type(where, "an object", m);
  auto role = m.find("role");
  if (role == m.end()) throw bad_request(where + ".role is required", "messages");
  if (!role->is_string()) throw wrong_type(where + ".role", "a string", *role);
  static const std::set<std::string> roles = {"system",    "developer", "user",
                                              "assistant", "tool",      "function"};
  if (!roles.count(role->get<std::string>()))
    throw bad_request(where +
                          ".role must be one of system, developer, user, assistant, tool; got '" +
                          role->get<std::string>() + "'",
                      "messages");
  ojson out = m;
  auto content = m.find("content");
  if (content == m.end() || content->is_null() || content->is_string()) return out;
  if (!content->is_array())
    throw wrong_type(where + ".content", "a string, null or an array of content parts", *content);
  std::string text;
  for (size_t k = 0; k < content->size(); ++k) {
    const ojson& part = (*content)[k];
    std::string pw = where + ".content[" + std::to_string(k) + "]";
    if (!part.is_object()) throw wrong_type(pw, "an object", part);
    auto type = part.find("type");
    if (type == part.end() || !type->is_string())
      throw bad_request(pw + ".type must be a string", "messages");
    if (*type != "text")
      throw bad_request(pw + ": content part type '" + type->get<std::string>() +
                            "' is not supported (text only)",
                        "messages");
    auto t = part.find("text");
    if (t == part.end() || !t->is_string())
      throw bad_request(pw + ".text must be a string", "messages");
    if (k) text += "\n";
    text += t->get<std::string>();
  }
  out["content"] = text;
  return out;
}

ApiRequest parse_chat(const ojson& body) {
  ApiRequest r;
  r.endpoint = Endpoint::ChatCompletions;
  Fields f(body);
  const ojson* msgs = f.get("messages");
  if (!msgs) throw bad_request("'messages' is required", "messages");
  if (!msgs->is_array()) throw wrong_type("messages", "an array", *msgs);
  if (msgs->empty()) throw bad_request("'messages' must not be empty", "messages");
  r.messages = ojson::array();
  for (size_t i = 0; i < msgs->size(); ++i) r.messages.push_back(parse_message((*msgs)[i], i));
  parse_common(f, r);
  parse_max_tokens(f, r, /*chat=*/true);
  bool logprobs = f.boolean("logprobs", false);
  int top = static_cast<int>(f.integer("top_logprobs", 0, 0, kMaxLogprobs));
  if (f.get("top_logprobs") && !logprobs)
    throw bad_request("'top_logprobs' needs 'logprobs' to be true", "top_logprobs");
  r.params.logprobs = logprobs ? top : -1;
  if (const ojson* v = f.get("tools")) {
    if (!v->is_array()) throw wrong_type("tools", "an array", *v);
    if (!v->empty()) r.tools = *v;
  }
  if (const ojson* v = f.get("tool_choice")) {
    if (!v->is_string() || (*v != "none" && *v != "auto"))
      throw bad_request("'tool_choice' must be \"none\" or \"auto\"", "tool_choice");
  }
  if (const ojson* v = f.get("response_format")) {
    auto t = v->is_object() ? v->find("type") : v->end();
    if (!v->is_object() || t == v->end() || *t != "text")
      throw bad_request("'response_format' supports only {\"type\": \"text\"}", "response_format");
  }
  if (const ojson* v = f.get("chat_template_kwargs")) {
    if (!v->is_object()) throw wrong_type("chat_template_kwargs", "an object", *v);
    r.chat_template_kwargs = *v;
  }
  r.add_generation_prompt = f.boolean("add_generation_prompt", true);
  r.continue_final_message = f.boolean("continue_final_message", false);
  if (r.add_generation_prompt && r.continue_final_message)
    throw bad_request("'continue_final_message' needs 'add_generation_prompt' to be false",
                      "continue_final_message");
  if (r.continue_final_message && r.messages.back()["role"] != "assistant")
    throw bad_request("'continue_final_message' needs the last message to be the assistant's",
                      "continue_final_message");
  f.refuse_unknown(kIgnored);
  return r;
}

}  // namespace

ApiRequest parse_api_json(Endpoint endpoint, const ojson& body) {
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  return endpoint == Endpoint::Completions ? parse_completions(body) : parse_chat(body);
}

namespace {

ojson parse_body(std::string_view body) {
  ojson j;
  try {
    j = ojson::parse(body);
  } catch (const ojson::exception& e) {
    throw bad_request(std::string("invalid JSON body: ") + e.what());
  }
  if (!j.is_object()) throw bad_request("the request body must be a JSON object");
  return j;
}

std::string model_field(Fields& f) {
  const ojson* v = f.get("model");
  if (!v) return "";
  if (!v->is_string()) throw wrong_type("model", "a string", *v);
  return v->get<std::string>();
}

}  // namespace

ApiRequest parse_api_request(Endpoint endpoint, std::string_view body) {
  return parse_api_json(endpoint, parse_body(body));
}

TokenizeRequest parse_tokenize_request(std::string_view body) {
  ojson j = parse_body(body);
  Fields f(j);
  TokenizeRequest r;
  r.model = model_field(f);
  const ojson* prompt = f.get("prompt");
  const ojson* msgs = f.get("messages");
  if (!prompt == !msgs) throw bad_request("give exactly one of 'prompt' and 'messages'");
  if (prompt) {
    if (!prompt->is_string()) throw wrong_type("prompt", "a string", *prompt);
    r.prompt = prompt->get<std::string>();
  } else {
    if (!msgs->is_array() || msgs->empty())
      throw bad_request("'messages' must be a non-empty array", "messages");
    r.chat = true;
    r.messages = ojson::array();
    for (size_t i = 0; i < msgs->size(); ++i) r.messages.push_back(parse_message((*msgs)[i], i));
    if (const ojson* v = f.get("tools")) {
      if (!v->is_array()) throw wrong_type("tools", "an array", *v);
      if (!v->empty()) r.tools = *v;
    }
    if (const ojson* v = f.get("chat_template_kwargs")) {
      if (!v->is_object()) throw wrong_type("chat_template_kwargs", "an object", *v);
      r.chat_template_kwargs = *v;
    }
  }
  r.add_generation_prompt = f.boolean("add_generation_prompt", true);
  r.add_special_tokens = f.boolean("add_special_tokens", !r.chat);
  r.return_token_strs = f.boolean("return_token_strs", false);
  f.refuse_unknown({"continue_final_message"});
  return r;
}

DetokenizeRequest parse_detokenize_request(std::string_view body) {
  ojson j = parse_body(body);
  Fields f(j);
  DetokenizeRequest r;
  r.model = model_field(f);
  const ojson* t = f.get("tokens");
  if (!t) throw bad_request("'tokens' is required", "tokens");
  r.tokens = token_id_list("tokens", *t);
  f.refuse_unknown({});
  return r;
}

void check_request_fits(ApiRequest& req, int prompt_tokens, int max_model_len, int vocab_size) {
  const char* prompt_param = req.endpoint == Endpoint::Completions ? "prompt" : "messages";
  if (prompt_tokens == 0) throw bad_request("the prompt is empty", prompt_param);
  if (prompt_tokens >= max_model_len) {
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(max_model_len) +
                       " tokens. However, your prompt has " + std::to_string(prompt_tokens) +
                       " tokens, which leaves no room for the completion. Please reduce the "
                       "length of the prompt.",
                   "invalid_request_error", prompt_param, "context_length_exceeded");
  }
  int room = max_model_len - prompt_tokens;
  if (!req.max_tokens_given) {
    req.params.max_tokens = room;
  } else if (req.params.max_tokens > room) {
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(max_model_len) +
                       " tokens. However, you requested " +
                       std::to_string(int64_t{prompt_tokens} + req.params.max_tokens) +
                       " tokens (" + std::to_string(prompt_tokens) + " in the prompt, " +
                       std::to_string(req.params.max_tokens) +
                       " for the completion). Please reduce max_tokens or the prompt.",
                   "invalid_request_error", "max_tokens", "context_length_exceeded");
  }
  for (int32_t id : req.params.stop_token_ids)
    if (id >= vocab_size)
      throw bad_request("stop_token_ids: " + std::to_string(id) +
                            " is not below the vocabulary size " + std::to_string(vocab_size),
                        "stop_token_ids");
  if (req.prompt_is_ids)
    for (int32_t id : req.prompt_ids)
      if (id >= vocab_size)
        throw bad_request("prompt: token id " + std::to_string(id) +
                              " is not below the vocabulary size " + std::to_string(vocab_size),
                          "prompt");
}

}  // namespace densekv
