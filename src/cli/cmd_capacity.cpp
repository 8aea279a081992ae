// `densekv capacity MODEL_DIR --memory-gb G [--kv-cache-dtype D|all] [--max-model-len L] [--json]`:
// how many tokens and concurrent sequences a KV cache budget holds in each format. Reads
// config.json only (no weights needed).
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/errors.h"
#include "io/hf_config.h"
#include "kv/capacity.h"

namespace densekv::cli {

namespace {

struct CapacityArgs {
  std::string model_dir;
  double memory_gib = 0;
  std::string kv_cache_dtype = "all";
  int max_model_len = 0;  // 0: the model's max_position_embeddings
  bool json = false;
};

void run_capacity(const CapacityArgs& a) {
  if (!(a.memory_gib > 0) || !std::isfinite(a.memory_gib) || a.memory_gib > 1e6) {
    throw InvalidArgumentError(
        fmt::format("--memory-gb must be a positive number of GiB, got {}", a.memory_gib));
  }
  const ModelConfig cfg = load_model_config(a.model_dir);
  const int len = a.max_model_len > 0 ? a.max_model_len : cfg.max_position_embeddings;
  if (a.max_model_len < 0 || len <= 0) {
    throw InvalidArgumentError(fmt::format("--max-model-len must be positive, got {}", len));
  }
  if (len > cfg.max_position_embeddings) {
    throw InvalidArgumentError(
        fmt::format("--max-model-len {} exceeds the model's max_position_embeddings {}", len,
                    cfg.max_position_embeddings));
  }
  const int64_t budget = static_cast<int64_t>(a.memory_gib * 1073741824.0);

  std::vector<std::string> skipped;
  const std::vector<KvFormat> formats =
      parse_kv_cache_dtype_list(a.kv_cache_dtype, cfg.dtype, cfg.head_dim, &skipped);

  std::vector<KvCapacity> rows;
  for (KvFormat f : formats) rows.push_back(kv_capacity(cfg, f, budget, len));

  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const KvCapacity& r : rows) {
      out.push_back({{"kv_cache_dtype", r.kv_cache_dtype},
                     {"bytes_per_token", r.bytes_per_token},
                     {"tokens", r.tokens},
                     {"max_concurrency", r.max_concurrency},
                     {"ratio_vs_16bit", r.ratio_vs_16bit}});
    }
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("model        {} ({}, {} layers, {} KV heads, head_dim {})\n", a.model_dir,
             cfg.architecture, cfg.num_layers, cfg.num_kv_heads, cfg.head_dim);
  fmt::print("KV budget    {:g} GiB ({} bytes), sequences of {} tokens\n\n", a.memory_gib, budget,
             len);
  fmt::print("{:<14} {:>5} {:>14} {:>14} {:>16} {:>10}\n", "kv_cache_dtype", "block", "bytes/token",
             "tokens", "max_concurrency", "vs 16-bit");
  for (const KvCapacity& r : rows) {
    fmt::print("{:<14} {:>5} {:>14.1f} {:>14} {:>16} {:>9.2f}x\n", r.kv_cache_dtype, r.block_size,
               r.bytes_per_token, r.tokens, r.max_concurrency, r.ratio_vs_16bit);
  }
  for (const std::string& s : skipped) fmt::print("skipped: {}\n", s);
  fmt::print(
      "\nbytes/token: all layers, keys and values, sealed blocks (scales and zero points in).\n"
      "max_concurrency counts each sequence's whole blocks plus, for quantized formats, its\n"
      "16-bit tail block of {} tokens.\n",
      kQuantBlockSize);
}

}  // namespace

void register_capacity(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "capacity",
      "KV cache capacity of a memory budget in each --kv-cache-dtype (config.json only)");
  auto a = std::make_shared<CapacityArgs>();
  cmd->add_option("MODEL_DIR", a->model_dir, "Folder with config.json (weights not needed)")
      ->required();
  cmd->add_option("--memory-gb", a->memory_gib,
                  "Memory for the KV cache in GiB (2^30 bytes, like vLLM's --kv-cache-memory)")
      ->required();
  cmd->add_option(
      "--kv-cache-dtype", a->kv_cache_dtype,
      "auto, bf16, fp16, fp8_e4m3, int8, int4_kivi, int2_kivi, k4v2, a comma-separated list, "
      "or all (default)");
  cmd->add_option("--max-model-len", a->max_model_len,
                  "Sequence length for max_concurrency (default: max_position_embeddings)");
  cmd->add_flag("--json", a->json,
                "Print a JSON array: kv_cache_dtype, bytes_per_token, tokens, max_concurrency, "
                "ratio_vs_16bit");
  cmd->callback([a] { run_capacity(*a); });
}

}  // namespace densekv::cli
