#include "cli/engine_options.h"

namespace densekv::cli {

void add_engine_options(CLI::App* cmd, EngineConfig& cfg) {
  cmd->add_option("--max-num-seqs", cfg.max_num_seqs, "most sequences running at once")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", cfg.max_num_batched_tokens,
                  "tokens per engine step: decode tokens plus prefill chunks")
      ->capture_default_str();
  cmd->add_option("--max-model-len", cfg.max_model_len,
                  "context limit per sequence (0: the model's, lowered to what the KV pool holds)")
      ->capture_default_str();
  auto* blocks = cmd->add_option("--num-kv-blocks", cfg.num_kv_blocks,
                                 "KV cache size in blocks (0: from --kv-memory-gb)");
  cmd->add_option("--kv-memory-gb", cfg.kv_memory_gb, "KV cache size in GiB (default 1)")
      ->excludes(blocks);
  cmd->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", cfg.enable_prefix_caching,
                "reuse the KV blocks of shared prompt prefixes (default on)");
  cmd->add_flag("--greedy-on-device,!--no-greedy-on-device", cfg.greedy_on_device,
                "steps whose rows need no logprobs pick the tokens on the device (greedy, "
                "temperature, top_k, top_p, min_p, penalties) and copy only their ids, not the "
                "logits (default on)");
}

}  // namespace densekv::cli
