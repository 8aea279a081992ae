// The Engine (engine.h) over a LlamaModel: one engine thread runs the step loop
//   take new requests and cancels from the inbox -> Scheduler::schedule -> LlamaModel::forward
//   (decode tokens and prefill chunks of every scheduled sequence in one batch) -> commit the
//   stored K/V -> sample the sequences whose chunk reached their end -> stop checks -> push
//   output chunks to the request streams -> finish / free
// and sleeps when it has no work. See docs/engine.md for who owns what.
#pragma once
#include <memory>

#include "engine/engine.h"
#include "model/llama.h"

namespace densekv {

// The model (and its backend) must outlive the engine; from now on only the engine thread uses
// them. Throws InvalidArgumentError for a bad config (unknown KV format, a pool that cannot hold
// one sequence of max_model_len tokens, ...).
std::unique_ptr<Engine> make_llm_engine(LlamaModel& model, const EngineConfig& cfg);

}  // namespace densekv
