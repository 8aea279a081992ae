#include "model/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "core/check.h"
#include "core/errors.h"

namespace densekv {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A cache with exactly the blocks (and the one tail) one sequence of n_tokens needs.
KvCache make_cache(LlamaModel& model, KvFormat format, int n_tokens) {
  KvCacheConfig cfg = kv_cache_config(model.config(), format, 1, 1);
  cfg.block_size = kv_format_info(format, model.config().head_dim).block_size;
  cfg.num_blocks = std::max(1, (n_tokens + cfg.block_size - 1) / cfg.block_size);
  return KvCache(model.backend(), cfg);
}

// Runs ids[seq.num_tokens, n) of one sequence in chunks, committing each; returns the logits
// tensor of the last chunk.
Tensor run_prefill(LlamaModel& model, KvCache& cache, KvSeqBlocks& seq,
                   const std::vector<int32_t>& ids, int chunk, bool last_only,
                   std::vector<float>* all_rows) {
  const int n = static_cast<int>(ids.size());
  if (chunk <= 0) chunk = n;
  Tensor logits;
  for (int start = seq.num_tokens; start < n; start += chunk) {
    SeqChunk c;
    c.ids = ids.data() + start;
    c.n_ids = std::min(chunk, n - start);
    c.start_pos = start;
    c.kv = &seq;
    CHECK(cache.blocks().reserve(seq, start + c.n_ids));
    logits = model.forward({c}, cache, last_only);
    cache.blocks().commit(seq, ids, start + c.n_ids);
    if (all_rows) {
      size_t off = all_rows->size();
      all_rows->resize(off + static_cast<size_t>(logits.numel()));
      model.backend().download_f32(logits, all_rows->data() + off);
    }
  }
  return logits;
}

}  // namespace

std::vector<float> prompt_logits(LlamaModel& model, KvFormat kv_format,
                                 const std::vector<int32_t>& ids, int prefill_chunk) {
  if (ids.empty()) throw InvalidArgumentError("no token ids given");
  KvCache cache = make_cache(model, kv_format, static_cast<int>(ids.size()));
  KvSeqBlocks seq;
  CHECK(cache.blocks().start(seq, {}) == 0);
  std::vector<float> out;
  out.reserve(ids.size() * static_cast<size_t>(model.config().vocab_size));
  run_prefill(model, cache, seq, ids, prefill_chunk, /*last_only=*/false, &out);
  return out;
}

int32_t sample_token(const float* logits, int vocab, float temperature, uint64_t& rng_state) {
  if (temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  }
  const float mx = *std::max_element(logits, logits + vocab);
  std::vector<double> p(static_cast<size_t>(vocab));
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += (p[i] = std::exp((logits[i] - mx) / temperature));
  std::mt19937_64 rng(rng_state);
  rng_state = rng();
  double r = std::uniform_real_distribution<double>(0.0, sum)(rng);
  for (int i = 0; i < vocab; ++i) {
    if ((r -= p[i]) <= 0) return i;
  }
  return vocab - 1;
}

GenerateResult generate(LlamaModel& model, KvFormat kv_format, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts) {
  if (prompt.empty()) throw InvalidArgumentError("the prompt has no tokens");
  if (opts.max_tokens < 1) throw InvalidArgumentError("--max-tokens must be at least 1");
  const ModelConfig& cfg = model.config();
  const int total = static_cast<int>(prompt.size()) + opts.max_tokens;
  KvCache cache = make_cache(model, kv_format, total);
  KvSeqBlocks seq;
  CHECK(cache.blocks().start(seq, {}) == 0);

  GenerateResult res;
  res.prompt_tokens = static_cast<int>(prompt.size());
  res.finish_reason = "length";
  uint64_t rng_state = opts.seed;
  std::vector<float> row(static_cast<size_t>(cfg.vocab_size));
  auto is_eos = [&](int32_t t) {
    return std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), t) !=
           cfg.eos_token_ids.end();
  };

  auto t0 = Clock::now();
  Tensor logits = run_prefill(model, cache, seq, prompt, opts.prefill_chunk, true, nullptr);
  model.backend().download_f32(logits, row.data());
  int32_t next = sample_token(row.data(), cfg.vocab_size, opts.temperature, rng_state);
  res.prefill_seconds = seconds_since(t0);

  const double kv_bytes_per_token =
      static_cast<double>(cache.block_bytes()) * cfg.num_layers / cache.block_size();
  std::vector<int32_t> all = prompt;  // prompt + generated tokens (the committed ids)
  auto t1 = Clock::now();
  for (;;) {
    res.token_ids.push_back(next);
    all.push_back(next);
    if (!opts.ignore_eos && is_eos(next)) {
      res.finish_reason = "stop";
      break;
    }
    if (static_cast<int>(res.token_ids.size()) >= opts.max_tokens) break;
    // Decode: the new token at the next position, attending through the cache.
    SeqChunk c;
    c.ids = &res.token_ids.back();
    c.n_ids = 1;
    c.start_pos = res.prompt_tokens + static_cast<int>(res.token_ids.size()) - 1;
    c.kv = &seq;
    CHECK(cache.blocks().reserve(seq, c.start_pos + 1));
    logits = model.forward({c}, cache, true);
    cache.blocks().commit(seq, all, c.start_pos + 1);
    model.backend().download_f32(logits, row.data());
    next = sample_token(row.data(), cfg.vocab_size, opts.temperature, rng_state);
    res.decode_steps++;
    res.decode_bytes += static_cast<double>(model.weights().bytes_per_token) +
                        kv_bytes_per_token * (c.start_pos + 1);
  }
  res.decode_seconds = seconds_since(t1);
  cache.blocks().release(seq);
  return res;
}

}  // namespace densekv
