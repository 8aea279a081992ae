// KV-format quality measures (`densekv eval`, docs/quality.md): perplexity over a token stream
// in sliding windows, and the greedy-match rate of a format against a baseline (16-bit) cache.
#pragma once
#include <cstdint>
#include <vector>

#include "kv/kv_format.h"
#include "model/llama.h"

namespace densekv {

// Sliding windows, as Hugging Face's perplexity guide: window k covers tokens
// [k * stride, k * stride + window) (the last one clipped to the text) and scores only the
// tokens no earlier window scored, each predicted from all the window's tokens before it. So
// every token but the first is scored once, with at least window - stride tokens of context
// (fewer at the start of the text). 1 <= stride < window.
struct PerplexityOptions {
  int window = 512;
  int stride = 256;
  int prefill_chunk = 0;  // forward each window in chunks (0: one chunk)
};

struct PerplexityResult {
  double ppl = 0;       // exp(mean negative log-likelihood)
  double mean_nll = 0;  // nats per token
  int64_t tokens = 0;   // tokens scored
  int windows = 0;
};

// ids: at least 2 tokens. Throws InvalidArgumentError for bad options.
PerplexityResult perplexity(LlamaModel& model, KvFormat format, const std::vector<int32_t>& ids,
                            const PerplexityOptions& opts);

// The protocol of tools/train_eval_model.py (transformers), so densekv's number can be checked
// against the one in the model's train_log.json: window w = [bos] + text[w * (window - 1),
// (w + 1) * (window - 1)) for every full window (the partial tail is dropped, as there), every
// text token scored from its prefix within the window (no overlap). text: no BOS of its own.
PerplexityResult perplexity_bos_windows(LlamaModel& model, KvFormat format,
                                        const std::vector<int32_t>& text, int32_t bos, int window,
                                        int prefill_chunk = 0);

struct GreedyMatchResult {
  int prompts = 0;
  int64_t tokens = 0;                // reference tokens compared (prompts x max_tokens)
  int64_t matched = 0;               // of them, where the format's greedy choice is the same
  double first_divergence_mean = 0;  // tokens until the first differing one (max_tokens if none)
  double rate() const { return tokens > 0 ? static_cast<double>(matched) / tokens : 0.0; }
};

// The baseline format's greedy continuation of max_tokens tokens (eos ignored) of each prompt:
// the references greedy_match compares a format against. Computed once for any number of formats.
std::vector<std::vector<int32_t>> greedy_references(
    LlamaModel& model, KvFormat baseline, const std::vector<std::vector<int32_t>>& prompts,
    int max_tokens);

// For each prompt and its reference (greedy_references): the prompt plus the reference runs
// through `format` in one prefill and its argmax at each reference position is compared with the
// reference token (teacher-forced: every position is judged on the same history). Up to the first
// divergence this is exactly the format's own greedy decode (the CPU forward does not depend on
// chunking), so first_divergence is the free-running one; the rate also counts agreement after it.
GreedyMatchResult greedy_match(LlamaModel& model, KvFormat format,
                               const std::vector<std::vector<int32_t>>& prompts,
                               const std::vector<std::vector<int32_t>>& references);

}  // namespace densekv
