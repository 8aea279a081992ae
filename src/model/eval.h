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

// Greedy choices over a prompt set: choices[p][i] = a format's argmax at reference position i of
// prompt p, the prompt plus the reference before it being its history (teacher-forced).
using GreedyChoices = std::vector<std::vector<int32_t>>;

struct GreedyMatchResult {
  int prompts = 0;
  int64_t tokens = 0;   // reference positions compared (prompts x max_tokens)
  int64_t matched = 0;  // of them, where the format's choice is the baseline's on that history
  int64_t matched_reference = 0;     // ... where it is the reference token
  double first_divergence_mean = 0;  // positions until the first differing choice (max_tokens if
                                     // none)
  double rate() const { return tokens > 0 ? static_cast<double>(matched) / tokens : 0.0; }
  double reference_rate() const {
    return tokens > 0 ? static_cast<double>(matched_reference) / tokens : 0.0;
  }
};

// The baseline format's greedy continuation of max_tokens tokens (eos ignored) of each prompt:
// the histories greedy_choices runs. Computed once for any number of formats.
std::vector<std::vector<int32_t>> greedy_references(
    LlamaModel& model, KvFormat baseline, const std::vector<std::vector<int32_t>>& prompts,
    int max_tokens);

// For each prompt and its reference (greedy_references): the prompt plus the reference runs
// through `format` in one prefill and its argmax at each reference position is taken.
GreedyChoices greedy_choices(LlamaModel& model, KvFormat format,
                             const std::vector<std::vector<int32_t>>& prompts,
                             const std::vector<std::vector<int32_t>>& references);

// A format's choices against the baseline's (both greedy_choices on the same references, so both
// ran the same kernels on the same histories: the rate is the format's effect alone) and against
// the reference tokens. On the CPU the two agree: the forward does not depend on chunking, so the
// baseline's choices are its references, and up to the first divergence the teacher-forced run is
// the format's own greedy decode. On CUDA the references come from decode steps and the choices
// from the prefill kernel, whose different rounding flips near ties (docs/quality.md).
GreedyMatchResult greedy_match(const GreedyChoices& format_choices,
                               const GreedyChoices& baseline_choices,
                               const std::vector<std::vector<int32_t>>& references);

}  // namespace densekv
