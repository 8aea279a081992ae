// safetensors reader: mmap'd files, header parsed and validated (offsets inside the file, shape x
// dtype size equal to the byte range, no overlaps), single files and sharded folders
// (model.safetensors.index.json). Corrupt input throws FileFormatError naming file and tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace densekv {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major, as in the file
  size_t offset = 0;           // byte offset of the data from the start of the data section
  size_t nbytes = 0;
  const void* data = nullptr;  // into the mmap (null when only the header was parsed)
  std::string file;            // file name, for error messages
  int64_t numel() const;
};

// Parses and validates a whole safetensors file image (8-byte little-endian header length, JSON
// header, data). `file` names it in errors. Never reads outside [bytes, bytes + size). Returned
// infos point into `bytes`. Unsupported dtypes (I8, F8_E4M3, ...) throw UnsupportedModelError.
std::vector<TensorInfo> parse_safetensors(const uint8_t* bytes, size_t size,
                                          const std::string& file);

// One mmap'd .safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws FileFormatError
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<TensorInfo> tensors_;
};

// All weight files of a Hugging Face model folder: model.safetensors, or the shards listed in
// model.safetensors.index.json (every listed tensor must be found in its shard).
class ModelTensors {
 public:
  explicit ModelTensors(const std::string& model_dir);    // throws FileFormatError
  const TensorInfo* find(const std::string& name) const;  // null if absent
  const std::map<std::string, const TensorInfo*>& all() const { return by_name_; }
  size_t total_bytes() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> by_name_;
};

}  // namespace densekv
