// `densekv generate MODEL_DIR ...`:
//   --ids 1,2,3 | --prompt TEXT
//                          one prompt, run alone: prefill, then decode token by token through the
//                          paged KV cache (model/generate.h); prints the ids (or --json) and the
//                          prefill / decode speed on stderr. --prompt is encoded with the folder's
//                          tokenizer as a raw completion (special-token text parsed, BOS added as
//                          tokenizer.json's post-processor says: vLLM's behaviour).
//   --ids-file F           one comma-separated id list per line, or
//   --prompts-file F       one JSON string per line (encoded like --prompt):
//                          every prompt runs concurrently through the engine (continuous
//                          batching); prints one JSON line per prompt, in input order, with its
//                          token_ids and text, and the throughput on stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/bandwidth_report.h"
#include "cli/commands.h"
#include "cli/engine_options.h"
#include "cli/model_options.h"
#include "core/errors.h"
#include "engine/llm_engine.h"
#include "engine/text_stream.h"
#include "model/generate.h"
#include "text/tokenizer.h"

namespace densekv::cli {

namespace {

struct GenerateArgs {
  ModelOptions model;
  EngineConfig engine;
  std::string ids, prompt, ids_file, prompts_file;
  GenerateOptions gen;
  float top_p = 1.0f, min_p = 0.0f;
  int top_k = -1;
  std::vector<std::string> stop;
  bool json = false;
};

std::vector<std::string> read_lines(const std::string& path, const char* flag) {
  std::ifstream f(path);
  if (!f) throw InvalidArgumentError(std::string(flag) + ": cannot open " + path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) throw InvalidArgumentError(std::string(flag) + ": " + path + " is empty");
  return lines;
}

std::unique_ptr<Tokenizer> load_tokenizer_if_present(const std::string& dir, bool required) {
  if (!std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json")) {
    if (required) {
      throw InvalidArgumentError("text prompts need " + dir + "/tokenizer.json, which is absent");
    }
    return nullptr;
  }
  return Tokenizer::load(dir);
}

// The prompts as ids, in input order.
std::vector<std::vector<int32_t>> read_prompts(const GenerateArgs& a, const Tokenizer* tok) {
  std::vector<std::vector<int32_t>> prompts;
  if (!a.ids_file.empty()) {
    int n = 0;
    for (const std::string& line : read_lines(a.ids_file, "--ids-file")) {
      ++n;
      try {
        prompts.push_back(parse_id_list(line));
      } catch (const InvalidArgumentError& e) {
        throw InvalidArgumentError("--ids-file line " + std::to_string(n) + ": " + e.what());
      }
    }
    return prompts;
  }
  int n = 0;
  for (const std::string& line : read_lines(a.prompts_file, "--prompts-file")) {
    ++n;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_string()) {
      throw InvalidArgumentError("--prompts-file line " + std::to_string(n) +
                                 ": expected one JSON string, e.g. \"Hello\"");
    }
    // As vLLM's completions: special-token text parsed, the tokenizer's BOS template applied.
    prompts.push_back(tok->encode(j.get<std::string>(), true, true));
  }
  return prompts;
}

void run_single(const GenerateArgs& a) {
  // The tokenizer is optional with --ids (a folder of weights alone still runs) and required
  // with --prompt.
  const bool has_tokenizer =
      std::filesystem::exists(std::filesystem::path(a.model.model_dir) / "tokenizer.json");
  if (!a.prompt.empty() && !has_tokenizer) {
    throw InvalidArgumentError("--prompt needs " + a.model.model_dir +
                               "/tokenizer.json; use --ids for a folder without a tokenizer");
  }
  std::unique_ptr<Tokenizer> tok = has_tokenizer ? Tokenizer::load(a.model.model_dir) : nullptr;
  std::vector<int32_t> ids =
      a.prompt.empty() ? parse_id_list(a.ids) : tok->encode(a.prompt, true, true);
  LoadedModel m = load_model(a.model);
  GenerateResult r = generate(*m.model, m.kv_format, ids, a.gen);
  if (a.json) {
    nlohmann::json j;
    j["token_ids"] = r.token_ids;
    j["finish_reason"] = r.finish_reason;
    j["prompt_tokens"] = r.prompt_tokens;
    if (tok) j["text"] = tok->decode(r.token_ids, /*skip_special=*/true);
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::string line;
    for (size_t i = 0; i < r.token_ids.size(); ++i) {
      line += (i ? "," : "") + std::to_string(r.token_ids[i]);
    }
    std::printf("%s\n", line.c_str());
  }
  std::fprintf(stderr, "prefill: %d tokens in %.3f s (%.1f tok/s)\n", r.prompt_tokens,
               r.prefill_seconds, r.prompt_tokens / std::max(r.prefill_seconds, 1e-9));
  if (r.decode_steps > 0) {
    std::fprintf(stderr, "decode: %d tokens in %.3f s (%.1f tok/s, %s of weights + KV read)\n",
                 r.decode_steps, r.decode_seconds, r.decode_steps / r.decode_seconds,
                 bandwidth_text(r.decode_bytes, r.decode_seconds, m.model->backend()).c_str());
  } else {
    std::fprintf(stderr, "decode: no decode steps\n");
  }
}

void run_engine(GenerateArgs a) {
  const bool text_prompts = !a.prompts_file.empty();
  std::unique_ptr<Tokenizer> tok = load_tokenizer_if_present(a.model.model_dir, text_prompts);
  const std::vector<std::vector<int32_t>> prompts = read_prompts(a, tok.get());
  LoadedModel m = load_model(a.model);
  a.engine.kv_cache_dtype = a.model.kv_cache_dtype;
  std::unique_ptr<Engine> engine = make_llm_engine(*m.model, a.engine);

  std::vector<int32_t> eos = m.model->config().eos_token_ids;
  if (tok && tok->eos_id() >= 0 && std::find(eos.begin(), eos.end(), tok->eos_id()) == eos.end()) {
    eos.push_back(tok->eos_id());
  }
  struct Running {
    GenerationRequest req;
    std::shared_ptr<RequestStream> stream;
    std::unique_ptr<TextStream> text;
    RequestOutput out;  // merged
    std::string full_text;
    bool done = false;
  };
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Running> runs(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    Running& r = runs[i];
    r.req.prompt_ids = prompts[i];
    r.req.eos_token_ids = eos;
    SamplingParams& p = r.req.params;
    p.max_tokens = a.gen.max_tokens;
    p.temperature = a.gen.temperature;
    p.seed = a.gen.seed;
    p.ignore_eos = a.gen.ignore_eos;
    p.top_p = a.top_p;
    p.top_k = a.top_k;
    p.min_p = a.min_p;
    p.stop = a.stop;
    if (!p.stop.empty() && !tok) {
      throw InvalidArgumentError("--stop needs the tokenizer (tokenizer.json is absent)");
    }
    try {
      r.stream = engine->submit(r.req);
    } catch (const InvalidArgumentError& e) {
      throw InvalidArgumentError("prompt " + std::to_string(i + 1) + ": " + e.what());
    }
    if (tok) r.text = std::make_unique<TextStream>(*engine, r.stream, *tok, r.req);
  }
  // Read every stream round-robin, so a stop string cancels its request promptly.
  for (size_t left = runs.size(); left > 0;) {
    for (Running& r : runs) {
      if (r.done) continue;
      const auto wait = std::chrono::milliseconds(1);
      RequestOutput chunk;
      if (r.text) {
        std::optional<TextChunk> c = r.text->next(wait);
        if (!c) continue;
        r.full_text += c->text;
        chunk = std::move(c->output);
      } else {
        std::optional<RequestOutput> c = r.stream->next(wait);
        if (!c) continue;
        chunk = std::move(*c);
      }
      r.out.token_ids.insert(r.out.token_ids.end(), chunk.token_ids.begin(), chunk.token_ids.end());
      if (chunk.finish != FinishReason::None) {
        std::vector<int32_t> ids = std::move(r.out.token_ids);
        r.out = std::move(chunk);
        r.out.token_ids = std::move(ids);
        r.done = true;
        --left;
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int64_t prompt_tokens = 0, cached = 0, generated = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Running& r = runs[i];
    if (!r.out.error.empty()) {
      throw Error("prompt " + std::to_string(i + 1) + " failed: " + r.out.error);
    }
    nlohmann::json j;
    j["index"] = i;
    j["token_ids"] = r.out.token_ids;
    j["text"] = r.text ? nlohmann::json(r.full_text) : nlohmann::json(nullptr);
    j["finish_reason"] = finish_reason_name(r.out.finish);
    j["prompt_tokens"] = r.out.prompt_tokens;
    j["cached_prompt_tokens"] = r.out.cached_prompt_tokens;
    j["completion_tokens"] = r.out.completion_tokens;
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    prompt_tokens += r.out.prompt_tokens;
    cached += r.out.cached_prompt_tokens;
    generated += r.out.completion_tokens;
  }
  const EngineMetrics em = engine->metrics();
  std::vector<std::pair<int64_t, int64_t>> seqs;
  for (const Running& r : runs) seqs.emplace_back(r.out.prompt_tokens, r.out.completion_tokens);
  const double bytes = engine_run_bytes(run_bytes(*m.model, m.kv_format), em.steps, seqs);
  std::fprintf(stderr,
               "engine: %zu prompts, %lld prompt tokens (%lld from the prefix cache), %lld "
               "generated tokens in %.3f s: %.1f output tok/s, %.1f total tok/s, %s of weights + "
               "KV read; peak running %d, preemptions %lld\n",
               runs.size(), static_cast<long long>(prompt_tokens), static_cast<long long>(cached),
               static_cast<long long>(generated), secs, generated / std::max(secs, 1e-9),
               (prompt_tokens + generated) / std::max(secs, 1e-9),
               bandwidth_text(bytes, secs, m.model->backend()).c_str(), em.peak_running,
               static_cast<long long>(em.preemptions));
}

void run(const GenerateArgs& a) {
  const int given =
      !a.ids.empty() + !a.prompt.empty() + !a.ids_file.empty() + !a.prompts_file.empty();
  if (given != 1) {
    throw InvalidArgumentError(
        "give exactly one of --ids, --prompt, --ids-file and --prompts-file");
  }
  if (a.gen.temperature < 0) throw InvalidArgumentError("--temperature must be >= 0");
  if (a.gen.max_tokens < 1) throw InvalidArgumentError("--max-tokens must be at least 1");
  if (!a.ids.empty() || !a.prompt.empty()) {
    run_single(a);
  } else {
    run_engine(a);
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "generate", "Generate tokens: one prompt alone (--ids) or many through the engine");
  auto a = std::make_shared<GenerateArgs>();
  add_model_options(cmd, a->model);
  add_engine_options(cmd, a->engine);
  cmd->add_option("--ids", a->ids, "comma-separated prompt token ids (one prompt, run alone)");
  cmd->add_option("--prompt", a->prompt,
                  "one prompt text, run alone, encoded with the folder's tokenizer.json (BOS "
                  "added as it says)");
  cmd->add_option("--ids-file", a->ids_file, "file with one comma-separated id list per line");
  cmd->add_option("--prompts-file", a->prompts_file, "file with one JSON string per line");
  cmd->add_option("--max-tokens", a->gen.max_tokens, "tokens to generate")->required();
  cmd->add_option("--temperature", a->gen.temperature, "0: greedy")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "-1: off")->capture_default_str();
  cmd->add_option("--min-p", a->min_p, "0: off")->capture_default_str();
  cmd->add_option("--seed", a->gen.seed, "sampling seed (each prompt uses it)")
      ->capture_default_str();
  cmd->add_option("--stop", a->stop, "stop string (repeatable; needs the tokenizer)");
  cmd->add_flag("--ignore-eos", a->gen.ignore_eos, "do not stop at an eos token");
  cmd->add_flag("--json", a->json,
                "--ids / --prompt: print one JSON object {token_ids, text, finish_reason, "
                "prompt_tokens}");
  cmd->callback([a] {
    GenerateArgs args = *a;
    args.gen.prefill_chunk = args.model.prefill_chunk;
    run(args);
  });
}

}  // namespace densekv::cli
