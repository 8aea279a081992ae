// Host test (no GPU needed) of the tensor-core prefill attention (prefill_attention_mma.cuh): one
// thread block's work item runs on the host, the warp code under the lockstep emulation of
// ldmatrix, mma.sync and shuffles (warp_emulation.h), against softmax attention in double over
// what the CPU reference says each token attends to (kv_attention_context).
//
// Per case: a sequence's keys and values are stored with the reference (kv_store_token, through a
// shuffled block table, with a second KV head so the head offsets matter); the kernel's own
// functions then load the query rows of the work item (prefill_load_q: row -> (token, head)),
// compute the tiles and per-row causal limits (prefill_block, prefill_tile_limit), run each
// warp's rows over the tiles (mma_prefill_tile / mma_prefill_tail) laid out in "shared memory"
// with the kernel's swizzle, and write the output (mma_prefill_finish, prefill_store_out), or with
// two splits the partial states (prefill_store_part) merged as the combine kernel does. Only the
// cp.async copies and the launch are left to the GPU test (cuda_attention_test.cpp).
//
// Cases, every format and head_dim 64/128, GQA groups 4, 7 (fp16 activations and tail; the others
// bf16) and 2: full row tiles, a partial row
// tile, the causal edge inside a tile, a chunk ending at a block's last row (that token reads the
// block sealed, the others from the 16-bit tail), a chunk after a long prefix (split in two).
//
//   prefill_fragments_test [FORMAT]    exit 0 = pass (FORMAT, e.g. int4_kivi: that format only)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cuda/prefill_attention_mma.cuh"
#include "core/dtype.h"
#include "kv/kv_format.h"
#include "kv/kv_paged.h"
#include "warp_emulation.h"

using namespace densekv;
using namespace densekv::cuda;

namespace {

int g_failures = 0;
const char* g_only = nullptr;  // run only this format

// A section's bytes in "shared memory": the first `code_chunks` 16-byte chunks swizzled, the rest
// in place (copy_section_swizzled), unused bytes 0xff (NaN as 16-bit numbers).
std::vector<uint8_t> to_smem(const uint8_t* src, int bytes, int code_chunks, int cpr,
                             int capacity) {
  std::vector<uint8_t> s(static_cast<size_t>(std::max(bytes, capacity)), 0xff);
  for (int i = 0; i < bytes / 16; ++i) {
    std::memcpy(&s[(i < code_chunks ? swizzle_chunk(i, cpr) : i) * 16], src + i * 16, 16);
  }
  return s;
}

struct Tile {
  std::vector<uint8_t> k, v;
  int n_rows = 0;
};

struct Case {
  const char* what;
  int p0, n_tok;  // the work item: positions [p0, p0 + n_tok)
  int splits;     // 1, or 2: tiles [0, n / 2) and [n / 2, n) merged like the combine kernel
};

template <class KM, class VM, int HD>
void run_case(KvFormat f, int group, const Case& cs, std::mt19937& rng) {
  constexpr int kKvHeads = 2, kKvh = 1;  // the work item's KV head
  const bool quant = kv_format_is_quantized(f);
  // Activations and the 16-bit tail: fp16 for the fp16 cache and for group 7 (fp16 models).
  const bool bf16 = f != KvFormat::F16 && group != 7;
  const KvFormatInfo info = kv_format_info(f, HD);
  const int bs = info.block_size;
  const int n_heads = kKvHeads * group;
  const int n_ctx = cs.p0 + cs.n_tok;

  // The sequence's cache, stored by the reference.
  KvLayerView kv;
  kv.format = f;
  kv.block_size = bs;
  kv.n_kv_heads = kKvHeads;
  kv.head_dim = HD;
  kv.block_bytes = kv_block_bytes(f, bs, kKvHeads, HD);
  const int n_blocks = (n_ctx + bs - 1) / bs + 1;
  std::vector<uint8_t> pool(kv.block_bytes * n_blocks, 0), tails;
  kv.base = pool.data();
  if (quant) {
    kv.tail_format = bf16 ? KvFormat::BF16 : KvFormat::F16;
    kv.tail_block_bytes = kv_block_bytes(kv.tail_format, bs, kKvHeads, HD);
    tails.assign(kv.tail_block_bytes, 0);
    kv.tail_base = tails.data();
  }
  std::vector<int32_t> table(n_blocks);
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), rng);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  // Magnitudes as in a trained model: every token its own scale (0.05x to 20x, so per-token
  // scales differ and a scale read from the wrong row shows) and outlier key channels.
  std::uniform_real_distribution<float> log_mag(std::log(0.05f), std::log(20.0f));
  for (int p = 0; p < n_ctx; ++p) {
    std::vector<float> k(kKvHeads * HD), v(kKvHeads * HD);
    const float km = std::exp(log_mag(rng)), vm = std::exp(log_mag(rng));
    for (int c = 0; c < kKvHeads * HD; ++c)
      k[c] = (c % HD == 5 || c % HD == 70 ? 8.0f : 1.0f) * km * u(rng);
    for (float& x : v) x = vm * u(rng);
    kv_rotate_rows(info, k.data(), kKvHeads);
    kv_rotate_rows(info, v.data(), kKvHeads);
    kv_store_token(kv, table[p / bs], p % bs, 0, k.data(), v.data(), 0, kKvHeads);
  }

  // Query rows [n_tok][n_heads * HD] in the activation dtype.
  std::vector<uint16_t> q16(static_cast<size_t>(cs.n_tok) * n_heads * HD);
  std::vector<float> qf(q16.size());
  for (size_t i = 0; i < q16.size(); ++i) {
    q16[i] = bf16 ? f32_to_bf16(0.5f * u(rng)) : f32_to_f16(0.5f * u(rng));
    qf[i] = bf16 ? bf16_to_f32(q16[i]) : f16_to_f32(q16[i]);
  }

  const PrefillBlock blk = quant ? prefill_block<true>(0, cs.n_tok, cs.p0, group)
                                 : prefill_block<false>(0, cs.n_tok, cs.p0, group);
  if (blk.n_rows > kPrefillRows) {
    std::printf("bad case: %d rows\n", blk.n_rows);
    ++g_failures;
    return;
  }

  // The block's tiles as the kernel stages them: sealed blocks / plain 64-row tiles, then the
  // 16-bit tail.
  constexpr int kCpr16 = HD * 2 / 16;
  std::vector<Tile> tiles;
  const int main_tiles = quant ? blk.n_sealed : blk.n_tiles;
  for (int tile = 0; tile < main_tiles; ++tile) {
    Tile t;
    if (quant) {
      t.n_rows = 64;
      t.k = to_smem(kv_block_section(kv, table[tile], 0, kKvh), static_cast<int>(info.k.bytes),
                    64 * KM::kCpr, KM::kCpr, 0);
      t.v = to_smem(kv_block_section(kv, table[tile], 1, kKvh), static_cast<int>(info.v.bytes),
                    64 * VM::kCpr, VM::kCpr, 0);
    } else {
      t.n_rows = std::min(64, n_ctx - tile * 64);
      std::vector<uint8_t> kl(64 * HD * 2), vl(64 * HD * 2);
      for (int r = 0; r < t.n_rows; ++r) {
        const int p = tile * 64 + r;
        std::memcpy(&kl[r * HD * 2],
                    kv_block_section(kv, table[p / bs], 0, kKvh) + (p % bs) * HD * 2, HD * 2);
        std::memcpy(&vl[r * HD * 2],
                    kv_block_section(kv, table[p / bs], 1, kKvh) + (p % bs) * HD * 2, HD * 2);
      }
      t.k = to_smem(kl.data(), t.n_rows * HD * 2, t.n_rows * kCpr16, kCpr16, 64 * HD * 2);
      t.v = to_smem(vl.data(), t.n_rows * HD * 2, t.n_rows * kCpr16, kCpr16, 64 * HD * 2);
    }
    tiles.push_back(std::move(t));
  }
  Tile tail;
  if (quant && blk.tail_rows > 0) {
    tail.n_rows = blk.tail_rows;
    tail.k = to_smem(kv_tail_section(kv, 0, 0, kKvh), blk.tail_rows * HD * 2,
                     blk.tail_rows * kCpr16, kCpr16, 64 * HD * 2);
    tail.v = to_smem(kv_tail_section(kv, 0, 1, kKvh), blk.tail_rows * HD * 2,
                     blk.tail_rows * kCpr16, kCpr16, 64 * HD * 2);
  }

  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  const float sl2 = scale * 1.4426950408889634f;
  const int tps = (blk.n_tiles + cs.splits - 1) / cs.splits;
  std::vector<float> part(static_cast<size_t>(cs.n_tok) * n_heads * cs.splits * kPartRow<HD>, 0.0f);
  std::vector<uint16_t> out16(q16.size(), 0);
  std::vector<float> qs_mem(kPrefillRows * HD), ml(kPrefillRows * 2);
  auto* qs = reinterpret_cast<float(*)[HD]>(qs_mem.data());

  for (int split = 0; split < cs.splits; ++split) {
    const int tile0 = split * tps, tile1 = std::min(blk.n_tiles, tile0 + tps);
    if (bf16) {
      prefill_load_q<__nv_bfloat16, HD>(reinterpret_cast<const __nv_bfloat16*>(q16.data()),
                                        n_heads * HD, qs, blk, group, kKvh, 0, 1);
    } else {
      prefill_load_q<__half, HD>(reinterpret_cast<const __half*>(q16.data()), n_heads * HD, qs, blk,
                                 group, kKvh, 0, 1);
    }
    if (info.rotated) kv_rotate_rows(info, qs_mem.data(), kPrefillRows);
    for (int w = 0; w < kAttnWarps; ++w) {
      warp_emu::run_warp(w, [&] {
        const int lane = lane_id(), t = lane & 3;
        const int row = 16 * w + (lane >> 2);
        const int pos[2] = {prefill_row_pos(blk, row, group), prefill_row_pos(blk, row + 8, group)};
        uint32_t qa[2][HD / 16][2];
        float sumq[2];
        make_q_frags<KM, HD>(qs, row, t, qa[0], sumq[0]);
        make_q_frags<KM, HD>(qs, row + 8, t, qa[1], sumq[1]);
        MmaWarpState<HD, 2> st;
        for (int tile = tile0; tile < std::min(tile1, main_tiles); ++tile) {
          const int lim[2] = {quant ? prefill_tile_limit<true>(pos[0], tile, blk.n_sealed)
                                    : prefill_tile_limit<false>(pos[0], tile, 0),
                              quant ? prefill_tile_limit<true>(pos[1], tile, blk.n_sealed)
                                    : prefill_tile_limit<false>(pos[1], tile, 0)};
          mma_prefill_tile<KM, VM, VM, HD>(tiles[tile].k.data(), tiles[tile].v.data(),
                                           tiles[tile].n_rows, lim, qa, sumq, sl2, st);
        }
        if (quant && blk.tail_rows > 0 && blk.n_sealed >= tile0 && blk.n_sealed < tile1) {
          const int lim[2] = {prefill_tile_limit<true>(pos[0], blk.n_sealed, blk.n_sealed),
                              prefill_tile_limit<true>(pos[1], blk.n_sealed, blk.n_sealed)};
          if (bf16) {
            mma_prefill_tail<PlainFrag<__nv_bfloat16, HD>, VM, HD>(tail.k.data(), tail.v.data(), qs,
                                                                   row, tail.n_rows, lim, sl2, st);
          } else {
            mma_prefill_tail<PlainFrag<__half, HD>, VM, HD>(tail.k.data(), tail.v.data(), qs, row,
                                                            tail.n_rows, lim, sl2, st);
          }
        }
        mma_prefill_finish<VM, HD>(st, qs + 16 * w, ml.data() + 32 * w, cs.splits == 1);
      });
    }
    if (cs.splits > 1) {
      prefill_store_part<HD>(qs, ml.data(), part.data(), blk, group, kKvh, n_heads, cs.splits,
                             split, 0, 1);
      continue;
    }
    if (info.rotated) kv_rotate_rows(info, qs_mem.data(), kPrefillRows);
    if (bf16) {
      prefill_store_out<__nv_bfloat16, HD>(qs, reinterpret_cast<__nv_bfloat16*>(out16.data()),
                                           n_heads * HD, blk, group, kKvh, 0, 1);
    } else {
      prefill_store_out<__half, HD>(qs, reinterpret_cast<__half*>(out16.data()), n_heads * HD, blk,
                                    group, kKvh, 0, 1);
    }
  }

  // Reference: softmax attention in double over kv_attention_context for every (token, head) of
  // the KV head; the partial states (two splits) merged as combine_splits_kernel does.
  double err = 0, ref_max = 1e-9;
  std::vector<float> kc(static_cast<size_t>(n_ctx) * HD), vc(kc.size());
  for (int i = 0; i < cs.n_tok; ++i) {
    const int p = cs.p0 + i;
    kv_attention_context(kv, kKvh, table.data(), 0, p, kc.data(), vc.data());
    for (int g = 0; g < group; ++g) {
      const int h = kKvh * group + g;
      std::vector<float> qrow(&qf[(static_cast<size_t>(i) * n_heads + h) * HD],
                              &qf[(static_cast<size_t>(i) * n_heads + h) * HD] + HD);
      kv_rotate_rows(info, qrow.data(), 1);
      std::vector<double> s(p + 1);
      double smax = -1e300, den = 0;
      for (int j = 0; j <= p; ++j) {
        double d = 0;
        for (int c = 0; c < HD; ++c) d += double(qrow[c]) * kc[static_cast<size_t>(j) * HD + c];
        s[j] = d * scale;
        smax = std::max(smax, s[j]);
      }
      for (int j = 0; j <= p; ++j) den += std::exp(s[j] - smax);
      std::vector<float> want(HD), got(HD);
      for (int c = 0; c < HD; ++c) {
        double o = 0;
        for (int j = 0; j <= p; ++j)
          o += std::exp(s[j] - smax) * vc[static_cast<size_t>(j) * HD + c];
        want[c] = static_cast<float>(o / den);
      }
      kv_rotate_rows(info, want.data(), 1);
      const size_t off = (static_cast<size_t>(i) * n_heads + h) * HD;
      if (cs.splits == 1) {
        for (int c = 0; c < HD; ++c)
          got[c] = bf16 ? bf16_to_f32(out16[off + c]) : f16_to_f32(out16[off + c]);
      } else {
        const float* pp = &part[(static_cast<size_t>(i) * n_heads + h) * cs.splits * kPartRow<HD>];
        float m = -INFINITY;
        for (int sp = 0; sp < cs.splits; ++sp) m = std::max(m, pp[sp * kPartRow<HD> + HD]);
        for (int c = 0; c < HD; ++c) {
          float num = 0, dn = 0;
          for (int sp = 0; sp < cs.splits; ++sp) {
            const float ms = pp[sp * kPartRow<HD> + HD];
            if (ms == -INFINITY) continue;
            const float wgt = std::exp2(ms - m);
            num += wgt * pp[sp * kPartRow<HD> + c];
            dn += wgt * pp[sp * kPartRow<HD> + HD + 1];
          }
          got[c] = dn > 0 ? num / dn : 0.0f;
        }
        kv_rotate_rows(info, got.data(), 1);
      }
      for (int c = 0; c < HD; ++c) {
        if (!std::isfinite(got[c])) err = INFINITY;
        err = std::max(err, std::fabs(double(got[c]) - want[c]));
        ref_max = std::max(ref_max, std::fabs(double(want[c])));
      }
    }
  }
  // The other KV head's query heads must be untouched.
  for (int i = 0; i < cs.n_tok && cs.splits == 1; ++i) {
    for (int h = 0; h < n_heads; ++h) {
      if (h / group == kKvh) continue;
      for (int c = 0; c < HD; ++c) {
        if (out16[(static_cast<size_t>(i) * n_heads + h) * HD + c] != 0) err = INFINITY;
      }
    }
  }
  const double rel = err / ref_max;
  const bool ok = rel < 1e-2;
  if (!ok) ++g_failures;
  std::printf("%-10s hd %3d group %d %s %-28s positions [%4d, %4d) tiles %d%s: rel err %.2e %s\n",
              kv_format_name(f), HD, group, bf16 ? "bf16" : "fp16", cs.what, cs.p0, n_ctx,
              blk.n_tiles, cs.splits > 1 ? " (2 splits)" : "", rel, ok ? "ok" : "FAIL");
}

template <class KM, class VM, int HD>
void run_format(KvFormat f, std::mt19937& rng) {
  if (g_only != nullptr && std::strcmp(g_only, kv_format_name(f)) != 0) return;
  for (int group : {4, 7, 2}) {
    const int per = kPrefillRows / group;  // tokens of a full row tile
    const std::vector<Case> cases = {
        {"full row tile, edge inside", 70, per, 1},
        {"partial row tile", 3, 3, 1},
        {"ends at a block's row 63", 128 - per, per, 1},
        {"after a prefix, 2 splits", 192 + 5, per, 2},
    };
    for (const Case& c : cases) run_case<KM, VM, HD>(f, group, c, rng);
  }
}

template <int HD>
void run_all(std::mt19937& rng) {
  run_format<PlainFrag<__nv_bfloat16, HD>, PlainFrag<__nv_bfloat16, HD>, HD>(KvFormat::BF16, rng);
  run_format<PlainFrag<__half, HD>, PlainFrag<__half, HD>, HD>(KvFormat::F16, rng);
  run_format<Fp8Frag<HD>, Fp8Frag<HD>, HD>(KvFormat::FP8_E4M3, rng);
  run_format<Int8Frag<HD>, Int8Frag<HD>, HD>(KvFormat::INT8, rng);
  run_format<PerChannelFrag<4, HD>, PerTokenGroupFrag<4, 64, HD>, HD>(KvFormat::INT4_KIVI, rng);
  run_format<PerChannelFrag<2, HD>, PerTokenGroupFrag<2, 32, HD>, HD>(KvFormat::INT2_KIVI, rng);
  run_format<PerChannelFrag<4, HD>, PerTokenGroupFrag<2, 64, HD>, HD>(KvFormat::K4V2, rng);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_only = argv[1];
  std::mt19937 rng(11);
  run_all<64>(rng);
  run_all<128>(rng);
  std::printf("%s (%d failures)\n", g_failures == 0 ? "PASS" : "FAIL", g_failures);
  return g_failures == 0 ? 0 : 1;
}
