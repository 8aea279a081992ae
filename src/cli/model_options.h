// Options shared by the subcommands that run a model (logits, generate): the model folder, the
// device, the KV cache format, threads, prefill chunking, and loading the model with them.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_format.h"
#include "model/llama.h"

namespace densekv::cli {

struct ModelOptions {
  std::string model_dir;
  std::string device = "cpu";
  std::string kv_cache_dtype = "auto";
  int threads = 0;  // 0: all hardware threads
  int prefill_chunk = 0;
  std::string load_format = "auto";  // or "dummy": random weights
  bool cuda_graphs = false;          // decode steps as captured graphs (default on cuda)
  bool enforce_eager = false;        // no graphs
};

void add_model_options(CLI::App* cmd, ModelOptions& opts);

struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  KvFormat kv_format = KvFormat::BF16;
};

// Checks the option values alone (no files): throws InvalidArgumentError naming the bad one.
void check_model_options(const ModelOptions& opts);

// Checks the device and KV format first (fail fast), then opens and loads the model.
LoadedModel load_model(const ModelOptions& opts);

// "1,2,3" -> {1, 2, 3}; anything else throws InvalidArgumentError naming the bad item.
std::vector<int32_t> parse_id_list(const std::string& text);

}  // namespace densekv::cli
