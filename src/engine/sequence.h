// One request inside the engine: its tokens (prompt + generated), KV blocks, sampling state and
// timings. Owned and touched by the engine thread only.
//
// State machine:
//   Waiting   --admit-->    Running     (KvBlockManager::start: prefix hits become computed)
//   Running   --preempt-->  Preempted   (blocks released; recomputed from scratch on re-admission)
//   Preempted --admit-->    Running
//   any       --finish-->   Finished    (eos / stop token / max_tokens / max_model_len / abort)
//
// tokens = prompt + generated. kv.num_tokens of them have their K/V stored ("computed"); the
// rest are this sequence's next work: a prefill (chunk) or, when only the newest generated token
// is uncomputed, a decode step. A forward that computes up to tokens.size() yields logits from
// which the next token is sampled.
#pragma once
#include <chrono>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/request.h"
#include "engine/sampler.h"
#include "kv/block_manager.h"

namespace densekv {

enum class SeqState { Waiting, Running, Preempted, Finished };
const char* seq_state_name(SeqState s);

class Sequence {
 public:
  using Clock = std::chrono::steady_clock;

  // arrival: admission order; smaller is older (preemption takes the newest first).
  Sequence(GenerationRequest req, uint64_t arrival, uint64_t rng_seed, Clock::time_point now);

  uint64_t id() const { return req_.id; }
  uint64_t arrival() const { return arrival_; }
  const GenerationRequest& request() const { return req_; }
  const SamplingParams& params() const { return req_.params; }
  SeqState state() const { return state_; }
  bool finished() const { return state_ == SeqState::Finished; }
  FinishReason finish_reason() const { return finish_; }

  const std::vector<int32_t>& tokens() const { return tokens_; }
  int num_tokens() const { return static_cast<int>(tokens_.size()); }
  int prompt_len() const { return prompt_len_; }
  int num_generated() const { return num_tokens() - prompt_len_; }
  int num_computed() const { return kv.num_tokens; }
  int num_uncomputed() const { return num_tokens() - kv.num_tokens; }
  std::span<const int32_t> generated() const {
    return std::span<const int32_t>(tokens_).subspan(static_cast<size_t>(prompt_len_));
  }
  const std::unordered_map<int32_t, int>& output_counts() const { return output_counts_; }
  int num_preemptions() const { return num_preemptions_; }

  // Transitions (CHECK-fail when illegal). The scheduler does the KV side.
  void set_running(int prefix_hit_tokens, Clock::time_point now);
  void set_preempted();
  void set_finished(FinishReason reason, Clock::time_point now);

  // Appends a sampled token (and its logprobs when requested); returns the finish reason it
  // causes (None: keep going). max_model_len: the engine's context limit.
  FinishReason append(int32_t token, const TokenLogprobs* logprobs, int max_model_len,
                      Clock::time_point now);

  // The tokens (and logprobs) not yet handed to the client, as one output chunk; marks them
  // sent. The last chunk (finished) also carries the usage and timings.
  RequestOutput take_output();
  bool has_unsent_output() const;

  KvSeqBlocks kv;  // the KV block manager's record of this sequence's blocks
  SamplerRng rng;

 private:
  GenerationRequest req_;
  uint64_t arrival_;
  std::vector<int32_t> tokens_;
  int prompt_len_;
  SeqState state_ = SeqState::Waiting;
  FinishReason finish_ = FinishReason::None;
  std::unordered_map<int32_t, int> output_counts_;  // generated token -> count (penalties)
  std::vector<TokenLogprobs> logprobs_;             // [num_generated] when params.logprobs >= 0
  size_t sent_ = 0;                                 // generated tokens handed out
  bool final_sent_ = false;
  int cached_prompt_tokens_ = -1;  // prefix hits at the first admission
  int num_preemptions_ = 0;
  Clock::time_point arrived_, scheduled_, first_token_, finished_at_;
  bool was_scheduled_ = false;
};

}  // namespace densekv
