// Helpers for the engine tests: the tiny test models, and running requests to completion.
#pragma once
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/engine.h"
#include "engine/llm_engine.h"
#include "model/llama.h"

namespace densekv::testing {

inline std::string tiny_model_dir(const std::string& name) {
  return std::string(DENSEKV_SOURCE_DIR) + "/tests/data/models/" + name;
}

struct TinyModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
};

// Loaded once per test binary (nullptr when the folder is absent: the caller skips).
inline LlamaModel* tiny_model(const std::string& name) {
  static std::map<std::string, TinyModel> loaded;
  auto it = loaded.find(name);
  if (it != loaded.end()) return it->second.model.get();
  if (!std::filesystem::exists(tiny_model_dir(name) + "/config.json")) return nullptr;
  TinyModel m;
  m.backend = make_backend("cpu", 2);
  m.model = load_llama(*m.backend, tiny_model_dir(name));
  return (loaded[name] = std::move(m)).model.get();
}

// The whole output of one request: every chunk merged.
inline RequestOutput collect(RequestStream& s) {
  RequestOutput all;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    auto o = s.next(std::chrono::milliseconds(100));
    if (!o) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "request " << s.id() << " did not finish in time";
        return all;
      }
      continue;
    }
    all.id = o->id;
    all.token_ids.insert(all.token_ids.end(), o->token_ids.begin(), o->token_ids.end());
    all.logprobs.insert(all.logprobs.end(), o->logprobs.begin(), o->logprobs.end());
    if (o->finish != FinishReason::None) {
      std::vector<int32_t> ids = std::move(all.token_ids);
      std::vector<TokenLogprobs> lps = std::move(all.logprobs);
      all = *o;
      all.token_ids = std::move(ids);
      all.logprobs = std::move(lps);
      return all;
    }
  }
}

// Submits every request at once, then reads all streams; outputs in request order.
inline std::vector<RequestOutput> run_concurrently(Engine& e,
                                                   const std::vector<GenerationRequest>& reqs) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& r : reqs) streams.push_back(e.submit(r));
  std::vector<RequestOutput> out;
  for (auto& s : streams) out.push_back(collect(*s));
  return out;
}

// Each request alone: submitted only after the previous one finished.
inline std::vector<RequestOutput> run_one_by_one(Engine& e,
                                                 const std::vector<GenerationRequest>& reqs) {
  std::vector<RequestOutput> out;
  for (const auto& r : reqs) out.push_back(collect(*e.submit(r)));
  return out;
}

// n requests with random prompts of min_prompt..max_prompt tokens and 1..max_tokens greedy
// tokens.
inline std::vector<GenerationRequest> random_requests(int n, int vocab, int max_prompt,
                                                      int max_tokens, uint64_t seed,
                                                      int min_prompt = 1) {
  std::mt19937_64 rng(seed);
  std::vector<GenerationRequest> reqs(static_cast<size_t>(n));
  for (auto& r : reqs) {
    const int len =
        min_prompt + static_cast<int>(rng() % static_cast<uint64_t>(max_prompt - min_prompt + 1));
    for (int i = 0; i < len; ++i) r.prompt_ids.push_back(static_cast<int32_t>(rng() % vocab));
    r.params.temperature = 0.0f;
    r.params.max_tokens = 1 + static_cast<int>(rng() % static_cast<uint64_t>(max_tokens));
    r.params.ignore_eos = true;
  }
  return reqs;
}

}  // namespace densekv::testing

#define DENSEKV_TINY_MODEL_OR_SKIP(var, name)                                                  \
  ::densekv::LlamaModel* var = ::densekv::testing::tiny_model(name);                           \
  if (!var) {                                                                                  \
    GTEST_SKIP() << "tiny model " << ::densekv::testing::tiny_model_dir(name) << " is absent"; \
  }
