// The engine on the CPU backend with the tiny test models: greedy outputs must not depend on
// what else runs (batching, chunked prefill, preemption, prefix caching), and must equal
// transformers' greedy continuations (golden.json, an outside oracle).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/errors.h"
#include "engine_test_util.h"
#include "kv/kv_format.h"

using namespace densekv;
using namespace densekv::testing;

namespace {

EngineConfig small_config() {
  EngineConfig c;
  c.max_num_seqs = 64;
  c.max_num_batched_tokens = 96;
  c.num_kv_blocks = 512;
  c.check_invariants = true;
  return c;
}

void expect_same_tokens(const std::vector<RequestOutput>& want,
                        const std::vector<RequestOutput>& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(want[i].token_ids, got[i].token_ids) << what << ": request " << i;
    EXPECT_EQ(want[i].finish, got[i].finish) << what << ": request " << i;
  }
}

// The 3 golden prompts (64 greedy tokens each, from transformers) among 20 random requests, with
// an fp32 cache and 16-token steps (chunked prefill mixed with decodes).
TEST(Engine, GreedyMatchesTransformersAmongOtherRequests) {
  for (const char* name : {"llama31-tiny", "qwen25-tiny"}) {
    DENSEKV_TINY_MODEL_OR_SKIP(model, name);
    std::ifstream f(tiny_model_dir(name) + "/golden.json");
    const nlohmann::json golden = nlohmann::json::parse(f);
    std::vector<GenerationRequest> reqs =
        random_requests(20, model->config().vocab_size, 60, 20, 7);
    std::vector<size_t> golden_at;
    for (const auto& g : golden["greedy"]) {
      GenerationRequest r;
      r.prompt_ids = g["prompt_ids"].get<std::vector<int32_t>>();
      r.params.temperature = 0;
      r.params.ignore_eos = true;
      r.params.max_tokens = static_cast<int>(g["token_ids"].size());
      golden_at.push_back(reqs.size() / 2);
      reqs.insert(reqs.begin() + static_cast<std::ptrdiff_t>(golden_at.back()), r);
    }
    EngineConfig c = small_config();
    c.kv_cache_dtype = "fp32";
    c.max_num_batched_tokens = 16;
    auto engine = make_llm_engine(*model, c);
    std::vector<RequestOutput> out = run_concurrently(*engine, reqs);
    // golden_at indices shift as later inserts land before earlier ones: find by prompt.
    for (const auto& g : golden["greedy"]) {
      const auto prompt = g["prompt_ids"].get<std::vector<int32_t>>();
      bool found = false;
      for (size_t i = 0; i < reqs.size(); ++i) {
        if (reqs[i].prompt_ids != prompt) continue;
        found = true;
        EXPECT_EQ(out[i].token_ids, g["token_ids"].get<std::vector<int32_t>>())
            << name << ": prompt of " << prompt.size() << " tokens";
        EXPECT_EQ(out[i].finish, FinishReason::Length);
      }
      EXPECT_TRUE(found);
    }
  }
}

// 64 mixed requests at once give each request exactly what it gets alone.
TEST(Engine, SameGreedyOutputAloneAndAmong64) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(64, model->config().vocab_size, 100, 24, 1);
  EngineConfig alone_cfg = small_config();
  alone_cfg.enable_prefix_caching = false;
  auto alone_engine = make_llm_engine(*model, alone_cfg);
  auto alone = run_one_by_one(*alone_engine, reqs);
  alone_engine.reset();

  auto engine = make_llm_engine(*model, small_config());
  auto mixed = run_concurrently(*engine, reqs);
  expect_same_tokens(alone, mixed, "64 concurrent");
  const EngineMetrics m = engine->metrics();
  EXPECT_GT(m.peak_running, 8);
  EXPECT_EQ(m.requests_finished, 64);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(mixed[i].completion_tokens, reqs[i].params.max_tokens);
    EXPECT_EQ(mixed[i].prompt_tokens, static_cast<int>(reqs[i].prompt_ids.size()));
  }
}

// The KV formats the engine accepts on this model (the others fail make_llm_engine).
std::vector<std::string> supported_formats(LlamaModel& model) {
  std::vector<std::string> out;
  for (const char* fmt :
       {"bf16", "fp16", "fp32", "int8", "fp8_e4m3", "int4_kivi", "int2_kivi", "k4v2"}) {
    EngineConfig c = small_config();
    c.kv_cache_dtype = fmt;
    try {
      make_llm_engine(model, c);
      out.push_back(fmt);
    } catch (const InvalidArgumentError& e) {
      std::printf("  %s: not supported yet (%s)\n", fmt, e.what());
    }
  }
  return out;
}

// A pool for a fraction of the load: preemption by recompute, outputs unchanged, for every KV
// format.
TEST(Engine, KvPressurePreemptsAndKeepsOutputs) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  // Every sequence outgrows a 64-token tail, so the quantized formats need main blocks too.
  auto reqs = random_requests(8, model->config().vocab_size, 100, 40, 2, 66);
  for (const std::string& fmt : supported_formats(*model)) {
    EngineConfig big = small_config();
    big.kv_cache_dtype = fmt;
    auto want = run_concurrently(*make_llm_engine(*model, big), reqs);
    const int block_size =
        kv_format_info(parse_kv_cache_dtype(fmt, model->config().dtype), model->config().head_dim)
            .block_size;
    // Prefix caching on (preempted sequences get their own blocks back as hits); off once.
    for (bool prefix : {true, false}) {
      if (!prefix && fmt != "bf16") continue;
      EngineConfig small = big;
      small.num_kv_blocks = 256 / block_size;  // 256 tokens (plus the tails) for ~10 x 100
      small.enable_prefix_caching = prefix;
      auto engine = make_llm_engine(*model, small);
      auto got = run_concurrently(*engine, reqs);
      expect_same_tokens(want, got, fmt + (prefix ? " pressure, prefix caching" : " pressure"));
      const EngineMetrics m = engine->metrics();
      EXPECT_GT(m.preemptions, 0) << fmt;
      EXPECT_EQ(m.requests_finished, 8) << fmt;
      EXPECT_EQ(m.kv_blocks_used, 0) << fmt;
    }
  }
}

// Requests sharing a system prompt hit the prefix cache; outputs stay the same (every format).
TEST(Engine, SharedSystemPromptHitsPrefixCache) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  const int vocab = model->config().vocab_size;
  auto reqs = random_requests(6, vocab, 20, 10, 3);
  std::vector<int32_t> system;
  for (int i = 0; i < 140; ++i) system.push_back((i * 37 + 11) % vocab);
  for (auto& r : reqs) r.prompt_ids.insert(r.prompt_ids.begin(), system.begin(), system.end());
  for (const std::string& fmt : supported_formats(*model)) {
    EngineConfig off = small_config();
    off.kv_cache_dtype = fmt;
    off.enable_prefix_caching = false;
    auto want = run_concurrently(*make_llm_engine(*model, off), reqs);

    EngineConfig on = off;
    on.enable_prefix_caching = true;
    auto engine = make_llm_engine(*model, on);
    auto first = run_concurrently(*engine, {reqs[0]});  // computes and publishes the prefix
    auto got = run_concurrently(*engine, reqs);
    expect_same_tokens(want, got, fmt + " prefix caching");
    EXPECT_EQ(first[0].cached_prompt_tokens, 0);
    for (const auto& o : got) {
      // The system prompt's full blocks, and for reqs[0] (run before) its whole prompt's.
      EXPECT_GE(o.cached_prompt_tokens, 128) << fmt;
      EXPECT_LT(o.cached_prompt_tokens, o.prompt_tokens) << fmt << ": one token is computed";
    }
    EXPECT_GT(engine->metrics().prefix_hit_tokens, 0);
  }
}

// Chunked prefill (down to one token per step) equals one-chunk prefill, for every KV format.
TEST(Engine, ChunkedPrefillEqualsUnchunked) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(6, model->config().vocab_size, 90, 8, 4);
  const std::vector<std::string> formats = supported_formats(*model);
  EXPECT_GE(formats.size(), 3u);
  for (const std::string& fmt : formats) {
    EngineConfig c = small_config();
    c.kv_cache_dtype = fmt;
    c.max_num_batched_tokens = 4096;
    auto want = run_one_by_one(*make_llm_engine(*model, c), reqs);
    for (int chunk : {1, 5, 16, 33}) {
      c.max_num_batched_tokens = chunk;
      auto got = run_concurrently(*make_llm_engine(*model, c), reqs);
      expect_same_tokens(want, got, fmt + " chunk " + std::to_string(chunk));
    }
  }
}

// Seeded sampling is reproducible, alone or among other requests.
TEST(Engine, SeededSamplingIsReproducible) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(16, model->config().vocab_size, 40, 30, 5);
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto& p = reqs[i].params;
    p.temperature = 0.9f;
    p.top_p = i % 2 ? 0.8f : 1.0f;
    p.top_k = i % 3 ? 40 : -1;
    p.min_p = i % 4 ? 0.0f : 0.05f;
    p.presence_penalty = i % 5 ? 0.0f : 0.5f;
    p.repetition_penalty = i % 6 ? 1.0f : 1.2f;
    p.seed = 1000 + i;
    p.max_tokens = 30;
  }
  auto engine = make_llm_engine(*model, small_config());
  auto alone = run_one_by_one(*engine, reqs);
  auto mixed = run_concurrently(*engine, reqs);
  expect_same_tokens(alone, mixed, "seeded");
  reqs[0].params.seed = 99999;
  auto other = run_concurrently(*engine, {reqs[0]});
  EXPECT_NE(other[0].token_ids, alone[0].token_ids) << "another seed, other tokens";
}

// Greedy steps take their tokens from the backend's argmax (greedy_on_device, the default) and
// give exactly the tokens of the host sampler (greedy_on_device off): temperature 0, and top_k 1
// at a temperature (seeded, so the RNG draw it keeps matters for nothing but must not break it).
// A request with logprobs or a penalty needs the logits: steps that sample it use the host path.
TEST(Engine, GreedyOnDeviceGivesTheHostSamplersTokens) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(24, model->config().vocab_size, 40, 20, 9);
  for (size_t i = 0; i < reqs.size(); i += 3) {
    reqs[i].params.temperature = 0.8f;
    reqs[i].params.top_k = 1;
    reqs[i].params.seed = 77 + i;
  }
  EngineConfig on = small_config();
  EngineConfig off = on;
  off.greedy_on_device = false;
  auto e_on = make_llm_engine(*model, on);
  const auto got = run_concurrently(*e_on, reqs);
  auto e_off = make_llm_engine(*model, off);
  const auto want = run_concurrently(*e_off, reqs);
  expect_same_tokens(want, got, "greedy on device");
  EXPECT_GT(e_on->metrics().greedy_device_steps, 0);
  EXPECT_EQ(e_off->metrics().greedy_device_steps, 0);

  // Every request needs its logits now: no step may take the device path.
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (i % 2) {
      reqs[i].params.logprobs = 1;
    } else {
      reqs[i].params.repetition_penalty = 1.1f;
    }
  }
  auto e_mixed = make_llm_engine(*model, on);
  const auto mixed = run_concurrently(*e_mixed, reqs);
  EXPECT_EQ(e_mixed->metrics().greedy_device_steps, 0);
  auto e_mixed_off = make_llm_engine(*model, off);
  expect_same_tokens(run_concurrently(*e_mixed_off, reqs), mixed, "logprobs and penalties");
}

// A cancelled request ends with Abort and all its blocks are freed.
TEST(Engine, CancelFreesBlocks) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(8, model->config().vocab_size, 40, 1, 6);
  for (auto& r : reqs) r.params.max_tokens = 3000;
  EngineConfig c = small_config();
  c.num_kv_blocks = 2048;
  auto engine = make_llm_engine(*model, c);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& r : reqs) streams.push_back(engine->submit(r));
  ASSERT_TRUE(streams[0]->next(std::chrono::seconds(60)).has_value());  // it runs
  for (auto& s : streams) engine->cancel(s->id());
  for (auto& s : streams) {
    RequestOutput o = collect(*s);
    EXPECT_EQ(o.finish, FinishReason::Abort);
    EXPECT_LT(o.completion_tokens, 3000);
  }
  for (int i = 0; i < 100 && engine->metrics().running + engine->metrics().waiting > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const EngineMetrics m = engine->metrics();
  EXPECT_EQ(m.running, 0);
  EXPECT_EQ(m.waiting, 0);
  EXPECT_EQ(m.kv_blocks_used, 0);
  engine->cancel(12345);  // unknown: ignored
}

TEST(Engine, LogprobsOfTheChosenTokens) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(2, model->config().vocab_size, 10, 1, 8);
  reqs[0].params.max_tokens = 5;
  reqs[0].params.logprobs = 3;
  auto engine = make_llm_engine(*model, small_config());
  RequestOutput o = run_concurrently(*engine, reqs)[0];
  ASSERT_EQ(o.logprobs.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const TokenLogprobs& lp = o.logprobs[i];
    EXPECT_EQ(lp.token_id, o.token_ids[i]);
    ASSERT_EQ(lp.top.size(), 3u);
    EXPECT_EQ(lp.top[0].first, lp.token_id) << "greedy picks the most likely";
    EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);
    EXPECT_GE(lp.top[0].second, lp.top[1].second);
    EXPECT_LT(lp.logprob, 0.0f);
  }
}

// A stream read only after its request finished: the chunks that waited were merged in order
// (into one, or two where the last arrived after the finish count), with every token and
// logprob of a stream read while the request runs.
TEST(Engine, StreamReadAtTheEndHoldsEveryToken) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(1, model->config().vocab_size, 10, 1, 9);
  reqs[0].params.max_tokens = 24;
  reqs[0].params.logprobs = 2;
  auto engine = make_llm_engine(*model, small_config());
  const RequestOutput want = run_concurrently(*engine, reqs)[0];
  ASSERT_EQ(want.token_ids.size(), 24u);
  auto stream = engine->submit(reqs[0]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (engine->metrics().requests_finished < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  RequestOutput got;
  int chunks = 0;
  while (got.finish == FinishReason::None && chunks < 3) {
    std::optional<RequestOutput> o = stream->next(std::chrono::milliseconds(1000));
    ASSERT_TRUE(o.has_value());
    ++chunks;
    got.token_ids.insert(got.token_ids.end(), o->token_ids.begin(), o->token_ids.end());
    got.logprobs.insert(got.logprobs.end(), o->logprobs.begin(), o->logprobs.end());
    got.finish = o->finish;
  }
  EXPECT_LE(chunks, 2);
  EXPECT_EQ(got.finish, want.finish);
  EXPECT_EQ(got.token_ids, want.token_ids);
  ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
  for (size_t i = 0; i < got.logprobs.size(); ++i) {
    EXPECT_EQ(got.logprobs[i].token_id, want.token_ids[i]);
    EXPECT_EQ(got.logprobs[i].logprob, want.logprobs[i].logprob);
    EXPECT_EQ(got.logprobs[i].top, want.logprobs[i].top);
  }
}

TEST(Engine, StopsAtEosAndStopTokenIdsAndMaxModelLen) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(1, model->config().vocab_size, 10, 1, 9);
  reqs[0].params.max_tokens = 20;
  auto engine = make_llm_engine(*model, small_config());
  RequestOutput base = run_concurrently(*engine, reqs)[0];
  ASSERT_EQ(base.token_ids.size(), 20u);
  GenerationRequest r = reqs[0];
  r.params.stop_token_ids = {base.token_ids[5]};
  RequestOutput s = run_concurrently(*engine, {r})[0];
  auto first = std::find(base.token_ids.begin(), base.token_ids.end(), base.token_ids[5]);
  EXPECT_EQ(s.token_ids, std::vector<int32_t>(base.token_ids.begin(), first + 1));
  EXPECT_EQ(s.finish, FinishReason::Stop);
  r = reqs[0];
  r.params.ignore_eos = false;
  r.eos_token_ids = {base.token_ids[3]};
  s = run_concurrently(*engine, {r})[0];
  first = std::find(base.token_ids.begin(), base.token_ids.end(), base.token_ids[3]);
  EXPECT_EQ(s.token_ids, std::vector<int32_t>(base.token_ids.begin(), first + 1));
  EXPECT_EQ(s.finish, FinishReason::Stop);

  EngineConfig c = small_config();
  c.max_model_len = static_cast<int>(reqs[0].prompt_ids.size()) + 4;
  auto short_engine = make_llm_engine(*model, c);
  s = run_concurrently(*short_engine, reqs)[0];
  EXPECT_EQ(s.token_ids, std::vector<int32_t>(base.token_ids.begin(), base.token_ids.begin() + 4));
  EXPECT_EQ(s.finish, FinishReason::Length);
}

TEST(Engine, RejectsBadRequestsNamingTheProblem) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  EngineConfig c = small_config();
  c.max_model_len = 64;
  auto engine = make_llm_engine(*model, c);
  auto expect_error = [&](GenerationRequest r, const std::string& needle) {
    try {
      engine->submit(std::move(r));
      ADD_FAILURE() << "accepted; expected an error about " << needle;
    } catch (const InvalidArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  GenerationRequest ok;
  ok.prompt_ids = {1, 2, 3};
  GenerationRequest r = ok;
  r.prompt_ids.clear();
  expect_error(r, "no tokens");
  r = ok;
  r.prompt_ids.assign(64, 5);
  expect_error(r, "max_model_len");
  r = ok;
  r.prompt_ids = {1, 100000};
  expect_error(r, "vocabulary");
  r = ok;
  r.params.temperature = -1;
  expect_error(r, "temperature");
  r = ok;
  r.params.top_p = 0;
  expect_error(r, "top_p");
  r = ok;
  r.params.stop_token_ids = {-3};
  expect_error(r, "stop_token_ids");
  EXPECT_THROW(
      {
        EngineConfig bad = small_config();
        bad.kv_cache_dtype = "int7";
        make_llm_engine(*model, bad);
      },
      InvalidArgumentError);
  EXPECT_THROW(
      {
        EngineConfig bad = small_config();
        bad.num_kv_blocks = 2;
        bad.max_model_len = 100;
        make_llm_engine(*model, bad);
      },
      InvalidArgumentError);
}

TEST(Engine, ShutdownAbortsOrDrains) {
  DENSEKV_TINY_MODEL_OR_SKIP(model, "llama31-tiny");
  auto reqs = random_requests(4, model->config().vocab_size, 10, 1, 10);
  for (auto& r : reqs) r.params.max_tokens = 8;
  auto engine = make_llm_engine(*model, small_config());
  std::vector<std::shared_ptr<RequestStream>> s;
  for (const auto& r : reqs) s.push_back(engine->submit(r));
  engine->shutdown(/*drain=*/true);
  for (auto& st : s) EXPECT_EQ(collect(*st).finish, FinishReason::Length);
  EXPECT_THROW(engine->submit(reqs[0]), Error);
}

}  // namespace
