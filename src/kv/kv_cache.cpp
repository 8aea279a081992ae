#include "kv/kv_cache.h"

#include "core/check.h"
#include "core/errors.h"

#include <string>

namespace densekv {

KvCache::KvCache(Backend& backend, const KvCacheConfig& cfg) : cfg_(cfg) {
  if (cfg.block_size <= 0 || cfg.num_blocks <= 0 || cfg.num_layers <= 0 || cfg.n_kv_heads <= 0 ||
      cfg.head_dim <= 0) {
    throw InvalidArgumentError("KV cache needs positive block size, block count and model shape");
  }
  if (kv_format_is_quantized(cfg.format)) {
    throw InvalidArgumentError(std::string("--kv-cache-dtype ") + kv_format_name(cfg.format) +
                               " is not supported yet by the model forward (use bf16, fp16 or fp32)");
  }
  block_bytes_ = kv_block_bytes(cfg.format, cfg.block_size, cfg.n_kv_heads, cfg.head_dim);
  pool_ = Buffer(backend, block_bytes_ * cfg.num_blocks * cfg.num_layers);
  free_.reserve(static_cast<size_t>(cfg.num_blocks));
  for (int b = cfg.num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out 0, 1, 2, ...
}

KvLayerView KvCache::layer(int l) const {
  CHECK(l >= 0 && l < cfg_.num_layers);
  KvLayerView v;
  v.base =
      static_cast<char*>(pool_.data()) + static_cast<size_t>(l) * cfg_.num_blocks * block_bytes_;
  v.format = cfg_.format;
  v.block_size = cfg_.block_size;
  v.n_kv_heads = cfg_.n_kv_heads;
  v.head_dim = cfg_.head_dim;
  v.block_bytes = block_bytes_;
  return v;
}

bool KvCache::reserve(SeqBlocks& seq, int n_tokens) {
  int need = kv_blocks_for(n_tokens, cfg_.block_size) - static_cast<int>(seq.table.size());
  if (need <= 0) return true;
  if (need > num_free_blocks()) return false;
  for (int i = 0; i < need; ++i) {
    seq.table.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvCache::release(SeqBlocks& seq) {
  for (int32_t b : seq.table) {
    CHECK(b >= 0 && b < cfg_.num_blocks);
    free_.push_back(b);
  }
  seq.table.clear();
}

KvCacheConfig kv_cache_config(const ModelConfig& model, KvFormat format, int num_blocks,
                              int block_size) {
  KvCacheConfig c;
  c.format = format;
  c.block_size = block_size;
  c.num_blocks = num_blocks;
  c.num_layers = model.num_layers;
  c.n_kv_heads = model.num_kv_heads;
  c.head_dim = model.head_dim;
  return c;
}

}  // namespace densekv
