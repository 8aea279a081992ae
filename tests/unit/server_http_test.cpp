// The HTTP server end to end over loopback with a fake engine (fake_engine.h) and the tiny Qwen
// tokenizer and chat template of tests/data: routes, auth, limits, errors, streaming, cancel on
// disconnect, overload and drain.
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "fake_engine.h"
#include "server/http.h"
#include "server/sse.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace densekv {
namespace {

using ojson = nlohmann::ordered_json;
using namespace std::chrono_literals;

const std::string kModelDir = std::string(DENSEKV_SOURCE_DIR) + "/tests/data/models/qwen25-tiny";
// " the", " self", " a", "Ã" + "©" (the two bytes of "é"), " =", "se", "self"
const std::vector<int32_t> kScript = {296, 297, 270, 131, 106, 278, 264, 285};

class ServerTest : public ::testing::Test {
 protected:
  void start(HttpOptions opts = {}, std::chrono::microseconds step = 200us) {
    tok_ = Tokenizer::load(kModelDir);
    tmpl_ = std::make_unique<ChatTemplate>(ChatTemplate::load(kModelDir));
    engine_ = std::make_unique<testing::FakeEngine>(kScript, 256, step);
    opts.host = "127.0.0.1";
    opts.port = 0;
    server_ = std::make_unique<HttpServer>(opts);
    server_->start();
  }
  void ready() {
    ServedModel m;
    m.engine = engine_.get();
    m.tokenizer = tok_.get();
    m.chat_template = tmpl_.get();
    m.name = "tiny";
    m.max_model_len = 256;
    m.eos_token_ids = {3};
    server_->set_ready(m);
  }
  void TearDown() override {
    if (server_) server_->drain();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(10, 0);
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body,
                       httplib::Headers headers = {}) {
    return client().Post(path.c_str(), headers, body, "application/json");
  }
  // The script's text for n tokens from `offset`.
  std::string script_text(size_t offset, int n) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(kScript[(offset + i) % kScript.size()]);
    return tok_->decode(ids);
  }
  static ojson body_of(const httplib::Result& r) { return ojson::parse(r->body); }

  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ChatTemplate> tmpl_;
  std::unique_ptr<testing::FakeEngine> engine_;
  std::unique_ptr<HttpServer> server_;
};

// Sends a POST over a raw socket, reads at least `bytes` of the reply, closes the connection.
std::string post_and_drop(int port, const std::string& body, size_t bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "";
  std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  if (send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) return "";
  std::string got;
  char buf[256];
  while (got.size() < bytes) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return got;
}

void expect_error(const httplib::Result& r, int status, const std::string& type,
                  const std::string& param = "") {
  ASSERT_TRUE(r) << "no reply";
  EXPECT_EQ(r->status, status) << r->body;
  ojson b = ojson::parse(r->body);
  ASSERT_TRUE(b.contains("error")) << r->body;
  const ojson& e = b["error"];
  EXPECT_TRUE(e["message"].is_string());
  EXPECT_EQ(e["type"], type) << r->body;
  EXPECT_TRUE(e.contains("param") && e.contains("code")) << r->body;
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << r->body;
  }
}

TEST_F(ServerTest, HealthFollowsThePhases) {
  start();
  auto r = client().Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  expect_error(post("/v1/completions", R"({"prompt": "x"})"), 503, "server_error");
  ready();
  EXPECT_EQ(client().Get("/health")->status, 200);
  ojson models = body_of(client().Get("/v1/models"));
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["max_model_len"], 256);
}

TEST_F(ServerTest, CompletionAndChat) {
  start();
  ready();
  auto r = post("/v1/completions", R"({"model": "tiny", "prompt": "hello", "max_tokens": 6,
                                        "seed": 1})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ojson b = body_of(r);
  EXPECT_EQ(b["object"], "text_completion");
  EXPECT_EQ(b["choices"][0]["text"], script_text(1, 6));
  EXPECT_EQ(b["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(b["usage"]["completion_tokens"], 6);
  EXPECT_EQ(b["usage"]["prompt_tokens"], tok_->encode("hello", true, true).size());

  r = post("/v1/chat/completions",
           R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})");
  ASSERT_EQ(r->status, 200) << r->body;
  b = body_of(r);
  EXPECT_EQ(b["object"], "chat.completion");
  EXPECT_EQ(b["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(b["choices"][0]["message"]["content"], script_text(0, 3));
  std::string prompt = tmpl_->render(ojson::parse(R"([{"role": "user", "content": "hi"}])"), true);
  EXPECT_EQ(b["usage"]["prompt_tokens"], tok_->encode(prompt, true, false).size());
}

TEST_F(ServerTest, EosStopsWithoutItsText) {
  start();
  ready();
  // Token 297 (" self") as a stop token id: finish "stop", its text dropped, counted in usage.
  auto r = post("/v1/completions", R"({"prompt": "x", "max_tokens": 20, "stop_token_ids": [297]})");
  ojson b = body_of(r);
  EXPECT_EQ(b["choices"][0]["text"], script_text(0, 1));
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(b["usage"]["completion_tokens"], 2);
}

TEST_F(ServerTest, StopStringsCutTheText) {
  start();
  ready();
  // Script text " the self aé =seself": stop at "a\xc3\xa9" (spans two tokens).
  auto r = post("/v1/completions", R"({"prompt": "x", "max_tokens": 20, "stop": ["zz", "aé"]})");
  ojson b = body_of(r);
  EXPECT_EQ(b["choices"][0]["text"], " the self ");
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(b["usage"]["completion_tokens"], 5);  // up to the token that completed the stop
  // Streamed: the same text.
  std::string body;
  auto s = client().Post("/v1/completions",
                         R"({"prompt": "x", "max_tokens": 20, "stop": ["aé"], "stream": true})",
                         "application/json");
  std::string text;
  for (const std::string& d : sse_parse(s->body))
    if (d != "[DONE]") text += ojson::parse(d)["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, " the self ");
}

TEST_F(ServerTest, StreamEqualsNonStream) {
  start();
  ready();
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    bool chat = std::string(path).find("chat") != std::string::npos;
    ojson req = chat ? ojson::parse(R"({"messages": [{"role": "user", "content": "hi"}]})")
                     : ojson::parse(R"({"prompt": "hi"})");
    req["max_tokens"] = 11;
    req["seed"] = 3;
    ojson full = body_of(post(path, req.dump()));
    req["stream"] = true;
    req["stream_options"] = {{"include_usage", true}};
    auto r = post(path, req.dump());
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
    std::vector<std::string> events = sse_parse(r->body);
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events.back(), "[DONE]");
    ojson usage = ojson::parse(events[events.size() - 2]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"], full["usage"]);
    std::string text, finish;
    for (size_t i = 0; i + 2 < events.size(); ++i) {
      ojson c = ojson::parse(events[i]);
      EXPECT_TRUE(c.contains("usage") && c["usage"].is_null());
      const ojson& ch = c["choices"][0];
      if (chat) {
        if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
      } else {
        text += ch["text"].get<std::string>();
      }
      if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
    }
    std::string expected = chat ? full["choices"][0]["message"]["content"].get<std::string>()
                                : full["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text, expected) << path;
    EXPECT_EQ(text, script_text(3, 11));
    EXPECT_EQ(finish, "length");
  }
}

TEST_F(ServerTest, Logprobs) {
  start();
  ready();
  ojson b = body_of(post("/v1/completions", R"({"prompt": "x", "max_tokens": 3, "logprobs": 2})"));
  const ojson& lp = b["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 3u);
  EXPECT_EQ(lp["tokens"][0], " the");
  EXPECT_EQ(lp["token_logprobs"][0], -0.25);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(lp["text_offset"][1], 4);
  b = body_of(post("/v1/chat/completions",
                   R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2,
                       "logprobs": true, "top_logprobs": 1})"));
  const ojson& content = b["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[1]["token"], " self");
  EXPECT_EQ(content[1]["bytes"].size(), 5u);
  EXPECT_EQ(content[1]["top_logprobs"].size(), 1u);
}

TEST_F(ServerTest, ErrorsAndTheServerKeepsServing) {
  HttpOptions opts;
  opts.max_body_bytes = 4096;
  start(opts);
  ready();
  expect_error(post("/v1/completions", R"({"prompt": )"), 400, "invalid_request_error");
  expect_error(post("/v1/completions", "{\"prompt\": \"\xff\"}"), 400, "invalid_request_error");
  expect_error(post("/v1/completions", R"({"prompt": "x", "max_tokens": -5})"), 400,
               "invalid_request_error", "max_tokens");
  expect_error(post("/v1/completions", R"({"prompt": "x", "max_tokens": 1000000000000})"), 400,
               "invalid_request_error", "max_tokens");
  expect_error(post("/v1/completions", R"({"prompt": "x", "temperature": "warm"})"), 400,
               "invalid_request_error", "temperature");
  expect_error(post("/v1/completions", R"({"prompt": "x", "bogus": true})"), 400,
               "invalid_request_error", "bogus");
  expect_error(post("/v1/completions", R"({"prompt": "x", "model": "gpt-4"})"), 404,
               "invalid_request_error", "model");
  expect_error(post("/v1/completions", R"({"prompt": [600]})"), 400, "invalid_request_error",
               "prompt");
  std::string long_prompt;
  for (int i = 0; i < 300; ++i) long_prompt += " the";
  expect_error(post("/v1/completions", ojson{{"prompt", long_prompt}}.dump()), 400,
               "invalid_request_error", "prompt");
  expect_error(post("/v1/completions", ojson{{"prompt", std::string(5000, 'a')}}.dump()), 413,
               "invalid_request_error");
  expect_error(client().Get("/v1/nothing"), 404, "invalid_request_error");
  expect_error(post("/v1/chat/completions", R"({"messages": [{"role": "user"}]})"), 400,
               "invalid_request_error", "messages");
  // Still serving.
  auto r = post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  std::string metrics = client().Get("/metrics")->body;
  EXPECT_NE(metrics.find("densekv:http_responses_total{status=\"413\"} 1"), std::string::npos)
      << metrics;
}

TEST_F(ServerTest, ApiKey) {
  HttpOptions opts;
  opts.api_key = "sk-secret";
  start(opts);
  ready();
  expect_error(client().Get("/v1/models"), 401, "invalid_request_error");
  expect_error(client().Get("/v1/models", {{"Authorization", "Bearer sk-wrong"}}), 401,
               "invalid_request_error");
  expect_error(post("/v1/completions", R"({"prompt": "x"})", {{"Authorization", "sk-secret"}}), 401,
               "invalid_request_error");
  EXPECT_EQ(client().Get("/v1/models", {{"Authorization", "Bearer sk-secret"}})->status, 200);
  EXPECT_EQ(client().Get("/health")->status, 200);  // health and metrics stay open
  EXPECT_EQ(client().Get("/metrics")->status, 200);
}

TEST_F(ServerTest, TokenizeDetokenize) {
  start();
  ready();
  ojson t =
      body_of(post("/tokenize", R"({"prompt": "hello the world", "return_token_strs": true})"));
  std::vector<int32_t> ids = tok_->encode("hello the world", true, true);
  EXPECT_EQ(t["tokens"].get<std::vector<int32_t>>(), ids);
  EXPECT_EQ(t["count"], ids.size());
  EXPECT_EQ(t["max_model_len"], 256);
  EXPECT_EQ(t["token_strs"].size(), ids.size());
  ojson d = body_of(post("/detokenize", ojson{{"tokens", ids}}.dump()));
  EXPECT_EQ(d["prompt"], "hello the world");
  ojson c = body_of(post("/tokenize", R"({"messages": [{"role": "user", "content": "hi"}]})"));
  std::string prompt = tmpl_->render(ojson::parse(R"([{"role": "user", "content": "hi"}])"), true);
  EXPECT_EQ(c["tokens"].get<std::vector<int32_t>>(), tok_->encode(prompt, true, false));
  expect_error(post("/detokenize", R"({"tokens": [99999]})"), 400, "invalid_request_error",
               "tokens");
}

TEST_F(ServerTest, ClientDisconnectCancelsTheRequest) {
  start({}, 20ms);  // 200 tokens would take 4 s
  ready();
  // Read the start of a long stream, then drop the connection.
  std::string got =
      post_and_drop(server_->port(), R"({"prompt": "x", "max_tokens": 200, "stream": true})", 600);
  EXPECT_NE(got.find("data: "), std::string::npos) << got;
  EXPECT_EQ(engine_->metrics().running, 1);
  for (int i = 0; i < 200 && engine_->metrics().running > 0; ++i) std::this_thread::sleep_for(10ms);
  EngineMetrics m = engine_->metrics();
  EXPECT_EQ(m.running, 0);
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_LT(m.generation_tokens, 100);  // cancelled, not run to the end
  for (int i = 0; i < 100 && server_->state().in_flight.load() > 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server_->state().in_flight.load(), 0);
  std::string metrics = client().Get("/metrics")->body;
  EXPECT_NE(metrics.find("densekv:request_success_total{finished_reason=\"abort\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(ServerTest, OverloadAnswers503) {
  HttpOptions opts;
  opts.max_pending_requests = 1;
  start(opts, 5ms);
  ready();
  std::thread slow([&] { post("/v1/completions", R"({"prompt": "x", "max_tokens": 60})"); });
  for (int i = 0; i < 200 && server_->state().in_flight.load() == 0; ++i)
    std::this_thread::sleep_for(5ms);
  expect_error(post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})"), 503, "server_error");
  slow.join();
  EXPECT_EQ(post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})")->status, 200);
}

TEST_F(ServerTest, DrainFinishesInFlightStreams) {
  start({}, 2ms);
  ready();
  std::string streamed;
  std::thread t([&] {
    auto r = post("/v1/completions", R"({"prompt": "x", "max_tokens": 50, "stream": true})");
    if (r) streamed = r->body;
  });
  for (int i = 0; i < 200 && engine_->metrics().running == 0; ++i) std::this_thread::sleep_for(5ms);
  std::thread drainer([&] { server_->drain(); });
  for (int i = 0; i < 200 && server_->state().phase.load() != ServerPhase::Draining; ++i)
    std::this_thread::sleep_for(1ms);
  auto h = client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  expect_error(post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})"), 503, "server_error");
  t.join();
  drainer.join();
  std::vector<std::string> events = sse_parse(streamed);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (const std::string& d : events)
    if (d != "[DONE]") text += ojson::parse(d)["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, script_text(0, 50));
  server_.reset();
}

}  // namespace
}  // namespace densekv
