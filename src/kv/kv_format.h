// KV cache formats: the element type / quantization of cached keys and values, the byte layout of
// one block, and the --kv-cache-dtype names. Only the plain 16-bit formats (and fp32, for fp32
// checkpoints) exist so far; quantized formats (int8, fp8, int4/int2 KIVI, k4v2) add entries here,
// their block layouts, and a case in each backend's kv_write / paged_attention.
#pragma once
#include <cstddef>
#include <string>

#include "core/dtype.h"

namespace densekv {

enum class KvFormat { BF16, F16, F32 };

const char* kv_format_name(KvFormat f);  // "bf16", "fp16", "fp32"
DType kv_format_dtype(KvFormat f);       // element dtype of a plain format

// Parses --kv-cache-dtype. "auto" = the model dtype. Known but unbuilt formats (fp8_e4m3, int8,
// int4_kivi, int2_kivi, k4v2) and unknown names throw InvalidArgumentError.
KvFormat parse_kv_cache_dtype(const std::string& name, DType model_dtype);

// Bytes of one block of one layer (keys and values of block_size tokens, all kv heads).
size_t kv_block_bytes(KvFormat f, int block_size, int n_kv_heads, int head_dim);

// One layer of the paged KV cache, as the attention op sees it. Block b of the layer starts at
// base + b * block_bytes; a plain-format block holds
//   K [n_kv_heads][block_size][head_dim], then V [n_kv_heads][block_size][head_dim].
struct KvLayerView {
  void* base = nullptr;
  KvFormat format = KvFormat::BF16;
  int block_size = 16;
  int n_kv_heads = 0;
  int head_dim = 0;
  size_t block_bytes = 0;
};

}  // namespace densekv
