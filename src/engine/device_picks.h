// The tokens of one engine step's sampled rows, picked where the logits are (on a backend that
// samples on the device; greedy rows also on any backend, by Backend::argmax):
//   - rows with penalties first get their penalized copy (Backend::penalize, entries from
//     penalty_entries: the host Sampler's arithmetic);
//   - greedy rows: Backend::argmax of their (penalized) rows;
//   - draws: Backend::sample with each sequence's one RNG draw, taken on the host in add();
//   - rows that ask for logprobs then get them from Backend::logprobs (of the raw logits, for the
//     picked token).
// Only token ids (and logprobs) come to the host, except for draws the device leaves (-1: on
// CUDA only with its draws by selects turned off, a test setting): those rows alone are copied to
// the host and sampled there, with the sequence's RNG where it was before the step, so every
// token (and logprob) is the one Sampler::sample would give, while the step's other rows stay on
// the device.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"
#include "engine/sampler.h"
#include "engine/sequence.h"

namespace densekv {

class DevicePicks {
 public:
  explicit DevicePicks(int vocab) : vocab_(vocab) {}
  // Empties the list for a new step (the scratch stays).
  void clear();
  // Adds sampled row `row` of the step's logits, of `seq`; a drawing row takes the sequence's RNG
  // draw as sample() would.
  void add(int32_t row, Sequence& seq);
  // After the forward: the device's picks from `logits` ([rows, vocab]), their logprobs, and a
  // copy of the rows left to the host. Returns true when there are such rows: then call
  // sample_left_on_host.
  bool pick(Backend& backend, const Tensor& logits);
  void sample_left_on_host(ThreadPool& pool);
  // The token (and logprobs, for a row that asks) of the i-th added row.
  SampleResult result(size_t i) const;

  size_t draws() const { return draws_[0].size() + draws_[1].size(); }
  size_t penalized() const { return pen_rows_.size(); }
  size_t left_to_host() const { return left_.size(); }

 private:
  struct Pick {
    Sequence* seq = nullptr;
    int32_t row = 0;        // of the step's logits
    int32_t pen_row = -1;   // of the penalized rows, or -1 (none: the raw row)
    int32_t draw = -1;      // index into draws_[pen_row >= 0], or -1 (greedy: argmax)
    bool host = false;      // left to the host (a draw the device left)
    SampleResult on_host;   // ... its result
    SamplerRng rng_before;  // the sequence's RNG before add() (for a draw left to the host)
  };
  // The device's token of `k` (after pick), or -1 where the device left the draw.
  int32_t device_token(const Pick& k) const;

  int vocab_;
  std::vector<Pick> picks_;
  std::vector<DeviceDraw> draws_[2];  // [0]: of raw rows, [1]: of penalized rows
  std::vector<int32_t> pen_rows_;     // the logits row of each penalized row
  std::vector<int32_t> pen_begins_{0};
  std::vector<PenaltyEntry> entries_;
  PenaltyIndex index_;
  bool greedy_[2] = {false, false};
  std::vector<int32_t> argmax_[2], drawn_[2];
  std::vector<LogprobsQuery> lp_queries_;
  std::vector<size_t> lp_picks_;  // the pick of each query
  std::vector<RowLogprobs> lp_;   // [picks_]: of the picks that ask for logprobs
  std::vector<size_t> left_;      // picks left to the host
  std::vector<float> left_rows_;  // [left_, vocab] their logits rows
};

}  // namespace densekv
