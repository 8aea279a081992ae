// CUDA kv_write + paged attention vs the CPU reference: random K/V written through shuffled block
// tables, then decode queries (one token per sequence, contexts long enough for split-K) and
// prefill chunks (several query tokens per sequence, causal), for GQA shapes 32/8, 28/4, 4/4,
// 16/1, head_dim 64 and 128, every KV format the CUDA backend stores, through the decode kernels
// (the prefill kernel off). CudaPrefill: the same with the tensor-core prefill kernel (the
// default), chunk by chunk in rounds as the
// forward runs them: prefills of several sequences, chunks after cached prefixes (split KV
// ranges), and prefill chunks mixed with decode tokens in one call.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>

#ifdef DENSEKV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#include "kernel_test_util.h"
#include "kv/kv_format.h"

using namespace densekv;
using namespace densekv::test;

namespace {

struct AttnCase {
  KvFormat format;
  int n_heads, n_kv_heads, head_dim;
};

std::string case_name(const AttnCase& c) {
  return std::string(kv_format_name(c.format)) + "_" + std::to_string(c.n_heads) + "q" +
         std::to_string(c.n_kv_heads) + "kv_hd" + std::to_string(c.head_dim);
}

// One layer's cache on one backend: main pool and (quantized formats) one 16-bit tail per
// sequence.
struct Scene {
  KvLayerView kv;
  Buffer pool, tails;
  Scene(Backend& b, KvFormat f, int n_kv_heads, int hd, int block_size, int num_blocks,
        int num_tails, KvFormat tail_format = KvFormat::BF16) {
    kv.format = f;
    kv.block_size = block_size;
    kv.n_kv_heads = n_kv_heads;
    kv.head_dim = hd;
    kv.block_bytes = kv_block_bytes(f, block_size, n_kv_heads, hd);
    pool = Buffer(b, kv.block_bytes * num_blocks);
    kv.base = pool.data();
    if (kv_format_is_quantized(f)) {
      kv.tail_format = tail_format;
      kv.tail_block_bytes = kv_block_bytes(tail_format, block_size, n_kv_heads, hd);
      tails = Buffer(b, kv.tail_block_bytes * num_tails);
      kv.tail_base = tails.data();
    }
  }
};

// The CUDA backend's prefill kernel on or off (prefill_attention_mma.cuh; paged_attention.cu).
void set_prefill_kernel([[maybe_unused]] Backend& b, [[maybe_unused]] bool on) {
#ifdef DENSEKV_HAVE_CUDA
  if (auto* cuda = dynamic_cast<CudaBackend*>(&b)) cuda->set_prefill_kernel(on);
#endif
}

// Raw bytes of backend memory (through an fp32 view: a plain copy).
std::vector<uint8_t> raw_bytes(Backend& b, void* p, size_t bytes) {
  std::vector<float> f(bytes / 4);
  b.download_f32(make_tensor(p, DType::F32, 1, static_cast<int64_t>(f.size())), f.data());
  std::vector<uint8_t> out(bytes);
  std::memcpy(out.data(), f.data(), bytes);
  return out;
}

class CudaAttention : public ::testing::TestWithParam<AttnCase> {
 protected:
  void SetUp() override {
    std::string why;
    gpu_ = cuda_backend_or_null(why);
    if (!gpu_) GTEST_SKIP() << "no CUDA backend (" << why << ")";
    set_prefill_kernel(*gpu_, false);  // the decode kernels serve every query token here
    gpu_->set_model_dtype(DType::BF16);
    cpu_ = make_backend("cpu", 2);
  }

  // Writes `lens[s]` tokens of every sequence on both backends (quantized formats: in rounds of
  // one block per sequence, as the forward does), then runs attention for the last `q_count[s]`
  // tokens of each sequence (quantized: at most those of its last block) and compares.
  void run(const std::vector<int>& lens, std::vector<int> q_count, double tol) {
    const AttnCase c = GetParam();
    const bool quant = kv_format_is_quantized(c.format);
    const int hd = c.head_dim, kvd = c.n_kv_heads * hd, qd = c.n_heads * hd;
    const int bs = quant ? 64 : 16;
    const int n_seqs = static_cast<int>(lens.size());
    int total_blocks = 0, max_nb = 0;
    for (int l : lens)
      total_blocks += (l + bs - 1) / bs, max_nb = std::max(max_nb, (l + bs - 1) / bs);
    std::vector<int32_t> ids(total_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng_);

    BatchLayout write, attn;
    int next = 0;
    std::vector<std::vector<int32_t>> tables;
    for (int s = 0; s < n_seqs; ++s) {
      const int nb = (lens[s] + bs - 1) / bs;
      tables.emplace_back(ids.begin() + next, ids.begin() + next + nb);
      next += nb;
      if (quant) q_count[s] = std::min(q_count[s], (lens[s] - 1) % bs + 1);
    }
    for (BatchLayout* l : {&write, &attn}) {
      l->max_blocks = max_nb;
      l->max_context = *std::max_element(lens.begin(), lens.end());
      for (int s = 0; s < n_seqs; ++s) {
        l->context_lens.push_back(lens[s]);
        l->block_tables.insert(l->block_tables.end(), tables[s].begin(), tables[s].end());
        l->block_tables.resize(l->block_tables.size() + max_nb - tables[s].size(), -1);
        l->tails.push_back(quant ? s : -1);
      }
    }
    auto add_token = [&](BatchLayout& l, int s, int p) {
      l.token_ids.push_back(0);
      l.positions.push_back(p);
      l.slots.push_back(tables[s][p / bs] * bs + p % bs);
      l.seq_of_token.push_back(s);
    };
    // Rounds: block r of every sequence (one round for plain formats).
    for (int r = 0; r < (quant ? max_nb : 1); ++r) {
      write.rounds.push_back(static_cast<int32_t>(write.positions.size()));
      for (int s = 0; s < n_seqs; ++s) {
        const int p0 = quant ? r * bs : 0, p1 = quant ? std::min(lens[s], (r + 1) * bs) : lens[s];
        for (int p = p0; p < p1; ++p) add_token(write, s, p);
      }
    }
    write.rounds.push_back(static_cast<int32_t>(write.positions.size()));
    for (int s = 0; s < n_seqs; ++s) {
      for (int p = lens[s] - q_count[s]; p < lens[s]; ++p) add_token(attn, s, p);
    }
    const int64_t n_write = static_cast<int64_t>(write.positions.size());
    const int64_t n_q = static_cast<int64_t>(attn.positions.size());

    auto k = random_values(n_write * kvd, 2.0f, rng_);
    auto v = random_values(n_write * kvd, 1.0f, rng_);
    auto q = random_values(n_q * qd, 0.5f, rng_);

    Scene gs(*gpu_, c.format, c.n_kv_heads, hd, bs, total_blocks, n_seqs);
    Scene cs(*cpu_, c.format, c.n_kv_heads, hd, bs, total_blocks, n_seqs);
    auto gk = make_owned(*gpu_, DType::BF16, n_write, kvd, &k);
    auto gv = make_owned(*gpu_, DType::BF16, n_write, kvd, &v);
    auto ck = make_owned(*cpu_, DType::F32, n_write, kvd, &k);
    auto cv = make_owned(*cpu_, DType::F32, n_write, kvd, &v);
    for (size_t r = 0; r + 1 < write.rounds.size(); ++r) {
      const int r0 = write.rounds[r], n = write.rounds[r + 1] - r0;
      if (n == 0) continue;
      const BatchView gw = gpu_->upload_batch(write).tokens(r0, n);
      gpu_->kv_write(gs.kv, gk.t.slice_rows(r0, n), gv.t.slice_rows(r0, n), gw);
      const BatchView cw = cpu_->upload_batch(write).tokens(r0, n);
      cpu_->kv_write(cs.kv, ck.t.slice_rows(r0, n), cv.t.slice_rows(r0, n), cw);
    }

    // The stored bytes are the reference's bit for bit: 16-bit rounding, rotation, sealing.
    const size_t pool_bytes = gs.kv.block_bytes * total_blocks;
    EXPECT_TRUE(raw_bytes(*gpu_, gs.kv.base, pool_bytes) ==
                raw_bytes(*cpu_, cs.kv.base, pool_bytes))
        << "main pool bytes differ";
    if (quant) {
      const size_t tail_bytes = gs.kv.tail_block_bytes * n_seqs;
      EXPECT_TRUE(raw_bytes(*gpu_, gs.kv.tail_base, tail_bytes) ==
                  raw_bytes(*cpu_, cs.kv.tail_base, tail_bytes))
          << "tail bytes differ";
    }

    auto gq = make_owned(*gpu_, DType::BF16, n_q, qd, &q);
    auto cq = make_owned(*cpu_, DType::F32, n_q, qd, &q);
    auto go = make_owned(*gpu_, DType::BF16, n_q, qd);
    auto co = make_owned(*cpu_, DType::F32, n_q, qd);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const BatchView gb = gpu_->upload_batch(attn);
    gpu_->paged_attention(gq.t, gs.kv, gb, scale, go.t);
    const BatchView cb = cpu_->upload_batch(attn);
    cpu_->paged_attention(cq.t, cs.kv, cb, scale, co.t);
    const auto got = download(*gpu_, go.t), want = download(*cpu_, co.t);
    const double err = rel_max_err(got, want);
    EXPECT_LT(err, tol) << case_name(c) << ", " << n_q << " queries";
    std::printf("  %s: %lld queries, max context %d, rel err %.2e\n", case_name(c).c_str(),
                static_cast<long long>(n_q), attn.max_context, err);
  }

  std::unique_ptr<Backend> gpu_, cpu_;
  std::mt19937 rng_{99};
};

// bf16 output rounding (2^-9) dominates.
constexpr double kTol = 1e-2;

TEST_P(CudaAttention, DecodeShortContexts) {
  run({1, 5, 16, 17, 63, 64, 65, 100, 128}, {1, 1, 1, 1, 1, 1, 1, 1, 1}, kTol);
}

TEST_P(CudaAttention, DecodeLongContextSplitK) {
  run({3001, 777}, {1, 1}, kTol);  // few blocks on the GPU: the context is split
}

TEST_P(CudaAttention, DecodeMixedContextsSplitK) {
  // 8 tiles for the longest: up to 8 splits, of which the shorter contexts leave some empty
  run({500, 300, 64, 1, 449}, {1, 1, 1, 1, 1}, kTol);
}

TEST_P(CudaAttention, DecodeTailsOfEveryLength) {
  // 16-bit tails of 1-16, 17-32 and 33-63 rows after 1-7 sealed blocks: the 4- and 2-bit decode
  // copies a short tail while it computes its last sealed tiles (either unit's stages), a long one
  // after them
  run({64 + 16, 128 + 1, 192 + 17, 256 + 32, 320 + 20, 384 + 33, 448 + 63, 128 + 32},
      {1, 1, 1, 1, 1, 1, 1, 1}, kTol);
}

TEST_P(CudaAttention, PrefillChunksAreCausal) {
  run({40, 130, 7, 128}, {40, 70, 3, 64}, kTol);
}

std::vector<AttnCase> cases() {
  std::vector<AttnCase> v;
  for (KvFormat f : {KvFormat::BF16, KvFormat::F16, KvFormat::FP8_E4M3, KvFormat::INT8,
                     KvFormat::INT4_KIVI, KvFormat::INT2_KIVI, KvFormat::K4V2}) {
    for (int hd : {64, 128}) {
      v.push_back({f, 32, 8, hd});
      v.push_back({f, 28, 4, hd});
      v.push_back({f, 4, 4, hd});
      v.push_back({f, 16, 1, hd});
    }
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Formats, CudaAttention, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return case_name(info.param); });

// The prefill kernel, chunk by chunk: every sequence s holds prefix[s] cached tokens, then its
// next chunk[s] tokens are written and attended in rounds (quantized formats: one KV block
// segment of every sequence's chunk per round, LlamaModel::make_layout's order), and each
// round's outputs are compared with the CPU reference.
class CudaPrefill : public ::testing::TestWithParam<AttnCase> {
 protected:
  void SetUp() override {
    std::string why;
    gpu_ = cuda_backend_or_null(why);
    if (!gpu_) GTEST_SKIP() << "no CUDA backend (" << why << ")";
    set_prefill_kernel(*gpu_, true);  // the default; DENSEKV_PREFILL=off must not turn it off
    gpu_->set_model_dtype(DType::BF16);
    cpu_ = make_backend("cpu", 2);
  }

  void run_chunks(const std::vector<int>& prefix, const std::vector<int>& chunk, double tol,
                  bool attend_chunk = true) {
    const AttnCase c = GetParam();
    const bool quant = kv_format_is_quantized(c.format);
    const int hd = c.head_dim, kvd = c.n_kv_heads * hd, qd = c.n_heads * hd;
    const int bs = quant ? 64 : 16;
    const int n_seqs = static_cast<int>(prefix.size());
    std::vector<int> lens(n_seqs);
    int total_blocks = 0, max_nb = 0;
    for (int s = 0; s < n_seqs; ++s) {
      lens[s] = prefix[s] + chunk[s];
      const int nb = (lens[s] + bs - 1) / bs;
      total_blocks += nb, max_nb = std::max(max_nb, nb);
    }
    std::vector<int32_t> ids(total_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng_);
    std::vector<std::vector<int32_t>> tables;
    for (int s = 0, next = 0; s < n_seqs; ++s) {
      const int nb = (lens[s] + bs - 1) / bs;
      tables.emplace_back(ids.begin() + next, ids.begin() + next + nb);
      next += nb;
    }
    // 16-bit dtype of the activations and the tail (the model's)
    const KvFormat tail = act_ == DType::F16 ? KvFormat::F16 : KvFormat::BF16;
    Scene gs(*gpu_, c.format, c.n_kv_heads, hd, bs, total_blocks, n_seqs, tail);
    Scene cs(*cpu_, c.format, c.n_kv_heads, hd, bs, total_blocks, n_seqs, tail);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

    // The cache holds the reference's bytes: every block sealed by position to[s], bit for bit,
    // and the tail rows of the partly filled last block (the rows kv_write_blocks leaves defined).
    auto expect_same_cache = [&](const std::vector<int>& to) {
      if (!quant) return;
      const size_t bb = gs.kv.block_bytes, tb = gs.kv.tail_block_bytes;
      const auto gp = raw_bytes(*gpu_, gs.kv.base, bb * total_blocks);
      const auto cp = raw_bytes(*cpu_, cs.kv.base, bb * total_blocks);
      const auto gt = raw_bytes(*gpu_, gs.kv.tail_base, tb * n_seqs);
      const auto ct = raw_bytes(*cpu_, cs.kv.tail_base, tb * n_seqs);
      const size_t row = static_cast<size_t>(hd) * 2;  // 16-bit tail rows
      for (int s = 0; s < n_seqs; ++s) {
        for (int i = 0; i < to[s] / bs; ++i) {
          const size_t o = static_cast<size_t>(tables[s][i]) * bb;
          EXPECT_TRUE(std::equal(gp.begin() + o, gp.begin() + o + bb, cp.begin() + o))
              << case_name(c) << ": sealed block " << i << " of sequence " << s << " differs";
        }
        for (int sec = 0; sec < 2 * c.n_kv_heads; ++sec) {  // (K or V, kv head)
          const size_t o = s * tb + sec * bs * row, n = (to[s] % bs) * row;
          EXPECT_TRUE(std::equal(gt.begin() + o, gt.begin() + o + n, ct.begin() + o))
              << case_name(c) << ": tail rows of sequence " << s << " differ";
        }
      }
    };

    // One forward over positions [from[s], to[s]) of every sequence, in rounds; attention only
    // when `attend`.
    auto forward = [&](const std::vector<int>& from, const std::vector<int>& to, bool attend) {
      BatchLayout lay;
      lay.max_blocks = max_nb;
      for (int s = 0; s < n_seqs; ++s) {
        lay.max_context = std::max(lay.max_context, to[s]);
        lay.context_lens.push_back(to[s]);
        lay.block_tables.insert(lay.block_tables.end(), tables[s].begin(), tables[s].end());
        lay.block_tables.resize(lay.block_tables.size() + max_nb - tables[s].size(), -1);
        lay.tails.push_back(quant ? s : -1);
      }
      for (int r = 0;; ++r) {
        const size_t before = lay.positions.size();
        lay.rounds.push_back(static_cast<int32_t>(before));
        bool any = false;
        for (int s = 0; s < n_seqs; ++s) {
          if (from[s] >= to[s]) continue;
          const int p0 =
              quant ? std::max(from[s], (from[s] / bs + r) * bs) : (r == 0 ? from[s] : to[s]);
          const int p1 = quant ? std::min(to[s], (from[s] / bs + r + 1) * bs) : to[s];
          for (int p = p0; p < p1; ++p) {
            lay.token_ids.push_back(0);
            lay.positions.push_back(p);
            lay.slots.push_back(tables[s][p / bs] * bs + p % bs);
            lay.seq_of_token.push_back(s);
          }
          any = any || p0 < to[s];
        }
        if (!any) {
          lay.rounds.pop_back();
          break;
        }
      }
      lay.rounds.push_back(static_cast<int32_t>(lay.positions.size()));
      const int64_t n = static_cast<int64_t>(lay.positions.size());
      if (n == 0) return;
      auto k = random_values(n * kvd, 2.0f, rng_, act_);
      auto v = random_values(n * kvd, 1.0f, rng_, act_);
      auto q = random_values(n * qd, 0.5f, rng_, act_);
      auto gk = make_owned(*gpu_, act_, n, kvd, &k);
      auto gv = make_owned(*gpu_, act_, n, kvd, &v);
      auto gq = make_owned(*gpu_, act_, n, qd, &q);
      auto go = make_owned(*gpu_, act_, n, qd);
      auto ck = make_owned(*cpu_, DType::F32, n, kvd, &k);
      auto cv = make_owned(*cpu_, DType::F32, n, kvd, &v);
      auto cq = make_owned(*cpu_, DType::F32, n, qd, &q);
      auto co = make_owned(*cpu_, DType::F32, n, qd);
      const BatchView gb = gpu_->upload_batch(lay);
      const BatchView cb = cpu_->upload_batch(lay);
      // own_rows_: as LlamaModel::run, the GPU writes the rounds after the first in one
      // kv_write_blocks call and attends them in one call (paged_attention_own_rows); a forward
      // without attention writes all its rounds in one kv_write_blocks call. The CPU reference
      // keeps the rounds.
      const bool own =
          own_rows_ && attend && gpu_->supports_own_rows(gs.kv) && lay.rounds.size() > 3;
      const size_t n_rounds = lay.rounds.size() - 1;
      const size_t alone = own_rows_ ? (attend ? (own ? 1 : n_rounds) : 0) : n_rounds;
      for (size_t r = 0; r < n_rounds; ++r) {
        const int r0 = lay.rounds[r], m = lay.rounds[r + 1] - r0;
        if (m == 0) continue;
        if (r < alone) {
          gpu_->kv_write(gs.kv, gk.t.slice_rows(r0, m), gv.t.slice_rows(r0, m), gb.tokens(r0, m));
        }
        cpu_->kv_write(cs.kv, ck.t.slice_rows(r0, m), cv.t.slice_rows(r0, m), cb.tokens(r0, m));
        if (!attend) continue;
        if (r < alone) {
          gpu_->paged_attention(gq.t.slice_rows(r0, m), gs.kv, gb.tokens(r0, m), scale,
                                go.t.slice_rows(r0, m));
        }
        cpu_->paged_attention(cq.t.slice_rows(r0, m), cs.kv, cb.tokens(r0, m), scale,
                              co.t.slice_rows(r0, m));
      }
      if (alone < n_rounds) {
        const int r0 = lay.rounds[alone], m = lay.rounds.back() - r0;
        gpu_->kv_write_blocks(gs.kv, gk.t.slice_rows(r0, m), gv.t.slice_rows(r0, m),
                              gb.tokens(r0, m));
        ++block_writes_;
        // A rotated format's rows are left rotated in place, rounded to the activations' dtype:
        // the rows its tail holds, which paged_attention_own_rows reads.
        const KvFormatInfo info = kv_format_info(c.format, hd);
        if (info.rotated) {
          for (int i = 0; i < 2; ++i) {
            const std::vector<float>& x = i == 0 ? k : v;
            std::vector<float> want(x.begin() + r0 * kvd, x.begin() + (r0 + m) * kvd);
            kv_rotate_rows(info, want.data(), m * c.n_kv_heads);
            for (float& e : want) e = round_to(e, act_);
            EXPECT_EQ(download(*gpu_, (i == 0 ? gk.t : gv.t).slice_rows(r0, m)), want)
                << case_name(c) << ": the call's rows are not left rotated";
          }
          ++rotated_checks_;
        }
        if (own) {
          gpu_->paged_attention_own_rows(gq.t.slice_rows(r0, m), gs.kv, gb.tokens(r0, m),
                                         gk.t.slice_rows(r0, m), gv.t.slice_rows(r0, m), scale,
                                         go.t.slice_rows(r0, m));
          ++own_calls_;
        }
      }
      expect_same_cache(to);
      if (!attend) return;
      const auto got = download(*gpu_, go.t), want = download(*cpu_, co.t);
      const double err = rel_max_err(got, want);
      EXPECT_LT(err, tol) << case_name(c) << ", " << n << " queries in " << lay.rounds.size() - 1
                          << " rounds";
      std::printf("  %s: %lld queries, %zu rounds, max context %d, rel err %.2e\n",
                  case_name(c).c_str(), static_cast<long long>(n), lay.rounds.size() - 1,
                  lay.max_context, err);
    };
    forward(std::vector<int>(n_seqs, 0), prefix, false);
    forward(prefix, lens, attend_chunk);
#ifdef DENSEKV_HAVE_CUDA
    auto* cuda = dynamic_cast<CudaBackend*>(gpu_.get());
    ASSERT_NE(cuda, nullptr);
    if (attend_chunk) {
      EXPECT_GT(cuda->prefill_launches(), 0) << "the prefill kernel never ran";
    }
#endif
  }

  std::unique_ptr<Backend> gpu_, cpu_;
  DType act_ = DType::BF16;
  bool own_rows_ = false;
  int own_calls_ = 0, block_writes_ = 0, rotated_checks_ = 0;
  std::mt19937 rng_{5};
};

TEST_P(CudaPrefill, ChunkedPrefillOfSeveralSequences) {
  // whole prompts of different lengths; chunks ending on and off block boundaries
  run_chunks({0, 0, 0, 0, 0}, {40, 130, 7, 64, 200}, kTol);
  // alone, a chunk that fills its block: the context (64) counts one tile, the kernel reads two
  // (the block sealed for the token at row 63, its 16-bit tail for the others)
  run_chunks({0}, {64}, kTol);
  run_chunks({48}, {16}, kTol);
}

TEST_P(CudaPrefill, ChunkAfterCachedPrefix) {
  // few blocks for a long prefix: the KV range is split and merged
  run_chunks({3000, 777}, {16, 50}, kTol);
  run_chunks({128, 63, 1000}, {64, 65, 100}, kTol);
}

TEST_P(CudaPrefill, PrefillMixedWithDecodeTokens) {
  // decode tokens (chunk 1) around prefill chunks in one call, one with a long context
  run_chunks({100, 0, 3000, 500, 17}, {1, 130, 1, 20, 1}, kTol);
}

// Chunks that cross several blocks, written first and attended in one call after their first
// block (Backend::paged_attention_own_rows: the 16-bit rows from the call, not the tails), with
// a cached prefix, decode tokens in the same call, and fp16 activations: the CPU's rounds.
TEST_P(CudaPrefill, ChunksAcrossBlocksAttendedAfterTheirWrites) {
  own_rows_ = true;
  run_chunks({0, 0, 100}, {200, 300, 250}, kTol);
  run_chunks({100, 3000, 17, 64}, {300, 1, 190, 128}, kTol);
  act_ = DType::F16;
  gpu_->set_model_dtype(DType::F16);
  run_chunks({30, 0}, {260, 129}, kTol);
  const KvFormat f = GetParam().format;
  if (kv_format_is_quantized(f)) {
    EXPECT_EQ(own_calls_, 3) << "paged_attention_own_rows did not run";
  } else {
    EXPECT_EQ(own_calls_, 0);
  }
}

// kv_write_blocks without attention: whole prompts written in one call each time, then chunks
// that begin inside a block (whose first rows are in the tail) or fill it with one token; the
// sealed blocks and the tail rows in use are the CPU rounds' bytes (run_chunks checks them).
TEST_P(CudaPrefill, ChunksWrittenInOneCall) {
  own_rows_ = true;
  run_chunks({130, 64, 0, 63, 7}, {300, 1, 200, 1, 57}, kTol, /*attend_chunk=*/false);
  run_chunks({100, 3000}, {28, 129}, kTol, /*attend_chunk=*/false);
  act_ = DType::F16;
  gpu_->set_model_dtype(DType::F16);
  run_chunks({30, 0}, {260, 129}, kTol, /*attend_chunk=*/false);
  EXPECT_EQ(block_writes_, 6);
  EXPECT_EQ(rotated_checks_, GetParam().format == KvFormat::K4V2 ? 6 : 0);
}

TEST_P(CudaPrefill, Fp16ActivationsAndTail) {
  act_ = DType::F16;
  gpu_->set_model_dtype(DType::F16);
  run_chunks({0, 200, 30}, {100, 40, 34}, kTol);
}

std::vector<AttnCase> prefill_cases() {
  std::vector<AttnCase> v;
  for (KvFormat f : {KvFormat::BF16, KvFormat::F16, KvFormat::FP8_E4M3, KvFormat::INT8,
                     KvFormat::INT4_KIVI, KvFormat::INT2_KIVI, KvFormat::K4V2}) {
    for (int hd : {64, 128}) {
      v.push_back({f, 32, 8, hd});
      v.push_back({f, 28, 4, hd});
      v.push_back({f, 4, 2, hd});
    }
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Formats, CudaPrefill, ::testing::ValuesIn(prefill_cases()),
                         [](const auto& info) { return case_name(info.param); });

}  // namespace
