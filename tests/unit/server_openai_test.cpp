// OpenAI request parsing and validation, reply shapes, SSE framing, Prometheus text.
#include <gtest/gtest.h>

#include "server/metrics.h"
#include "server/openai.h"
#include "server/openai_response.h"
#include "server/sse.h"

namespace densekv {
namespace {

using ojson = nlohmann::ordered_json;

// The ApiError a body gives (fails the test when it parses).
ApiError error_of(Endpoint ep, std::string_view body) {
  try {
    parse_api_request(ep, body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << body;
  return ApiError(0, "", "");
}

TEST(OpenAiParse, CompletionFields) {
  ApiRequest r = parse_api_request(Endpoint::Completions, R"({
    "model": "m", "prompt": "Hello", "max_tokens": 7, "temperature": 0, "top_p": 0.5,
    "top_k": 4, "min_p": 0.1, "seed": 42, "stop": ["a", "bc"], "presence_penalty": 1,
    "frequency_penalty": -1, "repetition_penalty": 1.1, "logprobs": 3, "echo": true,
    "stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true,
    "stop_token_ids": [5], "user": "ignored", "n": 1})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt_text, "Hello");
  EXPECT_FALSE(r.prompt_is_ids);
  EXPECT_TRUE(r.max_tokens_given);
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_EQ(r.params.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.5f);
  EXPECT_EQ(r.params.top_k, 4);
  EXPECT_EQ(r.params.seed, 42u);
  EXPECT_EQ(r.params.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(r.params.logprobs, 3);
  EXPECT_EQ(r.params.stop_token_ids, (std::vector<int32_t>{5}));
  EXPECT_TRUE(r.echo && r.stream && r.include_usage && r.params.ignore_eos);
}

TEST(OpenAiParse, PromptForms) {
  EXPECT_EQ(parse_api_request(Endpoint::Completions, R"({"prompt": ["x"]})").prompt_text, "x");
  ApiRequest ids = parse_api_request(Endpoint::Completions, R"({"prompt": [1, 2, 3]})");
  EXPECT_TRUE(ids.prompt_is_ids);
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(parse_api_request(Endpoint::Completions, R"({"prompt": [[4]]})").prompt_ids,
            (std::vector<int32_t>{4}));
  EXPECT_FALSE(parse_api_request(Endpoint::Completions, R"({"prompt": "x"})").max_tokens_given);
  EXPECT_EQ(error_of(Endpoint::Completions, R"({"prompt": ["a", "b"]})").param, "prompt");
  EXPECT_EQ(error_of(Endpoint::Completions, R"({"prompt": [1, -2]})").param, "prompt");
  EXPECT_EQ(error_of(Endpoint::Completions, R"({"prompt": 5})").param, "prompt");
  EXPECT_EQ(error_of(Endpoint::Completions, R"({"max_tokens": 5})").param, "prompt");
}

TEST(OpenAiParse, ChatMessages) {
  ApiRequest r = parse_api_request(Endpoint::ChatCompletions, R"({"messages": [
      {"role": "system", "content": "S"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
      "max_completion_tokens": 9, "max_tokens": 3, "logprobs": true, "top_logprobs": 2})");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_EQ(r.params.max_tokens, 9);
  EXPECT_EQ(r.params.logprobs, 2);
  EXPECT_EQ(parse_api_request(Endpoint::ChatCompletions,
                              R"({"messages": [{"role": "user", "content": "x"}]})")
                .params.logprobs,
            -1);
  auto chat = [](const char* body) { return error_of(Endpoint::ChatCompletions, body); };
  EXPECT_EQ(chat(R"({"messages": []})").param, "messages");
  EXPECT_EQ(chat(R"({"messages": "hi"})").param, "messages");
  EXPECT_EQ(chat(R"({"messages": [{"content": "x"}]})").param, "messages");
  EXPECT_EQ(chat(R"({"messages": [{"role": "robot", "content": "x"}]})").param, "messages");
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})").param,
            "messages");
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})").param,
            "top_logprobs");
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true,
                     "top_logprobs": 21})")
                .param,
            "top_logprobs");
}

TEST(OpenAiParse, BadInputNamesTheProblem) {
  auto comp = [](const char* body) { return error_of(Endpoint::Completions, body); };
  ApiError e = comp(R"({"prompt": "x", )");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos);
  EXPECT_EQ(comp("[1, 2]").status, 400);
  EXPECT_EQ(comp("\"prompt\"").status, 400);
  // Ill-formed UTF-8 inside a JSON string.
  EXPECT_NE(std::string(comp("{\"prompt\": \"a\xff\xfe\"}").what()).find("invalid JSON"),
            std::string::npos);
  EXPECT_EQ(comp(R"({"prompt": "x", "max_tokens": -1})").param, "max_tokens");
  EXPECT_EQ(comp(R"({"prompt": "x", "max_tokens": 0})").param, "max_tokens");
  EXPECT_EQ(comp(R"({"prompt": "x", "max_tokens": "5"})").param, "max_tokens");
  EXPECT_EQ(comp(R"({"prompt": "x", "max_tokens": 2.5})").param, "max_tokens");
  EXPECT_EQ(comp(R"({"prompt": "x", "temperature": 2.5})").param, "temperature");
  EXPECT_EQ(comp(R"({"prompt": "x", "temperature": "hot"})").param, "temperature");
  EXPECT_EQ(comp(R"({"prompt": "x", "top_p": 0})").param, "top_p");
  EXPECT_EQ(comp(R"({"prompt": "x", "top_k": -2})").param, "top_k");
  EXPECT_EQ(comp(R"({"prompt": "x", "logprobs": 21})").param, "logprobs");
  EXPECT_EQ(comp(R"({"prompt": "x", "stop": [""]})").param, "stop");
  EXPECT_EQ(comp(R"({"prompt": "x", "stop": [1]})").param, "stop");
  EXPECT_EQ(comp(R"({"prompt": "x", "stream": "yes"})").param, "stream");
  EXPECT_EQ(comp(R"({"prompt": "x", "stream_options": {"include_usage": true}})").param,
            "stream_options");
  ApiError n2 = comp(R"({"prompt": "x", "n": 2})");
  EXPECT_EQ(n2.param, "n");
  EXPECT_NE(std::string(n2.what()).find("only n = 1"), std::string::npos);
  EXPECT_EQ(comp(R"({"prompt": "x", "logit_bias": {"5": 1}})").param, "logit_bias");
  ApiError unknown = comp(R"({"prompt": "x", "frobnicate": 1})");
  EXPECT_EQ(unknown.param, "frobnicate");
  EXPECT_NE(std::string(unknown.what()).find("Unrecognized request argument"), std::string::npos);
  // Null counts as absent.
  EXPECT_EQ(parse_api_request(Endpoint::Completions, R"({"prompt": "x", "max_tokens": null})")
                .max_tokens_given,
            false);
}

TEST(OpenAiParse, HugeMaxTokensFailsTheContextCheck) {
  ApiRequest r = parse_api_request(Endpoint::Completions, R"({"prompt": "x", "max_tokens": 1e30})");
  EXPECT_THROW(check_request_fits(r, 3, 100, 512), ApiError);
  ApiRequest ok = parse_api_request(Endpoint::Completions, R"({"prompt": "x", "max_tokens": 97})");
  check_request_fits(ok, 3, 100, 512);
  EXPECT_EQ(ok.params.max_tokens, 97);
  ApiRequest over =
      parse_api_request(Endpoint::Completions, R"({"prompt": "x", "max_tokens": 98})");
  try {
    check_request_fits(over, 3, 100, 512);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "max_tokens");
    EXPECT_EQ(e.code, "context_length_exceeded");
  }
  ApiRequest fill = parse_api_request(Endpoint::Completions, R"({"prompt": "x"})");
  check_request_fits(fill, 30, 100, 512);
  EXPECT_EQ(fill.params.max_tokens, 70);
  EXPECT_THROW(check_request_fits(fill, 100, 100, 512), ApiError);
  EXPECT_THROW(check_request_fits(fill, 0, 100, 512), ApiError);
  ApiRequest bad_stop =
      parse_api_request(Endpoint::Completions, R"({"prompt": "x", "stop_token_ids": [512]})");
  EXPECT_THROW(check_request_fits(bad_stop, 3, 100, 512), ApiError);
}

TEST(OpenAiParse, TokenizeForms) {
  TokenizeRequest t = parse_tokenize_request(R"({"prompt": "hi"})");
  EXPECT_FALSE(t.chat);
  EXPECT_TRUE(t.add_special_tokens);
  TokenizeRequest c = parse_tokenize_request(R"({"messages": [{"role": "user", "content": "x"}]})");
  EXPECT_TRUE(c.chat);
  EXPECT_FALSE(c.add_special_tokens);
  EXPECT_THROW(parse_tokenize_request(R"({})"), ApiError);
  EXPECT_THROW(parse_tokenize_request(R"({"prompt": "a", "messages": []})"), ApiError);
  EXPECT_EQ(parse_detokenize_request(R"({"tokens": [1, 2]})").tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_THROW(parse_detokenize_request(R"({"tokens": [-1]})"), ApiError);
}

TEST(OpenAiReply, ErrorBodyShape) {
  ojson b = error_body(bad_request("bad thing", "temperature"));
  EXPECT_EQ(
      b.dump(),
      R"({"error":{"message":"bad thing","type":"invalid_request_error","param":"temperature","code":null}})");
}

TEST(OpenAiReply, ChunksAndUsage) {
  ReplyMeta meta{Endpoint::ChatCompletions, "chatcmpl-1", 7, "m"};
  ojson first = stream_chunk(meta, "", true, FinishReason::None, nullptr, true);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["usage"].is_null());
  ojson last = stream_chunk(meta, "x", false, FinishReason::Length, nullptr, false);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(last.contains("usage"));
  ojson u = usage_chunk(meta, Usage{5, 3, 2});
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 8);
  EXPECT_EQ(u["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
  ReplyMeta cm{Endpoint::Completions, "cmpl-1", 7, "m"};
  ojson full = full_reply(cm, "hello", FinishReason::Stop, nullptr, Usage{1, 2, 0});
  EXPECT_EQ(full["object"], "text_completion");
  EXPECT_EQ(full["choices"][0]["text"], "hello");
}

TEST(Sse, FramingRoundTrip) {
  std::string body = sse_event(R"({"a":1})") + ": keep-alive\n\n" + sse_event("x") + sse_done();
  EXPECT_EQ(sse_parse(body), (std::vector<std::string>{R"({"a":1})", "x", "[DONE]"}));
  EXPECT_EQ(sse_parse("data: a\r\ndata: b\r\n\r\n"), (std::vector<std::string>{"a\nb"}));
}

TEST(Metrics, PrometheusText) {
  ServerMetrics m;
  RequestOutput last;
  last.completion_tokens = 3;
  last.ttft_seconds = 0.03;
  last.tpot_seconds = 0.012;
  m.on_request_finished(last, FinishReason::Length, 0.9);
  m.on_http_reply(200);
  m.on_http_reply(404);
  EngineMetrics em;
  em.running = 2;
  em.waiting = 1;
  em.kv_blocks_used = 25;
  em.kv_blocks_total = 100;
  em.prefix_hit_tokens = 30;
  em.prefix_query_tokens = 120;
  em.steps = 40;
  em.wait_seconds = 1.5;
  em.commit_seconds = 0.25;
  std::string text = m.render(em);
  for (const char* line :
       {"densekv:num_requests_running 2\n", "densekv:num_requests_waiting 1\n",
        "densekv:kv_cache_usage_perc 0.25\n", "densekv:kv_blocks_used 25\n",
        "densekv:prefix_cache_hit_rate 0.25\n",
        "densekv:time_to_first_token_seconds_bucket{le=\"0.02\"} 0\n",
        "densekv:time_to_first_token_seconds_bucket{le=\"0.04\"} 1\n",
        "densekv:time_to_first_token_seconds_bucket{le=\"+Inf\"} 1\n",
        "densekv:time_per_output_token_seconds_count 1\n",
        "densekv:request_success_total{finished_reason=\"length\"} 1\n",
        "densekv:http_responses_total{status=\"404\"} 1\n", "densekv:engine_steps_total 40\n",
        "densekv:engine_step_seconds_total{phase=\"wait\"} 1.5\n",
        "densekv:engine_step_seconds_total{phase=\"commit\"} 0.25\n",
        "densekv:engine_step_seconds_total{phase=\"schedule\"} 0\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nin\n" << text;
  }
  // Every sample line is "name{labels} value" after a TYPE line for its family.
  EXPECT_EQ(text.find("nan"), std::string::npos);
}

}  // namespace
}  // namespace densekv
