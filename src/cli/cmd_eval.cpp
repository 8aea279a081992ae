// `densekv eval MODEL_DIR --kv-cache-dtype D[,D...]|all [--text-file F] [--prompts F] [--max-tokens
// N]
// [--window W] [--stride S] [--json]`: the quality of a KV format against the model's 16-bit
// cache (model/eval.h): perplexity over a text file (sliding windows of W tokens advancing by S)
// under both, and over a prompt set the greedy-match rate against the 16-bit cache's choices on
// the same histories, the mean tokens until the first divergence, and the rate against the
// 16-bit greedy decode's tokens; one result (JSON line) per format. The prompts file has one prompt
// per line, either a JSON string (tokenized with the model's tokenizer, special tokens added as for
// a completion) or a JSON array of token ids.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/errors.h"
#include "io/hf_config.h"
#include "kv/capacity.h"
#include "model/eval.h"
#include "text/tokenizer.h"

namespace densekv::cli {

namespace {

struct EvalArgs {
  ModelOptions model;
  std::string text_file;
  std::string prompts_file;
  int max_tokens = 64;
  int window = 512;
  int stride = 0;  // 0: window / 2
  bool bos_windows = false;
  bool json = false;
};

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InvalidArgumentError(std::string(what) + " '" + path + "' cannot be read");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Loads the tokenizer once, on first need.
const Tokenizer& tokenizer(const std::string& dir, std::unique_ptr<Tokenizer>& tok,
                           const char* why) {
  if (!tok) {
    try {
      tok = Tokenizer::load(dir);
    } catch (const Error& e) {
      throw InvalidArgumentError(std::string(why) + " needs the model's tokenizer: " + e.what());
    }
  }
  return *tok;
}

std::vector<std::vector<int32_t>> read_prompts(const std::string& path, const std::string& dir,
                                               std::unique_ptr<Tokenizer>& tok) {
  std::istringstream in(read_file(path, "--prompts file"));
  std::vector<std::vector<int32_t>> prompts;
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(no);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_string()) {
      const std::string text = j.get<std::string>();
      prompts.push_back(tokenizer(dir, tok, "a text prompt").encode(text, true, true));
    } else if (j.is_array() && !j.empty() &&
               std::all_of(j.begin(), j.end(), [](const nlohmann::json& x) {
                 return x.is_number_integer() && x.get<int64_t>() >= 0 &&
                        x.get<int64_t>() <= INT32_MAX;
               })) {
      prompts.push_back(j.get<std::vector<int32_t>>());
    } else {
      throw InvalidArgumentError(where +
                                 ": expected a JSON string or a non-empty array of token ids");
    }
    if (prompts.back().empty()) throw InvalidArgumentError(where + ": the prompt has no tokens");
  }
  if (prompts.empty()) throw InvalidArgumentError("--prompts file '" + path + "' has no prompts");
  return prompts;
}

void run(const EvalArgs& a) {
  if (a.text_file.empty() && a.prompts_file.empty()) {
    throw InvalidArgumentError("give --text-file (perplexity) and/or --prompts (greedy match)");
  }
  if (a.max_tokens < 1) throw InvalidArgumentError("--max-tokens must be at least 1");
  PerplexityOptions popts;
  popts.window = a.window;
  if (a.bos_windows && a.stride != 0) {
    throw InvalidArgumentError("--bos-windows windows do not overlap: leave --stride out");
  }
  popts.stride = a.bos_windows ? a.window - 1 : a.stride == 0 ? a.window / 2 : a.stride;
  popts.prefill_chunk = a.model.prefill_chunk;
  if (popts.window < 2) throw InvalidArgumentError("--window must be at least 2");
  if (popts.stride < 1 || popts.stride >= popts.window) {
    throw InvalidArgumentError("--stride must be in [1, window - 1]");
  }
  // Several formats share one model load and one 16-bit baseline (its perplexity and greedy
  // references are computed once).
  const ModelConfig cfg = load_model_config(a.model.model_dir);
  const std::vector<KvFormat> formats =
      parse_kv_cache_dtype_list(a.model.kv_cache_dtype, cfg.dtype, cfg.head_dim, nullptr);
  ModelOptions one = a.model;
  one.kv_cache_dtype = kv_format_name(formats[0]);
  LoadedModel m = load_model(one);
  const KvFormat base = kv_tail_format(m.model->config().dtype);
  std::unique_ptr<Tokenizer> tok;
  std::vector<std::vector<int32_t>> prompts, refs;
  GreedyChoices base_choices;
  std::vector<int32_t> text_ids;
  if (!a.prompts_file.empty()) prompts = read_prompts(a.prompts_file, a.model.model_dir, tok);
  if (!a.text_file.empty()) {
    const std::string text = read_file(a.text_file, "--text-file");
    const Tokenizer& t = tokenizer(a.model.model_dir, tok, "--text-file");
    text_ids = t.encode(text, true, !a.bos_windows);
    if (a.bos_windows && t.bos_id() < 0) {
      throw InvalidArgumentError("--bos-windows needs a bos_token in tokenizer_config.json");
    }
  }
  const auto ppl_of = [&](KvFormat f) {
    return a.bos_windows ? perplexity_bos_windows(*m.model, f, text_ids, tok->bos_id(),
                                                  popts.window, popts.prefill_chunk)
                         : perplexity(*m.model, f, text_ids, popts);
  };
  PerplexityResult base_ppl;
  if (!text_ids.empty()) base_ppl = ppl_of(base);
  if (!prompts.empty()) {
    refs = greedy_references(*m.model, base, prompts, a.max_tokens);
    base_choices = greedy_choices(*m.model, base, prompts, refs);
  }

  for (const KvFormat format : formats) {
    const auto start = std::chrono::steady_clock::now();
    nlohmann::json j;
    j["kv_cache_dtype"] = kv_format_name(format);
    j["baseline"] = kv_format_name(base);
    j["ppl"] = j["ppl_16bit"] = j["greedy_match"] = j["reference_match"] =
        j["first_divergence_mean"] = nullptr;
    if (!text_ids.empty()) {
      const PerplexityResult p = format == base ? base_ppl : ppl_of(format);
      j["ppl"] = p.ppl;
      j["ppl_16bit"] = base_ppl.ppl;
      j["tokens_scored"] = p.tokens;
      j["window"] = popts.window;
      j["stride"] = popts.stride;
      j["protocol"] = a.bos_windows ? "bos_windows" : "sliding";
      if (!a.json) {
        std::printf("perplexity over %lld tokens (%d windows of %d, stride %d): %s %.4f, %s %.4f\n",
                    static_cast<long long>(p.tokens), p.windows, popts.window, popts.stride,
                    kv_format_name(format), p.ppl, kv_format_name(base), base_ppl.ppl);
      }
    }
    if (!prompts.empty()) {
      const GreedyMatchResult g = greedy_match(
          format == base ? base_choices : greedy_choices(*m.model, format, prompts, refs),
          base_choices, refs);
      j["greedy_match"] = g.rate();
      j["reference_match"] = g.reference_rate();
      j["first_divergence_mean"] = g.first_divergence_mean;
      j["prompts"] = g.prompts;
      j["max_tokens"] = a.max_tokens;
      if (!a.json) {
        std::printf(
            "%s greedy match vs %s over %d prompts x %d tokens: %.4f (%lld / %lld), first "
            "divergence after %.2f tokens on average; %.4f of the %s greedy decode's tokens\n",
            kv_format_name(format), kv_format_name(base), g.prompts, a.max_tokens, g.rate(),
            static_cast<long long>(g.matched), static_cast<long long>(g.tokens),
            g.first_divergence_mean, g.reference_rate(), kv_format_name(base));
      }
    }
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (a.json) std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval", "KV format quality: perplexity and greedy match against the 16-bit cache");
  auto a = std::make_shared<EvalArgs>();
  add_model_options(cmd, a->model);
  cmd->add_option("--text-file", a->text_file, "text for perplexity (needs the tokenizer)");
  cmd->add_option("--prompts", a->prompts_file,
                  "prompt set: one JSON string or JSON array of token ids per line");
  cmd->add_option("--max-tokens", a->max_tokens, "greedy tokens per prompt")->capture_default_str();
  cmd->add_option("--window", a->window, "perplexity window in tokens")->capture_default_str();
  cmd->add_option("--stride", a->stride, "perplexity window stride (0: window / 2)")
      ->capture_default_str();
  cmd->add_flag("--bos-windows", a->bos_windows,
                "perplexity as tools/train_eval_model.py (transformers) measures it: windows of "
                "[BOS] + window - 1 text tokens, no overlap, full windows only");
  cmd->add_flag("--json", a->json,
                "print one JSON line per format {kv_cache_dtype, ppl, ppl_16bit, greedy_match, "
                "reference_match, "
                "first_divergence_mean, seconds, ...}");
  cmd->callback([a] { run(*a); });
}

}  // namespace densekv::cli
