#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/check.h"
#include "core/errors.h"
#include "core/log.h"
#include "io/model_dir.h"
#include "model/rope.h"

namespace densekv {

LlamaModel::LlamaModel(Backend& backend, const ModelConfig& cfg, ModelWeights weights)
    : backend_(backend), cfg_(cfg), weights_(std::move(weights)) {
  std::vector<float> inv = rope_inv_freq(cfg.rope, cfg.head_dim);
  inv_freq_buf_ = Buffer(backend_, inv.size() * sizeof(float));
  backend_.upload(inv_freq_buf_.data(), DType::F32, inv.data(), DType::F32, inv.size());
  inv_freq_ = make_tensor(inv_freq_buf_.data(), DType::F32, 1, static_cast<int64_t>(inv.size()));
  const char* graphs = std::getenv("DENSEKV_CUDA_GRAPHS");
  if (graphs != nullptr && std::strcmp(graphs, "1") == 0) set_decode_graphs(true);
}

void LlamaModel::set_decode_graphs(bool on, int max_batch) {
  if (max_batch < 1) throw InvalidArgumentError("the graph batch limit must be >= 1");
  graph_max_batch_ = max_batch;
  if (!on) {
    graphs_.reset();
    return;
  }
  if (!backend_.supports_graphs()) {
    spdlog::warn("graphs: the {} backend cannot capture graphs; decode steps run without them",
                 backend_.name());
    return;
  }
  if (!graphs_) graphs_ = std::make_unique<DecodeGraphs>(backend_);
  spdlog::info("graphs: decode steps of up to {} sequences run as captured graphs", max_batch);
}

BatchLayout LlamaModel::make_layout(const std::vector<SeqChunk>& batch, const KvCache& cache,
                                    bool last_only) const {
  const int bs = cache.block_size();
  BatchLayout lay;
  for (const SeqChunk& s : batch) {
    CHECK(s.n_ids > 0 && s.start_pos >= 0 && s.kv != nullptr);
    const int ctx = s.start_pos + s.n_ids;
    CHECK_MSG(static_cast<int>(s.kv->blocks.size()) >= cache.blocks().blocks_for(ctx),
              "block table too short for the sequence");
    CHECK_MSG(!cache.quantized() || s.kv->tail >= 0, "a quantized KV cache needs a tail");
    lay.max_blocks = std::max(lay.max_blocks, static_cast<int>(s.kv->blocks.size()));
    lay.max_context = std::max(lay.max_context, ctx);
  }
  // Token order: plain formats keep the batch order (one round). Quantized formats order the
  // tokens by round: round r holds the r-th block segment of every sequence's chunk (its tokens
  // inside one block), so each round's tokens find their own block's rows in the 16-bit tail.
  int n_rounds = 1;
  std::vector<int> first_row(batch.size() + 1, 0);  // batch-order row of each sequence's start
  for (size_t si = 0; si < batch.size(); ++si) {
    const SeqChunk& s = batch[si];
    if (cache.quantized()) {
      n_rounds = std::max(n_rounds, (s.start_pos + s.n_ids - 1) / bs - s.start_pos / bs + 1);
    }
    first_row[si + 1] = first_row[si] + s.n_ids;
  }
  std::vector<int32_t> new_row(static_cast<size_t>(first_row.back()));  // batch row -> our row
  for (int r = 0; r < n_rounds; ++r) {
    lay.rounds.push_back(static_cast<int32_t>(lay.token_ids.size()));
    for (size_t si = 0; si < batch.size(); ++si) {
      const SeqChunk& s = batch[si];
      const int end = s.start_pos + s.n_ids;
      int p0 = s.start_pos, p1 = end;
      if (cache.quantized()) {
        p0 = std::max(s.start_pos, (s.start_pos / bs + r) * bs);
        p1 = std::min(end, (s.start_pos / bs + r + 1) * bs);
      } else if (r > 0) {
        p1 = p0;
      }
      for (int pos = p0; pos < p1; ++pos) {
        const int32_t id = s.ids[pos - s.start_pos];
        if (id < 0 || id >= cfg_.vocab_size) {
          throw InvalidArgumentError("token id " + std::to_string(id) +
                                     " is outside the vocabulary [0, " +
                                     std::to_string(cfg_.vocab_size) + ")");
        }
        new_row[first_row[si] + pos - s.start_pos] = static_cast<int32_t>(lay.token_ids.size());
        lay.token_ids.push_back(id);
        lay.positions.push_back(pos);
        // A quantized format's partly filled last block is only in the tail: no block yet.
        const bool held = pos / bs < static_cast<int>(s.kv->blocks.size());
        lay.slots.push_back(held ? s.kv->blocks[pos / bs] * bs + pos % bs : -1);
        lay.seq_of_token.push_back(static_cast<int32_t>(si));
      }
    }
  }
  lay.rounds.push_back(static_cast<int32_t>(lay.token_ids.size()));
  for (size_t si = 0; si < batch.size(); ++si) {
    const SeqChunk& s = batch[si];
    const std::vector<int32_t>& table = s.kv->blocks;
    if (last_only) lay.out_rows.push_back(new_row[first_row[si + 1] - 1]);
    lay.context_lens.push_back(s.start_pos + s.n_ids);
    lay.block_tables.insert(lay.block_tables.end(), table.begin(), table.end());
    lay.block_tables.resize(lay.block_tables.size() + (lay.max_blocks - table.size()), -1);
    lay.tails.push_back(cache.quantized() ? s.kv->tail : -1);
  }
  // All rows in batch order, when the rounds reordered them.
  if (!last_only && n_rounds > 1) lay.out_rows = new_row;
  return lay;
}

void LlamaModel::reserve_workspace(int64_t n_tokens, int64_t n_out) {
  const size_t es = dtype_size(backend_.activation_dtype());
  auto grow = [&](Buffer& b, int64_t rows, int64_t cols, size_t elem = 0) {
    size_t bytes = static_cast<size_t>(rows * cols) * (elem ? elem : es);
    if (b.size() < bytes) {
      b = Buffer(backend_, bytes);
      ++ws_.generation;
    }
  };
  const int64_t qkv_dim = int64_t(cfg_.num_heads + 2 * cfg_.num_kv_heads) * cfg_.head_dim;
  if (n_tokens > ws_.tokens) {
    grow(ws_.x, n_tokens, cfg_.hidden_size);
    grow(ws_.h, n_tokens, cfg_.hidden_size);
    grow(ws_.qkv, n_tokens, qkv_dim);
    grow(ws_.attn, n_tokens, int64_t(cfg_.num_heads) * cfg_.head_dim);
    grow(ws_.gate_up, n_tokens, 2 * int64_t(cfg_.intermediate_size));
    grow(ws_.act, n_tokens, cfg_.intermediate_size);
    ws_.tokens = n_tokens;
  }
  if (n_out > ws_.outs) {
    grow(ws_.last, n_out, cfg_.hidden_size);
    grow(ws_.logits, n_out, cfg_.vocab_size, sizeof(float));
    ws_.outs = n_out;
  }
}

Tensor LlamaModel::forward(const std::vector<SeqChunk>& batch, KvCache& cache, bool last_only) {
  CHECK(!batch.empty());
  CHECK(cache.config().num_layers == cfg_.num_layers && cache.config().head_dim == cfg_.head_dim &&
        cache.config().n_kv_heads == cfg_.num_kv_heads);
  layout_ = make_layout(batch, cache, last_only);
  const bool decode =
      std::all_of(batch.begin(), batch.end(), [](const SeqChunk& c) { return c.n_ids == 1; });
  if (graphs_ && last_only && decode && static_cast<int>(batch.size()) <= graph_max_batch_) {
    return forward_graph(cache);
  }
  const BatchView bv = backend_.upload_batch(layout_);
  reserve_workspace(bv.n_tokens, bv.n_out > 0 ? bv.n_out : bv.n_tokens);
  return run(bv, layout_.rounds, cache);
}

Tensor LlamaModel::forward_graph(KvCache& cache) {
  const int n = static_cast<int>(layout_.context_lens.size());
  const int nb = decode_batch_bucket(n, graph_max_batch_);
  const int blocks =
      decode_blocks_bucket(layout_.max_blocks, layout_.max_context, cache.block_size());
  pad_decode_layout(layout_, nb, blocks, cache);
  reserve_workspace(nb, nb);
  graphs_->run(layout_, decode_graph_context(cache, ws_.generation),
               [&](const BatchView& bv) { run(bv, layout_.rounds, cache); });
  return make_tensor(ws_.logits.data(), DType::F32, n, cfg_.vocab_size);
}

Tensor LlamaModel::run(const BatchView& bv, const std::vector<int32_t>& rounds, KvCache& cache) {
  const int64_t T = bv.n_tokens;
  const bool gather = bv.n_out > 0;  // last rows only, or the rows back in batch order
  const int64_t R = gather ? bv.n_out : T;
  CHECK(ws_.tokens >= T && ws_.outs >= R);

  const DType at = backend_.activation_dtype();
  const int64_t hidden = cfg_.hidden_size, hd = cfg_.head_dim;
  const int64_t q_dim = cfg_.num_heads * hd, kv_dim = cfg_.num_kv_heads * hd;
  const int64_t inter = cfg_.intermediate_size;
  Tensor x = make_tensor(ws_.x.data(), at, T, hidden);
  Tensor h = make_tensor(ws_.h.data(), at, T, hidden);
  Tensor qkv = make_tensor(ws_.qkv.data(), at, T, q_dim + 2 * kv_dim);
  Tensor q = qkv.slice_cols(0, q_dim);
  Tensor k = qkv.slice_cols(q_dim, kv_dim);
  Tensor v = qkv.slice_cols(q_dim + kv_dim, kv_dim);
  Tensor attn = make_tensor(ws_.attn.data(), at, T, q_dim);
  Tensor gate_up = make_tensor(ws_.gate_up.data(), at, T, 2 * inter);
  Tensor act = make_tensor(ws_.act.data(), at, T, inter);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  backend_.gather_rows(weights_.embed, bv.token_ids, x);
  const bool own_rows = rounds.size() > 3 && backend_.supports_own_rows(cache.layer(0));
  for (int l = 0; l < cfg_.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    const KvLayerView kv = cache.layer(l);
    backend_.rmsnorm(x, w.attn_norm, cfg_.rms_norm_eps, h);
    backend_.matmul(h, w.qkv, w.qkv_bias, qkv);
    backend_.rope(qkv.slice_cols(0, q_dim + kv_dim), static_cast<int>(hd), bv.positions,
                  inv_freq_);  // q and k heads are adjacent columns
    // Rounds (one KV block of each sequence at a time): each round's writes, then its attention.
    // Where the backend reads a token's 16-bit rows from the call (supports_own_rows), the rounds
    // after the first (blocks that begin in this chunk) are written in one call and attended in
    // one call.
    const size_t n_rounds = rounds.size() - 1;
    const size_t alone = own_rows ? 1 : n_rounds;
    for (size_t r = 0; r < alone; ++r) {
      const int r0 = rounds[r], n = rounds[r + 1] - r0;
      const BatchView rv = bv.tokens(r0, n);
      backend_.kv_write(kv, k.slice_rows(r0, n), v.slice_rows(r0, n), rv);
      backend_.paged_attention(q.slice_rows(r0, n), kv, rv, scale, attn.slice_rows(r0, n));
    }
    if (alone < n_rounds) {
      const int r0 = rounds[1], n = rounds[n_rounds] - r0;
      const BatchView rv = bv.tokens(r0, n);
      const Tensor kr = k.slice_rows(r0, n), vr = v.slice_rows(r0, n);
      backend_.kv_write_blocks(kv, kr, vr, rv);
      backend_.paged_attention_own_rows(q.slice_rows(r0, n), kv, rv, kr, vr, scale,
                                        attn.slice_rows(r0, n));
    }
    backend_.matmul(attn, w.o, Tensor{}, x, /*accumulate=*/true);
    backend_.rmsnorm(x, w.mlp_norm, cfg_.rms_norm_eps, h);
    if (backend_.fuses_swiglu(h, w.gate_up)) {
      backend_.matmul_swiglu(h, w.gate_up, act);
    } else {
      backend_.matmul(h, w.gate_up, Tensor{}, gate_up);
      backend_.swiglu(gate_up, act);
    }
    backend_.matmul(act, w.down, Tensor{}, x, /*accumulate=*/true);
  }
  Tensor out_in = x;
  if (gather) {
    out_in = make_tensor(ws_.last.data(), at, R, hidden);
    backend_.gather_rows(x, bv.out_rows, out_in);
  }
  Tensor normed = h.slice_rows(0, R);  // h has T >= R rows and is free now
  backend_.rmsnorm(out_in, weights_.final_norm, cfg_.rms_norm_eps, normed);
  Tensor logits = make_tensor(ws_.logits.data(), DType::F32, R, cfg_.vocab_size);
  backend_.matmul(normed, weights_.lm_head, Tensor{}, logits);
  return logits;
}

std::unique_ptr<LlamaModel> load_llama(Backend& backend, const std::string& model_dir) {
  ModelDir dir = open_model_dir(model_dir);
  ModelWeights weights = load_weights(backend, dir.config, *dir.tensors);
  return std::make_unique<LlamaModel>(backend, dir.config, std::move(weights));
}

std::unique_ptr<LlamaModel> dummy_llama(Backend& backend, const std::string& model_dir,
                                        uint64_t seed) {
  ModelConfig cfg = load_model_config(model_dir);
  ModelWeights weights = random_weights(backend, cfg, seed);
  return std::make_unique<LlamaModel>(backend, cfg, std::move(weights));
}

}  // namespace densekv
