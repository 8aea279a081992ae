#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/check.h"
#include "core/errors.h"

namespace densekv {

namespace {

// Below this temperature sampling is greedy (vLLM's _SAMPLING_EPS).
constexpr float kGreedyTemperature = 1e-5f;
constexpr int kMaxLogprobs = kMaxTopLogprobs;

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

void require(bool ok, const std::string& message) {
  if (!ok) throw InvalidArgumentError(message);
}

// Most likely first; equal values by id, so the order never depends on anything but the values.
struct ByValueThenId {
  const float* v;
  bool operator()(int32_t a, int32_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

}  // namespace

void validate_sampling_params(const SamplingParams& p, int vocab_size) {
  // Written as !(in range) so that NaN fails too.
  require(p.temperature >= 0.0f && std::isfinite(p.temperature),
          "temperature must be >= 0 (got " + num(p.temperature) + ")");
  require(p.top_p > 0.0f && p.top_p <= 1.0f, "top_p must be in (0, 1] (got " + num(p.top_p) + ")");
  require(p.top_k >= -1,
          "top_k must be -1 or 0 (off) or >= 1 (got " + std::to_string(p.top_k) + ")");
  require(p.min_p >= 0.0f && p.min_p <= 1.0f, "min_p must be in [0, 1] (got " + num(p.min_p) + ")");
  require(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f,
          "presence_penalty must be in [-2, 2] (got " + num(p.presence_penalty) + ")");
  require(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f,
          "frequency_penalty must be in [-2, 2] (got " + num(p.frequency_penalty) + ")");
  require(p.repetition_penalty > 0.0f && std::isfinite(p.repetition_penalty),
          "repetition_penalty must be > 0 (got " + num(p.repetition_penalty) + ")");
  require(p.max_tokens >= 1, "max_tokens must be >= 1 (got " + std::to_string(p.max_tokens) + ")");
  require(p.logprobs >= -1 && p.logprobs <= kMaxLogprobs,
          "logprobs must be in [0, " + std::to_string(kMaxLogprobs) + "] (got " +
              std::to_string(p.logprobs) + ")");
  for (const std::string& s : p.stop) require(!s.empty(), "stop strings must not be empty");
  if (vocab_size > 0) {
    for (int32_t id : p.stop_token_ids) {
      require(id >= 0 && id < vocab_size, "stop_token_ids: " + std::to_string(id) +
                                              " is outside the vocabulary [0, " +
                                              std::to_string(vocab_size) + ")");
    }
  }
}

uint64_t SamplerRng::next_u64() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double SamplerRng::next_double() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

bool has_penalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
}

bool is_greedy(const SamplingParams& p) {
  return p.temperature < kGreedyTemperature || p.top_k == 1;
}

bool greedy_without_logits(const SamplingParams& p) {
  return is_greedy(p) && !has_penalties(p) && p.logprobs < 0;
}

DeviceDraw device_draw(const SamplingParams& p, int32_t row, SamplerRng& rng) {
  CHECK(!is_greedy(p));
  DeviceDraw d;
  d.row = row;
  d.temperature = p.temperature;
  d.top_k = p.top_k;
  d.top_p = p.top_p;
  d.min_p = p.min_p;
  d.u = rng.next_double();  // draw()'s one draw
  return d;
}

void greedy_rng_draw(const SamplingParams& p, SamplerRng& rng) {
  // Sampling (temperature > 0) takes one draw per token, top_k 1 included: keep the stream.
  if (p.temperature >= kGreedyTemperature) rng.next_double();
}

TokenLogprobs token_logprobs(std::span<const float> logits, int32_t chosen, int top_n) {
  const int vocab = static_cast<int>(logits.size());
  CHECK(chosen >= 0 && chosen < vocab);
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  const double log_z = mx + std::log(sum);
  TokenLogprobs out;
  out.token_id = chosen;
  out.logprob = static_cast<float>(logits[chosen] - log_z);
  const int n = std::min(top_n, vocab);
  if (n > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(vocab));
    for (int i = 0; i < vocab; ++i) ids[i] = i;
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), ByValueThenId{logits.data()});
    for (int i = 0; i < n; ++i) {
      out.top.emplace_back(ids[i], static_cast<float>(logits[ids[i]] - log_z));
    }
  }
  return out;
}

void penalty_entries(const SamplingParams& p, const SamplingContext& ctx, int vocab,
                     std::vector<PenaltyEntry>& out, PenaltyIndex& index) {
  const auto* counts = ctx.output_counts;
  const bool repetition = p.repetition_penalty != 1.0f;
  const bool subtract = counts && (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f);
  if (!repetition && !subtract) return;
  if (index.slot.size() < static_cast<size_t>(vocab)) index.slot.assign(vocab, 0);
  const size_t first = out.size();
  auto entry = [&](int32_t t) -> PenaltyEntry& {
    int32_t& s = index.slot[t];
    if (s == 0) {
      out.push_back(PenaltyEntry{t, 1.0f, 0.0f, 0.0f});
      s = static_cast<int32_t>(out.size() - first);
    }
    return out[first + static_cast<size_t>(s) - 1];
  };
  if (repetition) {
    for (int32_t t : ctx.prompt) {
      if (t >= 0 && t < vocab) entry(t).repetition = p.repetition_penalty;
    }
    if (counts) {
      for (const auto& [t, c] : *counts) {
        if (t >= 0 && t < vocab) entry(t).repetition = p.repetition_penalty;
      }
    }
  }
  if (subtract) {
    for (const auto& [t, c] : *counts) {
      if (t < 0 || t >= vocab || c <= 0) continue;
      PenaltyEntry& e = entry(t);
      e.frequency = p.frequency_penalty * static_cast<float>(c);
      e.presence = p.presence_penalty;
    }
  }
  for (size_t i = first; i < out.size(); ++i) index.slot[out[i].id] = 0;
}

void Sampler::apply_penalties(const SamplingParams& p, const SamplingContext& ctx) {
  penalties_.clear();
  penalty_entries(p, ctx, static_cast<int>(work_.size()), penalties_, penalty_index_);
  for (const PenaltyEntry& e : penalties_) work_[e.id] = apply_penalty(work_[e.id], e);
}

int32_t Sampler::draw(const SamplingParams& p, SamplerRng& rng) {
  const int vocab = static_cast<int>(work_.size());
  const float inv_t = 1.0f / p.temperature;
  for (float& l : work_) l *= inv_t;
  // Unnormalized probabilities of every id, exp(l - max): the largest is 1.
  const float mx = *std::max_element(work_.begin(), work_.end());
  weights_.resize(work_.size());
  for (size_t i = 0; i < work_.size(); ++i) weights_[i] = std::exp(work_[i] - mx);
  auto weight = [&](int32_t id) { return static_cast<double>(weights_[id]); };
  const bool use_top_k = p.top_k > 0 && p.top_k < vocab;
  const bool use_top_p = p.top_p < 1.0f;
  const bool use_min_p = p.min_p > 0.0f;
  const ByValueThenId cmp{work_.data()};

  // Candidates: every id in id order when nothing is filtered; else the most likely first, as
  // many as the filters can keep (a growing sorted prefix, not a sort of the whole vocabulary).
  ids_.resize(static_cast<size_t>(vocab));
  for (int i = 0; i < vocab; ++i) ids_[i] = i;
  double total = 0;  // the top_p mass is relative to every candidate
  if (use_top_k) {
    std::partial_sort(ids_.begin(), ids_.begin() + p.top_k, ids_.end(), cmp);
    ids_.resize(static_cast<size_t>(p.top_k));
  }
  for (int32_t id : ids_) total += weight(id);
  if (!use_top_k && (use_top_p || use_min_p)) {
    size_t k = std::min<size_t>(64, ids_.size());
    for (;;) {
      std::partial_sort(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(k), ids_.end(),
                        cmp);
      if (k == ids_.size()) break;
      bool enough = true;
      if (use_top_p) {
        double cum = 0;
        for (size_t i = 0; i < k; ++i) cum += weight(ids_[i]);
        enough = cum >= p.top_p * total;
      }
      if (use_min_p) enough = enough && weight(ids_[k - 1]) < p.min_p;  // the largest weight is 1
      if (enough) break;
      k = std::min(ids_.size(), k * 4);
    }
    ids_.resize(k);
  }
  probs_.resize(ids_.size());
  for (size_t i = 0; i < ids_.size(); ++i) probs_[i] = weight(ids_[i]);
  size_t keep = ids_.size();
  if (use_top_p) {
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) {
      cum += probs_[i];
      if (cum >= p.top_p * total) {
        keep = i + 1;
        break;
      }
    }
  }
  if (use_min_p) {
    const double floor = p.min_p * probs_[0];  // probs_[0] is the largest (sorted)
    size_t k = 1;
    while (k < keep && probs_[k] >= floor) ++k;
    keep = k;
  }
  double mass = 0;
  for (size_t i = 0; i < keep; ++i) mass += probs_[i];
  double r = rng.next_double() * mass;
  for (size_t i = 0; i < keep; ++i) {
    r -= probs_[i];
    if (r < 0) return ids_[i];
  }
  // Rounding left r >= 0 after the last candidate: take the last one with mass.
  for (size_t i = keep; i-- > 0;) {
    if (probs_[i] > 0) return ids_[i];
  }
  return ids_[0];
}

SampleResult Sampler::sample(std::span<const float> logits, const SamplingParams& params,
                             const SamplingContext& ctx, SamplerRng& rng) {
  CHECK(!logits.empty());
  work_.assign(logits.begin(), logits.end());
  apply_penalties(params, ctx);
  SampleResult res;
  if (is_greedy(params)) {
    // top_k 1 is the argmax of the logits themselves, not of logits / temperature (rounding
    // could merge the top two), so it matches greedy_without_logits' device argmax exactly.
    res.token = static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
    greedy_rng_draw(params, rng);
  } else {
    res.token = draw(params, rng);
  }
  if (params.logprobs >= 0) res.logprobs = token_logprobs(logits, res.token, params.logprobs);
  return res;
}

}  // namespace densekv
