// KV cache formats (--kv-cache-dtype): how the keys and values of one block of one (layer, kv_head)
// are stored, their byte layout, bytes per token, and the reference quantize / dequantize that
// every backend must match. docs/kv-formats.md describes each layout byte by byte.
//
// A block holds block_size tokens. Plain formats (bf16, fp16, fp32) store every block as floats.
// Quantized formats store *sealed* blocks quantized; the newest, partly filled block of each
// sequence (the "tail", KIVI's residual window) stays 16-bit in its own small pool and is
// quantized in one step when it fills. Within one layer's block the sections are
//   K of kv_head 0, K of kv_head 1, ..., then V of kv_head 0, V of kv_head 1, ...
// and each section (one head's keys or values) is contiguous and a multiple of 16 bytes, so one
// warp reads one head's section with coalesced 16-byte loads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace densekv {

enum class KvFormat { BF16, F16, F32, FP8_E4M3, INT8, INT4_KIVI, INT2_KIVI, K4V2 };

constexpr int kPlainBlockSize = 16;  // tokens per block of the plain formats (default)
constexpr int kQuantBlockSize = 64;  // tokens per block of every quantized format (fixed)

const char* kv_format_name(KvFormat f);  // "bf16", "fp16", "fp32", "fp8_e4m3", "int8", ...
bool kv_format_is_quantized(KvFormat f);
DType kv_format_dtype(KvFormat f);  // element dtype of a plain format (CHECKs the format is plain)

// The --kv-cache-dtype values, in the order `densekv capacity --kv-cache-dtype all` prints them.
const std::vector<std::string>& kv_cache_dtype_names();
// Parses --kv-cache-dtype. "auto" = the model dtype; aliases: bfloat16, float16, fp8. Unknown
// names throw InvalidArgumentError listing the valid names.
KvFormat parse_kv_cache_dtype(const std::string& name, DType model_dtype);

// A --kv-cache-dtype list for the commands that compare formats (capacity, eval): "all" = auto
// then every quantized format that can store head_dim (the others go to `skipped` with the
// reason); otherwise comma-separated names, each checked against head_dim (throws
// InvalidArgumentError naming the bad one).
std::vector<KvFormat> parse_kv_cache_dtype_list(const std::string& list, DType model_dtype,
                                                int head_dim, std::vector<std::string>* skipped);

// How one section (one head's keys, or values, of one block) codes its numbers.
enum class KvCoding {
  Plain,          // floats [block_size][head_dim] of the plain dtype
  Fp8PerToken,    // e4m3 codes [block_size][head_dim]; fp16 scale [block_size]
  Int8PerToken,   // u8 codes [block_size][head_dim]; fp16 scale [block_size]; u8 zero point
                  // [block_size]; x = (q - zero_point) * scale
  PerChannel,     // b-bit codes in token rows; (scale, zero) fp16 pairs [head_dim]
  PerTokenGroup,  // b-bit codes in token rows; (scale, zero) fp16 pairs
                  // [block_size][head_dim/group]
};

struct KvSection {
  KvCoding coding = KvCoding::Plain;
  int bits = 16;           // bits of one element's code
  int group = 0;           // PerTokenGroup: channels per (scale, zero) group
  size_t row_bytes = 0;    // codes of one token: head_dim * bits / 8
  size_t meta_offset = 0;  // block_size * row_bytes: where scales / zeros start
  size_t bytes = 0;        // the whole section, a multiple of 16
};

struct KvFormatInfo {
  KvFormat format = KvFormat::BF16;
  int head_dim = 0;
  int block_size = 0;
  bool quantized = false;  // sealed blocks quantized, newest block a 16-bit tail
  bool rotated = false;    // K and V are Hadamard-rotated before they are stored (k4v2)
  KvSection k, v;

  size_t head_block_bytes() const { return k.bytes + v.bytes; }  // one (layer, kv_head) block
  // Per (layer, kv_head), keys and values, of a sealed block.
  double bytes_per_token() const { return static_cast<double>(head_block_bytes()) / block_size; }
  double density_vs_16bit() const { return 4.0 * head_dim / bytes_per_token(); }
};

// The layout of format f for head_dim. block_size 0 = the format's default (16 plain, 64
// quantized); quantized formats accept only 64. Throws InvalidArgumentError when the format
// cannot store this head_dim (quantized: a multiple of 64; k4v2: also a power of two).
KvFormatInfo kv_format_info(KvFormat f, int head_dim, int block_size = 0);

// Bytes of one block of one layer (keys and values of block_size tokens, all kv heads).
size_t kv_block_bytes(KvFormat f, int block_size, int n_kv_heads, int head_dim);

// ---- Reference coding (the CPU backend uses it; CUDA kernels must match it bit for bit) ----

// x: [block_size][head_dim] fp32 of one (layer, kv_head); out: s.bytes.
void quantize_section(const KvFormatInfo& info, const KvSection& s, const float* x, uint8_t* out);
void dequantize_section(const KvFormatInfo& info, const KvSection& s, const uint8_t* in, float* x);

// k, v: [block_size][head_dim] fp32 of one (layer, kv_head) (keys after RoPE; for a rotated
// format already rotated, see kv_rotate_rows). k_out: info.k.bytes, v_out: info.v.bytes.
void quantize_block(const KvFormatInfo& info, const float* k, const float* v, uint8_t* k_out,
                    uint8_t* v_out);
void dequantize_block(const KvFormatInfo& info, const uint8_t* k_in, const uint8_t* v_in, float* k,
                      float* v);

// Rotation hook: x [rows][head_dim] <- H x per row when info.rotated, else nothing. The same call
// rotates keys and values before they are written (into the tail too), queries before attention,
// and the attention output back (H is its own inverse).
void kv_rotate_rows(const KvFormatInfo& info, float* x, int rows);

// ---- Scalar codes, exposed for tests and kernels ----

// fp8 e4m3 ("fn": bias 7, no infinities, max 448): round to nearest even, saturating to +-448.
// NaN -> 0x7f.
uint8_t f32_to_e4m3(float x);
float e4m3_to_f32(uint8_t code);
// The smallest fp16 >= x, for x >= 0 (scales are rounded up so the top of a range never clips).
uint16_t f32_to_f16_round_up(float x);

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
  // Quantized formats: this layer's 16-bit tails (kv_paged.h), tail t at
  // tail_base + t * tail_block_bytes, laid out like a plain block of block_size tokens.
  void* tail_base = nullptr;
  KvFormat tail_format = KvFormat::BF16;
  size_t tail_block_bytes = 0;
};

}  // namespace densekv
