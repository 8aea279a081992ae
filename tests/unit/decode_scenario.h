// A fixed sequence of forwards for the decode-graph tests (CPU emulation and CUDA): 5 prompts
// (60, 17, 33, 1 and 62 tokens, prefilled one by one), then decode steps with fixed input tokens
// (not sampled, so two runs see the same inputs whatever their logits) of 5 sequences (padded to
// 8), 3 (padded to 4), 1 and 3 again. The decodes cross block boundaries (16-token blocks of the
// plain formats: block tables grow from 4 to 5 entries) and seal tails (positions 63 of the
// 64-token quantized blocks), so the block bucket changes and graphs are captured again.
#pragma once
#include <algorithm>
#include <functional>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache.h"
#include "model/llama.h"

namespace densekv::testing {

struct DecodeScenarioSeq {
  std::vector<int32_t> tokens;
  KvSeqBlocks kv;
};

// Runs the scenario on `model` with `cache` (>= 48 blocks, >= 5 tails, prefix caching off);
// returns every forward's logits, downloaded, in order. `before` (if set) runs before each.
inline std::vector<std::vector<float>> run_decode_scenario(
    LlamaModel& model, KvCache& cache, const std::function<void()>& before = {}) {
  const int vocab = model.config().vocab_size;
  Backend& be = model.backend();
  KvBlockManager& bm = cache.blocks();
  std::vector<std::vector<float>> out;
  auto forward = [&](std::vector<DecodeScenarioSeq*> seqs, int n_new) {
    std::vector<SeqChunk> batch;
    for (DecodeScenarioSeq* s : seqs) {
      const int start = static_cast<int>(s->tokens.size()) - n_new;
      EXPECT_TRUE(bm.reserve(s->kv, static_cast<int>(s->tokens.size())));
      batch.push_back({s->tokens.data() + start, n_new, start, &s->kv});
    }
    if (before) before();
    const Tensor t = model.forward(batch, cache, /*last_only=*/true);
    std::vector<float> host(static_cast<size_t>(t.numel()));
    be.download_f32(t, host.data());
    out.push_back(std::move(host));
    for (DecodeScenarioSeq* s : seqs) {
      bm.commit(s->kv, s->tokens, static_cast<int>(s->tokens.size()));
    }
  };

  const int lens[] = {60, 17, 33, 1, 62};
  std::vector<DecodeScenarioSeq> seqs(5);
  for (int s = 0; s < 5; ++s) {
    for (int i = 0; i < lens[s]; ++i) seqs[s].tokens.push_back((i * 31 + s * 17 + 5) % vocab);
    EXPECT_EQ(bm.start(seqs[s].kv, {}), 0);
    forward({&seqs[s]}, lens[s]);
  }
  int step = 0;
  auto decode = [&](const std::vector<int>& which, int n_steps) {
    for (int i = 0; i < n_steps; ++i, ++step) {
      std::vector<DecodeScenarioSeq*> active;
      for (int s : which) {
        seqs[s].tokens.push_back((step * 7 + s * 13 + 3) % vocab);
        active.push_back(&seqs[s]);
      }
      forward(active, 1);
    }
  };
  decode({0, 1, 2, 3, 4}, 6);
  decode({0, 2, 4}, 4);
  decode({2}, 3);
  decode({0, 2, 4}, 2);
  for (DecodeScenarioSeq& s : seqs) bm.release(s.kv);
  return out;
}

}  // namespace densekv::testing
