// config.json -> ModelConfig, and the fail-fast validation that runs before every start.
// Supported: LlamaForCausalLM (Llama-3, 3.1/3.2 with rope_scaling "llama3"), Qwen2ForCausalLM
// (q/k/v bias, tied embeddings), MistralForCausalLM (no sliding window). Anything else throws
// UnsupportedModelError with a message naming the exact reason.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"

namespace densekv {

class ModelTensors;

struct RopeConfig {
  float theta = 10000.0f;
  std::string type = "default";  // "default" or "llama3"
  // llama3 scaling parameters (used when type == "llama3")
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // "llama", "qwen2", "mistral"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // from the config, else hidden_size / num_heads
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;    // q/k/v biases (always for Qwen2)
  DType dtype = DType::BF16;      // torch_dtype / dtype of the checkpoint
  bool dtype_from_config = true;  // false: config.json names none; open_model_dir uses the weights'
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;
};

// Parses and validates a config.json object. Throws UnsupportedModelError naming the reason.
ModelConfig parse_model_config(const nlohmann::json& config);
// Reads DIR/config.json and parses it. Throws FileFormatError / UnsupportedModelError.
ModelConfig load_model_config(const std::string& model_dir);

// Every tensor the forward needs is present with the right shape and a supported dtype; no
// quantized-weight tensors (qweight, scales, ...). Throws UnsupportedModelError naming the tensor.
void validate_tensors(const ModelConfig& cfg, const ModelTensors& tensors);

int64_t parameter_count(const ModelConfig& cfg);
// Bytes of a 16-bit K and V cache for one token, all layers: 2 * layers * kv_heads * head_dim * 2.
int64_t kv_bytes_per_token_16bit(const ModelConfig& cfg);

// Tensor names of layer `i`, as Hugging Face names them (shared by validation and weight loading).
std::string layer_tensor_name(int layer, const char* suffix);  // "model.layers.{i}.{suffix}"

}  // namespace densekv
