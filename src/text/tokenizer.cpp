#include "text/tokenizer.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.h"
#include "text/byte_level.h"
#include "text/utf8.h"

namespace densekv {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FileFormatError(fmt::format("cannot read {}", path.string()));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::json parse_json(const std::string& text, const std::string& name) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FileFormatError(fmt::format("{} is not valid JSON: {}", name, e.what()));
  }
}

// A token in tokenizer_config.json: a string, an {"content": ...} object, or null.
std::string token_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  throw FileFormatError(
      fmt::format("tokenizer_config.json: '{}' is neither a string nor an object "
                  "with a 'content' string",
                  key));
}

std::optional<bool> opt_bool(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& dir) {
  auto path = dir / "tokenizer.json";
  if (!std::filesystem::exists(path)) {
    throw FileFormatError(
        fmt::format("{} not found: densekv needs the Hugging Face fast tokenizer "
                    "file of the model",
                    path.string()));
  }
  std::string config;
  if (std::filesystem::exists(dir / "tokenizer_config.json")) {
    config = read_file(dir / "tokenizer_config.json");
  }
  auto tok = from_json(read_file(path), config);
  if (std::filesystem::exists(dir / "chat_template.jinja")) {
    tok->config_.chat_template = read_file(dir / "chat_template.jinja");
  }
  return tok;
}

std::unique_ptr<Tokenizer> Tokenizer::from_json(const std::string& tokenizer_json,
                                                const std::string& config_json) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  tok->load_tokenizer_json(parse_json(tokenizer_json, "tokenizer.json"));
  if (!config_json.empty()) tok->load_config(parse_json(config_json, "tokenizer_config.json"));
  return tok;
}

void Tokenizer::load_tokenizer_json(const nlohmann::json& j) {
  if (!j.is_object()) throw FileFormatError("tokenizer.json is not a JSON object");
  auto field = [&](const char* key) { return j.contains(key) ? j[key] : nlohmann::json(); };
  model_ = std::make_unique<BpeModel>(field("model"));
  normalizer_ = Normalizer::from_json(field("normalizer"));
  pre_tokenizer_ = PreTokenizer::from_json(field("pre_tokenizer"));
  load_decoder(field("decoder"));
  // "truncation" and "padding" are ignored: transformers (and so vLLM) turn them off unless a
  // request asks for them.
  id_limit_ = model_->id_limit();

  std::vector<AddedToken> added;
  nlohmann::json list = field("added_tokens");
  if (!list.is_null() && !list.is_array())
    throw FileFormatError("tokenizer.json: added_tokens is not an array");
  for (const auto& a : list) {
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string()) {
      throw FileFormatError("tokenizer.json: an added token lacks its 'content' string");
    }
    AddedToken t;
    t.content = a["content"].get<std::string>();
    t.special = a.value("special", false);
    t.single_word = a.value("single_word", false);
    t.lstrip = a.value("lstrip", false);
    t.rstrip = a.value("rstrip", false);
    t.normalized = a.value("normalized", !t.special);
    // HF keeps the model's id for a token already in the vocabulary.
    int32_t model_id = model_->token_to_id(t.content);
    if (model_id >= 0) {
      t.id = model_id;
    } else if (a.contains("id") && a["id"].is_number_integer() && a["id"].get<int64_t>() >= 0 &&
               a["id"].get<int64_t>() <= INT32_MAX) {
      t.id = a["id"].get<int32_t>();
    } else {
      throw FileFormatError(
          fmt::format("tokenizer.json: added token {:?} has no valid id", t.content));
    }
    if (t.content.empty() || added_by_content_.count(t.content)) continue;  // HF skips these
    if (model_->id_to_token(t.id) != nullptr && model_id < 0) {
      throw FileFormatError(
          fmt::format("tokenizer.json: added token {:?} reuses id {} of vocab token {:?}",
                      t.content, t.id, *model_->id_to_token(t.id)));
    }
    added_by_content_[t.content] = t.id;
    added_by_id_[t.id] = added.size();
    id_limit_ = std::max(id_limit_, t.id + 1);
    added.push_back(std::move(t));
  }
  added_.build(std::move(added), normalizer_);
  load_post_processor(field("post_processor"));
}

void Tokenizer::load_post_processor(const nlohmann::json& j) {
  if (j.is_null()) return;
  std::string type = j.value("type", "");
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      throw FileFormatError("tokenizer.json: Sequence post_processor lacks its 'processors' array");
    }
    for (const auto& p : j["processors"]) load_post_processor(p);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets; ids are unchanged.
  } else if (type == "TemplateProcessing") {
    auto single = j.find("single");
    auto specials = j.find("special_tokens");
    if (single == j.end() || !single->is_array()) {
      throw FileFormatError("tokenizer.json: TemplateProcessing lacks its 'single' template");
    }
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (const auto& item : *single) {
      if (item.contains("Sequence")) {
        if (seen_sequence || item["Sequence"].value("id", "A") != "A") {
          throw UnsupportedModelError(
              "tokenizer.json: TemplateProcessing 'single' template has a "
              "sequence other than one $A");
        }
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        std::string name = item["SpecialToken"].value("id", "");
        if (specials == j.end() || !specials->contains(name) ||
            !(*specials)[name].contains("ids")) {
          throw FileFormatError(
              fmt::format("tokenizer.json: TemplateProcessing uses special token "
                          "{:?} that its special_tokens map lacks",
                          name));
        }
        for (const auto& id : (*specials)[name]["ids"]) {
          (seen_sequence ? after : before).push_back(id.get<int32_t>());
        }
      } else {
        throw FileFormatError(
            "tokenizer.json: TemplateProcessing item is neither Sequence nor SpecialToken");
      }
    }
    // A later processor wraps what the earlier ones produced.
    prefix_.insert(prefix_.begin(), before.begin(), before.end());
    suffix_.insert(suffix_.end(), after.begin(), after.end());
  } else {
    throw UnsupportedModelError(fmt::format(
        "tokenizer.json: post_processor type '{}' is not supported by densekv (supported: "
        "TemplateProcessing, ByteLevel and Sequence of them)",
        type));
  }
}

void Tokenizer::load_decoder(const nlohmann::json& j) {
  std::string type = j.is_object() ? j.value("type", "") : "";
  if (type == "Sequence" && j.contains("decoders") && j["decoders"].is_array()) {
    for (const auto& d : j["decoders"]) load_decoder(d);
    return;
  }
  if (type != "ByteLevel") {
    throw UnsupportedModelError(
        fmt::format("tokenizer.json: decoder '{}' is not supported by densekv (only ByteLevel)",
                    j.is_null() ? "null" : type));
  }
}

void Tokenizer::load_config(const nlohmann::json& j) {
  if (!j.is_object()) throw FileFormatError("tokenizer_config.json is not a JSON object");
  config_.bos_token = token_string(j, "bos_token");
  config_.eos_token = token_string(j, "eos_token");
  config_.pad_token = token_string(j, "pad_token");
  config_.add_bos_token = opt_bool(j, "add_bos_token");
  config_.add_eos_token = opt_bool(j, "add_eos_token");
  auto ct = j.find("chat_template");
  if (ct != j.end() && ct->is_string()) {
    config_.chat_template = ct->get<std::string>();
  } else if (ct != j.end() && ct->is_array()) {  // [{"name": ..., "template": ...}]: use "default"
    for (const auto& t : *ct) {
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template")) {
        config_.chat_template = t["template"].get<std::string>();
      }
    }
  }
  bos_id_ = config_.bos_token.empty() ? -1 : token_to_id(config_.bos_token);
  eos_id_ = config_.eos_token.empty() ? -1 : token_to_id(config_.eos_token);
}

void Tokenizer::encode_text(std::string_view text, bool parse_special,
                            std::vector<int32_t>& out) const {
  std::string buffer;
  std::string_view normalized = text;
  if (!normalizer_.empty()) {
    buffer.assign(text);
    normalizer_.apply(buffer);
    normalized = buffer;
  }
  std::vector<TextPiece> pieces;
  added_.split(normalized, /*normalized_set=*/true, parse_special, pieces);
  for (const TextPiece& p : pieces) {
    if (p.id >= 0) {
      out.push_back(p.id);
      continue;
    }
    pre_tokenizer_.split(normalized.substr(p.begin, p.end - p.begin),
                         [&](std::string_view word) { model_->tokenize(word, out); });
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special,
                                       bool add_special_tokens) const {
  size_t bad = utf8_first_invalid(text);
  if (bad != text.size()) {
    throw InvalidArgumentError(
        fmt::format("text to tokenize is not valid UTF-8 (byte {} of {})", bad, text.size()));
  }
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = prefix_;
  std::vector<TextPiece> pieces;
  added_.split(text, /*normalized_set=*/false, parse_special, pieces);
  for (const TextPiece& p : pieces) {
    if (p.id >= 0)
      ids.push_back(p.id);
    else
      encode_text(text.substr(p.begin, p.end - p.begin), parse_special, ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

void Tokenizer::append_token_bytes(int32_t id, bool skip_special, std::string& out) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) {
    const AddedToken& t = added_.tokens()[it->second];
    if (!(skip_special && t.special)) byte_level_decode(t.content, out);
    return;
  }
  if (const std::string* s = model_->id_to_token(id)) byte_level_decode(*s, out);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes, text;
  for (int32_t id : ids) append_token_bytes(id, skip_special, bytes);
  utf8_append_lossy(bytes, /*final=*/true, text);
  return text;
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  auto it = added_by_content_.find(token);
  if (it != added_by_content_.end()) return it->second;
  return model_->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return added_.tokens()[it->second].content;
  if (const std::string* s = model_->id_to_token(id)) return *s;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_.tokens()[it->second].special;
}

}  // namespace densekv
