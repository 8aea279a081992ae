// Chat templates: see chat_template.h.
#include "text/chat_template.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/errors.h"

namespace densekv {
namespace {

using ojson = nlohmann::ordered_json;

bool read_file(const std::filesystem::path& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

// bos_token / eos_token in tokenizer_config.json: a string, {"content": "..."} or null.
std::string token_string(const ojson& config, const char* key, const std::string& file) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  throw FileFormatError(file + ": " + key + " must be a string or {\"content\": ...}");
}

long long now_override() {
  const char* env = std::getenv("DENSEKV_CHAT_TEMPLATE_NOW");
  if (!env || !*env) return -1;
  char* end = nullptr;
  long long t = std::strtoll(env, &end, 10);
  if (*end != 0 || t < 0)
    throw InvalidArgumentError("DENSEKV_CHAT_TEMPLATE_NOW must be seconds since the epoch, got '" +
                               std::string(env) + "'");
  return t;
}

std::string render_with(const jinja::Template& tmpl, const ojson& messages,
                        bool add_generation_prompt, const ojson& tools, const std::string& bos,
                        const std::string& eos, const ojson& extra_context) {
  if (!messages.is_array()) throw InvalidArgumentError("chat messages must be a JSON array");
  if (!tools.is_null() && !tools.is_array())
    throw InvalidArgumentError("chat tools must be a JSON array (or null for none)");
  if (!extra_context.is_null() && !extra_context.is_object())
    throw InvalidArgumentError("chat template extra context must be a JSON object");
  // Same variables as transformers: special tokens first, extra kwargs over them, then the
  // fixed arguments of render().
  jinja::Value ctx = jinja::Value::object();
  if (!bos.empty()) ctx.obj->set("bos_token", jinja::Value::string(bos));
  if (!eos.empty()) ctx.obj->set("eos_token", jinja::Value::string(eos));
  if (extra_context.is_object())
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it)
      ctx.obj->set(it.key(), jinja::from_json(it.value()));
  ctx.obj->set("messages", jinja::from_json(messages));
  ctx.obj->set("tools", jinja::from_json(tools));
  ctx.obj->set("documents", jinja::Value::none());
  ctx.obj->set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  jinja::RenderOptions opt;
  opt.now = now_override();
  return tmpl.render(ctx, opt);
}

}  // namespace

ChatTemplate::ChatTemplate(const std::vector<std::pair<std::string, std::string>>& named_templates,
                           std::string bos_token, std::string eos_token)
    : bos_(std::move(bos_token)), eos_(std::move(eos_token)) {
  for (const auto& [name, source] : named_templates) {
    try {
      templates_.push_back({name, source, std::make_shared<const jinja::Template>(source)});
    } catch (const jinja::TemplateSyntaxError& e) {
      throw jinja::TemplateSyntaxError("chat template '" + name + "': " + e.what());
    }
  }
  if (templates_.empty()) throw UnsupportedModelError("no chat template given");
}

ChatTemplate ChatTemplate::load(const std::string& model_dir) {
  namespace fs = std::filesystem;
  fs::path dir(model_dir);
  if (!fs::is_directory(dir)) throw InvalidArgumentError("not a model directory: " + model_dir);
  fs::path config_path = dir / "tokenizer_config.json";
  ojson config = ojson::object();
  std::string text;
  if (read_file(config_path, text)) {
    try {
      config = ojson::parse(text);
    } catch (const ojson::parse_error& e) {
      throw FileFormatError(config_path.string() + ": invalid JSON: " + e.what());
    }
    if (!config.is_object()) throw FileFormatError(config_path.string() + ": not a JSON object");
  }
  std::string bos = token_string(config, "bos_token", config_path.string());
  std::string eos = token_string(config, "eos_token", config_path.string());

  std::vector<std::pair<std::string, std::string>> named;
  if (read_file(dir / "chat_template.jinja", text)) {
    named.emplace_back("default", text);
  } else if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    const ojson& ct = config["chat_template"];
    if (ct.is_string()) {
      named.emplace_back("default", ct.get<std::string>());
    } else if (ct.is_array()) {
      for (const ojson& item : ct) {
        if (!item.is_object() || !item.contains("name") || !item.contains("template") ||
            !item["name"].is_string() || !item["template"].is_string())
          throw FileFormatError(
              config_path.string() +
              ": chat_template list entries must be {\"name\": str, \"template\": str}");
        named.emplace_back(item["name"].get<std::string>(), item["template"].get<std::string>());
      }
    } else {
      throw FileFormatError(config_path.string() + ": chat_template must be a string or a list");
    }
  }
  if (named.empty())
    throw UnsupportedModelError(
        model_dir +
        " has no chat template (neither chat_template.jinja nor a chat_template "
        "in tokenizer_config.json)");
  return ChatTemplate(named, bos, eos);
}

const ChatTemplate::Named& ChatTemplate::select(bool with_tools) const {
  // transformers: "tool_use" when tools are given and the model has it, else "default".
  if (templates_.size() == 1) return templates_[0];
  if (with_tools)
    for (const Named& t : templates_)
      if (t.name == "tool_use") return t;
  for (const Named& t : templates_)
    if (t.name == "default") return t;
  throw UnsupportedModelError("the model's chat templates have no \"default\" template");
}

const std::string& ChatTemplate::source(bool with_tools) const {
  return select(with_tools).source;
}

std::string ChatTemplate::render(const ojson& messages, bool add_generation_prompt,
                                 const ojson& tools, const ojson& extra_context) const {
  return render_with(*select(!tools.is_null()).compiled, messages, add_generation_prompt, tools,
                     bos_, eos_, extra_context);
}

std::string render_chat_template(const std::string& tmpl, const ojson& messages,
                                 bool add_generation_prompt, const ojson& tools,
                                 const std::string& bos_token, const std::string& eos_token,
                                 const ojson& extra_context) {
  jinja::Template compiled(tmpl);
  return render_with(compiled, messages, add_generation_prompt, tools, bos_token, eos_token,
                     extra_context);
}

}  // namespace densekv
