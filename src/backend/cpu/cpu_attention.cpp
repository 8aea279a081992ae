// CPU backend: the paged KV cache write and causal paged attention (fp32 math, the cache's
// element type converted on read). Prefill chunks and decode steps are the same op: each query
// token attends to positions [0, its position] of its sequence, found through the block table.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_elem.h"
#include "core/check.h"

namespace densekv {

using cpu::load_f32;
using cpu::store_f32;

namespace {

// Address of element 0 of (block, kv head, offset) for keys (which = 0) or values (which = 1).
inline char* kv_row(const KvLayerView& kv, int block, int which, int head, int offset) {
  size_t elem = dtype_size(kv_format_dtype(kv.format));
  size_t row = (static_cast<size_t>(which) * kv.n_kv_heads + head) * kv.block_size + offset;
  return static_cast<char*>(kv.base) + static_cast<size_t>(block) * kv.block_bytes +
         row * kv.head_dim * elem;
}

}  // namespace

void CpuBackend::kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                          const int32_t* slots) {
  const int hd = kv.head_dim;
  CHECK(k.cols == static_cast<int64_t>(kv.n_kv_heads) * hd && v.cols == k.cols);
  CHECK(k.rows == v.rows && k.dtype == DType::F32 && v.dtype == DType::F32);
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
}

// One query token and head: out = softmax(q . K[0..n_ctx) * scale) @ V. ET is the cache
// element type (a template parameter so the conversion inlines into the loops).
template <DType ET>
static void attend_one(const float* qh, const KvLayerView& kv, const int32_t* table, int kvh,
                       int n_ctx, float scale, float* scores, float* o) {
  const int hd = kv.head_dim;
  const int bs = kv.block_size;
  float max_score = -INFINITY;
  for (int j = 0; j < n_ctx; ++j) {
    const char* kr = kv_row(kv, table[j / bs], 0, kvh, j % bs);
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
    const char* vr = kv_row(kv, table[j / bs], 1, kvh, j % bs);
    const float w = scores[j] / sum;
    for (int i = 0; i < hd; ++i) o[i] += w * load_f32(vr, ET, i);
  }
}

void CpuBackend::paged_attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch,
                                 float scale, const Tensor& out) {
  const int hd = kv.head_dim;
  CHECK(q.dtype == DType::F32 && out.dtype == DType::F32);
  CHECK(q.cols % hd == 0 && q.rows == batch.n_tokens && out.rows == q.rows && out.cols == q.cols);
  const int n_heads = static_cast<int>(q.cols / hd);
  CHECK(n_heads % kv.n_kv_heads == 0);
  const int group = n_heads / kv.n_kv_heads;
  auto* attend = kv.format == KvFormat::BF16  ? &attend_one<DType::BF16>
                 : kv.format == KvFormat::F16 ? &attend_one<DType::F16>
                                              : &attend_one<DType::F32>;

  // One task per (token, head).
  pool_.parallel_for(static_cast<int64_t>(q.rows) * n_heads, [&](int64_t b, int64_t e) {
    std::vector<float> scores(static_cast<size_t>(batch.max_context));
    for (int64_t task = b; task < e; ++task) {
      const int64_t t = task / n_heads;
      const int h = static_cast<int>(task % n_heads);
      const int s = batch.seq_of_token[t];
      const int n_ctx = batch.positions[t] + 1;  // causal: positions [0, p]
      CHECK(s >= 0 && s < batch.n_seqs);
      CHECK(n_ctx <= batch.context_lens[s] && n_ctx <= batch.max_context);
      const int32_t* table = batch.block_tables + static_cast<int64_t>(s) * batch.max_blocks;
      attend(q.ptr<float>() + t * q.stride + h * hd, kv, table, h / group, n_ctx, scale,
             scores.data(), out.ptr<float>() + t * out.stride + h * hd);
    }
  });
}

}  // namespace densekv
