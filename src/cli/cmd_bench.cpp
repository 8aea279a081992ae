// `densekv bench throughput|latency MODEL_DIR ...`, like `vllm bench throughput|latency`:
//   throughput: N random prompts of I tokens, O output tokens each (ignore_eos), all submitted at
//               once to the engine: requests/s, output and total tokens/s, peak concurrency,
//               preemptions.
//   latency:    batches of --batch-size (default 1) random prompts, one after another: time to
//               first token and decode time per output token, averaged over --num-iters.
// --load-format dummy benchmarks a model shape from its config.json alone (random weights).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/bandwidth_report.h"
#include "cli/commands.h"
#include "cli/engine_options.h"
#include "cli/model_options.h"
#include "core/errors.h"
#include "engine/llm_engine.h"
#include "kv/kv_format.h"

namespace densekv::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  ModelOptions model;
  EngineConfig engine;
  int num_prompts = 64;
  int input_len = 128;
  int output_len = 128;
  int batch_size = 1;
  int num_iters = 3;
  int num_iters_warmup = 1;
  uint64_t seed = 0;
  bool json = false;
  // Sampling of every request (default greedy, as vLLM's benchmarks); validated at submit.
  SamplingParams sampling = [] {
    SamplingParams p;
    p.temperature = 0.0f;
    return p;
  }();
  int logprobs_every = 1;  // sampling.logprobs for every k-th request only
};

void check_lengths(const BenchArgs& a) {
  if (a.input_len < 1) throw InvalidArgumentError("--input-len must be >= 1");
  if (a.output_len < 1) throw InvalidArgumentError("--output-len must be >= 1");
}

// Random prompts of exactly input_len ids (below the vocabulary; no special meaning needed).
std::vector<GenerationRequest> random_requests(const LlamaModel& model, const BenchArgs& a, int n,
                                               std::mt19937_64& rng) {
  const int vocab = model.config().vocab_size;
  std::vector<GenerationRequest> reqs(static_cast<size_t>(n));
  uint64_t k = 0;
  for (auto& r : reqs) {
    for (int i = 0; i < a.input_len; ++i) {
      r.prompt_ids.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
    }
    r.params = a.sampling;
    if (k % static_cast<uint64_t>(a.logprobs_every) != 0) r.params.logprobs = -1;
    r.params.seed = a.seed ^ (0x9e3779b97f4a7c15ull * ++k);  // reproducible draws
    r.params.max_tokens = a.output_len;
    r.params.ignore_eos = true;
  }
  return reqs;
}

// Runs the requests at once; returns their final outputs (merged tokens not kept).
std::vector<RequestOutput> run_all(Engine& engine, const std::vector<GenerationRequest>& reqs) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& r : reqs) streams.push_back(engine.submit(r));
  std::vector<RequestOutput> out;
  for (auto& s : streams) {
    for (;;) {
      std::optional<RequestOutput> o = s->next(std::chrono::milliseconds(1000));
      if (!o || o->finish == FinishReason::None) continue;
      if (!o->error.empty()) throw Error("request failed: " + o->error);
      out.push_back(std::move(*o));
      break;
    }
  }
  return out;
}

struct Setup {
  LoadedModel model;
  std::unique_ptr<Engine> engine;
};

Setup start(BenchArgs& a) {
  Setup s;
  s.model = load_model(a.model);
  a.engine.kv_cache_dtype = a.model.kv_cache_dtype;
  // Report the format itself ("auto" resolved).
  a.model.kv_cache_dtype =
      kv_format_name(parse_kv_cache_dtype(a.model.kv_cache_dtype, s.model.model->config().dtype));
  if (a.engine.max_model_len == 0) a.engine.max_model_len = a.input_len + a.output_len;
  s.engine = make_llm_engine(*s.model.model, a.engine);
  return s;
}

void print(const nlohmann::json& j, bool json, const std::string& text) {
  if (json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s", text.c_str());
  }
}

// Where the engine thread's step went, ms per step (EngineMetrics::schedule_seconds ...).
void add_step_times(nlohmann::json& j, const EngineMetrics& m) {
  const double per_step = m.steps > 0 ? 1e3 / static_cast<double>(m.steps) : 0.0;
  j["step_schedule_ms"] = m.schedule_seconds * per_step;
  j["step_forward_ms"] = m.forward_seconds * per_step;
  j["step_wait_ms"] = m.wait_seconds * per_step;
  j["step_commit_ms"] = m.commit_seconds * per_step;
}

std::string step_times_text(const nlohmann::json& j) {
  char text[256];
  std::snprintf(text, sizeof(text),
                "engine thread per step: %.3f ms scheduling, %.3f ms in the forward call, %.3f ms "
                "waiting for the tokens, %.3f ms committing them\n",
                j["step_schedule_ms"].get<double>(), j["step_forward_ms"].get<double>(),
                j["step_wait_ms"].get<double>(), j["step_commit_ms"].get<double>());
  return text;
}

// Which step paths ran: decode graphs (captures, replays) and greedy argmax on the device.
void add_path_stats(nlohmann::json& j, const LlamaModel& model, const EngineMetrics& m,
                    const BenchArgs& a) {
  j["cuda_graphs"] = model.decode_graphs();
  j["graph_captures"] = model.graph_captures();
  j["graph_replays"] = model.graph_replays();
  j["greedy_on_device"] = a.engine.greedy_on_device;
  j["greedy_device_steps"] = m.greedy_device_steps;
  add_step_times(j, m);
  j["device_draw_rows"] = m.device_draw_rows;
  j["host_fallback_rows"] = m.host_fallback_rows;
  j["penalized_rows"] = m.penalized_rows;
  const SamplingParams& p = a.sampling;
  j["temperature"] = p.temperature;
  j["top_p"] = p.top_p;
  j["top_k"] = p.top_k;
  j["min_p"] = p.min_p;
  j["repetition_penalty"] = p.repetition_penalty;
  j["frequency_penalty"] = p.frequency_penalty;
  j["presence_penalty"] = p.presence_penalty;
  j["logprobs"] = p.logprobs;
  j["logprobs_every"] = a.logprobs_every;
}

std::string path_stats_text(const nlohmann::json& j) {
  char text[320];
  std::snprintf(text, sizeof(text),
                "cuda graphs %s (%lld captures, %lld replays); sampling on device %s (%lld "
                "steps, %lld rows drawn, %lld penalized, %lld sent to the host)\n",
                j["cuda_graphs"].get<bool>() ? "on" : "off",
                static_cast<long long>(j["graph_captures"].get<int64_t>()),
                static_cast<long long>(j["graph_replays"].get<int64_t>()),
                j["greedy_on_device"].get<bool>() ? "on" : "off",
                static_cast<long long>(j["greedy_device_steps"].get<int64_t>()),
                static_cast<long long>(j["device_draw_rows"].get<int64_t>()),
                static_cast<long long>(j["penalized_rows"].get<int64_t>()),
                static_cast<long long>(j["host_fallback_rows"].get<int64_t>()));
  return text;
}

void run_throughput(BenchArgs a) {
  check_lengths(a);
  if (a.num_prompts < 1) throw InvalidArgumentError("--num-prompts must be >= 1");
  Setup s = start(a);
  std::mt19937_64 rng(a.seed);
  const auto reqs = random_requests(*s.model.model, a, a.num_prompts, rng);
  const auto t0 = Clock::now();
  const auto outs = run_all(*s.engine, reqs);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  int64_t out_tokens = 0, in_tokens = 0;
  std::vector<std::pair<int64_t, int64_t>> seqs;
  for (const auto& o : outs) {
    out_tokens += o.completion_tokens;
    in_tokens += o.prompt_tokens;
    seqs.emplace_back(o.prompt_tokens, o.completion_tokens);
  }
  const EngineMetrics m = s.engine->metrics();
  const Backend& be = s.model.model->backend();
  const double bytes =
      engine_run_bytes(run_bytes(*s.model.model, s.model.kv_format), m.steps, seqs);
  nlohmann::json j;
  j["kv_cache_dtype"] = a.model.kv_cache_dtype;
  j["num_prompts"] = a.num_prompts;
  j["input_len"] = a.input_len;
  j["output_len"] = a.output_len;
  j["elapsed_seconds"] = secs;
  j["requests_per_second"] = a.num_prompts / secs;
  j["output_tokens_per_second"] = out_tokens / secs;
  j["total_tokens_per_second"] = (in_tokens + out_tokens) / secs;
  j["peak_concurrency"] = m.peak_running;
  j["preemptions"] = m.preemptions;
  j["kv_blocks_total"] = m.kv_blocks_total;
  j["steps"] = m.steps;
  j["gbs"] = bytes / secs / 1e9;
  j["peak_gbs"] = be.memory_info().peak_gbs;
  add_path_stats(j, *s.model.model, m, a);
  char text[640];
  std::snprintf(text, sizeof(text),
                "Throughput: %.2f requests/s, %.1f output tok/s, %.1f total tok/s; %s of weights "
                "+ KV read\n"
                "%d prompts x (%d in, %d out) in %.3f s; kv %s, %d blocks; peak concurrency %d, "
                "preemptions %lld, %lld steps\n",
                a.num_prompts / secs, out_tokens / secs, (in_tokens + out_tokens) / secs,
                bandwidth_text(bytes, secs, be).c_str(), a.num_prompts, a.input_len, a.output_len,
                secs, a.model.kv_cache_dtype.c_str(), m.kv_blocks_total, m.peak_running,
                static_cast<long long>(m.preemptions), static_cast<long long>(m.steps));
  print(j, a.json, text + path_stats_text(j) + step_times_text(j));
}

void run_latency(BenchArgs a) {
  check_lengths(a);
  if (a.batch_size < 1) throw InvalidArgumentError("--batch-size must be >= 1");
  if (a.num_iters < 1) throw InvalidArgumentError("--num-iters must be >= 1");
  if (a.num_iters_warmup < 0) throw InvalidArgumentError("--num-iters-warmup must be >= 0");
  a.engine.enable_prefix_caching = false;  // every iteration computes its prompt
  Setup s = start(a);
  std::mt19937_64 rng(a.seed);
  double ttft = 0, tpot = 0, total = 0;
  for (int it = 0; it < a.num_iters_warmup + a.num_iters; ++it) {
    const auto reqs = random_requests(*s.model.model, a, a.batch_size, rng);
    const auto t0 = Clock::now();
    const auto outs = run_all(*s.engine, reqs);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (it < a.num_iters_warmup) continue;
    double f = 0, p = 0;
    for (const auto& o : outs) {
      f = std::max(f, o.ttft_seconds);
      p = std::max(p, o.tpot_seconds);
    }
    ttft += f / a.num_iters;
    tpot += p / a.num_iters;
    total += secs / a.num_iters;
  }
  nlohmann::json j;
  j["kv_cache_dtype"] = a.model.kv_cache_dtype;
  j["batch_size"] = a.batch_size;
  j["input_len"] = a.input_len;
  j["output_len"] = a.output_len;
  j["avg_latency_seconds"] = total;
  j["ttft_seconds"] = ttft;
  j["decode_seconds_per_token"] = tpot;
  j["decode_tokens_per_second"] = tpot > 0 ? a.batch_size / tpot : 0.0;
  // One decode step: the weights, and every sequence's KV context (on average halfway through
  // the output).
  const std::vector<std::pair<int64_t, int64_t>> seqs(a.batch_size, {a.input_len, a.output_len});
  const double step_bytes =
      engine_run_bytes(run_bytes(*s.model.model, s.model.kv_format), a.output_len, seqs) /
      a.output_len;
  const Backend& be = s.model.model->backend();
  j["decode_gbs"] = tpot > 0 ? step_bytes / tpot / 1e9 : 0.0;
  j["peak_gbs"] = be.memory_info().peak_gbs;
  add_path_stats(j, *s.model.model, s.engine->metrics(), a);
  char text[640];
  std::snprintf(text, sizeof(text),
                "Latency: batch %d, %d in, %d out, kv %s: %.4f s per request; TTFT %.2f ms; "
                "decode %.2f ms per token (%.1f tok/s, %s of weights + KV read)\n",
                a.batch_size, a.input_len, a.output_len, a.model.kv_cache_dtype.c_str(), total,
                ttft * 1e3, tpot * 1e3, tpot > 0 ? a.batch_size / tpot : 0.0,
                bandwidth_text(step_bytes, tpot, be).c_str());
  print(j, a.json, text + path_stats_text(j) + step_times_text(j));
}

void add_common(CLI::App* cmd, BenchArgs& a) {
  add_model_options(cmd, a.model);
  add_engine_options(cmd, a.engine);
  cmd->add_option("--input-len", a.input_len, "prompt tokens")->capture_default_str();
  cmd->add_option("--output-len", a.output_len, "generated tokens")->capture_default_str();
  cmd->add_option("--seed", a.seed, "seed of the random prompts")->capture_default_str();
  cmd->add_flag("--json", a.json, "print one JSON object");
  SamplingParams& p = a.sampling;
  cmd->add_option("--temperature", p.temperature,
                  "sampling temperature of every request (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--top-p", p.top_p, "top_p of every request")->capture_default_str();
  cmd->add_option("--top-k", p.top_k, "top_k of every request (-1: off)")->capture_default_str();
  cmd->add_option("--min-p", p.min_p, "min_p of every request")->capture_default_str();
  cmd->add_option("--repetition-penalty", p.repetition_penalty,
                  "repetition_penalty of every request (1: off)")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", p.frequency_penalty,
                  "frequency_penalty of every request (0: off)")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", p.presence_penalty,
                  "presence_penalty of every request (0: off)")
      ->capture_default_str();
  cmd->add_option("--logprobs", p.logprobs, "logprobs (top n) of the requests (-1: none)")
      ->capture_default_str();
  cmd->add_option("--logprobs-every", a.logprobs_every,
                  "only every k-th request asks for --logprobs")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmark the engine (throughput, latency)");
  bench->require_subcommand(1);

  auto t = std::make_shared<BenchArgs>();
  auto* tp = bench->add_subcommand("throughput", "Offline throughput of many random prompts");
  add_common(tp, *t);
  tp->add_option("--num-prompts", t->num_prompts, "prompts")->capture_default_str();
  tp->callback([t] { run_throughput(*t); });

  auto l = std::make_shared<BenchArgs>();
  auto* lt = bench->add_subcommand("latency", "TTFT and decode time per token of small batches");
  add_common(lt, *l);
  lt->add_option("--batch-size", l->batch_size, "prompts per batch")->capture_default_str();
  lt->add_option("--num-iters", l->num_iters, "measured batches")->capture_default_str();
  lt->add_option("--num-iters-warmup", l->num_iters_warmup, "unmeasured first batches")
      ->capture_default_str();
  lt->callback([l] { run_latency(*l); });
}

}  // namespace densekv::cli
