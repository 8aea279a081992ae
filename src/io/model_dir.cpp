#include "io/model_dir.h"

#include <filesystem>

#include <fmt/format.h>

#include "core/errors.h"

namespace densekv {

ModelDir open_model_dir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw FileFormatError(fmt::format("model folder {} does not exist or is not a folder", dir));
  }
  ModelDir m;
  m.path = dir;
  m.config = load_model_config(dir);
  m.tensors = std::make_unique<ModelTensors>(dir);
  validate_tensors(m.config, *m.tensors);
  if (!m.config.dtype_from_config)
    m.config.dtype = m.tensors->find("model.embed_tokens.weight")->dtype;
  return m;
}

ModelConfig validate_model_dir(const std::string& dir) {
  return open_model_dir(dir).config;
}

}  // namespace densekv
