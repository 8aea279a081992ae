#include "kv/kv_format.h"

#include "core/errors.h"

namespace densekv {

const char* kv_format_name(KvFormat f) {
  switch (f) {
    case KvFormat::BF16:
      return "bf16";
    case KvFormat::F16:
      return "fp16";
    case KvFormat::F32:
      return "fp32";
  }
  return "?";
}

DType kv_format_dtype(KvFormat f) {
  switch (f) {
    case KvFormat::BF16:
      return DType::BF16;
    case KvFormat::F16:
      return DType::F16;
    case KvFormat::F32:
      return DType::F32;
  }
  return DType::F32;
}

KvFormat parse_kv_cache_dtype(const std::string& name, DType model_dtype) {
  if (name == "auto") {
    switch (model_dtype) {
      case DType::BF16:
        return KvFormat::BF16;
      case DType::F16:
        return KvFormat::F16;
      case DType::F32:
        return KvFormat::F32;
    }
  }
  if (name == "bf16" || name == "bfloat16") return KvFormat::BF16;
  if (name == "fp16" || name == "float16") return KvFormat::F16;
  if (name == "fp32" || name == "float32") return KvFormat::F32;
  for (const char* later : {"fp8_e4m3", "fp8", "int8", "int4_kivi", "int2_kivi", "k4v2"}) {
    if (name == later) {
      throw InvalidArgumentError("--kv-cache-dtype " + name +
                                 " is not supported yet (available: auto, bf16, fp16, fp32)");
    }
  }
  throw InvalidArgumentError("unknown --kv-cache-dtype '" + name +
                             "' (expected auto, bf16, fp16, fp32, fp8_e4m3, int8, int4_kivi, "
                             "int2_kivi or k4v2)");
}

size_t kv_block_bytes(KvFormat f, int block_size, int n_kv_heads, int head_dim) {
  return 2 * static_cast<size_t>(block_size) * n_kv_heads * head_dim *
         dtype_size(kv_format_dtype(f));
}

}  // namespace densekv
