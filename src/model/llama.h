// The one forward for Llama-3 / Qwen2.5 / Mistral (differences are config flags: q/k/v bias, tied
// embeddings, rope scaling). Per layer, on [T, hidden] activations of all new tokens:
//   h = rmsnorm(x); qkv = h @ Wqkv^T (+ b); rope(q, k); kv_write(k, v);
//   x += paged_attention(q) @ Wo^T; h = rmsnorm(x); x += swiglu(h @ Wgate_up^T) @ Wdown^T
// then logits = rmsnorm(x) @ lm_head^T. A batch mixes sequences at any stage: a prefill chunk
// (start_pos = tokens already cached) and a decode step (one new token) are the same thing.
// With a quantized KV format, kv_write + paged_attention run in rounds so that each round's
// tokens of a sequence lie in one KV block (BatchLayout::rounds, docs/kv-formats.md); on a backend
// that supports_own_rows, the rounds after the first write their blocks and then attend in one
// call (paged_attention_own_rows). The returned rows are in batch order regardless.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/hf_config.h"
#include "kv/kv_cache.h"
#include "model/decode_graph.h"
#include "model/weights.h"

namespace densekv {

// The new tokens of one sequence in a forward.
struct SeqChunk {
  const int32_t* ids = nullptr;  // [n_ids]
  int n_ids = 0;
  int start_pos = 0;  // tokens of this sequence already in the cache
  // The sequence's blocks (cache.blocks().reserve'd for start_pos + n_ids tokens) and, for a
  // quantized format, its 16-bit tail.
  const KvSeqBlocks* kv = nullptr;
};

class LlamaModel {
 public:
  LlamaModel(Backend& backend, const ModelConfig& cfg, ModelWeights weights);

  // Runs every sequence's new tokens, writing their K/V into `cache`. Returns fp32 logits in
  // backend memory, valid until the next forward: [total new tokens, vocab] in batch order, or
  // with last_only [n_seqs, vocab] (the last new token of each sequence). Token ids outside the
  // vocabulary throw InvalidArgumentError.
  Tensor forward(const std::vector<SeqChunk>& batch, KvCache& cache, bool last_only);

  // Grows the activation buffers for a forward of n_tokens tokens returning n_out rows of logits
  // (forward does it as needed; the engine does it up front so the KV pool is sized after it).
  void reserve_workspace(int64_t n_tokens, int64_t n_out);

  // Decode steps (every sequence one new token, last_only) of up to max_batch sequences through
  // captured backend graphs, padded to batch buckets (model/decode_graph.h). Off unless set
  // (the CLI's load_model sets it on cuda); the constructor turns it on when
  // DENSEKV_CUDA_GRAPHS=1. A backend without graphs (cpu) logs
  // a warning and keeps them off.
  void set_decode_graphs(bool on, int max_batch = kDefaultGraphMaxBatch);
  bool decode_graphs() const { return graphs_ != nullptr; }
  // Captures and replays so far (0 when off).
  int64_t graph_captures() const { return graphs_ ? graphs_->captures() : 0; }
  int64_t graph_replays() const { return graphs_ ? graphs_->replays() : 0; }
  static constexpr int kDefaultGraphMaxBatch = 256;

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return weights_; }
  Backend& backend() { return backend_; }

 private:
  BatchLayout make_layout(const std::vector<SeqChunk>& batch, const KvCache& cache,
                          bool last_only) const;
  // Queues the whole forward of an uploaded batch; returns the logits (R rows).
  Tensor run(const BatchView& bv, const std::vector<int32_t>& rounds, KvCache& cache);
  // forward of a decode-only layout_ through a graph; the logits of its real rows.
  Tensor forward_graph(KvCache& cache);

  Backend& backend_;
  ModelConfig cfg_;
  ModelWeights weights_;
  Buffer inv_freq_buf_;
  Tensor inv_freq_;  // [1, head_dim / 2]

  // Activations, sized for the largest forward so far.
  struct Workspace {
    int64_t tokens = 0, outs = 0;
    Buffer x, h, qkv, attn, gate_up, act, last, logits;
    uint64_t generation = 0;  // bumped whenever a buffer moves (captured graphs point into them)
  } ws_;
  std::unique_ptr<DecodeGraphs> graphs_;
  int graph_max_batch_ = kDefaultGraphMaxBatch;
  BatchLayout layout_;  // kept alive for the BatchView of the current forward
};

// Opens a model folder (config + weights validated, see io/model_dir.h) and loads it onto backend.
std::unique_ptr<LlamaModel> load_llama(Backend& backend, const std::string& model_dir);
// The model of model_dir/config.json (validated) with random weights (weights.h random_weights);
// no safetensors needed (`--load-format dummy`).
std::unique_ptr<LlamaModel> dummy_llama(Backend& backend, const std::string& model_dir,
                                        uint64_t seed = 0);

}  // namespace densekv
