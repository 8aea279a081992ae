#include "engine/scheduler.h"

#include <algorithm>

#include "core/check.h"
#include "core/errors.h"

namespace densekv {

Scheduler::Scheduler(const SchedulerConfig& cfg, KvBlockManager& kv) : cfg_(cfg), kv_(kv) {
  if (cfg.max_num_seqs < 1) throw InvalidArgumentError("max_num_seqs must be >= 1");
  if (cfg.max_num_batched_tokens < 1) {
    throw InvalidArgumentError("max_num_batched_tokens must be >= 1");
  }
}

void Scheduler::add(Sequence* seq) {
  CHECK(seq->state() == SeqState::Waiting && !seq->kv.started);
  waiting_.push_back(seq);
}

void Scheduler::insert_running(Sequence* seq) {
  auto it = std::lower_bound(
      running_.begin(), running_.end(), seq,
      [](const Sequence* a, const Sequence* b) { return a->arrival() < b->arrival(); });
  running_.insert(it, seq);
}

void Scheduler::preempt(Sequence* seq) {
  auto it = std::find(running_.begin(), running_.end(), seq);
  CHECK(it != running_.end());
  running_.erase(it);
  kv_.release(seq->kv);
  seq->set_preempted();
  waiting_.push_front(seq);
  ++preemptions_;
}

SchedulerOutput Scheduler::schedule(Sequence::Clock::time_point now) {
  SchedulerOutput out;
  int budget = cfg_.max_num_batched_tokens;

  // 1. Running sequences, oldest first; preempt the newest while the pool is short.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* s = running_[i];
    CHECK(s->num_uncomputed() > 0);
    const int n = std::min(s->num_uncomputed(), budget);
    bool ok = kv_.reserve(s->kv, s->num_computed() + n);
    while (!ok) {
      Sequence* victim = running_.back();
      preempt(victim);
      ++out.num_preempted;
      if (victim == s) break;
      ok = kv_.reserve(s->kv, s->num_computed() + n);
    }
    if (!ok) break;  // s was the newest and preempted itself
    out.chunks.push_back({s, s->num_computed(), n});
    out.num_tokens += n;
    budget -= n;
    ++i;
  }

  // 2. Admission, unless this step had to preempt (the pool is full).
  while (out.num_preempted == 0 && !waiting_.empty() && budget > 0 &&
         static_cast<int>(running_.size()) < cfg_.max_num_seqs) {
    Sequence* s = waiting_.front();
    const int hits = kv_.start(s->kv, s->tokens());
    if (hits < 0) break;  // no free tail block
    const int n = std::min(s->num_tokens() - hits, budget);
    CHECK(n > 0);
    if (!kv_.reserve(s->kv, hits + n)) {
      kv_.release(s->kv);
      break;
    }
    waiting_.pop_front();
    s->set_running(hits, now);
    insert_running(s);
    out.chunks.push_back({s, hits, n});
    out.num_tokens += n;
    budget -= n;
  }
  return out;
}

void Scheduler::commit(const ScheduledChunk& c) {
  CHECK(c.seq->state() == SeqState::Running && c.start == c.seq->num_computed());
  kv_.commit(c.seq->kv, c.seq->tokens(), c.start + c.n);
}

void Scheduler::remove(Sequence* seq) {
  if (auto it = std::find(running_.begin(), running_.end(), seq); it != running_.end()) {
    running_.erase(it);
  } else if (auto w = std::find(waiting_.begin(), waiting_.end(), seq); w != waiting_.end()) {
    waiting_.erase(w);
  }
  if (seq->kv.started) kv_.release(seq->kv);
}

}  // namespace densekv
