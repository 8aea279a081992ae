// The compute backend: device memory plus the dozen ops the model forward needs. The CPU backend
// (backend/cpu) is the fp32 reference; the CUDA backend implements the same interface later.
//
// Conventions: every Tensor is a non-owning 2-D row-major view into backend memory (vectors have
// rows == 1); `stride` is the distance between rows in elements, so column slices of a wider
// buffer (q/k/v inside a fused qkv projection) are views too. Index arrays passed to ops
// (token ids, positions, slots, block tables) live in backend memory: upload_batch() puts them
// there once per forward.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kv/kv_format.h"

namespace densekv {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;  // elements between consecutive rows (>= cols)

  bool empty() const { return data == nullptr; }
  int64_t numel() const { return rows * cols; }
  // Columns [col, col + n) of every row.
  Tensor slice_cols(int64_t col, int64_t n) const;
  // Rows [row, row + n).
  Tensor slice_rows(int64_t row, int64_t n) const;
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

Tensor make_tensor(void* data, DType dtype, int64_t rows, int64_t cols);

// Host description of one forward: the new tokens of every sequence, concatenated.
struct BatchLayout {
  std::vector<int32_t> token_ids;  // [n_tokens]
  std::vector<int32_t> positions;  // [n_tokens] position of each token in its sequence
  // [n_tokens] KV slot: block_id * block_size + offset; -1 for a token of a quantized format in
  // a block its sequence does not hold yet (the partly filled last block lives in the tail).
  std::vector<int32_t> slots;
  std::vector<int32_t> seq_of_token;  // [n_tokens] index of the token's sequence
  std::vector<int32_t> context_lens;  // [n_seqs] cached prefix + new tokens
  std::vector<int32_t> block_tables;  // [n_seqs, max_blocks] (padded with -1)
  std::vector<int32_t> tails;         // [n_seqs] 16-bit tail block (quantized formats), else -1
  std::vector<int32_t> out_rows;      // [n_out] token rows whose logits are returned
  // [n_rounds + 1] token-row offsets of the attention rounds (LlamaModel): within one round
  // each sequence's tokens lie in one KV block, so a quantized tail holds what they attend to.
  std::vector<int32_t> rounds;
  int max_blocks = 0;   // block-table row length
  int max_context = 0;  // largest context length
};

// The same, in backend memory (pointers valid until the next upload_batch) plus host scalars.
struct BatchView {
  const int32_t* token_ids = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* slots = nullptr;
  const int32_t* seq_of_token = nullptr;
  const int32_t* context_lens = nullptr;
  const int32_t* block_tables = nullptr;
  const int32_t* tails = nullptr;
  const int32_t* out_rows = nullptr;
  int n_tokens = 0;
  int n_seqs = 0;
  int n_out = 0;
  int max_blocks = 0;
  int max_context = 0;

  // Token rows [begin, begin + n): the per-token arrays offset, the per-sequence ones kept.
  BatchView tokens(int begin, int n) const;
};

// Where a batch's index arrays go in one buffer of int32: token_ids, positions, slots,
// seq_of_token, context_lens, block_tables, out_rows, tails, each at a 16-byte aligned offset
// that depends only on the arrays' lengths.
struct BatchPacking {
  size_t offsets[8] = {};
  size_t total = 0;  // int32 elements (>= 4)
  size_t bytes() const { return total * sizeof(int32_t); }
};
BatchPacking batch_packing(const BatchLayout& batch);
void pack_batch(const BatchLayout& batch, const BatchPacking& p, int32_t* dst);  // [p.total]
// The view of a batch packed at `base` (backend memory).
BatchView batch_view(const BatchLayout& batch, const BatchPacking& p, const int32_t* base);
// A view of the layout's own (host) arrays: the CPU backend's upload_batch.
BatchView host_batch_view(const BatchLayout& batch);

// A captured sequence of ops (Backend::end_capture), replayed by Backend::replay.
class BackendGraph {
 public:
  virtual ~BackendGraph() = default;
};

// Memory of the device a backend computes on (CUDA: cudaMemGetInfo). A backend with no device
// memory of its own (the CPU backend) reports zeros, so KV pools there are sized from explicit
// flags or the 1 GiB default and never from a fraction of the host's RAM.
struct MemoryInfo {
  size_t free_bytes = 0, total_bytes = 0;
  double peak_gbs = 0;  // peak memory bandwidth in GB/s (the roofline); 0 = unknown (cpu)
};

// Counter-based uniform number in [0, 1) for element i of stream `seed` (splitmix64 of the
// counter): identical on the host and in CUDA kernels.
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline float
    random_unit(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<float>((z ^ (z >> 31)) >> 40) * 0x1.0p-24f;
}

// One row's draw for Backend::sample: Sampler::draw's parameters (temperature > 0) and the
// sequence's RNG draw u in [0, 1).
struct DeviceDraw {
  double u = 0;
  int32_t row = 0;
  float temperature = 1.0f;
  int32_t top_k = -1;
  float top_p = 1.0f;
  float min_p = 0.0f;
  int32_t pad = 0;
};

// Logprobs where the logits are (Backend::logprobs): of raw logits row `row`, the log_softmax of
// token `chosen` and the top_n (<= kMaxTopLogprobs) most likely ids, as token_logprobs
// (engine/sampler.h) gives them on the host.
constexpr int kMaxTopLogprobs = 20;
struct LogprobsQuery {
  int32_t row = 0;
  int32_t chosen = 0;
  int32_t top_n = 0;
};
struct RowLogprobs {
  float chosen = 0.0f;                // logprob of the chosen token
  int32_t n = 0;                      // entries of top
  int32_t top_ids[kMaxTopLogprobs];   // best first, ties by id
  float top_values[kMaxTopLogprobs];  // their logprobs
};

// One id's sampling penalties (Sampler::sample's, as vLLM's apply_penalties), for
// Backend::penalize: repetition (1: none) divides a positive logit and multiplies a negative one,
// then frequency (the frequency penalty x the id's count in the output, 0: none) and presence
// (the presence penalty for an id in the output, 0: none) are subtracted, one after the other.
struct PenaltyEntry {
  int32_t id = 0;
  float repetition = 1.0f;
  float frequency = 0.0f;
  float presence = 0.0f;
};
// The penalized logit, rounded the same on the host and in CUDA kernels (no contraction to FMA:
// the host build targets baseline x86-64, the device uses the _rn intrinsics).
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline float
    apply_penalty(float logit, const PenaltyEntry& e) {
#if defined(__CUDA_ARCH__)
  const float l = logit > 0.0f ? __fdiv_rn(logit, e.repetition) : __fmul_rn(logit, e.repetition);
  return __fsub_rn(__fsub_rn(l, e.frequency), e.presence);
#else
  const float l = logit > 0.0f ? logit / e.repetition : logit * e.repetition;
  return l - e.frequency - e.presence;
#endif
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual MemoryInfo memory_info() const { return {}; }

  // ---- memory ----
  virtual void* alloc(size_t bytes) = 0;  // zero-filled; throws on exhaustion
  virtual void release(void* p) = 0;
  // Copies n elements from host memory of type src_dtype into backend memory of type dst_dtype.
  virtual void upload(void* dst, DType dst_dtype, const void* src, DType src_dtype, size_t n) = 0;
  // Copies a tensor into host fp32 memory [rows, cols] (densely packed).
  virtual void download_f32(const Tensor& src, float* dst) = 0;
  // The dtype weights of file type `file_dtype` are stored in (the CPU backend: always F32).
  virtual DType weight_dtype(DType file_dtype) const = 0;
  // The dtype of activations between ops.
  virtual DType activation_dtype() const = 0;
  // Called once before the weights are loaded with the model's dtype (config.json): a backend
  // whose weight/activation dtypes follow the model (CUDA: its 16-bit dtype) picks them here.
  virtual void set_model_dtype(DType /*model_dtype*/) {}
  // Fills a dense tensor (stride == cols) with random_unit-based numbers: element i = a * (2u - 1)
  // with u = random_unit(seed, i), or `value` everywhere when a == 0 (dummy weights). The same
  // numbers on every backend; the default generates on the host and uploads, CUDA on the device.
  virtual void fill_random(const Tensor& t, float a, float value, uint64_t seed);
  // Makes the batch's index arrays visible to ops.
  virtual BatchView upload_batch(const BatchLayout& batch) = 0;
  // The same into caller-owned backend memory `dst` of batch_packing(batch).bytes() bytes:
  // layouts with equal array lengths get equal pointers (a captured graph reads them there).
  BatchView upload_batch_into(const BatchLayout& batch, void* dst);

  // ---- graphs (CUDA graphs) ----
  // Between begin_capture() and end_capture() the ops are recorded, not run, with every argument
  // frozen: pointers, shapes and host scalars, and whatever the op decides on the host from them
  // (kernel choice, split counts, scratch addresses). replay() runs the recording again; the ops
  // read and write whatever the frozen pointers hold then. No memory op (alloc, release, upload,
  // download, upload_batch, argmax) may run while capturing.
  virtual bool supports_graphs() const { return false; }
  virtual void begin_capture();
  virtual std::unique_ptr<BackendGraph> end_capture();
  virtual void replay(BackendGraph& graph);
  // Changes whenever memory that ops use internally moves (scratch buffers growing): a graph
  // captured under another epoch may point at freed memory and must not be replayed.
  virtual uint64_t graph_epoch() const { return 0; }

  // ---- ops ----
  // out[i] = src[idx[i]]  (embedding lookup; selecting the last row of each sequence)
  virtual void gather_rows(const Tensor& src, const int32_t* idx, const Tensor& out) = 0;
  // out = x / sqrt(mean(x^2) + eps) * w, per row; w [1, cols].
  virtual void rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) = 0;
  // out (+)= x @ w^T (+ bias): x [T, K], w [N, K], bias [1, N] or empty, out [T, N].
  virtual void matmul(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
                      bool accumulate = false) = 0;
  // Rotary embedding in place on x [T, n_heads * head_dim] (rotate-half pairs i, i + head_dim/2)
  // with angle positions[t] * inv_freq[i]; inv_freq [1, head_dim / 2] fp32.
  virtual void rope(const Tensor& x, int head_dim, const int32_t* positions,
                    const Tensor& inv_freq) = 0;
  // Stores k, v [T, n_kv_heads * head_dim] (fp32, keys after RoPE, unrotated) of every token of
  // the batch in the layer's cache. Plain formats: in slot batch.slots[t]. Quantized formats
  // (docs/kv-formats.md): token p goes, 16-bit, to row p % B of its sequence's tail
  // (batch.tails[seq]); writing row B - 1 quantizes the whole tail into block slots[t] / B
  // ("seals" it). A sequence's tokens are stored in batch order, which is position order.
  // Rotated formats (k4v2) rotate each head's k and v rows (kv_rotate_rows) before storing.
  // CPU reference: kv_store_token (kv_paged.h).
  virtual void kv_write(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                        const BatchView& batch) = 0;
  // kv_write of tokens that may fill several blocks of a sequence (each block's tokens
  // consecutive in the batch, as in BatchLayout::rounds taken together): the blocks they fill are
  // sealed from the call's rows (and, for a block begun before the call, its tail's rows), with
  // kv_write's numbers; only the rows of the blocks left partly filled go to the tail, whose other
  // rows are unspecified afterwards. So the caller attends with paged_attention_own_rows. A
  // backend that supports_own_rows leaves a rotated format's k and v rotated in place (rounded to
  // their dtype, the rows its tail would hold), which paged_attention_own_rows reads. The default
  // is kv_write, which passes every token through the tail in order and leaves the same.
  virtual void kv_write_blocks(const KvLayerView& kv, const Tensor& k, const Tensor& v,
                               const BatchView& batch) {
    kv_write(kv, k, v, batch);
  }
  // Causal attention of q [T, n_heads * head_dim] over each sequence's cached context (which
  // already includes this batch's tokens, see kv_write). GQA: head h reads kv head
  // h / (n_heads / n_kv_heads). out like q. Token t at position p attends to positions [0, p]:
  //  - plain formats: read from their blocks;
  //  - quantized formats: every block entirely inside [0, p] (blocks [0, (p + 1) / B)) in its
  //    sealed, quantized form, and the rows [(p + 1) / B * B, p] of the token's own partly filled
  //    block from its sequence's 16-bit tail. Precondition: the tail holds those rows, i.e. no
  //    token of the same sequence in this batch lies in a later block (LlamaModel::forward runs
  //    a chunk that crosses block boundaries in rounds, BatchLayout::rounds). So a token sees the
  //    same numbers however the prompt was chunked, and whether its prefix came from the cache.
  //  - rotated formats (k4v2): q is rotated before the dot products and the output rotated back.
  // CPU reference: kv_attention_context (kv_paged.h) gives the keys and values token p reads.
  virtual void paged_attention(const Tensor& q, const KvLayerView& kv, const BatchView& batch,
                               float scale, const Tensor& out) = 0;
  // paged_attention for a quantized format where every token's 16-bit rows (its own block's
  // positions [(p + 1) / B * B, p]) are rows of this call: own_k, own_v [T, n_kv_heads *
  // head_dim], the 16-bit keys (after RoPE) and values as the tail would hold them, in q's token
  // order: the rows passed to kv_write_blocks, as it left them (rotated formats: rotated). They
  // are read from there instead of the sequence's tail, which the call's later blocks have
  // reused by then. So a chunk that crosses blocks can write all its blocks and attend in one call
  // after its first block (LlamaModel::run), with the numbers of the rounds. Backends where
  // supports_own_rows(kv) is false do not implement it.
  virtual bool supports_own_rows(const KvLayerView& kv) const {
    (void)kv;
    return false;
  }
  virtual void paged_attention_own_rows(const Tensor& q, const KvLayerView& kv,
                                        const BatchView& batch, const Tensor& own_k,
                                        const Tensor& own_v, float scale, const Tensor& out);
  // out = silu(gate) * up, where gate_up [T, 2 * I] = [gate | up], out [T, I].
  virtual void swiglu(const Tensor& gate_up, const Tensor& out) = 0;
  // out = swiglu(x @ w^T) in one op, without the [T, 2 * I] product: w [2 * I, K] = [gate; up].
  // Backends where fuses_swiglu(x, w) is false do not implement it (LlamaModel::run calls matmul
  // and swiglu instead).
  virtual bool fuses_swiglu(const Tensor& x, const Tensor& w) const {
    (void)x, (void)w;
    return false;
  }
  virtual void matmul_swiglu(const Tensor& x, const Tensor& w, const Tensor& out);
  // out = a + b
  virtual void add(const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // Index of the largest value of each row (first one on ties), to host.
  virtual std::vector<int32_t> argmax(const Tensor& x) = 0;
  // Sampling where the logits are (backends with supports_device_sampling()): per draw, the token
  // Sampler::draw picks from row `row` with the draw's parameters and RNG value u, or -1 where the
  // row needs the host (CUDA: only with its draws by selects turned off, a test setting). No
  // penalties (Backend::penalize makes penalized rows first), no logprobs.
  virtual bool supports_device_sampling() const { return false; }
  virtual std::vector<int32_t> sample(const Tensor& logits, const std::vector<DeviceDraw>& draws);
  // Logprobs of logits rows where they are (backends with supports_device_sampling()), one per
  // query, to host: max + log(sum(exp(l - max))) in double as the host's token_logprobs, so that
  // the values are the host's up to the order of the sum; the top ids are exactly the host's.
  virtual std::vector<RowLogprobs> logprobs(const Tensor& logits,
                                            const std::vector<LogprobsQuery>& queries);
  // Penalized logits where they are (backends with supports_device_sampling()), for argmax and
  // sample: fp32 [src_rows.size(), logits.cols], row r = logits row src_rows[r] with
  // entries[begins[r], begins[r + 1]) applied (apply_penalty; each id at most once per row).
  // Valid until the next call.
  virtual Tensor penalize(const Tensor& logits, const std::vector<int32_t>& src_rows,
                          const std::vector<int32_t>& begins,
                          const std::vector<PenaltyEntry>& entries);
};

// RAII owner of one backend allocation.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& backend, size_t bytes);
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// "cpu" (threads <= 0: all hardware threads); "cuda" (GPU 0; throws InvalidArgumentError when the
// binary was built without CUDA or no device is present).
std::unique_ptr<Backend> make_backend(const std::string& device, int threads = 0);

}  // namespace densekv
