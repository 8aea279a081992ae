#include "kv/kv_paged.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/check.h"

namespace densekv {

namespace {

// Plain 16/32-bit row i of a [rows][head_dim] section <-> fp32.
void store_row(KvFormat plain, uint8_t* section, int row, int head_dim, const float* x) {
  const DType t = kv_format_dtype(plain);
  uint8_t* p = section + static_cast<size_t>(row) * head_dim * dtype_size(t);
  for (int i = 0; i < head_dim; ++i) {
    if (t == DType::F32) {
      std::memcpy(p + 4 * i, &x[i], 4);
    } else {
      const uint16_t h = t == DType::BF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
      std::memcpy(p + 2 * i, &h, 2);
    }
  }
}

void load_rows(KvFormat plain, const uint8_t* section, int rows, int head_dim, float* x) {
  const DType t = kv_format_dtype(plain);
  const size_t n = static_cast<size_t>(rows) * head_dim;
  if (t == DType::F32) {
    std::memcpy(x, section, n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, section + 2 * i, 2);
    x[i] = t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

}  // namespace

uint8_t* kv_block_section(const KvLayerView& kv, int block, int which, int head) {
  const KvFormatInfo info = kv_format_info(kv.format, kv.head_dim, kv.block_size);
  const size_t off = which == 0 ? static_cast<size_t>(head) * info.k.bytes
                                : kv.n_kv_heads * info.k.bytes + head * info.v.bytes;
  return static_cast<uint8_t*>(kv.base) + static_cast<size_t>(block) * kv.block_bytes + off;
}

uint8_t* kv_tail_section(const KvLayerView& kv, int tail, int which, int head) {
  const size_t section = static_cast<size_t>(kv.block_size) * kv.head_dim *
                         dtype_size(kv_format_dtype(kv.tail_format));
  return static_cast<uint8_t*>(kv.tail_base) + static_cast<size_t>(tail) * kv.tail_block_bytes +
         (static_cast<size_t>(which) * kv.n_kv_heads + head) * section;
}

void kv_store_token(const KvLayerView& kv, int32_t block, int row, int32_t tail, const float* k,
                    const float* v, int h0, int h1) {
  const int bs = kv.block_size, d = kv.head_dim, offset = row;
  CHECK(row >= 0 && row < bs && h0 >= 0 && h1 <= kv.n_kv_heads);
  CHECK(block >= 0 || (kv_format_is_quantized(kv.format) && row != bs - 1));
  if (!kv_format_is_quantized(kv.format)) {
    for (int h = h0; h < h1; ++h) {
      store_row(kv.format, kv_block_section(kv, block, 0, h), offset, d, k + h * d);
      store_row(kv.format, kv_block_section(kv, block, 1, h), offset, d, v + h * d);
    }
    return;
  }
  CHECK(tail >= 0 && kv.tail_base != nullptr);
  const KvFormatInfo info = kv_format_info(kv.format, d, bs);
  std::vector<float> rows;
  for (int h = h0; h < h1; ++h) {
    for (int which = 0; which < 2; ++which) {
      uint8_t* t = kv_tail_section(kv, tail, which, h);
      store_row(kv.tail_format, t, offset, d, (which == 0 ? k : v) + h * d);
      if (offset != bs - 1) continue;
      // The tail is full: seal it into the block (from its 16-bit values, as a GPU would).
      rows.resize(static_cast<size_t>(bs) * d);
      load_rows(kv.tail_format, t, bs, d, rows.data());
      quantize_section(info, which == 0 ? info.k : info.v, rows.data(),
                       kv_block_section(kv, block, which, h));
    }
  }
}

void kv_load_context(const KvLayerView& kv, int head, const int32_t* table, int32_t tail, int n,
                     float* k, float* v) {
  const int bs = kv.block_size, d = kv.head_dim;
  const bool quantized = kv_format_is_quantized(kv.format);
  const KvFormatInfo info = kv_format_info(kv.format, d, bs);
  const int whole = quantized ? n / bs : (n + bs - 1) / bs;
  std::vector<float> scratch;
  for (int b = 0; b < whole; ++b) {
    const int rows = std::min(bs, n - b * bs);
    float* kd = k + static_cast<size_t>(b) * bs * d;
    float* vd = v + static_cast<size_t>(b) * bs * d;
    if (!quantized) {
      load_rows(kv.format, kv_block_section(kv, table[b], 0, head), rows, d, kd);
      load_rows(kv.format, kv_block_section(kv, table[b], 1, head), rows, d, vd);
    } else {
      dequantize_block(info, kv_block_section(kv, table[b], 0, head),
                       kv_block_section(kv, table[b], 1, head), kd, vd);
    }
  }
  const int rest = quantized ? n - whole * bs : 0;
  if (rest > 0) {
    CHECK(tail >= 0 && kv.tail_base != nullptr);
    load_rows(kv.tail_format, kv_tail_section(kv, tail, 0, head), rest, d,
              k + static_cast<size_t>(whole) * bs * d);
    load_rows(kv.tail_format, kv_tail_section(kv, tail, 1, head), rest, d,
              v + static_cast<size_t>(whole) * bs * d);
  }
}

void kv_load_block(const KvLayerView& kv, int head, int32_t block, float* k, float* v) {
  CHECK(block >= 0);
  const uint8_t* ks = kv_block_section(kv, block, 0, head);
  const uint8_t* vs = kv_block_section(kv, block, 1, head);
  if (!kv_format_is_quantized(kv.format)) {
    load_rows(kv.format, ks, kv.block_size, kv.head_dim, k);
    load_rows(kv.format, vs, kv.block_size, kv.head_dim, v);
    return;
  }
  dequantize_block(kv_format_info(kv.format, kv.head_dim, kv.block_size), ks, vs, k, v);
}

void kv_load_tail(const KvLayerView& kv, int head, int32_t tail, int rows, float* k, float* v) {
  CHECK(tail >= 0 && kv.tail_base != nullptr && rows >= 0 && rows <= kv.block_size);
  load_rows(kv.tail_format, kv_tail_section(kv, tail, 0, head), rows, kv.head_dim, k);
  load_rows(kv.tail_format, kv_tail_section(kv, tail, 1, head), rows, kv.head_dim, v);
}

void kv_attention_context(const KvLayerView& kv, int head, const int32_t* table, int32_t tail,
                          int p, float* k, float* v) {
  // Positions [0, p] are what a stored length of p + 1 holds: the same split.
  kv_load_context(kv, head, table, tail, p + 1, k, v);
}

}  // namespace densekv
