#include "kv/capacity.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/check.h"
#include "core/errors.h"

namespace densekv {

KvFormat kv_tail_format(DType model_dtype) {
  return model_dtype == DType::F16 ? KvFormat::F16 : KvFormat::BF16;
}

KvBlockBytes kv_block_bytes_all_layers(const ModelConfig& cfg, KvFormat f) {
  const KvFormatInfo info = kv_format_info(f, cfg.head_dim);
  const int64_t heads = static_cast<int64_t>(cfg.num_layers) * cfg.num_kv_heads;
  KvBlockBytes b;
  b.block_size = info.block_size;
  b.block = static_cast<int64_t>(info.head_block_bytes()) * heads;
  if (info.quantized) {
    const KvFormatInfo tail =
        kv_format_info(kv_tail_format(cfg.dtype), cfg.head_dim, info.block_size);
    b.tail = static_cast<int64_t>(tail.head_block_bytes()) * heads;
  }
  return b;
}

KvPoolPlan plan_kv_pools(const ModelConfig& cfg, KvFormat f, int64_t budget_bytes,
                         int64_t max_num_seqs) {
  const KvBlockBytes b = kv_block_bytes_all_layers(cfg, f);
  KvPoolPlan plan;
  // One 16-bit tail per running sequence, up to max_num_seqs, but on at most kMaxTailShare of the
  // budget: a tail costs 2-6x the bytes of a sealed block, and the sealed blocks hold the long
  // contexts (the scheduler admits a sequence only when a tail is free).
  if (b.tail > 0) {
    const auto share = static_cast<int64_t>(kMaxTailShare * static_cast<double>(budget_bytes));
    plan.num_tail_blocks = std::clamp<int64_t>(share / b.tail, 1, max_num_seqs);
  }
  const int64_t left = budget_bytes - plan.num_tail_blocks * b.tail;
  plan.num_blocks = left > 0 ? left / b.block : 0;
  if (plan.num_blocks < 1) {
    throw InvalidArgumentError(fmt::format(
        "the KV cache budget of {} bytes holds no {} block ({} bytes per block{}); give more "
        "memory",
        budget_bytes, kv_format_name(f), b.block,
        b.tail > 0 ? fmt::format(", plus {} tails of {} bytes", plan.num_tail_blocks, b.tail)
                   : ""));
  }
  return plan;
}

std::string kv_tokens_per_format(const ModelConfig& cfg, int64_t budget_bytes,
                                 int64_t max_num_seqs) {
  std::string out;
  for (KvFormat f : parse_kv_cache_dtype_list("all", cfg.dtype, cfg.head_dim, nullptr)) {
    std::string tokens = "-";
    try {
      const KvPoolPlan p = plan_kv_pools(cfg, f, budget_bytes, max_num_seqs);
      tokens = std::to_string(p.num_blocks * kv_format_info(f, cfg.head_dim).block_size);
    } catch (const InvalidArgumentError&) {
    }
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", kv_format_name(f), tokens);
  }
  return out;
}

KvCapacity kv_capacity(const ModelConfig& cfg, KvFormat f, int64_t budget_bytes,
                       int max_model_len) {
  CHECK(budget_bytes > 0 && max_model_len > 0);
  const KvBlockBytes b = kv_block_bytes_all_layers(cfg, f);
  KvCapacity c;
  c.kv_cache_dtype = kv_format_name(f);
  c.block_size = b.block_size;
  c.bytes_per_token = static_cast<double>(b.block) / b.block_size;
  c.tokens = budget_bytes / b.block * b.block_size;
  // A sequence of L tokens holds L / B sealed blocks plus one tail (quantized formats), or
  // ceil(L / B) blocks (plain formats).
  const int64_t blocks =
      b.tail > 0 ? max_model_len / b.block_size : (max_model_len + b.block_size - 1) / b.block_size;
  c.max_concurrency = budget_bytes / (blocks * b.block + b.tail);
  c.ratio_vs_16bit = static_cast<double>(kv_bytes_per_token_16bit(cfg)) / c.bytes_per_token;
  return c;
}

}  // namespace densekv
