// `densekv eval MODEL_DIR --kv-cache-dtype D [--text-file F] [--prompts F] [--max-tokens N]
// [--window W] [--stride S] [--json]`: the quality of a KV format against the model's 16-bit
// cache (model/eval.h): perplexity over a text file (sliding windows of W tokens advancing by S)
// under both, and the greedy-match rate and mean tokens until the first divergence over a
// prompt set. The prompts file has one prompt per line, either a JSON string (tokenized with
// the model's tokenizer, special tokens added as for a completion) or a JSON array of token ids.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/errors.h"
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
  popts.stride = a.stride == 0 ? a.window / 2 : a.stride;
  popts.prefill_chunk = a.model.prefill_chunk;
  if (popts.window < 2) throw InvalidArgumentError("--window must be at least 2");
  if (popts.stride < 1 || popts.stride >= popts.window) {
    throw InvalidArgumentError("--stride must be in [1, window - 1]");
  }
  LoadedModel m = load_model(a.model);
  const KvFormat base = kv_tail_format(m.model->config().dtype);
  std::unique_ptr<Tokenizer> tok;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int32_t> text_ids;
  if (!a.prompts_file.empty()) prompts = read_prompts(a.prompts_file, a.model.model_dir, tok);
  if (!a.text_file.empty()) {
    const std::string text = read_file(a.text_file, "--text-file");
    text_ids = tokenizer(a.model.model_dir, tok, "--text-file").encode(text, true, true);
  }

  nlohmann::json j;
  j["kv_cache_dtype"] = kv_format_name(m.kv_format);
  j["baseline"] = kv_format_name(base);
  j["ppl"] = j["ppl_16bit"] = j["greedy_match"] = j["first_divergence_mean"] = nullptr;
  if (!text_ids.empty()) {
    const PerplexityResult p = perplexity(*m.model, m.kv_format, text_ids, popts);
    const PerplexityResult b = perplexity(*m.model, base, text_ids, popts);
    j["ppl"] = p.ppl;
    j["ppl_16bit"] = b.ppl;
    j["tokens_scored"] = p.tokens;
    j["window"] = popts.window;
    j["stride"] = popts.stride;
    if (!a.json) {
      std::printf("perplexity over %lld tokens (%d windows of %d, stride %d): %s %.4f, %s %.4f\n",
                  static_cast<long long>(p.tokens), p.windows, popts.window, popts.stride,
                  kv_format_name(m.kv_format), p.ppl, kv_format_name(base), b.ppl);
    }
  }
  if (!prompts.empty()) {
    const GreedyMatchResult g = greedy_match(*m.model, m.kv_format, base, prompts, a.max_tokens);
    j["greedy_match"] = g.rate();
    j["first_divergence_mean"] = g.first_divergence_mean;
    j["prompts"] = g.prompts;
    j["max_tokens"] = a.max_tokens;
    if (!a.json) {
      std::printf(
          "greedy match vs %s over %d prompts x %d tokens: %.4f (%lld / %lld), first divergence "
          "after %.2f tokens on average\n",
          kv_format_name(base), g.prompts, a.max_tokens, g.rate(),
          static_cast<long long>(g.matched), static_cast<long long>(g.tokens),
          g.first_divergence_mean);
    }
  }
  if (a.json) std::printf("%s\n", j.dump().c_str());
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
  cmd->add_flag("--json", a->json,
                "print one JSON object {ppl, ppl_16bit, greedy_match, first_divergence_mean, ...}");
  cmd->callback([a] { run(*a); });
}

}  // namespace densekv::cli
