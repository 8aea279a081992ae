#include "model/eval.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/check.h"
#include "core/errors.h"
#include "model/generate.h"

namespace densekv {

namespace {

// -log softmax(row)[target], in double.
double nll(const float* row, int vocab, int32_t target) {
  const float mx = *std::max_element(row, row + vocab);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
  return std::log(sum) + mx - static_cast<double>(row[target]);
}

}  // namespace

PerplexityResult perplexity(LlamaModel& model, KvFormat format, const std::vector<int32_t>& ids,
                            const PerplexityOptions& opts) {
  if (opts.window < 2) throw InvalidArgumentError("--window must be at least 2");
  if (opts.stride < 1 || opts.stride >= opts.window) {
    throw InvalidArgumentError("--stride must be in [1, window - 1], got " +
                               std::to_string(opts.stride) + " with window " +
                               std::to_string(opts.window));
  }
  if (ids.size() < 2) throw InvalidArgumentError("perplexity needs a text of at least 2 tokens");
  const int n = static_cast<int>(ids.size()), vocab = model.config().vocab_size;
  PerplexityResult r;
  double total = 0;
  int scored_end = 1;  // tokens [1, scored_end) are scored; token 0 has no prediction
  for (int begin = 0; scored_end < n; begin += opts.stride) {
    const int end = std::min(n, begin + opts.window);
    const std::vector<int32_t> win(ids.begin() + begin, ids.begin() + end);
    const std::vector<float> logits = prompt_logits(model, format, win, opts.prefill_chunk);
    for (int i = scored_end; i < end; ++i) {  // token i predicted by window row i - 1 - begin
      total += nll(logits.data() + static_cast<int64_t>(i - 1 - begin) * vocab, vocab, ids[i]);
      ++r.tokens;
    }
    scored_end = end;
    ++r.windows;
  }
  r.mean_nll = total / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.mean_nll);
  return r;
}

PerplexityResult perplexity_bos_windows(LlamaModel& model, KvFormat format,
                                        const std::vector<int32_t>& text, int32_t bos, int window,
                                        int prefill_chunk) {
  if (window < 2) throw InvalidArgumentError("--window must be at least 2");
  const int span = window - 1, vocab = model.config().vocab_size;
  const int64_t n_windows = static_cast<int64_t>(text.size()) / span;
  if (n_windows < 1) {
    throw InvalidArgumentError("the text has " + std::to_string(text.size()) +
                               " tokens, fewer than one window of " + std::to_string(span));
  }
  PerplexityResult r;
  double total = 0;
  for (int64_t w = 0; w < n_windows; ++w) {
    std::vector<int32_t> win = {bos};
    win.insert(win.end(), text.begin() + w * span, text.begin() + (w + 1) * span);
    const std::vector<float> logits = prompt_logits(model, format, win, prefill_chunk);
    for (int i = 1; i < window; ++i) {
      total += nll(logits.data() + static_cast<int64_t>(i - 1) * vocab, vocab, win[i]);
    }
    r.tokens += span;
    ++r.windows;
  }
  r.mean_nll = total / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.mean_nll);
  return r;
}

std::vector<std::vector<int32_t>> greedy_references(
    LlamaModel& model, KvFormat baseline, const std::vector<std::vector<int32_t>>& prompts,
    int max_tokens) {
  if (max_tokens < 1) throw InvalidArgumentError("--max-tokens must be at least 1");
  if (prompts.empty()) throw InvalidArgumentError("the prompt set is empty");
  GenerateOptions opts;
  opts.max_tokens = max_tokens;
  opts.ignore_eos = true;
  std::vector<std::vector<int32_t>> refs;
  for (const std::vector<int32_t>& prompt : prompts) {
    if (prompt.empty()) throw InvalidArgumentError("a prompt of the prompt set has no tokens");
    refs.push_back(generate(model, baseline, prompt, opts).token_ids);
  }
  return refs;
}

GreedyChoices greedy_choices(LlamaModel& model, KvFormat format,
                             const std::vector<std::vector<int32_t>>& prompts,
                             const std::vector<std::vector<int32_t>>& references) {
  CHECK(prompts.size() == references.size());
  const int vocab = model.config().vocab_size;
  GreedyChoices choices;
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::vector<int32_t>& prompt = prompts[p];
    const std::vector<int32_t>& ref = references[p];
    const int n = static_cast<int>(ref.size());
    CHECK(n >= 1);
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), ref.begin(), ref.end() - 1);
    const std::vector<float> logits = prompt_logits(model, format, seq);
    std::vector<int32_t>& c = choices.emplace_back(n);
    for (int i = 0; i < n; ++i) {
      const float* row = logits.data() + static_cast<int64_t>(prompt.size() - 1 + i) * vocab;
      c[i] = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
    }
  }
  return choices;
}

GreedyMatchResult greedy_match(const GreedyChoices& format_choices,
                               const GreedyChoices& baseline_choices,
                               const std::vector<std::vector<int32_t>>& references) {
  CHECK(format_choices.size() == references.size() && baseline_choices.size() == references.size());
  GreedyMatchResult r;
  double divergence_sum = 0;
  for (size_t p = 0; p < references.size(); ++p) {
    const std::vector<int32_t>& ref = references[p];
    const int n = static_cast<int>(ref.size());
    CHECK(static_cast<int>(format_choices[p].size()) == n &&
          static_cast<int>(baseline_choices[p].size()) == n);
    int first = n;
    for (int i = 0; i < n; ++i) {
      const bool same = format_choices[p][i] == baseline_choices[p][i];
      r.matched += same;
      r.matched_reference += format_choices[p][i] == ref[i];
      if (!same && first == n) first = i;
    }
    r.tokens += n;
    divergence_sum += first;
    ++r.prompts;
  }
  r.first_divergence_mean = r.prompts > 0 ? divergence_sum / r.prompts : 0.0;
  return r;
}

}  // namespace densekv
