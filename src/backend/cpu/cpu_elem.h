// Element loads/stores between fp32 and the storage dtypes (used by the CPU backend's loops).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace densekv::cpu {

inline float load_f32(const void* p, DType t, size_t i) {
  switch (t) {
    case DType::F32:
      return static_cast<const float*>(p)[i];
    case DType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
  }
  return 0.0f;
}

inline void store_f32(void* p, DType t, size_t i, float v) {
  switch (t) {
    case DType::F32:
      static_cast<float*>(p)[i] = v;
      break;
    case DType::BF16:
      static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
      break;
    case DType::F16:
      static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
      break;
  }
}

// Converts n contiguous elements.
inline void convert_row(void* dst, DType dst_t, const void* src, DType src_t, size_t n) {
  if (dst_t == DType::F32 && src_t == DType::F32) {
    const float* s = static_cast<const float*>(src);
    float* d = static_cast<float*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = s[i];
    return;
  }
  for (size_t i = 0; i < n; ++i) store_f32(dst, dst_t, i, load_f32(src, src_t, i));
}

}  // namespace densekv::cpu
