// Decode attention benchmark of the CUDA backend: every KV format at batch {1, 16, 64, 256} x
// context {1k, 4k, 16k, 32k}, GQA 32/8 and 28/4, head_dim 128. One query token per sequence at
// position ctx + 31 (ctx / 64 sealed blocks plus 32 rows in the 16-bit tail for quantized
// formats; ctx + 32 tokens in 16-token blocks for 16-bit formats), block tables shuffled over
// the pool. The batch is copied (disjoint blocks and tails) until the copies hold >= 256 MB, and
// successive calls take successive copies, so that no call finds its KV in the 50 MB L2. Reports
// the time per paged_attention call when >= 20 calls are replayed as one CUDA graph (as the
// engine runs decode steps; median of 5 replays), the bytes of KV (codes, scales, zeros, tail
// rows) a call must read, GB/s, and that as a fraction of the measured device-to-device copy
// bandwidth (bytes read + written per second); then the time per call when the same calls are
// launched back to back on the stream (stream_us), and the median time of a single call from an
// idle stream, between events (call_us: adds the host's launch latency). read_us: the same bytes
// read by a plain streaming-read kernel (stream_read.h; successive calls read successive regions of
// a 2 GiB buffer; beyond 1 GiB, 1 GiB timed and scaled), timed the same way: the roofline of one
// launch of that size, launch, ramp-up and drain included.
//
// --prefill: causal prefill instead: 8 sequences x 512 new tokens after 0 and after 4096 cached
// tokens, GQA 32/8, head_dim 128, every format, in the forward's rounds (quantized formats: one
// 64-token block segment of every sequence per call). Times the calls with the tensor-core
// prefill kernel (CudaBackend::set_prefill_kernel) and with the decode kernel doing the same work
// (DENSEKV_ATTENTION picks which decode kernel), and reports TFLOP/s (4 * head_dim flops per
// query head and attended key). engine_us: the same attention as the engine runs it (LlamaModel::
// run, prefill kernel on): quantized formats attend round 0, then all later rounds in one
// paged_attention_own_rows call reading their 16-bit rows from the call's K/V; 16-bit formats,
// whose chunk is one round, as prefill_us.
//
//   attention_bench [--quick] [--prefill] [--json FILE] [--formats bf16,int4_kivi,...]
//                   [--batches 16,64] [--ctxs 4096,16384] [--kv-heads 8,4] [--plain-block N]
//                   [--tail N] [--contiguous]
// --kv-heads picks the GQA shapes (8: 32/8, 4: 28/4); --plain-block the 16-bit formats' block size
// (default 16); --tail the tokens past ctx (default 32: the 16-bit tail rows of the quantized
// formats); --contiguous gives each sequence consecutive blocks of the pool instead of shuffled
// ones (fewer TLB misses).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "bench_timing.h"
#include "core/errors.h"
#include "kv/kv_format.h"
#include "stream_read.h"

using namespace densekv;

namespace {

// Device memory for the pools and tails of every shape of a run, allocated once at the largest
// shape's size (the engine allocates its KV pool once; torch's caching allocator keeps what it
// frees). With a pool per shape, freeing one of tens of GB made the next shapes slower: bf16 28/4
// batch 1-16 x 1k-4k, measured right after bf16 32/8 256 x 32k (34 GB) was freed, took up to 1.15x
// the time they take with the arena, and the plain read of the same bytes (from a buffer of its
// own) up to 1.19x (H100, bench/results/attention_arena_ab_h100.txt).
struct BenchArena {
  Buffer pool, tails;
};

// A pool of nb blocks for each of n_seqs sequences (plus one 16-bit tail each for quantized
// formats), filled from the pattern, and the layer view over it; in `arena` where given.
struct BenchKv {
  KvLayerView kv;
  Buffer pool, tails;
};
size_t bench_pool_bytes(KvFormat f, int bs, int n_kv, int hd, int nb, int n_seqs) {
  return kv_block_bytes(f, bs, n_kv, hd) * size_t(nb) * n_seqs;
}
size_t bench_tail_bytes(KvFormat f, int bs, int n_kv, int hd, int n_seqs) {
  return kv_format_is_quantized(f) ? kv_block_bytes(KvFormat::BF16, bs, n_kv, hd) * n_seqs : 0;
}
BenchKv make_bench_kv(CudaBackend& be, KvFormat f, int bs, int n_kv, int hd, int nb, int n_seqs,
                      const Buffer& pattern, size_t pattern_bytes, BenchArena* arena = nullptr) {
  const cudaStream_t st = be.stream();
  BenchKv b;
  KvLayerView& kv = b.kv;
  kv.format = f;
  kv.block_size = bs;
  kv.n_kv_heads = n_kv;
  kv.head_dim = hd;
  kv.block_bytes = kv_block_bytes(f, bs, n_kv, hd);
  const size_t pool_bytes = bench_pool_bytes(f, bs, n_kv, hd, nb, n_seqs);
  if (arena == nullptr) b.pool = Buffer(be, pool_bytes);
  const Buffer& pool = arena ? arena->pool : b.pool;
  CHECK(pool.size() >= pool_bytes);
  kv.base = pool.data();
  fill(kv.base, pool_bytes, pattern.data(), pattern_bytes, st);
  if (kv_format_is_quantized(f)) {
    const size_t tail_bytes = bench_tail_bytes(f, bs, n_kv, hd, n_seqs);
    kv.tail_format = KvFormat::BF16;
    kv.tail_block_bytes = kv_block_bytes(KvFormat::BF16, bs, n_kv, hd);
    if (arena == nullptr) b.tails = Buffer(be, tail_bytes);
    const Buffer& tails = arena ? arena->tails : b.tails;
    CHECK(tails.size() >= tail_bytes);
    kv.tail_base = tails.data();
    fill(kv.tail_base, tail_bytes, pattern.data(), pattern_bytes, st);
  }
  return b;
}

// The prefill benchmark (--prefill), see the top of the file.
void bench_prefill(CudaBackend& be, const Buffer& pattern, size_t pattern_bytes, bool quick,
                   FILE* json, std::mt19937& rng) {
  const cudaStream_t st = be.stream();
  const int hd = 128, n_heads = 32, n_kv = 8, n_seqs = 8, n_new = 512;
  std::printf("%-10s %6s %6s %12s %10s %10s %10s %12s %10s %8s\n", "format", "cached", "tokens",
              "prefill_us", "TFLOP/s", "engine_us", "TFLOP/s", "decode_us", "TFLOP/s", "speedup");
  for (KvFormat f : {KvFormat::BF16, KvFormat::FP8_E4M3, KvFormat::INT8, KvFormat::INT4_KIVI,
                     KvFormat::INT2_KIVI, KvFormat::K4V2}) {
    const KvFormatInfo info = kv_format_info(f, hd);
    const bool quant = info.quantized;
    const int bs = info.block_size;
    for (int cached : {0, 4096}) {
      const int n_ctx = cached + n_new;
      const int nb = (n_ctx + bs - 1) / bs;
      const BenchKv bkv = make_bench_kv(be, f, bs, n_kv, hd, nb, n_seqs, pattern, pattern_bytes);
      const KvLayerView& kv = bkv.kv;
      std::vector<int32_t> ids(size_t(nb) * n_seqs);
      std::iota(ids.begin(), ids.end(), 0);
      std::shuffle(ids.begin(), ids.end(), rng);
      // Rounds as LlamaModel::make_layout orders them: block segment r of every sequence.
      BatchLayout lay;
      lay.max_blocks = nb;
      lay.max_context = n_ctx;
      const int seg = quant ? bs : n_new;
      for (int r0 = cached; r0 < n_ctx; r0 += seg) {
        lay.rounds.push_back(static_cast<int32_t>(lay.positions.size()));
        for (int s = 0; s < n_seqs; ++s) {
          for (int p = r0; p < std::min(n_ctx, r0 + seg); ++p) {
            lay.token_ids.push_back(0);
            lay.positions.push_back(p);
            lay.slots.push_back(ids[size_t(s) * nb + p / bs] * bs + p % bs);
            lay.seq_of_token.push_back(s);
          }
        }
      }
      lay.rounds.push_back(static_cast<int32_t>(lay.positions.size()));
      for (int s = 0; s < n_seqs; ++s) {
        lay.context_lens.push_back(n_ctx);
        lay.block_tables.insert(lay.block_tables.end(), ids.begin() + size_t(s) * nb,
                                ids.begin() + size_t(s + 1) * nb);
        lay.tails.push_back(quant ? s : -1);
      }
      const BatchView bv = be.upload_batch(lay);
      const int n_tok = static_cast<int>(lay.positions.size());
      Buffer qb(be, size_t(n_tok) * n_heads * hd * 2), ob(be, size_t(n_tok) * n_heads * hd * 2);
      fill(qb.data(), qb.size(), pattern.data(), pattern_bytes, st);
      const Tensor q = make_tensor(qb.data(), DType::BF16, n_tok, n_heads * hd);
      const Tensor out = make_tensor(ob.data(), DType::BF16, n_tok, n_heads * hd);
      const float scale = 1.0f / std::sqrt(float(hd));
      auto all_rounds = [&] {
        for (size_t r = 0; r + 1 < lay.rounds.size(); ++r) {
          const int r0 = lay.rounds[r], n = lay.rounds[r + 1] - r0;
          be.paged_attention(q.slice_rows(r0, n), kv, bv.tokens(r0, n), scale,
                             out.slice_rows(r0, n));
        }
      };
      // The engine's way: round 0, then the later rounds in one call over the call's 16-bit K/V
      // rows (their values do not matter for the time).
      Buffer kb(be, size_t(n_tok) * n_kv * hd * 2), vb(be, size_t(n_tok) * n_kv * hd * 2);
      fill(kb.data(), kb.size(), pattern.data(), pattern_bytes, st);
      fill(vb.data(), vb.size(), pattern.data(), pattern_bytes, st);
      const Tensor own_k = make_tensor(kb.data(), DType::BF16, n_tok, n_kv * hd);
      const Tensor own_v = make_tensor(vb.data(), DType::BF16, n_tok, n_kv * hd);
      auto engine_rounds = [&] {
        const int r1 = lay.rounds[1], n = n_tok - r1;
        be.paged_attention(q.slice_rows(0, r1), kv, bv.tokens(0, r1), scale, out.slice_rows(0, r1));
        be.paged_attention_own_rows(q.slice_rows(r1, n), kv, bv.tokens(r1, n),
                                    own_k.slice_rows(r1, n), own_v.slice_rows(r1, n), scale,
                                    out.slice_rows(r1, n));
      };
      double flops = 0;
      for (int p : lay.positions) flops += 4.0 * hd * n_heads * (p + 1);
      const int iters = quick ? 3 : 10;
      be.set_prefill_kernel(true);
      const double ms_prefill = median_ms(st, iters, all_rounds);
      const double ms_engine = lay.rounds.size() > 3 && be.supports_own_rows(kv)
                                   ? median_ms(st, iters, engine_rounds)
                                   : ms_prefill;
      be.set_prefill_kernel(false);
      const double ms_decode = median_ms(st, iters, all_rounds);
      const double tf_p = flops / (ms_prefill * 1e-3) / 1e12;
      const double tf_e = flops / (ms_engine * 1e-3) / 1e12;
      const double tf_d = flops / (ms_decode * 1e-3) / 1e12;
      std::printf("%-10s %6d %6d %12.1f %10.1f %10.1f %10.1f %12.1f %10.1f %7.2fx\n",
                  kv_format_name(f), cached, n_tok, ms_prefill * 1e3, tf_p, ms_engine * 1e3, tf_e,
                  ms_decode * 1e3, tf_d, ms_decode / ms_prefill);
      if (json) {
        std::fprintf(json,
                     "{\"mode\":\"prefill\",\"format\":\"%s\",\"heads\":%d,\"kv_heads\":%d,"
                     "\"seqs\":%d,\"new\":%d,\"cached\":%d,\"prefill_us\":%.2f,"
                     "\"engine_us\":%.2f,\"decode_us\":%.2f,\"prefill_tflops\":%.2f,"
                     "\"engine_tflops\":%.2f,\"decode_tflops\":%.2f}\n",
                     kv_format_name(f), n_heads, n_kv, n_seqs, n_new, cached, ms_prefill * 1e3,
                     ms_engine * 1e3, ms_decode * 1e3, tf_p, tf_e, tf_d);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, prefill = false;
  std::string json_path, formats_arg, batches_arg, ctxs_arg, gqa_arg;
  int plain_block = 0, tail = 32;
  bool contiguous = false;
  for (int i = 1; i < argc; ++i) {
    const bool more = i + 1 < argc;
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--prefill")) prefill = true;
    if (!std::strcmp(argv[i], "--json") && more) json_path = argv[++i];
    if (!std::strcmp(argv[i], "--formats") && more) formats_arg = argv[++i];
    if (!std::strcmp(argv[i], "--batches") && more) batches_arg = argv[++i];
    if (!std::strcmp(argv[i], "--ctxs") && more) ctxs_arg = argv[++i];
    if (!std::strcmp(argv[i], "--kv-heads") && more) gqa_arg = argv[++i];
    if (!std::strcmp(argv[i], "--plain-block") && more) plain_block = std::stoi(argv[++i]);
    if (!std::strcmp(argv[i], "--tail") && more) tail = std::stoi(argv[++i]);
    if (!std::strcmp(argv[i], "--contiguous")) contiguous = true;
  }
  if (tail < 0 || tail > 63) {
    std::fprintf(stderr, "attention_bench: --tail must be in [0, 63], got %d\n", tail);
    return 2;
  }
  CudaBackend be(0);
  be.set_model_dtype(DType::BF16);
  const cudaStream_t st = be.stream();
  std::mt19937 rng(7);
  const DevicePattern dev_pattern = upload_pattern(be, rng);
  const Buffer& pattern = dev_pattern.buf;
  const size_t pattern_bytes = dev_pattern.bytes;
  if (prefill) {
    FILE* json = json_path.empty() ? nullptr : std::fopen(json_path.c_str(), "w");
    bench_prefill(be, pattern, pattern_bytes, quick, json, rng);
    if (json) std::fclose(json);
    return 0;
  }

  const ReadRoofline roof(be, pattern, pattern_bytes);
  const double copy_gbs = roof.copy_gbs;
  auto stream_read_us = [&](double bytes, int calls) { return roof.read_us(be, bytes, calls); };

  FILE* json = json_path.empty() ? nullptr : std::fopen(json_path.c_str(), "w");
  std::printf("%-10s %-6s %5s %6s %10s %12s %8s %6s %10s %10s %8s %7s\n", "format", "gqa", "batch",
              "ctx", "time_us", "bytes_MB", "GB/s", "frac", "stream_us", "call_us", "read_us",
              "of_read");
  const int hd = 128;
  const std::vector<KvFormat> formats =
      formats_arg.empty()
          ? std::vector<KvFormat>{KvFormat::BF16,      KvFormat::FP8_E4M3,  KvFormat::INT8,
                                  KvFormat::INT4_KIVI, KvFormat::INT2_KIVI, KvFormat::K4V2}
          : parse_kv_cache_dtype_list(formats_arg, DType::BF16, 128, nullptr);
  std::vector<std::pair<int, int>> gqas = {{32, 8}, {28, 4}};
  if (!gqa_arg.empty()) {
    gqas.clear();
    for (int kv : parse_ints(gqa_arg)) gqas.push_back({kv == 4 ? 28 : 4 * kv, kv});
  }
  const std::vector<int> batches = !batches_arg.empty() ? parse_ints(batches_arg)
                                   : quick              ? std::vector<int>{1, 64}
                                                        : std::vector<int>{1, 16, 64, 256};
  const std::vector<int> ctxs = !ctxs_arg.empty() ? parse_ints(ctxs_arg)
                                : quick           ? std::vector<int>{4096}
                                                  : std::vector<int>{1024, 4096, 16384, 32768};
  // A shape's blocks per sequence, the bytes a call must read (sealed sections + tail rows for
  // quantized formats, 16-bit rows for plain ones), and the copies of the batch (>= 256 MB).
  struct Shape {
    int bs, nb, copies, n_seqs;
    double bytes;
  };
  auto shape = [&](KvFormat f, int n_kv, int batch, int ctx) {
    const KvFormatInfo info = kv_format_info(f, hd, kv_format_is_quantized(f) ? 0 : plain_block);
    Shape sh;
    sh.bs = info.block_size;
    const int n_ctx = ctx + tail;
    sh.nb = (n_ctx + sh.bs - 1) / sh.bs;
    if (info.quantized) {
      const int sealed = n_ctx / sh.bs, rows = n_ctx % sh.bs;
      sh.bytes = double(batch) * n_kv *
                 (double(sealed) * info.head_block_bytes() + double(rows) * hd * 2 * 2);
    } else {
      sh.bytes = double(batch) * n_kv * n_ctx * hd * 2 * 2;
    }
    sh.copies = std::clamp(static_cast<int>(std::ceil(256e6 / sh.bytes)), 1, 64);
    sh.n_seqs = batch * sh.copies;
    return sh;
  };
  size_t arena_pool = 0, arena_tails = 0;
  for (KvFormat f : formats) {
    for (auto [n_heads, n_kv] : gqas) {
      for (int batch : batches) {
        for (int ctx : ctxs) {
          const Shape sh = shape(f, n_kv, batch, ctx);
          arena_pool = std::max(arena_pool, bench_pool_bytes(f, sh.bs, n_kv, hd, sh.nb, sh.n_seqs));
          arena_tails = std::max(arena_tails, bench_tail_bytes(f, sh.bs, n_kv, hd, sh.n_seqs));
        }
      }
    }
  }
  // Where the largest shape's pool does not fit beside the others' (a GPU of less memory than the
  // H100's 80 GB, for the full grid), every shape gets a pool of its own, as before the arena.
  BenchArena arena;
  BenchArena* shared = &arena;
  try {
    arena.pool = Buffer(be, arena_pool);
    if (arena_tails > 0) arena.tails = Buffer(be, arena_tails);
  } catch (const Error& e) {
    std::fprintf(stderr,
                 "attention_bench: no room for one %.1f GB pool for every shape (%s); each shape "
                 "allocates its own, and shapes timed after a large pool is freed may run slower\n",
                 arena_pool / 1e9, e.what());
    arena = BenchArena();
    shared = nullptr;
  }
  for (KvFormat f : formats) {
    const bool quant = kv_format_is_quantized(f);
    for (auto [n_heads, n_kv] : gqas) {
      for (int batch : batches) {
        for (int ctx : ctxs) {
          const auto [bs, nb, copies, n_seqs, bytes] = shape(f, n_kv, batch, ctx);
          const int n_ctx = ctx + tail;
          BenchKv bkv;
          try {
            bkv = make_bench_kv(be, f, bs, n_kv, hd, nb, n_seqs, pattern, pattern_bytes, shared);
          } catch (const Error& e) {  // a pool of its own that does not fit
            std::fprintf(stderr, "attention_bench: %s %d/%d %d x %d skipped: %s\n",
                         kv_format_name(f), n_heads, n_kv, batch, ctx, e.what());
            continue;
          }
          const KvLayerView& kv = bkv.kv;
          std::vector<int32_t> ids(size_t(nb) * n_seqs);
          std::iota(ids.begin(), ids.end(), 0);
          if (!contiguous) std::shuffle(ids.begin(), ids.end(), rng);
          BatchLayout lay;
          lay.max_blocks = nb;
          lay.max_context = n_ctx;
          for (int s = 0; s < n_seqs; ++s) {
            lay.token_ids.push_back(0);
            lay.positions.push_back(n_ctx - 1);
            lay.slots.push_back(-1);
            lay.seq_of_token.push_back(s);
            lay.context_lens.push_back(n_ctx);
            lay.block_tables.insert(lay.block_tables.end(), ids.begin() + size_t(s) * nb,
                                    ids.begin() + size_t(s + 1) * nb);
            lay.tails.push_back(quant ? s : -1);
          }
          const BatchView all = be.upload_batch(lay);
          Buffer qb(be, size_t(batch) * n_heads * hd * 2), ob(be, size_t(batch) * n_heads * hd * 2);
          fill(qb.data(), qb.size(), pattern.data(), pattern_bytes, st);
          const Tensor q = make_tensor(qb.data(), DType::BF16, batch, n_heads * hd);
          const Tensor out = make_tensor(ob.data(), DType::BF16, batch, n_heads * hd);
          const float scale = 1.0f / std::sqrt(float(hd));
          int next = 0;  // the copy the next call reads
          auto call = [&] {
            be.paged_attention(q, kv, all.tokens(next * batch, batch), scale, out);
            next = (next + 1) % copies;
          };
          const int calls = std::max(20, copies);
          const double stream_ms = back_to_back_ms(st, calls, call);  // also grows the scratch
          const double call_ms = median_ms(st, quick ? 5 : 20, call);
          const double ms = graph_ms(be, calls, [&](int) { call(); });
          const double gbs = bytes / (ms * 1e-3) / 1e9;
          const double read_us = stream_read_us(bytes, calls);
          char gqa[16];
          std::snprintf(gqa, sizeof gqa, "%d/%d", n_heads, n_kv);
          std::printf("%-10s %-6s %5d %6d %10.1f %12.1f %8.0f %6.2f %10.1f %10.1f %8.1f %7.2f\n",
                      kv_format_name(f), gqa, batch, ctx, ms * 1e3, bytes / 1e6, gbs,
                      gbs / copy_gbs, stream_ms * 1e3, call_ms * 1e3, read_us,
                      read_us / (ms * 1e3));
          if (json) {
            std::fprintf(json,
                         "{\"format\":\"%s\",\"heads\":%d,\"kv_heads\":%d,\"batch\":%d,\"ctx\":%d,"
                         "\"time_us\":%.2f,\"stream_us\":%.2f,\"call_us\":%.2f,\"read_us\":%.2f,"
                         "\"bytes\":%.0f,\"gbs\":%.1f,\"copy_gbs\":%.1f}\n",
                         kv_format_name(f), n_heads, n_kv, batch, ctx, ms * 1e3, stream_ms * 1e3,
                         call_ms * 1e3, read_us, bytes, gbs, copy_gbs);
          }
        }
      }
    }
  }
  if (json) std::fclose(json);
  return 0;
}
