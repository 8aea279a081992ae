// `densekv tokenize DIR --text-file F [--json]`: the token ids of a text with the model folder's
// tokenizer (exactly HF tokenizers' ids). Special-token text in the file is parsed into its ids
// and no BOS/EOS is added, unless --no-parse-special / --add-special-tokens say otherwise.
// Output: with --json a JSON array on one line ("[9906,1917]"); without it the ids separated by
// spaces ("9906 1917"). Hidden option --bench N encodes the text N times on one thread and prints
// the speed instead of the ids.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/errors.h"
#include "text/tokenizer.h"

namespace densekv::cli {
namespace {

struct TokenizeOptions {
  std::string dir;
  std::string text_file;
  std::string text;
  bool json = false;
  bool add_special_tokens = false;
  bool no_parse_special = false;
  int bench = 0;
};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InvalidArgumentError(fmt::format("cannot read --text-file {}", path));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void run_bench(const Tokenizer& tok, const std::string& text, const TokenizeOptions& o) {
  using clock = std::chrono::steady_clock;
  size_t n_tokens = 0;
  auto t0 = clock::now();
  n_tokens = tok.encode(text, !o.no_parse_special, o.add_special_tokens).size();
  auto t1 = clock::now();
  for (int i = 1; i < o.bench; ++i) tok.encode(text, !o.no_parse_special, o.add_special_tokens);
  auto t2 = clock::now();
  double first = std::chrono::duration<double>(t1 - t0).count();
  double rest = std::chrono::duration<double>(t2 - t1).count();
  double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("bytes %zu tokens %zu\n", text.size(), n_tokens);
  std::printf("first pass (cold cache): %.3f s, %.2f MB/s, %.0f tokens/s\n", first, mb / first,
              static_cast<double>(n_tokens) / first);
  if (o.bench > 1) {
    double per = rest / (o.bench - 1);
    std::printf("next %d passes (warm cache): %.3f s each, %.2f MB/s, %.0f tokens/s (1 thread)\n",
                o.bench - 1, per, mb / per, static_cast<double>(n_tokens) / per);
  }
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand(
      "tokenize", "Print the token ids of a text (same ids as Hugging Face tokenizers)");
  cmd->add_option("model_dir", o->dir, "Model folder with tokenizer.json (+ tokenizer_config.json)")
      ->required();
  auto* file = cmd->add_option("--text-file", o->text_file, "UTF-8 text file to tokenize");
  auto* text = cmd->add_option("--text", o->text, "Text to tokenize (instead of --text-file)");
  file->excludes(text);
  cmd->add_flag("--json", o->json, "Print a JSON array (default: ids separated by spaces)");
  cmd->add_flag("--add-special-tokens", o->add_special_tokens,
                "Apply the post-processor template (e.g. Llama-3's BOS)");
  cmd->add_flag("--no-parse-special", o->no_parse_special,
                "Treat special-token text such as <|im_start|> as plain text");
  cmd->add_option("--bench", o->bench, "Encode N times and print MB/s and tokens/s")->group("");
  cmd->callback([o, file, text] {
    if (file->count() == 0 && text->count() == 0) {
      throw InvalidArgumentError("densekv tokenize needs --text-file FILE or --text TEXT");
    }
    auto tok = Tokenizer::load(o->dir);
    std::string input = file->count() ? read_text(o->text_file) : o->text;
    if (o->bench > 0) {
      run_bench(*tok, input, *o);
      return;
    }
    auto ids = tok->encode(input, !o->no_parse_special, o->add_special_tokens);
    std::string out = o->json ? "[" : "";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out += o->json ? "," : " ";
      out += std::to_string(ids[i]);
    }
    if (o->json) out += "]";
    std::printf("%s\n", out.c_str());
  });
}

}  // namespace densekv::cli
