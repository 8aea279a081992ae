// `densekv chat-template DIR --messages F.json [--add-generation-prompt] [--tools F.json]
//  [--extra-context F.json]`: renders the model's chat template and prints the text, nothing
// else (no trailing newline), so it can be compared byte for byte with transformers' output.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/errors.h"
#include "text/chat_template.h"

namespace densekv::cli {
namespace {

nlohmann::ordered_json read_json(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InvalidArgumentError(std::string("cannot read ") + what + " file " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::ordered_json::parse(ss.str());
  } catch (const nlohmann::ordered_json::parse_error& e) {
    throw InvalidArgumentError(std::string(what) + " file " + path +
                               " is not valid JSON: " + e.what());
  }
}

struct Options {
  std::string dir, messages, tools, extra;
  bool add_generation_prompt = false;
};

}  // namespace

void register_chat_template(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  auto* cmd =
      app.add_subcommand("chat-template", "Render a model's chat template for a conversation");
  cmd->add_option("dir", opt->dir,
                  "Hugging Face model folder (tokenizer_config.json / chat_template.jinja)")
      ->required();
  cmd->add_option("--messages", opt->messages, "JSON file with the message list")->required();
  cmd->add_option("--tools", opt->tools, "JSON file with the tool list");
  cmd->add_option("--extra-context", opt->extra, "JSON object of extra template variables");
  cmd->add_flag("--add-generation-prompt", opt->add_generation_prompt,
                "End with the header of an assistant turn");
  cmd->callback([opt] {
    ChatTemplate tmpl = ChatTemplate::load(opt->dir);
    nlohmann::ordered_json messages = read_json(opt->messages, "messages");
    if (!messages.is_array())
      throw InvalidArgumentError("messages file " + opt->messages + " must hold a JSON array");
    nlohmann::ordered_json tools =
        opt->tools.empty() ? nlohmann::ordered_json() : read_json(opt->tools, "tools");
    nlohmann::ordered_json extra = opt->extra.empty() ? nlohmann::ordered_json::object()
                                                      : read_json(opt->extra, "extra context");
    std::string text = tmpl.render(messages, opt->add_generation_prompt, tools, extra);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
}

}  // namespace densekv::cli
