// CUDA backend: paged attention (decode and prefill chunks alike: each query token attends to
// positions [0, its position] of its sequence). Picks the split count (flash-decoding: enough
// blocks to fill the GPU when the batch is small and the context long), launches the format's
// kernel (paged_attention.cuh, instantiated in attention_*.cu) and merges the splits.
//
// Default: the tensor-core prefill kernel is on (DENSEKV_PREFILL=off or set_prefill_kernel(false)
// turn it off: then the decode kernels, one thread block per query token, serve every token).
// plan_prefill (backend/prefill_plan.h) sends the call's segments of >= 16 query rows of
// one sequence to it, in thread blocks of up to 64 (token, head) rows, and the remaining decode
// tokens, as contiguous runs, to the decode kernel: the prefill launch (and its split merge)
// first, then the decode runs, which overwrite whatever the merge wrote into their rows.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/paged_attention.cuh"
#include "backend/prefill_plan.h"
#include "core/errors.h"

namespace densekv {

namespace {

constexpr int kMaxSplits = 128;  // pick_splits' cap

// Merges the splits of CH channels (from blockIdx.z * CH) of one (token, head); part [T, n_heads,
// n_splits, kPartRow<HD>], a split's row = its unnormalized output, then (m, l). The 128 threads
// work as 512 / CH groups of CH / 4 lanes, a lane 4 channels (float4), group g summing splits g,
// g + groups, ...; the groups' sums meet in shared memory. One round of loads before the first
// barrier: thread s's split's (m, l) and each lane's values of its group's first kPre splits (the
// weights need every split's m, so the values would otherwise wait for them); later splits are
// loaded after (batch-1 launches of many splits). CH < HD (channel chunks in blocks of their own)
// serves launches of fewer (token, head) pairs than SMs; the k4v2 rotation needs all HD channels.
constexpr int kCombineThreads = 128;
constexpr int kCombineChunk = 32;  // CH of the chunked merge
static_assert(kMaxSplits <= kCombineThreads, "one split's (m, l) per thread");
// Launch bounds: 32 registers for whole rows where an SM holds 2048 threads (sm_80, sm_90), so that
// 4 merge blocks fit in the registers 3 of the quantized attention kernel's blocks leave on an SM
// (H100, 36 registers: 28/4 64 x 1k 2.5% slower); 40 where it holds 1536 (sm_86, sm_89: 12 blocks
// of 128 threads is their limit). The host pass sees no __CUDA_ARCH__ and uses no launch bound.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ != 800 && __CUDA_ARCH__ != 900
constexpr int kCombineRowBlocks = 12;
#else
constexpr int kCombineRowBlocks = 16;
#endif
template <int HD, int CH, class T>
__global__ void __launch_bounds__(kCombineThreads, CH < HD ? 10 : kCombineRowBlocks)
    combine_splits_kernel(const float* part, int n_heads, int n_splits, bool rotate, T* out,
                          int64_t out_stride) {
  constexpr int kLanes = CH / 4, kGroups = kCombineThreads / kLanes, R = cuda::kPartRow<HD>;
  // 8 when few blocks merge (CH < HD: batch 1, up to 128 splits); 4 otherwise, where the merge's
  // blocks share the SMs with the attention kernel's last ones (8: 56 registers, 28/4 64 x 1k 4%
  // slower)
  constexpr int kPre = CH < HD ? 8 : 4;
  __shared__ __align__(16) float sums[kGroups][CH];
  __shared__ float o[CH], ms[kMaxSplits], ws[kMaxSplits], ls[kMaxSplits], dens[kGroups];
  const int h = blockIdx.x, t = blockIdx.y, c0 = blockIdx.z * CH, tid = threadIdx.x;
  const int g = tid / kLanes, c = tid % kLanes * 4;
  cuda::grid_dependency_wait();  // the attention kernel's partial rows
  const float* p = part + (static_cast<int64_t>(t) * n_heads + h) * n_splits * R;
  if (tid < n_splits) {
    const float2 ml = *reinterpret_cast<const float2*>(p + tid * R + HD);
    ms[tid] = ml.x;
    ls[tid] = ml.y;
  }
  float4 pre[kPre];
#pragma unroll
  for (int i = 0; i < kPre; ++i) {
    const int s = g + i * kGroups;
    pre[i] = s < n_splits ? *reinterpret_cast<const float4*>(p + s * R + c0 + c)
                          : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  __syncthreads();
  float m = -INFINITY;  // every warp reduces all splits' m
  for (int s = tid % 32; s < n_splits; s += 32) m = fmaxf(m, ms[s]);
  m = cuda::warp_max(m);
  if (tid < n_splits) ws[tid] = ms[tid] == -INFINITY ? 0.0f : exp2f(ms[tid] - m);  // log2 units
  __syncthreads();
  float4 num = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float den = 0.0f;
  auto add = [&](int s, const float4& v) {  // an empty split's partial is 0
    const float w = ws[s];
    num.x += w * v.x, num.y += w * v.y, num.z += w * v.z, num.w += w * v.w;
    den += w * ls[s];
  };
#pragma unroll
  for (int i = 0; i < kPre; ++i) {
    if (g + i * kGroups < n_splits) add(g + i * kGroups, pre[i]);
  }
#pragma unroll 4
  for (int s = g + kPre * kGroups; s < n_splits; s += kGroups) {
    add(s, *reinterpret_cast<const float4*>(p + s * R + c0 + c));
  }
  *reinterpret_cast<float4*>(&sums[g][c]) = num;
  if (c == 0) dens[g] = den;
  __syncthreads();
  if (tid < CH) {
    float x = 0.0f, d = 0.0f;
#pragma unroll
    for (int k = 0; k < kGroups; ++k) x += sums[k][tid], d += dens[k];
    o[tid] = d > 0.0f ? x / d : 0.0f;
  }
  __syncthreads();
  if constexpr (CH == HD) {
    if (rotate) cuda::hadamard_rows_smem<HD>(o, 1);
  }
  if (tid < CH) {
    out[static_cast<int64_t>(t) * out_stride + h * HD + c0 + tid] = cuda::from_f32<T>(o[tid]);
  }
}

// The split count (flash-decoding) that minimizes a launch's modeled time, in tiles. More than
// one wave of the resident block slots (sm_count x per_sm) costs waves x (tiles per block + 8),
// a block's fixed cost (query, pipeline fill, merge) counted as 8 tiles (H100: 5-13% faster than
// 2 at batch 64 x 1k contexts). With `per_sm_load` (decode), a launch of at most one wave counts
// its blocks per SM, b = ceil(blocks / SMs): a tile then takes max(0.6, (1 + b) / (1 + per_sm))
// of its time in a full wave (H100, int4_kivi's split sweep: 0.9 / 1.2 / 1.5 us a tile with 2 /
// 3 / 4 blocks per SM), plus the fixed cost (5 tiles) and, split, the merge (3).
int pick_splits(int64_t base_blocks, int n_tiles, int sm_count, int per_sm, bool per_sm_load) {
  const int64_t slots = int64_t(sm_count) * per_sm;
  int splits = 1;
  double best = 1e300;
  for (int s = 1; s <= std::min(n_tiles, kMaxSplits); ++s) {
    const int64_t tps = cuda::ceil_div(n_tiles, s), used = cuda::ceil_div(n_tiles, tps);
    const int64_t blocks = base_blocks * used;
    double cost = static_cast<double>(cuda::ceil_div(blocks, slots) * (tps + 8));
    if (per_sm_load && blocks <= slots) {
      const double b = static_cast<double>(cuda::ceil_div(blocks, int64_t(sm_count)));
      cost = static_cast<double>(tps) * std::max(0.6, (1.0 + b) / (1.0 + per_sm)) +
             (used > 1 ? 8.0 : 5.0);
    }
    if (cost < best) best = cost, splits = s;
  }
  return splits;
}

// DENSEKV_SPLIT_MODEL=waves: decode splits without the per-SM load (pick_splits).
bool decode_splits_per_sm_load() {
  static const bool on = [] {
    const char* e = std::getenv("DENSEKV_SPLIT_MODEL");
    return e == nullptr || std::strcmp(e, "waves") != 0;
  }();
  return on;
}

void launch_format(KvFormat f, cuda::AttnKernel k, const cuda::AttnArgs& a, int hd, int n,
                   cudaStream_t stream, int* blocks_per_sm = nullptr) {
  switch (f) {
    case KvFormat::BF16:
    case KvFormat::F16:
      cuda::launch_attention_plain(f, k, a, hd, n, stream, blocks_per_sm);
      break;
    case KvFormat::FP8_E4M3:
    case KvFormat::INT8:
      cuda::launch_attention_8bit(f, k, a, hd, n, stream, blocks_per_sm);
      break;
    default:
      cuda::launch_attention_kivi(f, k, a, hd, n, stream, blocks_per_sm);
      break;
  }
}

// Launches the merge: one block per (head, token), or per (head, token, 32 channels) when the
// launch has fewer (head, token) pairs than the GPU has SMs and needs no rotation. pdl: as a
// programmatic dependent of the attention kernel, which must call launch_dependents (without it,
// H100: 0-3% slower than a plain launch); the merge's blocks then start on SMs that the attention
// blocks leave and wait there for the partial rows.
void combine_splits(const cuda::AttnArgs& a, DType dt, int hd, int n_tokens, int sm_count, bool pdl,
                    cudaStream_t stream) {
  const bool chunked = !a.rotate && int64_t(a.n_heads) * n_tokens < sm_count;
  const cuda::LaunchConfig lc(dim3(a.n_heads, n_tokens, chunked ? hd / kCombineChunk : 1),
                              dim3(kCombineThreads), 0, stream, pdl);
  DENSEKV_DISPATCH_DTYPE(dt, T, {
    T* out = static_cast<T*>(a.out);
    auto launch = [&](auto kernel) {
      CUDA_CHECK(cudaLaunchKernelEx(&lc.cfg, kernel, static_cast<const float*>(a.part), a.n_heads,
                                    a.n_splits, a.rotate, out, a.out_stride));
    };
    if (hd == 64) {
      chunked ? launch(combine_splits_kernel<64, kCombineChunk, T>)
              : launch(combine_splits_kernel<64, 64, T>);
    } else {
      chunked ? launch(combine_splits_kernel<128, kCombineChunk, T>)
              : launch(combine_splits_kernel<128, 128, T>);
    }
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace

bool CudaBackend::prefill_kernel_from_env() {
  const char* e = std::getenv("DENSEKV_PREFILL");
  return e == nullptr || std::strcmp(e, "off") != 0;
}

const int32_t* CudaBackend::host_batch(const int32_t* dev) const {
  const auto p = reinterpret_cast<uintptr_t>(dev), lo = reinterpret_cast<uintptr_t>(batch_dev_);
  if (dev == nullptr || p < lo || p >= lo + batch_cap_ * sizeof(int32_t)) return nullptr;
  return batch_host_ + (dev - batch_dev_);
}

void CudaBackend::paged_attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch,
                                  float scale, const Tensor& out) {
  attention(q, kv, batch, nullptr, nullptr, scale, out);
}

bool CudaBackend::supports_own_rows(const KvLayerView& kv) const {
  return prefill_mma_ && kv_format_is_quantized(kv.format);
}

void CudaBackend::paged_attention_own_rows(const Tensor& q, const KvLayerView& kv,
                                           const BatchView& batch, const Tensor& own_k,
                                           const Tensor& own_v, float scale, const Tensor& out) {
  CHECK_MSG(supports_own_rows(kv), "paged_attention_own_rows: not for this format or kernel");
  const DType tail_dtype = kv.tail_format == KvFormat::BF16 ? DType::BF16 : DType::F16;
  CHECK(own_k.dtype == tail_dtype && own_v.dtype == tail_dtype);
  CHECK(own_k.rows == q.rows && own_v.rows == q.rows && own_k.stride == own_v.stride);
  CHECK(own_k.cols == static_cast<int64_t>(kv.n_kv_heads) * kv.head_dim &&
        own_v.cols == own_k.cols);
  CHECK(cuda::aligned(own_k.data, 16) && cuda::aligned(own_v.data, 16) && own_k.stride % 8 == 0);
  attention(q, kv, batch, &own_k, &own_v, scale, out);
}

void CudaBackend::attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch,
                            const Tensor* own_k, const Tensor* own_v, float scale,
                            const Tensor& out) {
  const int hd = kv.head_dim;
  CHECK(q.dtype == out.dtype && (q.dtype == DType::BF16 || q.dtype == DType::F16));
  CHECK(q.cols % hd == 0 && q.rows == batch.n_tokens && out.rows == q.rows && out.cols == q.cols);
  if (hd != 64 && hd != 128) {
    throw InvalidArgumentError("the CUDA attention supports head_dim 64 and 128, the model has " +
                               std::to_string(hd));
  }
  if (kv.format == KvFormat::F32) {
    throw InvalidArgumentError(
        "the fp32 KV cache is the CPU reference only; use --kv-cache-dtype auto/bf16/fp16 on cuda");
  }
  const bool quantized = kv_format_is_quantized(kv.format);
  if (q.rows == 0) return;
  const int n_heads = static_cast<int>(q.cols / hd);
  CHECK(n_heads % kv.n_kv_heads == 0);

  cuda::AttnArgs a;
  a.q = q.data;
  a.q_stride = q.stride;
  a.out = out.data;
  a.out_stride = out.stride;
  a.act_bf16 = q.dtype == DType::BF16;
  a.base = static_cast<const uint8_t*>(kv.base);
  a.block_bytes = kv.block_bytes;
  a.block_size = kv.block_size;
  a.block_shift = (kv.block_size & (kv.block_size - 1)) == 0 ? __builtin_ctz(kv.block_size) : -1;
  if (quantized) {
    const KvFormatInfo info = kv_format_info(kv.format, hd, kv.block_size);
    a.k_bytes = info.k.bytes;
    a.v_bytes = info.v.bytes;
    a.tail_base = static_cast<const uint8_t*>(kv.tail_base);
    a.tail_block_bytes = kv.tail_block_bytes;
    a.tail_bf16 = kv.tail_format == KvFormat::BF16;
    a.tails = batch.tails;
    CHECK(a.tail_base != nullptr && a.tails != nullptr);
    if (own_k != nullptr) {
      a.own_k = own_k->data;
      a.own_v = own_v->data;
      a.own_stride = own_k->stride;
    }
  }
  a.positions = batch.positions;
  a.seq_of_token = batch.seq_of_token;
  a.block_tables = batch.block_tables;
  a.max_blocks = batch.max_blocks;
  a.n_heads = n_heads;
  a.n_kv_heads = kv.n_kv_heads;
  a.group = n_heads / kv.n_kv_heads;
  a.scale = scale;
  a.rotate = kv.format == KvFormat::K4V2;

  if (prefill_mma_) {
    const int32_t* seq = host_batch(batch.seq_of_token);
    const int32_t* pos = host_batch(batch.positions);
    if (seq != nullptr && pos != nullptr) {
      const PrefillPlan plan =
          plan_prefill(seq, pos, batch.n_tokens, a.group, quantized ? kv.block_size : 0);
      if (plan.n_work() > 0) {
        prefill_attention(a, kv.format, hd, plan.work, batch.max_context, q.dtype, q.rows);
        const size_t es = dtype_size(q.dtype);
        for (const auto& [t0, n] : plan.decode_runs) {
          cuda::AttnArgs d = a;
          d.q = static_cast<const uint8_t*>(a.q) + t0 * a.q_stride * es;
          d.out = static_cast<uint8_t*>(a.out) + t0 * a.out_stride * es;
          d.positions = a.positions + t0;
          d.seq_of_token = a.seq_of_token + t0;
          decode_attention(d, kv.format, hd, n, batch.max_context, q.dtype);
        }
        return;
      }
    }
  }
  // (Own rows: only the prefill kernel reads them, and the decode runs above are tokens of a
  // sequence's last, partly filled block, whose tail is current.)
  CHECK_MSG(own_k == nullptr, "paged_attention_own_rows: no prefill plan for the call");
  decode_attention(a, kv.format, hd, batch.n_tokens, batch.max_context, q.dtype);
}

// Decode kernels over n_tokens query tokens (a's arrays start at the first one).
void CudaBackend::decode_attention(const cuda::AttnArgs& args, KvFormat format, int hd,
                                   int n_tokens, int max_context, DType act) {
  cuda::AttnArgs a = args;
  // Splits (flash-decoding): a block per (token, KV head, group chunk, split); the split count
  // minimizes the time pick_splits models over the resident block slots (the tensor-core
  // kernel reports its blocks per SM: 3 for 16-bit formats, 4 for the quantized ones).
  const bool simt = cuda::use_simt_attention();
  const int g_block = !simt ? 8 : a.group <= 1 ? 1 : a.group <= 2 ? 2 : a.group <= 4 ? 4 : 8;
  const int64_t base_blocks =
      int64_t(n_tokens) * a.n_kv_heads * ((a.group + g_block - 1) / g_block);
  const int n_tiles = (max_context + 63) / 64;
  int per_sm = 0;
  if (!simt) launch_format(format, cuda::AttnKernel::kMma, a, hd, 0, stream_, &per_sm);
  if (per_sm <= 0) per_sm = hd == 64 ? 4 : 3;  // the CUDA-core kernel
  const int splits =
      pick_splits(base_blocks, n_tiles, sm_count_, per_sm, decode_splits_per_sm_load());
  a.tiles_per_split = (n_tiles + splits - 1) / splits;
  a.n_splits = (n_tiles + a.tiles_per_split - 1) / a.tiles_per_split;
  if (a.n_splits > 1) {
    a.part = static_cast<float*>(
        scratch(0, sizeof(float) * n_tokens * a.n_heads * a.n_splits * cuda::part_row(hd)));
  }
  // The tensor-core kernel is a programmatic dependent of the kernel before it (sm_90): its
  // launch and its reads of the batch arrays and block table overlap that kernel's end.
  a.pdl = pdl_ && !simt;
  launch_format(format, simt ? cuda::AttnKernel::kSimt : cuda::AttnKernel::kMma, a, hd, n_tokens,
                stream_);
  // The tensor-core kernel lets the merge start once its blocks' loops are done (PDL).
  if (a.n_splits > 1) combine_splits(a, act, hd, n_tokens, sm_count_, a.pdl, stream_);
}

// The prefill kernel over the plan's work items; its split merge covers all n_tokens rows.
void CudaBackend::prefill_attention(const cuda::AttnArgs& args, KvFormat format, int hd,
                                    const std::vector<int32_t>& work, int max_context, DType act,
                                    int n_tokens) {
  cuda::AttnArgs a = args;
  const int n_work = static_cast<int>(work.size() / 2);
  // Work list: a pageable copy is staged by the driver before cudaMemcpyAsync returns, and the
  // buffer is reused only by later work on this stream.
  auto* dev = static_cast<int32_t*>(scratch(2, work.size() * sizeof(int32_t)));
  CUDA_CHECK(cudaMemcpyAsync(dev, work.data(), work.size() * sizeof(int32_t),
                             cudaMemcpyHostToDevice, stream_));
  a.prefill_work = dev;
  // Splits as for decode, over blocks of (work item, KV head); ~2 resident blocks per SM (up to
  // 100 KB of shared memory each at head_dim 128). Quantized formats: a chunk that fills its
  // block reads the block's 16-bit tail as one more tile after the sealed ones (prefill_block),
  // so a context of 64 k tokens has k + 1 tiles.
  const int n_tiles = (max_context + 63) / 64 + (kv_format_is_quantized(format) ? 1 : 0);
  const int splits =
      pick_splits(int64_t(n_work) * a.n_kv_heads, n_tiles, sm_count_, hd == 64 ? 3 : 2, false);
  a.tiles_per_split = (n_tiles + splits - 1) / splits;
  a.n_splits = (n_tiles + a.tiles_per_split - 1) / a.tiles_per_split;
  if (a.n_splits > 1) {
    a.part = static_cast<float*>(
        scratch(1, sizeof(float) * n_tokens * a.n_heads * a.n_splits * cuda::part_row(hd)));
  }
  launch_format(format, cuda::AttnKernel::kPrefillMma, a, hd, n_work, stream_);
  if (a.n_splits > 1) combine_splits(a, act, hd, n_tokens, sm_count_, false, stream_);
  ++prefill_launches_;
}

}  // namespace densekv
