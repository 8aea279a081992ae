// Decides what the next forward computes: continuous batching with chunked prefill, admission by
// free KV blocks, prefix-cache hits and preemption by recompute. Engine thread only.
//
// One step (schedule()):
//   1. Running sequences, oldest first, each take min(uncomputed tokens, budget left) tokens: one
//      for a decode, a chunk for a prefill. When the KV pool cannot hold them, the newest running
//      sequence is preempted (blocks released, back to the front of the waiting queue, recomputed
//      later) until it can; a sequence that is itself the newest preempts itself.
//   2. Unless step 1 preempted, waiting sequences (preempted ones first, then by arrival) are
//      admitted while there are fewer than max_num_seqs running and budget is left: the KV block
//      manager's start() turns cached prefix blocks into computed tokens (their prefill is
//      skipped), then the first chunk of the rest must fit in the pool, else admission stops.
// The budget is max_num_batched_tokens tokens per step. After the forward the engine calls
// commit() for every scheduled chunk.
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

#include "engine/sequence.h"
#include "kv/block_manager.h"

namespace densekv {

struct SchedulerConfig {
  int max_num_seqs = 256;
  int max_num_batched_tokens = 2048;
};

// Tokens [start, start + n) of seq's tokens are computed by this step's forward.
struct ScheduledChunk {
  Sequence* seq = nullptr;
  int start = 0;
  int n = 0;
  // The chunk reaches the end of the sequence's tokens: its last logits give the next token.
  bool samples() const { return start + n == seq->num_tokens(); }
};

struct SchedulerOutput {
  std::vector<ScheduledChunk> chunks;  // running sequences first (oldest first), then admitted
  int num_tokens = 0;
  int num_preempted = 0;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, KvBlockManager& kv);

  // A new sequence (state Waiting) joins the back of the waiting queue.
  void add(Sequence* seq);
  SchedulerOutput schedule(Sequence::Clock::time_point now);
  // The forward computed the chunk: records it in the KV block manager (publishes full blocks).
  void commit(const ScheduledChunk& c);
  // Takes seq out of the queues and releases its blocks; the caller sets it Finished.
  void remove(Sequence* seq);

  const std::vector<Sequence*>& running() const { return running_; }
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  bool idle() const { return running_.empty() && waiting_.empty(); }
  int64_t num_preemptions() const { return preemptions_; }
  const SchedulerConfig& config() const { return cfg_; }

 private:
  void preempt(Sequence* seq);
  void insert_running(Sequence* seq);

  SchedulerConfig cfg_;
  KvBlockManager& kv_;
  std::vector<Sequence*> running_;  // by arrival, oldest first
  std::deque<Sequence*> waiting_;   // preempted first (newest-preempted at the front)
  int64_t preemptions_ = 0;
};

}  // namespace densekv
