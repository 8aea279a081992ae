// CUDA kv_write + paged attention vs the CPU reference: random K/V written through shuffled block
// tables, then decode queries (one token per sequence, contexts long enough for split-K) and
// prefill chunks (several query tokens per sequence, causal), for GQA shapes 32/8, 28/4, 4/4,
// 16/1, head_dim 64 and 128, every KV format the CUDA backend stores.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

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

// One layer's cache on one backend, plus a block table per sequence.
struct Scene {
  Backend& b;
  KvLayerView kv;
  Buffer pool;
  Scene(Backend& backend, KvFormat f, int n_kv_heads, int hd, int block_size, int num_blocks)
      : b(backend) {
    kv.format = f;
    kv.block_size = block_size;
    kv.n_kv_heads = n_kv_heads;
    kv.head_dim = hd;
    kv.block_bytes = kv_block_bytes(f, block_size, n_kv_heads, hd);
    pool = Buffer(b, kv.block_bytes * num_blocks);
    kv.base = pool.data();
  }
};

class CudaAttention : public ::testing::TestWithParam<AttnCase> {
 protected:
  void SetUp() override {
    std::string why;
    gpu_ = cuda_backend_or_null(why);
    if (!gpu_) GTEST_SKIP() << "no CUDA backend (" << why << ")";
    gpu_->set_model_dtype(DType::BF16);
    cpu_ = make_backend("cpu", 2);
  }

  // Writes `lens[s]` tokens of every sequence on both backends, then runs attention for the
  // query tokens `q_count[s]` at the end of each sequence and compares.
  void run(const std::vector<int>& lens, const std::vector<int>& q_count, double tol) {
    const AttnCase c = GetParam();
    const int hd = c.head_dim, kvd = c.n_kv_heads * hd, qd = c.n_heads * hd;
    const int bs = kv_format_is_quantized(c.format) ? 64 : 16;
    int total_blocks = 0;
    for (int l : lens) total_blocks += (l + bs - 1) / bs;
    std::vector<int32_t> ids(total_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng_);

    BatchLayout write, attn;
    int next = 0;
    std::vector<std::vector<int32_t>> tables;
    for (size_t s = 0; s < lens.size(); ++s) {
      const int nb = (lens[s] + bs - 1) / bs;
      tables.emplace_back(ids.begin() + next, ids.begin() + next + nb);
      next += nb;
      write.max_blocks = attn.max_blocks = std::max(attn.max_blocks, nb);
      attn.max_context = std::max(attn.max_context, lens[s]);
    }
    for (size_t s = 0; s < lens.size(); ++s) {
      for (int p = 0; p < lens[s]; ++p) {
        write.slots.push_back(tables[s][p / bs] * bs + p % bs);
        if (p >= lens[s] - q_count[s]) {
          attn.token_ids.push_back(0);
          attn.positions.push_back(p);
          attn.slots.push_back(tables[s][p / bs] * bs + p % bs);
          attn.seq_of_token.push_back(static_cast<int32_t>(s));
        }
      }
      attn.context_lens.push_back(lens[s]);
      attn.block_tables.insert(attn.block_tables.end(), tables[s].begin(), tables[s].end());
      attn.block_tables.resize(attn.block_tables.size() + attn.max_blocks - tables[s].size(), -1);
    }
    const int64_t n_write = static_cast<int64_t>(write.slots.size());
    const int64_t n_q = static_cast<int64_t>(attn.positions.size());

    auto k = random_values(n_write * kvd, 2.0f, rng_);
    auto v = random_values(n_write * kvd, 1.0f, rng_);
    auto q = random_values(n_q * qd, 0.5f, rng_);

    Scene gs(*gpu_, c.format, c.n_kv_heads, hd, bs, total_blocks);
    Scene cs(*cpu_, c.format, c.n_kv_heads, hd, bs, total_blocks);
    auto gk = make_owned(*gpu_, DType::BF16, n_write, kvd, &k);
    auto gv = make_owned(*gpu_, DType::BF16, n_write, kvd, &v);
    auto ck = make_owned(*cpu_, DType::F32, n_write, kvd, &k);
    auto cv = make_owned(*cpu_, DType::F32, n_write, kvd, &v);
    auto gslots = upload_index(*gpu_, write.slots);
    auto cslots = upload_index(*cpu_, write.slots);
    gpu_->kv_write(gs.kv, gk.t, gv.t, gslots.ptr());
    cpu_->kv_write(cs.kv, ck.t, cv.t, cslots.ptr());

    // The stored bytes are the reference's bit for bit (plain formats: 16-bit rounding).
    if (!kv_format_is_quantized(c.format)) {
      const DType et = kv_format_dtype(c.format);
      const int64_t elems = static_cast<int64_t>(gs.kv.block_bytes) * total_blocks / 2;
      Tensor gt = make_tensor(gs.kv.base, et, 1, elems), ct = make_tensor(cs.kv.base, et, 1, elems);
      EXPECT_EQ(download(*gpu_, gt), download(*cpu_, ct)) << "cache bytes";
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
  run({1, 5, 16, 17, 64, 100}, {1, 1, 1, 1, 1, 1}, kTol);
}

TEST_P(CudaAttention, DecodeLongContextSplitK) {
  run({3001, 777}, {1, 1}, kTol);  // few blocks on the GPU: the context is split
}

TEST_P(CudaAttention, PrefillChunksAreCausal) {
  run({40, 130, 7}, {40, 70, 3}, kTol);
}

std::vector<AttnCase> cases() {
  std::vector<AttnCase> v;
  for (KvFormat f : {KvFormat::BF16, KvFormat::F16}) {
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

}  // namespace
