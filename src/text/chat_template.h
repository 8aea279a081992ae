// Chat templates: turn an OpenAI-style message list into the prompt text a model was trained on,
// by rendering the model's own Jinja template with our interpreter (jinja_eval.h), exactly as
// Hugging Face transformers' apply_chat_template(tokenize=False) renders it with Jinja2:
//   variables: messages, tools (none when not given), documents (none), add_generation_prompt,
//              bos_token / eos_token (left undefined when the tokenizer has none), plus any extra
//              context (e.g. enable_thinking); functions: raise_exception, strftime_now.
//   settings:  trim_blocks and lstrip_blocks on; tojson as transformers defines it
//              (ensure_ascii=False, key order kept, json.dumps separators ", " and ": ").
// strftime_now formats the current local time, or DENSEKV_CHAT_TEMPLATE_NOW (seconds since the
// epoch) when that environment variable is set, so tests are reproducible.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_eval.h"

namespace densekv {

class ChatTemplate {
 public:
  // Named templates: a single template is named "default"; tokenizer_config.json may carry a list
  // of {name, template} (e.g. "default" and "tool_use"). Parses them all (TemplateSyntaxError,
  // an UnsupportedModelError, names the template and line of unsupported syntax).
  ChatTemplate(const std::vector<std::pair<std::string, std::string>>& named_templates,
               std::string bos_token, std::string eos_token);

  // Reads a Hugging Face model folder: chat_template.jinja when present (transformers 5 prefers
  // it), else tokenizer_config.json's "chat_template"; bos/eos from tokenizer_config.json (a
  // string or {"content": ...}). Throws UnsupportedModelError when the folder has no template,
  // FileFormatError on unreadable JSON.
  static ChatTemplate load(const std::string& model_dir);

  // messages: a JSON array of message objects; tools: null when none (else an array of tool
  // schemas; picks the "tool_use" template when the model has one). Throws
  // jinja::TemplateRaisedError when the template calls raise_exception (e.g. roles that do not
  // alternate), jinja::TemplateError on other render failures (both InvalidArgumentError).
  std::string render(
      const nlohmann::ordered_json& messages, bool add_generation_prompt,
      const nlohmann::ordered_json& tools = nullptr,
      const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object()) const;

  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }
  // The template text render() uses with or without tools.
  const std::string& source(bool with_tools) const;

 private:
  struct Named {
    std::string name, source;
    std::shared_ptr<const jinja::Template> compiled;
  };
  const Named& select(bool with_tools) const;

  std::vector<Named> templates_;
  std::string bos_, eos_;
};

// One-shot render of a template string (parses it every call; prefer ChatTemplate to reuse).
std::string render_chat_template(
    const std::string& tmpl, const nlohmann::ordered_json& messages, bool add_generation_prompt,
    const nlohmann::ordered_json& tools, const std::string& bos_token, const std::string& eos_token,
    const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object());

}  // namespace densekv
