// `densekv generate MODEL_DIR (--ids 1,2,3 | --prompt TEXT) --max-tokens N`: prefill, then decode
// token by token through the paged KV cache. Prints the generated ids (or, with --json, one JSON
// object) on stdout and prefill / decode speed on stderr.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/errors.h"
#include "model/generate.h"
#include "text/tokenizer.h"

namespace densekv::cli {

namespace {

struct GenerateArgs {
  ModelOptions model;
  std::string ids;
  std::string prompt;
  GenerateOptions gen;
  bool json = false;
};

void run(const GenerateArgs& a) {
  if (a.ids.empty() == a.prompt.empty()) {
    throw InvalidArgumentError("give exactly one of --ids and --prompt");
  }
  if (a.gen.temperature < 0) throw InvalidArgumentError("--temperature must be >= 0");
  if (a.gen.max_tokens < 1) throw InvalidArgumentError("--max-tokens must be at least 1");
  // The tokenizer is optional with --ids (a folder of weights alone still runs) and required with
  // --prompt, which is encoded as a raw completion: special-token text parsed, BOS added as
  // tokenizer.json's post-processor says (vLLM's behaviour).
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
    std::fprintf(stderr,
                 "decode: %d tokens in %.3f s (%.1f tok/s, %.2f GB/s of weights + KV read)\n",
                 r.decode_steps, r.decode_seconds, r.decode_steps / r.decode_seconds,
                 r.decode_bytes / r.decode_seconds / 1e9);
  } else {
    std::fprintf(stderr, "decode: no decode steps\n");
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate tokens (prefill, then paged-cache decode)");
  auto a = std::make_shared<GenerateArgs>();
  add_model_options(cmd, a->model);
  cmd->add_option("--ids", a->ids, "comma-separated prompt token ids");
  cmd->add_option("--prompt", a->prompt,
                  "prompt text, encoded with the folder's tokenizer.json (BOS added as it says)");
  cmd->add_option("--max-tokens", a->gen.max_tokens, "tokens to generate")->required();
  cmd->add_option("--temperature", a->gen.temperature, "0: greedy")->capture_default_str();
  cmd->add_option("--seed", a->gen.seed, "sampling seed")->capture_default_str();
  cmd->add_flag("--ignore-eos", a->gen.ignore_eos, "do not stop at an eos token");
  cmd->add_flag("--json", a->json,
                "print one JSON object {token_ids, text, finish_reason, prompt_tokens}");
  cmd->callback([a] {
    GenerateArgs args = *a;
    args.gen.prefill_chunk = args.model.prefill_chunk;
    run(args);
  });
}

}  // namespace densekv::cli
