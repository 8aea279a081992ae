// Opening a Hugging Face model folder: config.json parsed and checked, the safetensors weights
// mapped and checked against it. Every start (check, serve, generate, logits) goes through here
// first, so an unsupported model fails before anything is loaded onto a device.
#pragma once
#include <memory>
#include <string>

#include "io/hf_config.h"
#include "io/safetensors.h"

namespace densekv {

struct ModelDir {
  std::string path;
  ModelConfig config;
  std::unique_ptr<ModelTensors> tensors;  // mmap'd, validated against config
};

// load_model_config + ModelTensors + validate_tensors. When config.json names no dtype, the dtype
// of model.embed_tokens.weight is used. Throws UnsupportedModelError / FileFormatError naming the
// reason.
ModelDir open_model_dir(const std::string& dir);

// The same checks, returning only the config (the mappings are released).
ModelConfig validate_model_dir(const std::string& dir);

}  // namespace densekv
