#include "model/decode_graph.h"

#include <algorithm>

#include "core/check.h"

namespace densekv {

int decode_batch_bucket(int n, int max_batch) {
  CHECK(n >= 1 && n <= max_batch);
  int b = 1;
  while (b < n) b *= 2;
  return std::min(b, max_batch);
}

int decode_blocks_bucket(int max_blocks, int max_context, int block_size) {
  CHECK(block_size > 0 && max_blocks >= 0 && max_context >= 0);
  const int need = std::max(max_blocks, (max_context + block_size - 1) / block_size);
  int b = 1;
  while (b < need) b *= 2;
  return b;
}

void pad_decode_layout(BatchLayout& lay, int n_bucket, int blocks, const KvCache& cache) {
  const int n = static_cast<int>(lay.context_lens.size());
  const int bs = cache.block_size();
  CHECK(n >= 1 && n <= n_bucket);
  CHECK_MSG(
      static_cast<int>(lay.token_ids.size()) == n && static_cast<int>(lay.out_rows.size()) == n,
      "pad_decode_layout: not a decode-only layout (one token and one output per sequence)");
  CHECK(blocks >= lay.max_blocks && static_cast<int64_t>(blocks) * bs >= lay.max_context);
  // Block-table rows of `blocks` entries.
  std::vector<int32_t> tables(static_cast<size_t>(n_bucket) * blocks, -1);
  for (int s = 0; s < n; ++s) {
    std::copy_n(lay.block_tables.begin() + static_cast<int64_t>(s) * lay.max_blocks, lay.max_blocks,
                tables.begin() + static_cast<int64_t>(s) * blocks);
  }
  for (int s = n; s < n_bucket; ++s) {
    tables[static_cast<size_t>(s) * blocks] = cache.scratch_block();
    lay.token_ids.push_back(0);
    lay.positions.push_back(0);
    lay.slots.push_back(cache.scratch_block() * bs);
    lay.seq_of_token.push_back(s);
    lay.context_lens.push_back(1);
    lay.tails.push_back(cache.scratch_tail());
    lay.out_rows.push_back(s);
  }
  lay.block_tables = std::move(tables);
  lay.max_blocks = blocks;
  lay.max_context = blocks * bs;
  lay.rounds = {0, n_bucket};
}

DecodeGraphContext decode_graph_context(const KvCache& cache, uint64_t workspace_generation) {
  DecodeGraphContext c;
  for (int l = 0; l < cache.config().num_layers; ++l) {
    const KvLayerView v = cache.layer(l);
    c.kv.push_back(v.base);
    c.kv.push_back(v.tail_base);
  }
  c.format = cache.config().format;
  c.block_size = cache.block_size();
  c.workspace_generation = workspace_generation;
  return c;
}

void DecodeGraphs::run(const BatchLayout& padded, const DecodeGraphContext& ctx,
                       const std::function<void(const BatchView&)>& queue) {
  if (!(ctx == ctx_) || backend_.graph_epoch() != epoch_) {
    graphs_.clear();
    ctx_ = ctx;
    epoch_ = backend_.graph_epoch();
  }
  const std::pair<int, int> key(static_cast<int>(padded.token_ids.size()), padded.max_blocks);
  auto it = graphs_.find(key);
  if (it != graphs_.end()) {
    Graph& g = it->second;
    const BatchView v = backend_.upload_batch_into(padded, g.batch.data());
    CHECK_MSG(v.token_ids == g.view.token_ids && v.tails == g.view.tails &&
                  v.n_tokens == g.view.n_tokens && v.max_blocks == g.view.max_blocks,
              "decode graph: the batch moved");
    backend_.replay(*g.graph);
    ++replays_;
    return;
  }
  Graph g;
  g.batch = Buffer(backend_, batch_packing(padded).bytes());
  g.view = backend_.upload_batch_into(padded, g.batch.data());
  queue(g.view);  // this step's results; grows scratch buffers to this shape
  if (backend_.graph_epoch() != epoch_) {
    // The uncaptured run moved scratch memory the other graphs point into.
    graphs_.clear();
    epoch_ = backend_.graph_epoch();
  }
  backend_.begin_capture();
  try {
    queue(g.view);
  } catch (...) {
    backend_.end_capture();
    throw;
  }
  g.graph = backend_.end_capture();
  CHECK_MSG(backend_.graph_epoch() == epoch_, "decode graph: scratch memory moved while capturing");
  ++captures_;
  graphs_.emplace(key, std::move(g));
}

}  // namespace densekv
