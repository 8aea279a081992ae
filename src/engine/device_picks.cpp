#include "engine/device_picks.h"

#include <span>

#include "core/check.h"

namespace densekv {

void DevicePicks::clear() {
  picks_.clear();
  for (int k = 0; k < 2; ++k) {
    draws_[k].clear();
    argmax_[k].clear();
    drawn_[k].clear();
    greedy_[k] = false;
  }
  pen_rows_.clear();
  pen_begins_.assign(1, 0);
  entries_.clear();
  left_.clear();
}

void DevicePicks::add(int32_t row, Sequence& seq) {
  const SamplingParams& p = seq.params();
  Pick k;
  k.seq = &seq;
  k.row = row;
  k.rng_before = seq.rng;
  if (has_penalties(p)) {
    const SamplingContext ctx{std::span<const int32_t>(seq.tokens().data(), seq.prompt_len()),
                              &seq.output_counts()};
    k.pen_row = static_cast<int32_t>(pen_rows_.size());
    pen_rows_.push_back(row);
    penalty_entries(p, ctx, vocab_, entries_, index_);
    pen_begins_.push_back(static_cast<int32_t>(entries_.size()));
  }
  const int src = k.pen_row >= 0 ? 1 : 0;
  if (is_greedy(p)) {
    greedy_[src] = true;
    greedy_rng_draw(p, seq.rng);
  } else {
    k.draw = static_cast<int32_t>(draws_[src].size());
    draws_[src].push_back(device_draw(p, src ? k.pen_row : row, seq.rng));
  }
  picks_.push_back(k);
}

bool DevicePicks::pick(Backend& backend, const Tensor& logits) {
  CHECK(logits.cols == vocab_);
  const Tensor pen =
      pen_rows_.empty() ? Tensor{} : backend.penalize(logits, pen_rows_, pen_begins_, entries_);
  const Tensor* src[2] = {&logits, &pen};
  for (int k = 0; k < 2; ++k) {
    if (greedy_[k]) argmax_[k] = backend.argmax(*src[k]);
    if (!draws_[k].empty()) drawn_[k] = backend.sample(*src[k], draws_[k]);
  }
  lp_queries_.clear();
  lp_picks_.clear();
  for (size_t i = 0; i < picks_.size(); ++i) {
    Pick& k = picks_[i];
    const int32_t token = device_token(k);
    if (token < 0) {
      k.host = true;
      left_.push_back(i);
    } else if (k.seq->params().logprobs >= 0) {
      lp_queries_.push_back({k.row, token, k.seq->params().logprobs});
      lp_picks_.push_back(i);
    }
  }
  if (!lp_queries_.empty()) {
    const std::vector<RowLogprobs> lp = backend.logprobs(logits, lp_queries_);
    lp_.resize(picks_.size());
    for (size_t j = 0; j < lp.size(); ++j) lp_[lp_picks_[j]] = lp[j];
  }
  left_rows_.resize(left_.size() * static_cast<size_t>(vocab_));
  for (size_t j = 0; j < left_.size(); ++j) {
    backend.download_f32(logits.slice_rows(picks_[left_[j]].row, 1),
                         left_rows_.data() + j * static_cast<size_t>(vocab_));
  }
  return !left_.empty();
}

void DevicePicks::sample_left_on_host(ThreadPool& pool) {
  // In parallel: each sequence has its own RNG and nothing else is shared.
  pool.parallel_for(static_cast<int64_t>(left_.size()), [&](int64_t b, int64_t e) {
    thread_local Sampler sampler;
    for (int64_t j = b; j < e; ++j) {
      Pick& k = picks_[left_[static_cast<size_t>(j)]];
      Sequence& seq = *k.seq;
      const std::span<const float> row(left_rows_.data() + static_cast<size_t>(j) * vocab_,
                                       static_cast<size_t>(vocab_));
      const SamplingContext ctx{std::span<const int32_t>(seq.tokens().data(), seq.prompt_len()),
                                &seq.output_counts()};
      seq.rng = k.rng_before;
      k.on_host = sampler.sample(row, seq.params(), ctx, seq.rng);
    }
  });
}

int32_t DevicePicks::device_token(const Pick& k) const {
  const int src = k.pen_row >= 0 ? 1 : 0;
  return k.draw < 0 ? argmax_[src].at(static_cast<size_t>(src ? k.pen_row : k.row))
                    : drawn_[src].at(static_cast<size_t>(k.draw));
}

SampleResult DevicePicks::result(size_t i) const {
  const Pick& k = picks_.at(i);
  SampleResult res;
  if (k.host) {
    res = k.on_host;
  } else {
    res.token = device_token(k);
    if (k.seq->params().logprobs >= 0) {
      const RowLogprobs& lp = lp_.at(i);
      res.logprobs.token_id = res.token;
      res.logprobs.logprob = lp.chosen;
      for (int j = 0; j < lp.n; ++j) res.logprobs.top.emplace_back(lp.top_ids[j], lp.top_values[j]);
    }
  }
  CHECK(res.token >= 0 && res.token < vocab_);
  return res;
}

}  // namespace densekv
