#include "io/hf_config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/errors.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "safetensors_writer.h"

using namespace densekv;
using densekv::testing::expect_error;
using densekv::testing::FakeTensor;
using densekv::testing::fresh_dir;
using densekv::testing::llama_tensors;
using densekv::testing::make_safetensors;
using densekv::testing::write_file;
using nlohmann::json;

namespace {

json config_json(const std::string& name) {
  std::ifstream f(std::string(DENSEKV_SOURCE_DIR) + "/tests/data/configs/" + name + "/config.json");
  EXPECT_TRUE(f.good()) << name;
  return json::parse(f);
}

ModelConfig config(const std::string& name) {
  return load_model_config(std::string(DENSEKV_SOURCE_DIR) + "/tests/data/configs/" + name);
}

void expect_unsupported(const json& c, const std::vector<std::string>& parts) {
  expect_error<UnsupportedModelError>([&] { parse_model_config(c); }, parts);
}

void expect_unsupported_config(const std::string& name, const std::vector<std::string>& parts) {
  expect_unsupported(config_json(name), parts);
}

}  // namespace

// ---- real configs that must pass ----

TEST(HfConfig, Llama31_8B) {
  ModelConfig c = config("llama-3.1-8b");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_EQ(c.rope.type, "llama3");
  EXPECT_FLOAT_EQ(c.rope.theta, 500000.0f);
  EXPECT_FLOAT_EQ(c.rope.factor, 8.0f);
  EXPECT_FLOAT_EQ(c.rope.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(c.rope.high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{128001});
  // Published parameter count of Llama-3.1-8B: 8,030,261,248.
  EXPECT_EQ(parameter_count(c), 8030261248);
  EXPECT_EQ(kv_bytes_per_token_16bit(c), 2 * 32 * 8 * 128 * 2);  // 128 KiB
}

TEST(HfConfig, Llama31_8B_InstructEosList) {
  EXPECT_EQ(config("llama-3.1-8b-instruct").eos_token_ids,
            (std::vector<int>{128001, 128008, 128009}));
}

TEST(HfConfig, Llama32_1B_Tied) {
  ModelConfig c = config("llama-3.2-1b");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FLOAT_EQ(c.rope.factor, 32.0f);
  EXPECT_EQ(parameter_count(c), 1235814400);  // published: 1.24B
  EXPECT_EQ(kv_bytes_per_token_16bit(c), 2 * 16 * 8 * 64 * 2);
}

TEST(HfConfig, Llama2_7B_DefaultRopeFloat16) {
  ModelConfig c = config("llama-2-7b");
  EXPECT_EQ(c.rope.type, "default");
  EXPECT_FLOAT_EQ(c.rope.theta, 10000.0f);  // transformers' default when rope_theta is absent
  EXPECT_EQ(c.dtype, DType::F16);
  EXPECT_EQ(c.num_kv_heads, 32);
  EXPECT_EQ(parameter_count(c), 6738415616);  // published: 6.74B
}

TEST(HfConfig, Qwen25_7B_SlidingWindowPresentButUnused) {
  ModelConfig c = config("qwen2.5-7b");
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_bias);  // always for Qwen2
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_FLOAT_EQ(c.rope.theta, 1e6f);
  EXPECT_EQ(c.rope.type, "default");
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(parameter_count(c), 7615616512);  // published: 7.61B
  EXPECT_EQ(config("qwen2.5-7b-instruct").eos_token_ids, std::vector<int>{151645});
}

TEST(HfConfig, Qwen25_05B_Tied) {
  ModelConfig c = config("qwen2.5-0.5b-instruct");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(parameter_count(c), 494032768);  // published: 0.49B
}

TEST(HfConfig, Mistral7BInstructV03_NullSlidingWindow) {
  ModelConfig c = config("mistral-7b-instruct-v0.3");
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.vocab_size, 32768);
  EXPECT_EQ(parameter_count(c), 7248023552);  // published: 7.25B
}

TEST(HfConfig, Transformers5Layout) {
  ModelConfig v4 = config("llama-3.1-8b");
  ModelConfig v5 = config("crafted-llama-3.1-8b-transformers5");
  EXPECT_EQ(v5.rope.type, "llama3");
  EXPECT_FLOAT_EQ(v5.rope.theta, v4.rope.theta);
  EXPECT_FLOAT_EQ(v5.rope.factor, v4.rope.factor);
  EXPECT_EQ(v5.rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(v5.dtype, DType::BF16);
  EXPECT_EQ(parameter_count(v5), parameter_count(v4));
  ModelConfig q = config("crafted-qwen2.5-7b-transformers5");
  EXPECT_FLOAT_EQ(q.rope.theta, 1e6f);
  EXPECT_TRUE(q.dtype_from_config);
}

// ---- real and crafted configs that must fail, with the reason named ----

TEST(HfConfig, RejectsUnsupportedModels) {
  expect_unsupported_config("mistral-7b-v0.1",
                            {"sliding window", "sliding_window 4096", "Mistral-7B-Instruct-v0.3"});
  expect_unsupported_config("crafted-qwen2-sliding-window", {"use_sliding_window true"});
  expect_unsupported_config("qwen2.5-7b-instruct-gptq-int4",
                            {"quant_method 'gptq'", "unquantized"});
  expect_unsupported_config("qwen2.5-7b-instruct-awq", {"quant_method 'awq'"});
  expect_unsupported_config("crafted-llama-fp8-quantized", {"quant_method 'fp8'"});
  expect_unsupported_config("crafted-llama-fp8-dtype",
                            {"torch_dtype 'float8_e4m3fn' is not supported"});
  expect_unsupported_config("gemma-2b", {"architecture 'GemmaForCausalLM' is not supported",
                                         "LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM"});
  expect_unsupported_config("phi-3-mini-4k-instruct", {"architecture 'Phi3ForCausalLM'"});
  expect_unsupported_config(
      "qwen2.5-7b-instruct-yarn",
      {"rope_scaling type 'yarn' is not supported (supported: default, llama3)"});
  expect_unsupported_config("crafted-llama-head-dim-96",
                            {"head_dim 96 is not supported (supported: 64, 128)"});
}

TEST(HfConfig, RejectsBadFields) {
  const json base = config_json("llama-3.1-8b");
  auto with = [&](const char* key, json v) {
    json c = base;
    if (v.is_discarded())
      c.erase(key);
    else
      c[key] = v;
    return c;
  };
  const json erase = json(json::value_t::discarded);
  expect_unsupported(with("architectures", erase),
                     {"no architecture", "supported: LlamaForCausalLM"});
  expect_unsupported(with("architectures", json::array()), {"no architecture"});
  expect_unsupported(with("hidden_size", erase), {"no 'hidden_size'"});
  expect_unsupported(with("num_hidden_layers", 0),
                     {"'num_hidden_layers' must be a positive integer, found 0"});
  expect_unsupported(with("intermediate_size", -5), {"'intermediate_size'", "found -5"});
  expect_unsupported(with("vocab_size", "128256"), {"'vocab_size'", "found \"128256\""});
  expect_unsupported(with("num_key_value_heads", 5), {"not divisible by num_key_value_heads 5"});
  expect_unsupported(with("hidden_act", "gelu"), {"hidden_act \"gelu\" is not supported"});
  expect_unsupported(with("mlp_bias", true), {"mlp_bias"});
  expect_unsupported(with("torch_dtype", "int8"), {"torch_dtype 'int8'"});
  expect_unsupported(with("head_dim", 256), {"head_dim 256"});
  expect_unsupported(with("rms_norm_eps", 0), {"rms_norm_eps"});
  expect_unsupported(with("eos_token_id", "x"), {"eos_token_id"});
  expect_unsupported(json::array(), {"not a JSON object"});

  json rope = base;
  rope["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  expect_unsupported(rope,
                     {"rope_scaling type 'linear' is not supported (supported: default, llama3)"});
  rope["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect_unsupported(rope, {"rope_scaling has no 'low_freq_factor'"});
  rope = base;
  rope.erase("rope_scaling");
  rope["rope_parameters"] = {{"rope_type", "dynamic"}, {"rope_theta", 10000.0}};
  expect_unsupported(rope, {"rope_parameters type 'dynamic' is not supported"});
  rope["rope_parameters"] = {
      {"rope_type", "default"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", 0.5}};
  expect_unsupported(rope, {"partial_rotary_factor 0.5"});

  json t5 = config_json("crafted-qwen2.5-7b-transformers5");
  t5["layer_types"][3] = "sliding_attention";
  expect_unsupported(t5, {"sliding_attention"});
}

TEST(HfConfig, Defaults) {
  json c = config_json("llama-3.1-8b");
  for (const char* k :
       {"num_key_value_heads", "rope_scaling", "rope_theta", "torch_dtype", "eos_token_id",
        "bos_token_id", "tie_word_embeddings", "max_position_embeddings", "hidden_act"}) {
    c.erase(k);
  }
  c["head_dim"] = nullptr;  // null means hidden / heads
  ModelConfig m = parse_model_config(c);
  EXPECT_EQ(m.num_kv_heads, 32);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(m.rope.type, "default");
  EXPECT_FLOAT_EQ(m.rope.theta, 10000.0f);
  EXPECT_FALSE(m.dtype_from_config);
  EXPECT_TRUE(m.eos_token_ids.empty());
  EXPECT_EQ(m.bos_token_id, -1);
  EXPECT_EQ(m.max_position_embeddings, 2048);
  c["architectures"] = {"LlamaForCausalLM"};
  c["attention_bias"] = true;
  EXPECT_TRUE(parse_model_config(c).attention_bias);
  c["architectures"] = {"MistralForCausalLM"};
  EXPECT_FALSE(parse_model_config(c).attention_bias);
}

TEST(HfConfig, MissingOrInvalidConfigFile) {
  auto dir = fresh_dir("cfg_missing");
  expect_error<FileFormatError>([&] { load_model_config(dir.string()); },
                                {"config.json", "No such file"});
  write_file(dir / "config.json", "{\"architectures\": [");
  expect_error<FileFormatError>([&] { load_model_config(dir.string()); },
                                {"config.json", "not valid JSON"});
}

// ---- validate_tensors / open_model_dir on tiny model folders ----

namespace {

json tiny_llama() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"hidden_size", 128},
          {"intermediate_size", 256},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 1},
          {"vocab_size", 64},
          {"rms_norm_eps", 1e-5},
          {"torch_dtype", "bfloat16"},
          {"tie_word_embeddings", false}};
}

std::string tiny_model(const std::string& name, const json& cfg, std::vector<FakeTensor> tensors) {
  auto dir = fresh_dir(name);
  write_file(dir / "config.json", cfg.dump());
  write_file(dir / "model.safetensors", make_safetensors(tensors));
  return dir.string();
}

}  // namespace

TEST(ValidateTensors, TinyLlamaPasses) {
  const json c = tiny_llama();
  std::string dir = tiny_model("vt_ok", c, llama_tensors(c, "BF16", false));
  ModelDir m = open_model_dir(dir);
  EXPECT_EQ(m.config.head_dim, 64);
  EXPECT_EQ(m.tensors->all().size(), 3u + 2u * 9u);
  EXPECT_EQ(validate_model_dir(dir).num_layers, 2);
  // Parameter count from the config equals the elements actually stored.
  int64_t stored = 0;
  for (const auto& [name, t] : m.tensors->all()) stored += t->numel();
  EXPECT_EQ(parameter_count(m.config), stored);
}

TEST(ValidateTensors, QwenWithBiasAndTiedEmbeddings) {
  json c = tiny_llama();
  c["architectures"] = {"Qwen2ForCausalLM"};
  c["tie_word_embeddings"] = true;
  std::string dir = tiny_model("vt_qwen", c, llama_tensors(c, "F16", true));
  ModelDir m = open_model_dir(dir);
  EXPECT_TRUE(m.config.attention_bias);
  int64_t stored = 0;
  for (const auto& [name, t] : m.tensors->all()) stored += t->numel();
  EXPECT_EQ(parameter_count(m.config), stored);
  // Without the biases a Qwen2 folder is incomplete.
  dir = tiny_model("vt_qwen_nobias", c, llama_tensors(c, "F16", false));
  expect_error<UnsupportedModelError>([&] { open_model_dir(dir); },
                                      {"missing tensor 'model.layers.0.self_attn.q_proj.bias'"});
}

TEST(ValidateTensors, MissingTensor) {
  const json c = tiny_llama();
  auto tensors = llama_tensors(c, "BF16", false);
  std::erase_if(tensors,
                [](const FakeTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
  std::string dir = tiny_model("vt_missing", c, tensors);
  expect_error<UnsupportedModelError>([&] { open_model_dir(dir); },
                                      {"missing tensor 'model.layers.1.mlp.up_proj.weight'"});
  tensors = llama_tensors(c, "BF16", false);
  std::erase_if(tensors, [](const FakeTensor& t) { return t.name == "lm_head.weight"; });
  dir = tiny_model("vt_missing_head", c, tensors);
  expect_error<UnsupportedModelError>([&] { open_model_dir(dir); },
                                      {"missing tensor 'lm_head.weight'"});
}

TEST(ValidateTensors, WrongShape) {
  const json c = tiny_llama();
  auto tensors = llama_tensors(c, "BF16", false);
  for (auto& t : tensors) {
    if (t.name == "model.layers.0.self_attn.k_proj.weight") t.shape = {128, 128};
  }
  std::string dir = tiny_model("vt_shape", c, tensors);
  expect_error<UnsupportedModelError>([&] { open_model_dir(dir); },
                                      {"tensor 'model.layers.0.self_attn.k_proj.weight'",
                                       "has shape [128, 128], expected [64, 128]"});
}

TEST(ValidateTensors, QuantizedTensorNames) {
  const json c = tiny_llama();
  for (const char* suffix : {"qweight", "scales", "g_idx", "weight_scale"}) {
    auto tensors = llama_tensors(c, "BF16", false);
    tensors.push_back({std::string("model.layers.0.mlp.up_proj.") + suffix, "F16", {4}});
    std::string dir = tiny_model("vt_quant", c, tensors);
    expect_error<UnsupportedModelError>(
        [&] { open_model_dir(dir); },
        {"model.layers.0.mlp.up_proj." + std::string(suffix), "quantized weight"});
  }
}

TEST(ValidateTensors, ExtraLayerMeansConfigMismatch) {
  const json c = tiny_llama();
  auto tensors = llama_tensors(c, "BF16", false);
  tensors.push_back({"model.layers.2.input_layernorm.weight", "BF16", {128}});
  std::string dir = tiny_model("vt_extra", c, tensors);
  expect_error<UnsupportedModelError>(
      [&] { open_model_dir(dir); },
      {"model.layers.2.input_layernorm.weight", "num_hidden_layers 2"});
}

TEST(ValidateTensors, DtypeFromWeightsWhenConfigHasNone) {
  json c = tiny_llama();
  c.erase("torch_dtype");
  std::string dir = tiny_model("vt_dtype", c, llama_tensors(c, "F16", false));
  ModelDir m = open_model_dir(dir);
  EXPECT_EQ(m.config.dtype, DType::F16);
  EXPECT_FALSE(m.config.dtype_from_config);
}

TEST(ValidateTensors, ConfigWithoutWeights) {
  std::string dir = std::string(DENSEKV_SOURCE_DIR) + "/tests/data/configs/llama-3.1-8b";
  expect_error<FileFormatError>([&] { open_model_dir(dir); }, {"missing model.safetensors"});
}
