// `densekv serve MODEL_DIR [--host H] [--port 8000] [--api-key K] ...`: the OpenAI-compatible
// server. Flags are named as vLLM names them. Start-up: check the flags and validate the model
// folder first (exit 2 naming the reason), bind the port (/health answers 503 while loading),
// load the weights with a progress bar, start the engine, log the KV capacity in tokens and the
// concurrency at --max-model-len, then serve. SIGTERM / SIGINT: stop taking requests, finish the
// ones in flight, exit 0 (a second signal exits at once).
#include <cmath>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/errors.h"
#include "core/log.h"
#include "engine/llm_engine.h"
#include "io/model_dir.h"
#include "kv/capacity.h"
#include "server/http.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace densekv::cli {

namespace {

struct ServeArgs {
  ModelOptions model;
  HttpOptions http;
  std::string served_model_name;
  int max_model_len = 0;
  double gpu_memory_utilization = 0.9;
  double kv_cache_memory_gb = 0;  // > 0: overrides --gpu-memory-utilization
  int num_kv_blocks = 0;
  int max_num_seqs = 256;
  int max_num_batched_tokens = 2048;
  bool enable_prefix_caching = true;
  std::string dtype = "auto";
};

void check_args(const ServeArgs& a, const ModelConfig& cfg) {
  check_model_options(a.model);
  if (a.http.port < 0 || a.http.port > 65535)
    throw InvalidArgumentError(fmt::format("--port must be in [0, 65535], got {}", a.http.port));
  if (!(a.gpu_memory_utilization > 0 && a.gpu_memory_utilization <= 1))
    throw InvalidArgumentError(fmt::format("--gpu-memory-utilization must be in (0, 1], got {}",
                                           a.gpu_memory_utilization));
  if (a.kv_cache_memory_gb < 0 || !std::isfinite(a.kv_cache_memory_gb))
    throw InvalidArgumentError("--kv-cache-memory-gb must be >= 0");
  if (a.max_num_seqs < 1) throw InvalidArgumentError("--max-num-seqs must be >= 1");
  if (a.max_num_batched_tokens < 1)
    throw InvalidArgumentError("--max-num-batched-tokens must be >= 1");
  if (a.max_model_len < 0) throw InvalidArgumentError("--max-model-len must be > 0");
  if (a.max_model_len > cfg.max_position_embeddings)
    throw InvalidArgumentError(
        fmt::format("--max-model-len {} exceeds the model's max_position_embeddings {}",
                    a.max_model_len, cfg.max_position_embeddings));
  if (a.http.max_pending_requests < 1)
    throw InvalidArgumentError("--max-pending-requests must be >= 1");
  const std::string model_dtype = dtype_name(cfg.dtype);
  if (a.dtype != "auto" && a.dtype != model_dtype &&
      !(a.dtype == "bfloat16" && cfg.dtype == DType::BF16) &&
      !(a.dtype == "float16" && cfg.dtype == DType::F16) &&
      !(a.dtype == "half" && cfg.dtype == DType::F16)) {
    throw InvalidArgumentError("--dtype " + a.dtype + ": the model is " + model_dtype +
                               " and converting the weights is not supported; use --dtype auto");
  }
}

// The model's end-of-sequence ids: config.json's eos_token_id(s) plus the tokenizer's eos token.
std::vector<int32_t> eos_ids(const ModelConfig& cfg, const Tokenizer& tok) {
  std::vector<int32_t> ids(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end());
  if (tok.eos_id() >= 0 && std::find(ids.begin(), ids.end(), tok.eos_id()) == ids.end())
    ids.push_back(tok.eos_id());
  return ids;
}

void run(ServeArgs a) {
  install_shutdown_handlers();
  if (const char* key = std::getenv("DENSEKV_API_KEY"); key && a.http.api_key.empty())
    a.http.api_key = key;

  // Fail fast: the model folder, the flags and the tokenizer before anything is loaded.
  const ModelConfig cfg = validate_model_dir(a.model.model_dir);
  check_args(a, cfg);
  parse_kv_cache_dtype(a.model.kv_cache_dtype, cfg.dtype);
  std::unique_ptr<Tokenizer> tok = Tokenizer::load(a.model.model_dir);
  std::unique_ptr<ChatTemplate> tmpl;
  try {
    tmpl = std::make_unique<ChatTemplate>(ChatTemplate::load(a.model.model_dir));
  } catch (const UnsupportedModelError& e) {
    spdlog::warn("no chat template ({}): /v1/chat/completions will answer 400", e.what());
  }
  const int max_model_len = a.max_model_len > 0 ? a.max_model_len : cfg.max_position_embeddings;

  HttpServer server(a.http);
  server.start();
  spdlog::info("bound http://{}:{} (/health answers 503 until the model is loaded)", a.http.host,
               server.port());

  LoadedModel m = load_model(a.model);
  EngineConfig ec;
  ec.max_num_seqs = a.max_num_seqs;
  ec.max_num_batched_tokens = a.max_num_batched_tokens;
  ec.max_model_len = max_model_len;
  ec.enable_prefix_caching = a.enable_prefix_caching;
  ec.kv_cache_dtype = a.model.kv_cache_dtype;
  ec.num_kv_blocks = a.num_kv_blocks;
  ec.kv_memory_gb = a.kv_cache_memory_gb;
  ec.gpu_memory_utilization = a.gpu_memory_utilization;  // used where the backend has a device
  std::unique_ptr<Engine> engine = make_llm_engine(*m.model, ec);

  // The pool the engine sized (main blocks; the 16-bit tails come on top).
  const KvBlockBytes bb = kv_block_bytes_all_layers(cfg, m.kv_format);
  const EngineMetrics em = engine->metrics();
  const int64_t pool_bytes = int64_t(em.kv_blocks_total) * bb.block;
  const double gib = static_cast<double>(pool_bytes) / 1073741824.0;
  KvCapacity cap = kv_capacity(cfg, m.kv_format, pool_bytes, engine->max_model_len());
  spdlog::info(
      "KV cache {}: {:.1f} GiB holds {} tokens ({:.0f} bytes/token, {:.2f}x denser than 16-bit); "
      "max concurrency at {} tokens per request: {}",
      cap.kv_cache_dtype, gib, cap.tokens, cap.bytes_per_token, cap.ratio_vs_16bit,
      engine->max_model_len(), cap.max_concurrency);
  const int64_t kv_bytes = pool_bytes + int64_t(em.kv_tails_total) * bb.tail;  // with the tails
  spdlog::info("KV cache: the same {:.2f} GiB would hold, in tokens: {}",
               static_cast<double>(kv_bytes) / 1073741824.0,
               kv_tokens_per_format(cfg, kv_bytes, ec.max_num_seqs));

  ServedModel served;
  served.engine = engine.get();
  served.tokenizer = tok.get();
  served.chat_template = tmpl.get();
  served.name = a.served_model_name.empty() ? a.model.model_dir : a.served_model_name;
  served.max_model_len = engine->max_model_len();
  served.eos_token_ids = eos_ids(cfg, *tok);
  served.created = std::time(nullptr);
  server.set_ready(served);
  spdlog::info("serving '{}' on http://{}:{} (OpenAI API at /v1{})", served.name, a.http.host,
               server.port(), a.http.api_key.empty() ? "" : ", API key required");

  int sig = wait_shutdown_signal();
  spdlog::info(
      "signal {}: draining (no new requests; in-flight ones finish; send it again to "
      "exit now)",
      sig);
  int aborted = server.drain();
  spdlog::info("stopped ({} requests aborted)", aborted);
}

}  // namespace

void register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve a model with the OpenAI API (as vLLM serve)");
  auto a = std::make_shared<ServeArgs>();
  add_model_options(cmd, a->model);
  HttpOptions& h = a->http;
  cmd->add_option("--host", h.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", h.port, "port to listen on")->capture_default_str();
  cmd->add_option("--api-key", h.api_key,
                  "require 'Authorization: Bearer KEY' on /v1 routes (or env DENSEKV_API_KEY)");
  cmd->add_option("--served-model-name", a->served_model_name,
                  "model name in the API (default: the model folder as given)");
  cmd->add_option("--max-model-len", a->max_model_len,
                  "context length: prompt + completion tokens (default: the model's)");
  cmd->add_option("--gpu-memory-utilization", a->gpu_memory_utilization,
                  "fraction of GPU memory to use (0, 1]: weights, workspace, then the KV cache "
                  "takes the rest (CPU: 1 GiB of KV unless --kv-cache-memory-gb)")
      ->capture_default_str();
  cmd->add_option("--kv-cache-memory-gb", a->kv_cache_memory_gb,
                  "KV cache size in GiB (overrides --gpu-memory-utilization)");
  cmd->add_option("--num-kv-blocks", a->num_kv_blocks, "KV cache size in blocks (wins)");
  cmd->add_option("--max-num-seqs", a->max_num_seqs, "most sequences in one step")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", a->max_num_batched_tokens,
                  "most tokens in one step (decode + prefill chunks)")
      ->capture_default_str();
  cmd->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", a->enable_prefix_caching,
                "share cached prompt prefixes between requests")
      ->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "model dtype: auto (the checkpoint's)")
      ->capture_default_str();
  cmd->add_option("--max-pending-requests", h.max_pending_requests,
                  "generation requests in flight before new ones get 503")
      ->capture_default_str();
  cmd->add_option("--max-request-bytes", h.max_body_bytes, "largest request body (413 above)")
      ->capture_default_str();
  cmd->add_option("--timeout-read", h.read_timeout_s, "seconds to receive a request")
      ->capture_default_str();
  cmd->add_option("--timeout-write", h.write_timeout_s, "seconds a client may stall a reply")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", h.drain_timeout_s,
                  "seconds in-flight requests may take after SIGTERM before they are aborted")
      ->capture_default_str();
  cmd->callback([a] { run(*a); });
}

}  // namespace densekv::cli
