#include "io/hf_config.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "core/errors.h"
#include "io/safetensors.h"

namespace densekv {
using nlohmann::json;

namespace {

constexpr const char* kSupportedArchitectures =
    "LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM";

[[noreturn]] void unsupported(const std::string& msg) {
  throw UnsupportedModelError(msg);
}

bool has(const json& c, const char* key) {
  return c.contains(key) && !c[key].is_null();
}

// A positive integer field that fits in an int; `def` <= 0 means required.
int positive_int(const json& c, const char* key, int def = 0) {
  if (!has(c, key)) {
    if (def > 0) return def;
    unsupported(fmt::format("config.json has no '{}': required for this architecture", key));
  }
  const json& v = c[key];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > INT32_MAX) {
    unsupported(
        fmt::format("config.json field '{}' must be a positive integer, found {}", key, v.dump()));
  }
  return static_cast<int>(v.get<int64_t>());
}

float positive_float(const json& c, const char* key, float def, const char* where = "config.json") {
  if (!has(c, key)) {
    if (def > 0) return def;
    unsupported(fmt::format("{} has no '{}': required", where, key));
  }
  const json& v = c[key];
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>())) {
    unsupported(
        fmt::format("{} field '{}' must be a positive number, found {}", where, key, v.dump()));
  }
  return static_cast<float>(v.get<double>());
}

bool boolean(const json& c, const char* key, bool def) {
  if (!has(c, key)) return def;
  if (!c[key].is_boolean()) {
    unsupported(
        fmt::format("config.json field '{}' must be true or false, found {}", key, c[key].dump()));
  }
  return c[key].get<bool>();
}

// -1 when absent; one id or a list of ids.
std::vector<int> token_ids(const json& c, const char* key) {
  std::vector<int> ids;
  if (!has(c, key)) return ids;
  const json& v = c[key];
  for (const json& id : v.is_array() ? v : json::array({v})) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      unsupported(
          fmt::format("config.json field '{}' must be a token id or a list of token ids, found {}",
                      key, v.dump()));
    }
    ids.push_back(static_cast<int>(id.get<int64_t>()));
  }
  return ids;
}

void parse_architecture(const json& c, ModelConfig& cfg) {
  if (!has(c, "architectures") || !c["architectures"].is_array() || c["architectures"].empty() ||
      !c["architectures"][0].is_string()) {
    unsupported(
        fmt::format("config.json names no architecture ('architectures' list is missing); "
                    "supported: {}",
                    kSupportedArchitectures));
  }
  cfg.architecture = c["architectures"][0].get<std::string>();
  if (cfg.architecture == "LlamaForCausalLM")
    cfg.model_type = "llama";
  else if (cfg.architecture == "Qwen2ForCausalLM")
    cfg.model_type = "qwen2";
  else if (cfg.architecture == "MistralForCausalLM")
    cfg.model_type = "mistral";
  else {
    unsupported(fmt::format("architecture '{}' is not supported (supported: {})", cfg.architecture,
                            kSupportedArchitectures));
  }
}

void reject_quantization(const json& c) {
  for (const char* key : {"quantization_config", "compression_config"}) {
    if (!has(c, key)) continue;
    const json& q = c[key];
    std::string method = "unknown";
    if (q.is_object() && q.contains("quant_method") && q["quant_method"].is_string()) {
      method = q["quant_method"].get<std::string>();
    }
    unsupported(
        fmt::format("quantized checkpoint ({}.quant_method '{}') is not supported: densekv "
                    "serves bfloat16/float16/float32 weights (it quantizes the KV cache, not "
                    "the weights); use the unquantized model",
                    key, method));
  }
}

void parse_dtype(const json& c, ModelConfig& cfg) {
  const char* key = has(c, "dtype") ? "dtype" : has(c, "torch_dtype") ? "torch_dtype" : nullptr;
  if (key == nullptr) {
    cfg.dtype_from_config = false;  // open_model_dir takes it from the weights
    return;
  }
  std::string name = c[key].is_string() ? c[key].get<std::string>() : c[key].dump();
  if (name.rfind("torch.", 0) == 0) name = name.substr(6);
  if (name == "bfloat16")
    cfg.dtype = DType::BF16;
  else if (name == "float16")
    cfg.dtype = DType::F16;
  else if (name == "float32")
    cfg.dtype = DType::F32;
  else {
    unsupported(
        fmt::format("config.json {} '{}' is not supported (supported: bfloat16, float16, "
                    "float32); quantized weights are not supported",
                    key, name));
  }
}

void parse_rope(const json& c, ModelConfig& cfg) {
  // transformers 5 writes rope_parameters {rope_type, rope_theta, ...}; 4.x writes rope_theta at
  // the top level and rope_scaling {rope_type | type, factor, ...} (null without scaling).
  const char* key = has(c, "rope_parameters") ? "rope_parameters"
                    : has(c, "rope_scaling")  ? "rope_scaling"
                                              : nullptr;
  static const json kEmpty = json::object();
  const json& rp = key ? c[key] : kEmpty;
  if (!rp.is_object())
    unsupported(fmt::format("config.json {} must be an object, found {}", key, rp.dump()));
  const std::string where = key ? fmt::format("config.json {}", key) : "config.json";

  const bool theta_in_rp = has(rp, "rope_theta");
  cfg.rope.theta = positive_float(theta_in_rp ? rp : c, "rope_theta", 10000.0f,
                                  theta_in_rp ? where.c_str() : "config.json");
  const json& type = has(rp, "rope_type") ? rp["rope_type"]
                     : has(rp, "type")    ? rp["type"]
                                          : json("default");
  cfg.rope.type = type.is_string() ? type.get<std::string>() : type.dump();
  if (cfg.rope.type != "default" && cfg.rope.type != "llama3") {
    unsupported(fmt::format("{} type '{}' is not supported (supported: default, llama3)",
                            key ? key : "rope", cfg.rope.type));
  }
  for (const json* src : {&c, &rp}) {
    if (has(*src, "partial_rotary_factor") && (*src)["partial_rotary_factor"] != 1.0) {
      unsupported(
          fmt::format("partial_rotary_factor {} is not supported (only full rotary embeddings)",
                      (*src)["partial_rotary_factor"].dump()));
    }
  }
  if (cfg.rope.type == "llama3") {
    cfg.rope.factor = positive_float(rp, "factor", 0, where.c_str());
    cfg.rope.low_freq_factor = positive_float(rp, "low_freq_factor", 0, where.c_str());
    cfg.rope.high_freq_factor = positive_float(rp, "high_freq_factor", 0, where.c_str());
    cfg.rope.original_max_position_embeddings =
        positive_int(rp, "original_max_position_embeddings");
    if (cfg.rope.high_freq_factor <= cfg.rope.low_freq_factor) {
      unsupported(
          fmt::format("{} llama3 high_freq_factor {} must be larger than low_freq_factor {}", where,
                      cfg.rope.high_freq_factor, cfg.rope.low_freq_factor));
    }
  }
}

void reject_sliding_window(const json& c, const ModelConfig& cfg) {
  const char* hint = "densekv implements full attention only";
  if (cfg.model_type == "mistral" && has(c, "sliding_window")) {
    unsupported(
        fmt::format("sliding window attention (sliding_window {}) is not supported: {}; "
                    "Mistral models with \"sliding_window\": null (e.g. Mistral-7B-Instruct-v0.3) "
                    "are supported",
                    c["sliding_window"].dump(), hint));
  }
  if (cfg.model_type == "qwen2" && boolean(c, "use_sliding_window", false)) {
    unsupported(
        fmt::format("sliding window attention (use_sliding_window true) is not supported: {}; "
                    "set \"use_sliding_window\": false as the Qwen2.5 releases do",
                    hint));
  }
  if (has(c, "layer_types") && c["layer_types"].is_array()) {  // transformers 5
    for (const json& t : c["layer_types"]) {
      if (t != "full_attention") {
        unsupported(fmt::format("layer_types contains {}: {}", t.dump(), hint));
      }
    }
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

bool is_quantized_tensor(const std::string& name) {
  static const std::set<std::string> kQuantSuffixes = {
      "qweight",       "qzeros",           "scales",
      "g_idx",         "weight_scale",     "weight_scale_inv",
      "input_scale",   "output_scale",     "weight_zero_point",
      "weight_packed", "weight_shape",     "weight_global_scale",
      "SCB",           "absmax",           "quant_map",
      "nested_absmax", "nested_quant_map", "k_scale",
      "v_scale"};
  size_t dot = name.rfind('.');
  std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
  return kQuantSuffixes.count(last) > 0 || name.find(".quant_state.") != std::string::npos;
}

}  // namespace

ModelConfig parse_model_config(const json& c) {
  if (!c.is_object()) unsupported("config.json is not a JSON object");
  ModelConfig cfg;
  parse_architecture(c, cfg);
  reject_quantization(c);
  parse_dtype(c, cfg);

  const json& act = has(c, "hidden_act") ? c["hidden_act"] : json("silu");
  if (act != "silu") {
    unsupported(fmt::format("hidden_act {} is not supported (supported: \"silu\")", act.dump()));
  }
  cfg.hidden_size = positive_int(c, "hidden_size");
  cfg.intermediate_size = positive_int(c, "intermediate_size");
  cfg.num_layers = positive_int(c, "num_hidden_layers");
  cfg.num_heads = positive_int(c, "num_attention_heads");
  cfg.num_kv_heads = positive_int(c, "num_key_value_heads", cfg.num_heads);
  cfg.vocab_size = positive_int(c, "vocab_size");
  const int default_max_pos = cfg.model_type == "llama"   ? 2048
                              : cfg.model_type == "qwen2" ? 32768
                                                          : 131072;
  cfg.max_position_embeddings = positive_int(c, "max_position_embeddings", default_max_pos);
  cfg.rms_norm_eps = positive_float(c, "rms_norm_eps", 1e-6f);

  if (has(c, "head_dim")) {
    cfg.head_dim = positive_int(c, "head_dim");
  } else {
    if (cfg.hidden_size % cfg.num_heads != 0) {
      unsupported(
          fmt::format("hidden_size {} is not divisible by num_attention_heads {} and config.json "
                      "gives no head_dim",
                      cfg.hidden_size, cfg.num_heads));
    }
    cfg.head_dim = cfg.hidden_size / cfg.num_heads;
  }
  if (cfg.head_dim != 64 && cfg.head_dim != 128) {
    unsupported(fmt::format("head_dim {} is not supported (supported: 64, 128)", cfg.head_dim));
  }
  if (cfg.num_heads % cfg.num_kv_heads != 0) {
    unsupported(fmt::format("num_attention_heads {} is not divisible by num_key_value_heads {}",
                            cfg.num_heads, cfg.num_kv_heads));
  }

  reject_sliding_window(c, cfg);
  parse_rope(c, cfg);

  cfg.tie_word_embeddings = boolean(c, "tie_word_embeddings", false);
  if (cfg.model_type == "qwen2") {
    cfg.attention_bias = true;
  } else if (cfg.model_type == "llama") {
    cfg.attention_bias = boolean(c, "attention_bias", false);
    if (boolean(c, "mlp_bias", false)) {
      unsupported("mlp_bias true is not supported (MLP projections without bias only)");
    }
  }
  std::vector<int> bos = token_ids(c, "bos_token_id");
  cfg.bos_token_id = bos.empty() ? -1 : bos[0];
  cfg.eos_token_ids = token_ids(c, "eos_token_id");
  return cfg;
}

ModelConfig load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw FileFormatError(fmt::format("cannot open {}: {} (expected a Hugging Face model folder)",
                                      path, std::strerror(errno)));
  }
  std::string text;
  char buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
  std::fclose(f);
  json c = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (c.is_discarded()) throw FileFormatError(fmt::format("{}: not valid JSON", path));
  return parse_model_config(c);
}

std::string layer_tensor_name(int layer, const char* suffix) {
  return fmt::format("model.layers.{}.{}", layer, suffix);
}

void validate_tensors(const ModelConfig& cfg, const ModelTensors& tensors) {
  for (const auto& [name, t] : tensors.all()) {
    if (is_quantized_tensor(name)) {
      unsupported(
          fmt::format("tensor '{}' in {} is a quantized weight: quantized checkpoints are not "
                      "supported; use the unquantized bfloat16/float16 model",
                      name, t->file));
    }
  }
  auto expect = [&](const std::string& name, std::vector<int64_t> shape) {
    const TensorInfo* t = tensors.find(name);
    if (t == nullptr) unsupported(fmt::format("missing tensor '{}'", name));
    if (t->shape != shape) {
      unsupported(fmt::format("tensor '{}' in {} has shape {}, expected {} from config.json", name,
                              t->file, shape_str(t->shape), shape_str(shape)));
    }
  };
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size, vocab = cfg.vocab_size;
  const int64_t q_dim = int64_t{cfg.num_heads} * cfg.head_dim;
  const int64_t kv_dim = int64_t{cfg.num_kv_heads} * cfg.head_dim;
  expect("model.embed_tokens.weight", {vocab, hidden});
  for (int i = 0; i < cfg.num_layers; ++i) {
    expect(layer_tensor_name(i, "input_layernorm.weight"), {hidden});
    expect(layer_tensor_name(i, "self_attn.q_proj.weight"), {q_dim, hidden});
    expect(layer_tensor_name(i, "self_attn.k_proj.weight"), {kv_dim, hidden});
    expect(layer_tensor_name(i, "self_attn.v_proj.weight"), {kv_dim, hidden});
    expect(layer_tensor_name(i, "self_attn.o_proj.weight"), {hidden, q_dim});
    if (cfg.attention_bias) {
      expect(layer_tensor_name(i, "self_attn.q_proj.bias"), {q_dim});
      expect(layer_tensor_name(i, "self_attn.k_proj.bias"), {kv_dim});
      expect(layer_tensor_name(i, "self_attn.v_proj.bias"), {kv_dim});
    }
    expect(layer_tensor_name(i, "post_attention_layernorm.weight"), {hidden});
    expect(layer_tensor_name(i, "mlp.gate_proj.weight"), {inter, hidden});
    expect(layer_tensor_name(i, "mlp.up_proj.weight"), {inter, hidden});
    expect(layer_tensor_name(i, "mlp.down_proj.weight"), {hidden, inter});
  }
  expect("model.norm.weight", {hidden});
  if (!cfg.tie_word_embeddings || tensors.find("lm_head.weight") != nullptr) {
    expect("lm_head.weight", {vocab, hidden});
  }
  // Layers past num_hidden_layers mean config.json and the weights disagree.
  for (const auto& [name, t] : tensors.all()) {
    int layer = -1;
    if (std::sscanf(name.c_str(), "model.layers.%d.", &layer) == 1 && layer >= cfg.num_layers) {
      unsupported(
          fmt::format("tensor '{}' belongs to layer {} but config.json has num_hidden_layers {}",
                      name, layer, cfg.num_layers));
    }
  }
}

int64_t parameter_count(const ModelConfig& cfg) {
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size;
  const int64_t q_dim = int64_t{cfg.num_heads} * cfg.head_dim;
  const int64_t kv_dim = int64_t{cfg.num_kv_heads} * cfg.head_dim;
  int64_t layer = 2 * hidden             // input and post-attention norms
                  + 2 * q_dim * hidden   // q_proj, o_proj
                  + 2 * kv_dim * hidden  // k_proj, v_proj
                  + 3 * inter * hidden;  // gate, up, down
  if (cfg.attention_bias) layer += q_dim + 2 * kv_dim;
  const int64_t embed = int64_t{cfg.vocab_size} * hidden;
  return embed * (cfg.tie_word_embeddings ? 1 : 2) + cfg.num_layers * layer + hidden;
}

int64_t kv_bytes_per_token_16bit(const ModelConfig& cfg) {
  return int64_t{2} * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 2;
}

}  // namespace densekv
