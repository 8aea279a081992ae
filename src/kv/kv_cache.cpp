#include "kv/kv_cache.h"

#include <string>

#include "core/check.h"
#include "core/errors.h"
#include "kv/capacity.h"

namespace densekv {

namespace {

KvCacheConfig resolved(KvCacheConfig cfg) {
  if (cfg.num_blocks <= 0 || cfg.num_layers <= 0 || cfg.n_kv_heads <= 0 || cfg.head_dim <= 0 ||
      cfg.block_size < 0) {
    throw InvalidArgumentError("KV cache needs positive block count and model shape");
  }
  // Validates the format against head_dim and block size, and resolves the default block size.
  cfg.block_size = kv_format_info(cfg.format, cfg.head_dim, cfg.block_size).block_size;
  if (kv_format_is_quantized(cfg.format)) {
    if (cfg.num_tail_blocks <= 0) {
      throw InvalidArgumentError(std::string("KV format ") + kv_format_name(cfg.format) +
                                 " needs at least one 16-bit tail block");
    }
    if (cfg.tail_format != KvFormat::BF16 && cfg.tail_format != KvFormat::F16) {
      throw InvalidArgumentError("the KV tail format must be bf16 or fp16");
    }
  } else {
    cfg.num_tail_blocks = 0;
  }
  return cfg;
}

KvBlockManagerConfig manager_config(const KvCacheConfig& cfg) {
  KvBlockManagerConfig m;
  m.num_blocks = cfg.num_blocks;
  m.num_tail_blocks = cfg.num_tail_blocks;
  m.block_size = cfg.block_size;
  m.has_tail = kv_format_is_quantized(cfg.format);
  m.prefix_caching = cfg.prefix_caching;
  return m;
}

}  // namespace

KvCache::KvCache(Backend& backend, const KvCacheConfig& cfg)
    : cfg_(resolved(cfg)), manager_(manager_config(cfg_)) {
  block_bytes_ = kv_block_bytes(cfg_.format, cfg_.block_size, cfg_.n_kv_heads, cfg_.head_dim);
  main_ = Buffer(backend, block_bytes_ * (cfg_.num_blocks + 1) * cfg_.num_layers);
  if (quantized()) {
    tail_block_bytes_ =
        kv_block_bytes(cfg_.tail_format, cfg_.block_size, cfg_.n_kv_heads, cfg_.head_dim);
    tails_ = Buffer(backend, tail_block_bytes_ * (cfg_.num_tail_blocks + 1) * cfg_.num_layers);
  }
}

KvLayerView KvCache::layer(int l) const {
  CHECK(l >= 0 && l < cfg_.num_layers);
  KvLayerView v;
  v.base = static_cast<char*>(main_.data()) +
           static_cast<size_t>(l) * (cfg_.num_blocks + 1) * block_bytes_;
  v.format = cfg_.format;
  v.block_size = cfg_.block_size;
  v.n_kv_heads = cfg_.n_kv_heads;
  v.head_dim = cfg_.head_dim;
  v.block_bytes = block_bytes_;
  if (quantized()) {
    v.tail_base = static_cast<char*>(tails_.data()) +
                  static_cast<size_t>(l) * (cfg_.num_tail_blocks + 1) * tail_block_bytes_;
    v.tail_format = cfg_.tail_format;
    v.tail_block_bytes = tail_block_bytes_;
  }
  return v;
}

KvCacheConfig kv_cache_config(const ModelConfig& model, KvFormat format, int num_blocks,
                              int max_seqs) {
  KvCacheConfig c;
  c.format = format;
  c.tail_format = kv_tail_format(model.dtype);
  c.num_blocks = num_blocks;
  c.num_tail_blocks = kv_format_is_quantized(format) ? max_seqs : 0;
  c.num_layers = model.num_layers;
  c.n_kv_heads = model.num_kv_heads;
  c.head_dim = model.head_dim;
  return c;
}

}  // namespace densekv
