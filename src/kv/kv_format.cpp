#include "kv/kv_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/errors.h"
#include "kv/hadamard.h"

namespace densekv {

namespace {

constexpr float kF16Max = 65504.0f;
constexpr float kE4m3Max = 448.0f;

size_t align16(size_t n) {
  return (n + 15) / 16 * 16;
}

// Little-endian 16-bit loads and stores (the host and every GPU we target are little-endian).
void put_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}
uint16_t get_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// b-bit code of channel c in a token row: bits [c*b, c*b + b) of the row read as little-endian
// words, i.e. a u32 holds 32/b consecutive channels, channel c at shift (c % (32/b)) * b.
void put_code(uint8_t* row, int c, int bits, int q) {
  const int bit = c * bits;
  row[bit / 8] |= static_cast<uint8_t>(q << (bit % 8));
}
int get_code(const uint8_t* row, int c, int bits) {
  const int bit = c * bits;
  return (row[bit / 8] >> (bit % 8)) & ((1 << bits) - 1);
}

// Round to nearest, ties to even (the default FP environment; CUDA's __float2int_rn), then clamp.
int round_clamp(float t, int qmax) {
  if (!(t > 0.0f)) return 0;  // also NaN
  if (t >= static_cast<float>(qmax)) return qmax;
  return static_cast<int>(std::nearbyint(t));
}

// Asymmetric b-bit range coding of values in [lo, hi]: zero = fp16(lo) rounded to nearest,
// scale = fp16 of (hi - zero) / (2^b - 1) rounded up, so every x in [zero, hi] codes without
// clipping. Both saturate to the fp16 range.
struct ScaleZero {
  uint16_t scale = 0;
  uint16_t zero = 0;
};
ScaleZero choose_scale_zero(float lo, float hi, int bits) {
  ScaleZero sz;
  sz.zero = f32_to_f16(std::clamp(lo, -kF16Max, kF16Max));
  const float span = hi - f16_to_f32(sz.zero);
  const float scale = span > 0.0f ? span / static_cast<float>((1 << bits) - 1) : 0.0f;
  sz.scale = f32_to_f16_round_up(std::min(scale, kF16Max));
  return sz;
}
int asym_code(float x, const ScaleZero& sz, int bits) {
  const float scale = f16_to_f32(sz.scale);
  if (scale == 0.0f) return 0;
  return round_clamp((x - f16_to_f32(sz.zero)) / scale, (1 << bits) - 1);
}
float asym_value(int q, uint16_t scale, uint16_t zero) {
  return f16_to_f32(zero) + f16_to_f32(scale) * static_cast<float>(q);
}

void quantize_plain(const KvFormatInfo& info, const float* x, uint8_t* out) {
  const size_t n = static_cast<size_t>(info.block_size) * info.head_dim;
  const DType t = kv_format_dtype(info.format);
  if (t == DType::F32) {
    std::memcpy(out, x, n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    put_u16(out + 2 * i, t == DType::BF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]));
  }
}
void dequantize_plain(const KvFormatInfo& info, const uint8_t* in, float* x) {
  const size_t n = static_cast<size_t>(info.block_size) * info.head_dim;
  const DType t = kv_format_dtype(info.format);
  if (t == DType::F32) {
    std::memcpy(x, in, n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = get_u16(in + 2 * i);
    x[i] = t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

// fp8: scale = fp16 round-up of max|x| / 448 per token; code = e4m3(x / scale).
void quantize_fp8(const KvFormatInfo& info, const KvSection& s, const float* x, uint8_t* out) {
  const int d = info.head_dim;
  for (int t = 0; t < info.block_size; ++t) {
    const float* row = x + static_cast<size_t>(t) * d;
    float amax = 0.0f;
    for (int c = 0; c < d; ++c) amax = std::max(amax, std::fabs(row[c]));
    const uint16_t scale_h = f32_to_f16_round_up(std::min(amax / kE4m3Max, kF16Max));
    const float scale = f16_to_f32(scale_h);
    put_u16(out + s.meta_offset + 2 * t, scale_h);
    uint8_t* codes = out + t * s.row_bytes;
    for (int c = 0; c < d; ++c) codes[c] = scale == 0.0f ? 0 : f32_to_e4m3(row[c] / scale);
  }
}
void dequantize_fp8(const KvFormatInfo& info, const KvSection& s, const uint8_t* in, float* x) {
  const int d = info.head_dim;
  for (int t = 0; t < info.block_size; ++t) {
    const float scale = f16_to_f32(get_u16(in + s.meta_offset + 2 * t));
    const uint8_t* codes = in + t * s.row_bytes;
    for (int c = 0; c < d; ++c) x[static_cast<size_t>(t) * d + c] = e4m3_to_f32(codes[c]) * scale;
  }
}

// int8: the range is widened to contain 0, scale = fp16 round-up of (hi - lo) / 254,
// zero_point = rne(-lo / scale), q = clamp(rne(x / scale) + zero_point, 0, 255). The step 254
// (not 255) leaves room for both ends to round outward, so nothing clips: |x - deq| <= scale/2.
void quantize_int8(const KvFormatInfo& info, const KvSection& s, const float* x, uint8_t* out) {
  const int d = info.head_dim;
  const int n = info.block_size;
  for (int t = 0; t < n; ++t) {
    const float* row = x + static_cast<size_t>(t) * d;
    float lo = 0.0f, hi = 0.0f;
    for (int c = 0; c < d; ++c) {
      lo = std::min(lo, row[c]);
      hi = std::max(hi, row[c]);
    }
    const uint16_t scale_h = f32_to_f16_round_up(std::min((hi - lo) / 254.0f, kF16Max));
    const float scale = f16_to_f32(scale_h);
    const int zp = scale == 0.0f ? 0 : round_clamp(-lo / scale, 255);
    put_u16(out + s.meta_offset + 2 * t, scale_h);
    out[s.meta_offset + 2 * n + t] = static_cast<uint8_t>(zp);
    uint8_t* codes = out + t * s.row_bytes;
    for (int c = 0; c < d; ++c) {
      const float q = scale == 0.0f ? 0.0f : std::nearbyint(row[c] / scale);
      codes[c] = static_cast<uint8_t>(round_clamp(q + static_cast<float>(zp), 255));
    }
  }
}
void dequantize_int8(const KvFormatInfo& info, const KvSection& s, const uint8_t* in, float* x) {
  const int d = info.head_dim;
  const int n = info.block_size;
  for (int t = 0; t < n; ++t) {
    const float scale = f16_to_f32(get_u16(in + s.meta_offset + 2 * t));
    const int zp = in[s.meta_offset + 2 * n + t];
    const uint8_t* codes = in + t * s.row_bytes;
    for (int c = 0; c < d; ++c) {
      x[static_cast<size_t>(t) * d + c] = static_cast<float>(codes[c] - zp) * scale;
    }
  }
}

// Per channel: channel c's (scale, zero) over the block's tokens, pair at meta_offset + 4c.
void quantize_per_channel(const KvFormatInfo& info, const KvSection& s, const float* x,
                          uint8_t* out) {
  const int d = info.head_dim;
  for (int c = 0; c < d; ++c) {
    float lo = x[c], hi = x[c];
    for (int t = 1; t < info.block_size; ++t) {
      lo = std::min(lo, x[static_cast<size_t>(t) * d + c]);
      hi = std::max(hi, x[static_cast<size_t>(t) * d + c]);
    }
    const ScaleZero sz = choose_scale_zero(lo, hi, s.bits);
    put_u16(out + s.meta_offset + 4 * c, sz.scale);
    put_u16(out + s.meta_offset + 4 * c + 2, sz.zero);
    for (int t = 0; t < info.block_size; ++t) {
      put_code(out + t * s.row_bytes, c, s.bits,
               asym_code(x[static_cast<size_t>(t) * d + c], sz, s.bits));
    }
  }
}
void dequantize_per_channel(const KvFormatInfo& info, const KvSection& s, const uint8_t* in,
                            float* x) {
  const int d = info.head_dim;
  for (int c = 0; c < d; ++c) {
    const uint16_t scale = get_u16(in + s.meta_offset + 4 * c);
    const uint16_t zero = get_u16(in + s.meta_offset + 4 * c + 2);
    for (int t = 0; t < info.block_size; ++t) {
      x[static_cast<size_t>(t) * d + c] =
          asym_value(get_code(in + t * s.row_bytes, c, s.bits), scale, zero);
    }
  }
}

// Per token, groups of s.group channels: pair (t, g) at meta_offset + 4 * (t * groups + g).
void quantize_per_token_group(const KvFormatInfo& info, const KvSection& s, const float* x,
                              uint8_t* out) {
  const int d = info.head_dim;
  const int groups = d / s.group;
  for (int t = 0; t < info.block_size; ++t) {
    const float* row = x + static_cast<size_t>(t) * d;
    for (int g = 0; g < groups; ++g) {
      const float* v = row + g * s.group;
      const auto [lo, hi] = std::minmax_element(v, v + s.group);
      const ScaleZero sz = choose_scale_zero(*lo, *hi, s.bits);
      uint8_t* meta = out + s.meta_offset + 4 * (static_cast<size_t>(t) * groups + g);
      put_u16(meta, sz.scale);
      put_u16(meta + 2, sz.zero);
      for (int c = 0; c < s.group; ++c) {
        put_code(out + t * s.row_bytes, g * s.group + c, s.bits, asym_code(v[c], sz, s.bits));
      }
    }
  }
}
void dequantize_per_token_group(const KvFormatInfo& info, const KvSection& s, const uint8_t* in,
                                float* x) {
  const int d = info.head_dim;
  const int groups = d / s.group;
  for (int t = 0; t < info.block_size; ++t) {
    for (int c = 0; c < d; ++c) {
      const uint8_t* meta =
          in + s.meta_offset + 4 * (static_cast<size_t>(t) * groups + c / s.group);
      x[static_cast<size_t>(t) * d + c] =
          asym_value(get_code(in + t * s.row_bytes, c, s.bits), get_u16(meta), get_u16(meta + 2));
    }
  }
}

KvSection make_section(KvCoding coding, int bits, int group, int head_dim, int block_size) {
  KvSection s;
  s.coding = coding;
  s.bits = bits;
  s.group = group;
  s.row_bytes = static_cast<size_t>(head_dim) * bits / 8;
  s.meta_offset = s.row_bytes * block_size;
  size_t meta = 0;
  switch (coding) {
    case KvCoding::Plain:
      meta = 0;
      break;
    case KvCoding::Fp8PerToken:
      meta = 2 * static_cast<size_t>(block_size);
      break;
    case KvCoding::Int8PerToken:
      meta = 3 * static_cast<size_t>(block_size);
      break;
    case KvCoding::PerChannel:
      meta = 4 * static_cast<size_t>(head_dim);
      break;
    case KvCoding::PerTokenGroup:
      meta = 4 * static_cast<size_t>(block_size) * (head_dim / group);
      break;
  }
  s.bytes = align16(s.meta_offset + meta);
  return s;
}

}  // namespace

const char* kv_format_name(KvFormat f) {
  switch (f) {
    case KvFormat::BF16:
      return "bf16";
    case KvFormat::F16:
      return "fp16";
    case KvFormat::F32:
      return "fp32";
    case KvFormat::FP8_E4M3:
      return "fp8_e4m3";
    case KvFormat::INT8:
      return "int8";
    case KvFormat::INT4_KIVI:
      return "int4_kivi";
    case KvFormat::INT2_KIVI:
      return "int2_kivi";
    case KvFormat::K4V2:
      return "k4v2";
  }
  return "?";
}

bool kv_format_is_quantized(KvFormat f) {
  return f != KvFormat::BF16 && f != KvFormat::F16 && f != KvFormat::F32;
}

DType kv_format_dtype(KvFormat f) {
  switch (f) {
    case KvFormat::BF16:
      return DType::BF16;
    case KvFormat::F16:
      return DType::F16;
    case KvFormat::F32:
      return DType::F32;
    default:
      break;
  }
  CHECK_MSG(false, "kv_format_dtype of a quantized format");
  return DType::F32;
}

const std::vector<std::string>& kv_cache_dtype_names() {
  static const std::vector<std::string> names = {"auto", "bf16",      "fp16",      "fp8_e4m3",
                                                 "int8", "int4_kivi", "int2_kivi", "k4v2"};
  return names;
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
  // fp32: the reference cache of the golden tests (fp32 checkpoints); not offered in "all".
  if (name == "fp32" || name == "float32") return KvFormat::F32;
  if (name == "fp8_e4m3" || name == "fp8") return KvFormat::FP8_E4M3;
  if (name == "int8") return KvFormat::INT8;
  if (name == "int4_kivi") return KvFormat::INT4_KIVI;
  if (name == "int2_kivi") return KvFormat::INT2_KIVI;
  if (name == "k4v2") return KvFormat::K4V2;
  std::string valid;
  for (const std::string& n : kv_cache_dtype_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw InvalidArgumentError("unknown --kv-cache-dtype '" + name + "' (valid: " + valid + ")");
}

std::vector<KvFormat> parse_kv_cache_dtype_list(const std::string& list, DType model_dtype,
                                                int head_dim, std::vector<std::string>* skipped) {
  std::vector<KvFormat> formats;
  if (list == "all") {
    formats.push_back(parse_kv_cache_dtype("auto", model_dtype));
    for (KvFormat f : {KvFormat::FP8_E4M3, KvFormat::INT8, KvFormat::INT4_KIVI, KvFormat::INT2_KIVI,
                       KvFormat::K4V2}) {
      try {
        kv_format_info(f, head_dim);
        formats.push_back(f);
      } catch (const InvalidArgumentError& e) {
        if (skipped) skipped->push_back(e.what());
      }
    }
    return formats;
  }
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const KvFormat f = parse_kv_cache_dtype(list.substr(pos, comma - pos), model_dtype);
    kv_format_info(f, head_dim);
    if (std::find(formats.begin(), formats.end(), f) != formats.end()) {
      throw InvalidArgumentError("--kv-cache-dtype lists " + std::string(kv_format_name(f)) +
                                 " twice");
    }
    formats.push_back(f);
    pos = comma + 1;
  }
  return formats;
}

KvFormatInfo kv_format_info(KvFormat f, int head_dim, int block_size) {
  KvFormatInfo info;
  info.format = f;
  info.head_dim = head_dim;
  info.quantized = kv_format_is_quantized(f);
  info.rotated = f == KvFormat::K4V2;
  const std::string name = kv_format_name(f);
  if (!info.quantized) {
    if (head_dim <= 0 || head_dim % 8 != 0) {
      throw InvalidArgumentError("KV format " + name + " needs head_dim a multiple of 8, got " +
                                 std::to_string(head_dim));
    }
    info.block_size = block_size == 0 ? kPlainBlockSize : block_size;
    if (info.block_size <= 0) throw InvalidArgumentError("KV block size must be positive");
    const int bits = static_cast<int>(dtype_size(kv_format_dtype(f))) * 8;
    info.k = info.v = make_section(KvCoding::Plain, bits, 0, head_dim, info.block_size);
    return info;
  }
  if (head_dim <= 0 || head_dim % 64 != 0 || (info.rotated && !is_power_of_two(head_dim))) {
    throw InvalidArgumentError("--kv-cache-dtype " + name + " needs head_dim a multiple of 64" +
                               (info.rotated ? " and a power of two" : "") + " (64, 128, ...), " +
                               "the model has head_dim " + std::to_string(head_dim) +
                               "; use --kv-cache-dtype auto");
  }
  if (block_size != 0 && block_size != kQuantBlockSize) {
    throw InvalidArgumentError("--kv-cache-dtype " + name + " uses blocks of " +
                               std::to_string(kQuantBlockSize) + " tokens, not " +
                               std::to_string(block_size));
  }
  info.block_size = kQuantBlockSize;
  const int n = info.block_size;
  switch (f) {
    case KvFormat::FP8_E4M3:
      info.k = info.v = make_section(KvCoding::Fp8PerToken, 8, 0, head_dim, n);
      break;
    case KvFormat::INT8:
      info.k = info.v = make_section(KvCoding::Int8PerToken, 8, 0, head_dim, n);
      break;
    case KvFormat::INT4_KIVI:
      info.k = make_section(KvCoding::PerChannel, 4, 0, head_dim, n);
      info.v = make_section(KvCoding::PerTokenGroup, 4, 64, head_dim, n);
      break;
    case KvFormat::INT2_KIVI:
      info.k = make_section(KvCoding::PerChannel, 2, 0, head_dim, n);
      info.v = make_section(KvCoding::PerTokenGroup, 2, 32, head_dim, n);
      break;
    case KvFormat::K4V2:
      info.k = make_section(KvCoding::PerChannel, 4, 0, head_dim, n);
      info.v = make_section(KvCoding::PerTokenGroup, 2, 64, head_dim, n);
      break;
    default:
      CHECK(false);
  }
  return info;
}

size_t kv_block_bytes(KvFormat f, int block_size, int n_kv_heads, int head_dim) {
  return kv_format_info(f, head_dim, block_size).head_block_bytes() * n_kv_heads;
}

void quantize_section(const KvFormatInfo& info, const KvSection& s, const float* x, uint8_t* out) {
  std::memset(out, 0, s.bytes);  // codes are OR-ed in; padding stays 0
  switch (s.coding) {
    case KvCoding::Plain:
      quantize_plain(info, x, out);
      break;
    case KvCoding::Fp8PerToken:
      quantize_fp8(info, s, x, out);
      break;
    case KvCoding::Int8PerToken:
      quantize_int8(info, s, x, out);
      break;
    case KvCoding::PerChannel:
      quantize_per_channel(info, s, x, out);
      break;
    case KvCoding::PerTokenGroup:
      quantize_per_token_group(info, s, x, out);
      break;
  }
}

void dequantize_section(const KvFormatInfo& info, const KvSection& s, const uint8_t* in, float* x) {
  switch (s.coding) {
    case KvCoding::Plain:
      dequantize_plain(info, in, x);
      break;
    case KvCoding::Fp8PerToken:
      dequantize_fp8(info, s, in, x);
      break;
    case KvCoding::Int8PerToken:
      dequantize_int8(info, s, in, x);
      break;
    case KvCoding::PerChannel:
      dequantize_per_channel(info, s, in, x);
      break;
    case KvCoding::PerTokenGroup:
      dequantize_per_token_group(info, s, in, x);
      break;
  }
}

void quantize_block(const KvFormatInfo& info, const float* k, const float* v, uint8_t* k_out,
                    uint8_t* v_out) {
  quantize_section(info, info.k, k, k_out);
  quantize_section(info, info.v, v, v_out);
}

void dequantize_block(const KvFormatInfo& info, const uint8_t* k_in, const uint8_t* v_in, float* k,
                      float* v) {
  dequantize_section(info, info.k, k_in, k);
  dequantize_section(info, info.v, v_in, v);
}

void kv_rotate_rows(const KvFormatInfo& info, float* x, int rows) {
  if (info.rotated) hadamard_transform_rows(x, rows, info.head_dim);
}

uint8_t f32_to_e4m3(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const float a = std::fabs(x);
  if (std::isnan(x)) return 0x7f;
  if (a >= kE4m3Max) return sign | 0x7e;  // saturate (also +-inf)
  if (a < 0.015625f) {                    // below 2^-6: subnormal, steps of 2^-9
    // a * 512 is exact; ties to even. 8 (= 2^-6) is the code of the smallest normal.
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  uint32_t b;
  std::memcpy(&b, &a, 4);
  b += 0x7ffffu + ((b >> 20) & 1u);  // round the mantissa to 3 bits, ties to even
  const uint32_t exp = (b >> 23) - 127 + 7;
  const uint32_t code = (exp << 3) | ((b >> 20) & 7u);
  return sign | static_cast<uint8_t>(std::min<uint32_t>(code, 0x7e));  // 464 and up saturate
}

float e4m3_to_f32(uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int exp = (code >> 3) & 0xf;
  const int mant = code & 7;
  if (exp == 15 && mant == 7) return std::nanf("");
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -9);
  return sign * std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
}

uint16_t f32_to_f16_round_up(float x) {
  uint16_t h = f32_to_f16(x);
  if (f16_to_f32(h) < x) ++h;  // x >= 0: the next fp16 up
  return h;
}

}  // namespace densekv
