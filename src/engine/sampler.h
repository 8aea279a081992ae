// Picks the next token of one sequence from its fp32 logits row, as vLLM's sampler does:
//   1. penalties on a copy of the logits: repetition (prompt and output tokens: positive logits
//      divided by it, negative ones multiplied), frequency (minus penalty x count in the output)
//      and presence (minus penalty once for any token in the output), subtracted one after the
//      other in fp32 (apply_penalty, backend.h: the device applies the same entries);
//   2. greedy (temperature 0, or top_k 1 at any temperature): argmax of the penalized logits
//      (first on ties; top_k 1 still takes its one RNG draw); else logits / temperature, softmax,
//      then top_k, top_p (the smallest set of most likely tokens whose mass reaches top_p) and
//      min_p (drop tokens below min_p x the largest probability), and one draw from the sequence's
//      own RNG.
// Logprobs are those of the raw model logits (before penalties and temperature), as vLLM's
// default ("raw_logprobs"): the chosen token plus the top n.
//
// Reproducibility: every sequence owns its RNG (seeded from SamplingParams::seed, else from a
// random seed at submit) and takes exactly one draw per sampled token, and candidates are
// ordered by (probability, id), so a seeded request gives the same tokens whatever else runs
// in the same batch.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "engine/request.h"

namespace densekv {

// Throws InvalidArgumentError whose message starts with the parameter's name, e.g.
// "temperature must be >= 0 (got -1)". vocab_size > 0 also checks stop_token_ids.
void validate_sampling_params(const SamplingParams& p, int vocab_size = 0);

// splitmix64: a small, fully specified generator (the same stream on every platform).
class SamplerRng {
 public:
  explicit SamplerRng(uint64_t seed = 0) : state_(seed) {}
  uint64_t next_u64();
  double next_double();  // [0, 1), 53 random bits
 private:
  uint64_t state_;
};

// What sampling needs to know about a sequence's tokens besides the logits.
struct SamplingContext {
  std::span<const int32_t> prompt;                        // for the repetition penalty
  const std::unordered_map<int32_t, int>* output_counts;  // generated token -> count
};

bool has_penalties(const SamplingParams& p);

// Scratch for penalty_entries: [vocab] position + 1 of an id's entry, 0 for none (left zeroed).
struct PenaltyIndex {
  std::vector<int32_t> slot;
};

// Appends one entry per id whose logit sample()'s penalties change (prompt and output ids for
// repetition, output ids with their counts for frequency and presence), in first-seen order.
// apply_penalty of each entry is exactly what sample() does to that id.
void penalty_entries(const SamplingParams& p, const SamplingContext& ctx, int vocab,
                     std::vector<PenaltyEntry>& out, PenaltyIndex& index);

struct SampleResult {
  int32_t token = 0;
  TokenLogprobs logprobs;  // filled when params.logprobs >= 0
};

// logits: [vocab] fp32 (not modified). Uses scratch space owned by the Sampler, so one Sampler
// per thread (the engine thread has one).
class Sampler {
 public:
  SampleResult sample(std::span<const float> logits, const SamplingParams& params,
                      const SamplingContext& ctx, SamplerRng& rng);

 private:
  void apply_penalties(const SamplingParams& p, const SamplingContext& ctx);
  int32_t draw(const SamplingParams& p, SamplerRng& rng);

  std::vector<float> work_;              // [vocab] penalized logits
  std::vector<float> weights_;           // [vocab] exp(logit / temperature - max)
  std::vector<int32_t> ids_;             // candidate ids, most likely first
  std::vector<double> probs_;            // [candidates]
  std::vector<PenaltyEntry> penalties_;  // penalty_entries of the row
  PenaltyIndex penalty_index_;
};

// True when sample() returns the argmax of the raw logits (first index on ties) and needs
// nothing else from them: greedy (temperature 0 or top_k 1), no penalties (repetition 1,
// frequency and presence 0), no logprobs. The engine then takes the token from the backend's
// argmax instead of copying the row to the host (Backend::argmax picks the first index on ties
// too); greedy_rng_draw keeps the sequence's RNG where sample() would leave it.
bool greedy_without_logits(const SamplingParams& p);
void greedy_rng_draw(const SamplingParams& p, SamplerRng& rng);

// Greedy (temperature 0, or top_k 1): sample() takes the argmax of the penalized logits.
bool is_greedy(const SamplingParams& p);
// The device draw of (penalized, where has_penalties) logits row `row` for a sequence that is not
// greedy: takes the RNG draw sample() would.
DeviceDraw device_draw(const SamplingParams& p, int32_t row, SamplerRng& rng);

// log_softmax of raw logits: the chosen token's logprob and the top n (best first, ties by id).
TokenLogprobs token_logprobs(std::span<const float> logits, int32_t chosen, int top_n);

}  // namespace densekv
