// CPU backend: the paged KV cache write and causal paged attention (fp32 math). Prefill chunks
// and decode steps are the same op: each query token attends to positions [0, its position] of
// its sequence, found through the block table. Plain formats are read in place, converting each
// element as it is read. Quantized formats follow the reference in kv_paged.h: per (sequence,
// kv head) the sealed blocks the batch's tokens need are dequantized once and the 16-bit tail
// rows loaded, then each token reads the blocks entirely inside [0, p] sealed and the rest of
// its own block from the tail (backend.h states the rule).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_elem.h"
#include "core/check.h"
#include "kv/kv_paged.h"

namespace densekv {

using cpu::load_f32;
using cpu::store_f32;

namespace {

// Address of element 0 of (block, kv head, offset) of a plain format, for keys (which = 0) or
// values (which = 1).
inline char* kv_row(const KvLayerView& kv, int block, int which, int head, int offset) {
  size_t elem = dtype_size(kv_format_dtype(kv.format));
  size_t row = (static_cast<size_t>(which) * kv.n_kv_heads + head) * kv.block_size + offset;
  return static_cast<char*>(kv.base) + static_cast<size_t>(block) * kv.block_bytes +
         row * kv.head_dim * elem;
}

// One query head: out = softmax(q . K[0..n_ctx) * scale) @ V, where key(j) / value(j) point to
// row j of the context (hd elements of type ET). Every format and backend path goes through this
// one loop, so a token's result depends only on its q and the numbers of its context.
template <DType ET, class KeyRow, class ValueRow>
void attend(const float* qh, int hd, int n_ctx, float scale, KeyRow key, ValueRow value,
            float* scores, float* o) {
  float max_score = -INFINITY;
  for (int j = 0; j < n_ctx; ++j) {
    const void* kr = key(j);
    float dot = 0.0f;
    for (int i = 0; i < hd; ++i) dot += qh[i] * load_f32(kr, ET, i);
    scores[j] = dot * scale;
    if (scores[j] > max_score) max_score = scores[j];
  }
  float sum = 0.0f;
  for (int j = 0; j < n_ctx; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  for (int i = 0; i < hd; ++i) o[i] = 0.0f;
  for (int j = 0; j < n_ctx; ++j) {
    const void* vr = value(j);
    const float w = scores[j] / sum;
    for (int i = 0; i < hd; ++i) o[i] += w * load_f32(vr, ET, i);
  }
}

// A plain-format query head read straight from the blocks.
template <DType ET>
void attend_plain(const float* qh, const KvLayerView& kv, const int32_t* table, int kvh, int n_ctx,
                  float scale, float* scores, float* o) {
  const int bs = kv.block_size;
  attend<ET>(
      qh, kv.head_dim, n_ctx, scale,
      [&](int j) { return kv_row(kv, table[j / bs], 0, kvh, j % bs); },
      [&](int j) { return kv_row(kv, table[j / bs], 1, kvh, j % bs); }, scores, o);
}

}  // namespace

void CpuBackend::kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                          const BatchView& batch) {
  const int hd = kv.head_dim, kvd = kv.n_kv_heads * kv.head_dim;
  CHECK(k.cols == kvd && v.cols == k.cols && k.rows == batch.n_tokens);
  CHECK(k.rows == v.rows && k.dtype == DType::F32 && v.dtype == DType::F32);
  const int32_t* slots = batch.slots;
  if (!kv_format_is_quantized(kv.format)) {
    const DType et = kv_format_dtype(kv.format);
    pool_.parallel_for(k.rows, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        CHECK(slots[t] >= 0);
        int block = slots[t] / kv.block_size;
        int off = slots[t] % kv.block_size;
        const float* kr = k.ptr<float>() + t * k.stride;
        const float* vr = v.ptr<float>() + t * v.stride;
        for (int h = 0; h < kv.n_kv_heads; ++h) {
          char* kd = kv_row(kv, block, 0, h, off);
          char* vd = kv_row(kv, block, 1, h, off);
          for (int i = 0; i < hd; ++i) {
            store_f32(kd, et, i, kr[h * hd + i]);
            store_f32(vd, et, i, vr[h * hd + i]);
          }
        }
      }
    });
    return;
  }
  // Quantized: dense (rotated) copies of the rows, then per kv head the tokens in batch order
  // (a tail fills, and seals, in position order; heads are independent).
  const KvFormatInfo info = kv_format_info(kv.format, hd, kv.block_size);
  const int64_t T = k.rows;
  std::vector<float> kb(static_cast<size_t>(T * kvd)), vb(kb.size());
  pool_.parallel_for(T, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      std::copy_n(k.ptr<float>() + t * k.stride, kvd, kb.data() + t * kvd);
      std::copy_n(v.ptr<float>() + t * v.stride, kvd, vb.data() + t * kvd);
      kv_rotate_rows(info, kb.data() + t * kvd, kv.n_kv_heads);
      kv_rotate_rows(info, vb.data() + t * kvd, kv.n_kv_heads);
    }
  });
  pool_.parallel_for(kv.n_kv_heads, [&](int64_t h0, int64_t h1) {
    for (int64_t t = 0; t < T; ++t) {
      const int32_t tail = batch.tails[batch.seq_of_token[t]];
      const int32_t block = slots[t] >= 0 ? slots[t] / kv.block_size : -1;
      kv_store_token(kv, block, batch.positions[t] % kv.block_size, tail, kb.data() + t * kvd,
                     vb.data() + t * kvd, static_cast<int>(h0), static_cast<int>(h1));
    }
  });
}

void CpuBackend::paged_attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch,
                                 float scale, const Tensor& out) {
  const int hd = kv.head_dim, bs = kv.block_size;
  CHECK(q.dtype == DType::F32 && out.dtype == DType::F32);
  CHECK(q.cols % hd == 0 && q.rows == batch.n_tokens && out.rows == q.rows && out.cols == q.cols);
  const int n_heads = static_cast<int>(q.cols / hd);
  CHECK(n_heads % kv.n_kv_heads == 0);
  const int group = n_heads / kv.n_kv_heads;
  auto check_token = [&](int64_t t) {
    const int s = batch.seq_of_token[t];
    CHECK(s >= 0 && s < batch.n_seqs);
    CHECK(batch.positions[t] < batch.context_lens[s] && batch.positions[t] < batch.max_context);
    return s;
  };

  if (!kv_format_is_quantized(kv.format)) {
    auto* fn = kv.format == KvFormat::BF16  ? &attend_plain<DType::BF16>
               : kv.format == KvFormat::F16 ? &attend_plain<DType::F16>
                                            : &attend_plain<DType::F32>;
    // One task per (token, head).
    pool_.parallel_for(static_cast<int64_t>(q.rows) * n_heads, [&](int64_t b, int64_t e) {
      std::vector<float> scores(static_cast<size_t>(batch.max_context));
      for (int64_t task = b; task < e; ++task) {
        const int64_t t = task / n_heads;
        const int h = static_cast<int>(task % n_heads);
        const int s = check_token(t);
        const int32_t* table = batch.block_tables + static_cast<int64_t>(s) * batch.max_blocks;
        fn(q.ptr<float>() + t * q.stride + h * hd, kv, table, h / group, batch.positions[t] + 1,
           scale, scores.data(), out.ptr<float>() + t * out.stride + h * hd);
      }
    });
    return;
  }

  // Quantized: one task per (sequence, kv head) loads the sealed blocks and tail rows its tokens
  // read, then runs those tokens and the kv head's query heads.
  const KvFormatInfo info = kv_format_info(kv.format, hd, bs);
  std::vector<std::vector<int32_t>> tokens_of(static_cast<size_t>(batch.n_seqs));
  for (int64_t t = 0; t < q.rows; ++t) tokens_of[check_token(t)].push_back(static_cast<int>(t));
  pool_.parallel_for(static_cast<int64_t>(batch.n_seqs) * kv.n_kv_heads, [&](int64_t b, int64_t e) {
    std::vector<float> ks, vs, kt(static_cast<size_t>(bs) * hd), vt(kt.size());
    std::vector<float> scores(static_cast<size_t>(batch.max_context)), qr(hd);
    for (int64_t task = b; task < e; ++task) {
      const int s = static_cast<int>(task / kv.n_kv_heads);
      const int kvh = static_cast<int>(task % kv.n_kv_heads);
      const std::vector<int32_t>& toks = tokens_of[s];
      if (toks.empty()) continue;
      const int32_t* table = batch.block_tables + static_cast<int64_t>(s) * batch.max_blocks;
      int sealed = 0, tail_rows = 0;  // blocks and tail rows the tokens read, at most
      for (int t : toks) {
        const int n = batch.positions[t] + 1;
        sealed = std::max(sealed, n / bs);
        tail_rows = std::max(tail_rows, n % bs);
      }
      ks.resize(static_cast<size_t>(sealed) * bs * hd);
      vs.resize(ks.size());
      for (int blk = 0; blk < sealed; ++blk) {
        const size_t off = static_cast<size_t>(blk) * bs * hd;
        kv_load_block(kv, kvh, table[blk], ks.data() + off, vs.data() + off);
      }
      if (tail_rows > 0) kv_load_tail(kv, kvh, batch.tails[s], tail_rows, kt.data(), vt.data());
      for (int t : toks) {
        const int n = batch.positions[t] + 1, split = n / bs * bs;
        auto key = [&](int j) {
          return j < split ? &ks[static_cast<size_t>(j) * hd]
                           : &kt[static_cast<size_t>(j - split) * hd];
        };
        auto value = [&](int j) {
          return j < split ? &vs[static_cast<size_t>(j) * hd]
                           : &vt[static_cast<size_t>(j - split) * hd];
        };
        for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
          std::copy_n(q.ptr<float>() + t * q.stride + h * hd, hd, qr.data());
          kv_rotate_rows(info, qr.data(), 1);
          float* o = out.ptr<float>() + t * out.stride + h * hd;
          attend<DType::F32>(qr.data(), hd, n, scale, key, value, scores.data(), o);
          kv_rotate_rows(info, o, 1);  // H is its own inverse
        }
      }
    }
  });
}

}  // namespace densekv
