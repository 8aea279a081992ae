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
// after RoPE; already rotated for a rotated format, see kv_rotate_rows), at row `row` (= p % B)
// of main block `block` (plain formats) or of the sequence's tail `tail` (quantized formats:
// writing row B - 1 seals the tail into `block`; for other rows `block` is unused and may be
// -1). Each sequence's tokens must be stored in position order; heads are independent, so
// callers may split [0, H) across threads.
void kv_store_token(const KvLayerView& kv, int32_t block, int row, int32_t tail, const float* k,
                    const float* v, int h0, int h1);

// Keys and values of tokens [0, n) of one sequence and kv head, as fp32 [n][head_dim] (rotated
// domain for a rotated format): whole blocks from `table`, the last n % B tokens of a quantized
// format from `tail`. n is the sequence's stored length (what is sealed depends on it).
void kv_load_context(const KvLayerView& kv, int head, const int32_t* table, int32_t tail, int n,
                     float* k, float* v);

// Keys and values of one main block (all block_size rows; sealed blocks dequantized) and the
// first `rows` rows of a tail, as fp32 [rows][head_dim], for kv head `head`.
void kv_load_block(const KvLayerView& kv, int head, int32_t block, float* k, float* v);
void kv_load_tail(const KvLayerView& kv, int head, int32_t tail, int rows, float* k, float* v);

// The attention rule (Backend::paged_attention): the keys and values token p of a sequence
// attends to, positions [0, p] as fp32 [p + 1][head_dim] (rotated domain for a rotated format).
// Plain formats: the stored rows. Quantized formats: blocks [0, (p + 1) / B) sealed
// (dequantized), then rows [(p + 1) / B * B, p] of the 16-bit tail. The CPU attention reads
// exactly these numbers (= kv_load_context of n = p + 1: a token reads what a sequence of p + 1
// stored tokens holds). The per-token reference that tests and kernels compare with.
void kv_attention_context(const KvLayerView& kv, int head, const int32_t* table, int32_t tail,
                          int p, float* k, float* v);

}  // namespace densekv
