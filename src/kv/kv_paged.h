// Reference reads and writes of one layer of the paged KV cache in any format (host memory): the
// CPU backend's kv_write / paged_attention call these, and CUDA kernels are tested against them.
//
// Storage of one layer (KvLayerView): main block b at base + b * block_bytes, holding the K
// sections of kv heads 0..H-1 then their V sections (kv_format.h); for quantized formats, tail t at
// tail_base + t * tail_block_bytes, a plain 16-bit block of block_size tokens
// (K [H][block_size][head_dim], then V [H][block_size][head_dim]).
//
// Token p of a sequence has slot = table[p / B] * B + p % B. Plain formats store it in that slot.
// Quantized formats store it, 16-bit, at row p % B of the sequence's tail; when row B - 1 is
// written the tail is quantized into block table[p / B] ("sealed"), so tokens [0, (n / B) * B)
// of a sequence of n tokens are in sealed blocks and the rest in its tail.
#pragma once
#include <cstdint>

#include "kv/kv_format.h"

namespace densekv {

// Keys (which = 0) or values (which = 1) of kv head `head` in main block `block` / tail `tail`.
uint8_t* kv_block_section(const KvLayerView& kv, int block, int which, int head);
uint8_t* kv_tail_section(const KvLayerView& kv, int tail, int which, int head);

// Stores one token of one sequence for kv heads [h0, h1): k, v [n_kv_heads * head_dim] fp32 (keys
// after RoPE; already rotated for a rotated format, see kv_rotate_rows). `tail` is the sequence's
// tail (ignored by plain formats). Each sequence's tokens must be stored in position order; heads
// are independent, so callers may split [0, H) across threads.
void kv_store_token(const KvLayerView& kv, int32_t slot, int32_t tail, const float* k,
                    const float* v, int h0, int h1);

// Keys and values of tokens [0, n) of one sequence and kv head, as fp32 [n][head_dim] (rotated
// domain for a rotated format): whole blocks from `table`, the last n % B tokens of a quantized
// format from `tail`. n is the sequence's stored length (what is sealed depends on it).
void kv_load_context(const KvLayerView& kv, int head, const int32_t* table, int32_t tail, int n,
                     float* k, float* v);

}  // namespace densekv
