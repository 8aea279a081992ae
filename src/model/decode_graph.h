// Decode steps through captured backend graphs (CUDA graphs; the CLI's default on cuda,
// --enforce-eager turns them off; DENSEKV_CUDA_GRAPHS=1 in LlamaModel's constructor). A decode step
// (every sequence one new token) launches ~10 kernels per layer; replaying them as one graph
// removes the per-launch CPU cost, which dominates small batches.
//
// A graph freezes every kernel argument: pointers, shapes and the host scalars the ops derive
// from them (n_tokens, max_blocks, max_context and with it the attention's split count). So:
//  - the batch is padded to a bucket of sequences (1, 2, 4, ..., max_batch) and the block-table
//    rows to a power-of-two length; max_context becomes that length x block_size. The attention
//    kernels read each token's real context from its position (device memory), so a launch sized
//    for the bucket with splits past a sequence's end is still exact (empty splits are skipped by
//    the combine, as for the shorter sequences of any batch);
//  - padding rows are token 0 at position 0 of a sequence that owns only the cache's scratch
//    block and scratch tail (KvCache::scratch_block), so their K/V writes land where no real
//    sequence reads, and their logits are never returned;
//  - the index arrays are uploaded into a buffer owned by the graph (fixed addresses), and the
//    model's workspace, the KV cache and the backend's scratch buffers must not move: a change of
//    any of them (DecodeGraphContext, Backend::graph_epoch) drops every graph.
// One graph per (batch bucket, block bucket), captured on first use right after an uncaptured run
// of the same padded step (which computes that step and grows every buffer to its size first).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache.h"

namespace densekv {

// The smallest power of two >= n, capped at max_batch (n <= max_batch).
int decode_batch_bucket(int n, int max_batch);
// Block-table row length of a graph: the smallest power of two >= every row's length and
// >= ceil(max_context / block_size) (a quantized format's partly filled block is not in the table).
int decode_blocks_bucket(int max_blocks, int max_context, int block_size);

// Pads a decode-only layout (LlamaModel: one token per sequence, last_only, one round) in place
// to n_bucket sequences and block-table rows of `blocks` entries, max_context = blocks x block
// size. Padding sequence i: token 0, position 0, slot scratch_block x block_size, context 1,
// table [scratch_block, -1, ...], the scratch tail (quantized formats), out row i.
void pad_decode_layout(BatchLayout& lay, int n_bucket, int blocks, const KvCache& cache);

// What every captured graph points into besides its own batch buffer: a graph is valid only
// while all of it stays where it was.
struct DecodeGraphContext {
  std::vector<const void*> kv;  // every layer's main and tail base
  KvFormat format = KvFormat::BF16;
  int block_size = 0;
  uint64_t workspace_generation = 0;  // the model's activation buffers
  bool operator==(const DecodeGraphContext&) const = default;
};
DecodeGraphContext decode_graph_context(const KvCache& cache, uint64_t workspace_generation);

class DecodeGraphs {
 public:
  explicit DecodeGraphs(Backend& backend) : backend_(backend) {}

  // Runs one padded decode step. `queue` queues the forward's ops for a batch view. The first
  // time this (n_tokens, max_blocks) shape is seen in this context, the batch goes into a new
  // buffer and `queue` runs uncaptured (computing this step and growing the backend's scratch),
  // then again under capture; later steps upload into the same buffer and replay the graph.
  // Graphs of another context or backend epoch are dropped first.
  void run(const BatchLayout& padded, const DecodeGraphContext& ctx,
           const std::function<void(const BatchView&)>& queue);

  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }
  size_t size() const { return graphs_.size(); }
  void clear() { graphs_.clear(); }

 private:
  struct Graph {
    Buffer batch;
    BatchView view;
    std::unique_ptr<BackendGraph> graph;
  };
  Backend& backend_;
  DecodeGraphContext ctx_;
  uint64_t epoch_ = 0;                           // backend_.graph_epoch() of every graph in graphs_
  std::map<std::pair<int, int>, Graph> graphs_;  // by (sequences, block-table row length)
  int64_t captures_ = 0, replays_ = 0;
};

}  // namespace densekv
