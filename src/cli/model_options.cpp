#include "cli/model_options.h"

#include "core/errors.h"
#include "io/hf_config.h"

namespace densekv::cli {

void add_model_options(CLI::App* cmd, ModelOptions& opts) {
  cmd->add_option("model_dir", opts.model_dir, "Hugging Face model folder")->required();
  cmd->add_option("--device", opts.device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--kv-cache-dtype", opts.kv_cache_dtype,
                  "KV cache format: auto (model dtype), bf16, fp16, fp32, fp8_e4m3, int8, "
                  "int4_kivi, int2_kivi, k4v2 (docs/kv-formats.md)")
      ->capture_default_str();
  cmd->add_option("--threads", opts.threads, "CPU threads (0: all)")->capture_default_str();
  cmd->add_option(
         "--load-format", opts.load_format,
         "auto or safetensors (the checkpoint), or dummy (random weights from config.json alone)")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", opts.prefill_chunk,
                  "run the prompt in chunks of N tokens (0: one chunk)")
      ->capture_default_str();
  cmd->add_flag("--cuda-graphs", opts.cuda_graphs,
                "run decode steps as captured CUDA graphs (the default on cuda; also "
                "DENSEKV_CUDA_GRAPHS=1)");
  cmd->add_flag("--enforce-eager", opts.enforce_eager,
                "no CUDA graphs: launch every decode step's kernels one by one (as vLLM's flag)");
}

void check_model_options(const ModelOptions& opts) {
  if (opts.prefill_chunk < 0) throw InvalidArgumentError("--prefill-chunk must be >= 0");
  if (opts.threads < 0) throw InvalidArgumentError("--threads must be >= 0");
  if (opts.cuda_graphs && opts.enforce_eager) {
    throw InvalidArgumentError("--cuda-graphs and --enforce-eager exclude each other");
  }
  if (opts.load_format != "auto" && opts.load_format != "safetensors" &&
      opts.load_format != "dummy") {
    throw InvalidArgumentError("--load-format must be auto, safetensors or dummy, got '" +
                               opts.load_format + "'");
  }
}

LoadedModel load_model(const ModelOptions& opts) {
  check_model_options(opts);
  LoadedModel m;
  m.backend = make_backend(opts.device, opts.threads);
  // Parse the KV format, and check it can store the model's head_dim, before the (slow) weight
  // load.
  ModelConfig cfg = load_model_config(opts.model_dir);
  kv_format_info(parse_kv_cache_dtype(opts.kv_cache_dtype, cfg.dtype), cfg.head_dim);
  if (opts.load_format == "dummy") {
    m.model = dummy_llama(*m.backend, opts.model_dir);
  } else {
    m.model = load_llama(*m.backend, opts.model_dir);
  }
  m.kv_format = parse_kv_cache_dtype(opts.kv_cache_dtype, m.model->config().dtype);
  // Decode graphs are the default where the backend can capture them (cuda).
  const bool graphs = opts.cuda_graphs || (!opts.enforce_eager && m.backend->supports_graphs());
  m.model->set_decode_graphs(graphs);
  return m;
}

std::vector<int32_t> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX) {
      throw InvalidArgumentError("--ids: '" + item +
                                 "' is not a token id (expected comma-separated integers >= 0)");
    }
    ids.push_back(static_cast<int32_t>(v));
    pos = comma + 1;
  }
  return ids;
}

}  // namespace densekv::cli
