#include "backend/backend.h"

#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#ifdef DENSEKV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "core/check.h"
#include "core/errors.h"

namespace densekv {

Tensor make_tensor(void* data, DType dtype, int64_t rows, int64_t cols) {
  return Tensor{data, dtype, rows, cols, cols};
}

std::vector<int32_t> Backend::sample(const Tensor&, const std::vector<DeviceDraw>&) {
  throw Error("this backend does not sample on the device");
}

void Backend::paged_attention_own_rows(const Tensor&, const KvLayerView&, const BatchView&,
                                       const Tensor&, const Tensor&, float, const Tensor&) {
  throw Error("this backend does not attend to rows of the call");
}

void Backend::matmul_swiglu(const Tensor&, const Tensor&, const Tensor&) {
  throw Error("this backend does not fuse the gate/up matmul with SwiGLU");
}

std::vector<RowLogprobs> Backend::logprobs(const Tensor&, const std::vector<LogprobsQuery>&) {
  throw Error("this backend does not sample on the device");
}

Tensor Backend::penalize(const Tensor&, const std::vector<int32_t>&, const std::vector<int32_t>&,
                         const std::vector<PenaltyEntry>&) {
  throw Error("this backend does not sample on the device");
}

void Backend::fill_random(const Tensor& t, float a, float value, uint64_t seed) {
  CHECK(t.stride == t.cols);
  const int64_t n = t.rows * t.cols;
  std::vector<float> host(static_cast<size_t>(std::min<int64_t>(n, 1 << 20)));
  for (int64_t off = 0; off < n; off += static_cast<int64_t>(host.size())) {
    const size_t m =
        static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(host.size()), n - off));
    for (size_t i = 0; i < m; ++i) {
      host[i] =
          a == 0.0f ? value : a * (2.0f * random_unit(seed, static_cast<uint64_t>(off) + i) - 1.0f);
    }
    upload(static_cast<char*>(t.data) + off * static_cast<int64_t>(dtype_size(t.dtype)), t.dtype,
           host.data(), DType::F32, m);
  }
}

Tensor Tensor::slice_cols(int64_t col, int64_t n) const {
  CHECK(col >= 0 && n >= 0 && col + n <= cols);
  Tensor t = *this;
  t.data = static_cast<char*>(data) + col * static_cast<int64_t>(dtype_size(dtype));
  t.cols = n;
  return t;
}

Tensor Tensor::slice_rows(int64_t row, int64_t n) const {
  CHECK(row >= 0 && n >= 0 && row + n <= rows);
  Tensor t = *this;
  t.data = static_cast<char*>(data) + row * stride * static_cast<int64_t>(dtype_size(dtype));
  t.rows = n;
  return t;
}

BatchView BatchView::tokens(int begin, int n) const {
  CHECK(begin >= 0 && n >= 0 && begin + n <= n_tokens);
  BatchView v = *this;
  v.token_ids += begin;
  v.positions += begin;
  v.slots += begin;
  v.seq_of_token += begin;
  v.n_tokens = n;
  return v;
}

namespace {

std::vector<const std::vector<int32_t>*> batch_arrays(const BatchLayout& b) {
  return {&b.token_ids,    &b.positions,    &b.slots,    &b.seq_of_token,
          &b.context_lens, &b.block_tables, &b.out_rows, &b.tails};
}

}  // namespace

BatchPacking batch_packing(const BatchLayout& batch) {
  BatchPacking p;
  const auto arrays = batch_arrays(batch);
  for (size_t i = 0; i < arrays.size(); ++i) {
    p.offsets[i] = p.total;
    p.total += (arrays[i]->size() + 3) / 4 * 4;
  }
  p.total = std::max<size_t>(p.total, 4);
  return p;
}

void pack_batch(const BatchLayout& batch, const BatchPacking& p, int32_t* dst) {
  std::fill(dst, dst + p.total, 0);
  const auto arrays = batch_arrays(batch);
  for (size_t i = 0; i < arrays.size(); ++i) {
    std::copy(arrays[i]->begin(), arrays[i]->end(), dst + p.offsets[i]);
  }
}

BatchView host_batch_view(const BatchLayout& b) {
  BatchView v;
  v.token_ids = b.token_ids.data();
  v.positions = b.positions.data();
  v.slots = b.slots.data();
  v.seq_of_token = b.seq_of_token.data();
  v.context_lens = b.context_lens.data();
  v.block_tables = b.block_tables.data();
  v.out_rows = b.out_rows.data();
  v.tails = b.tails.data();
  v.n_tokens = static_cast<int>(b.token_ids.size());
  v.n_seqs = static_cast<int>(b.context_lens.size());
  v.n_out = static_cast<int>(b.out_rows.size());
  v.max_blocks = b.max_blocks;
  v.max_context = b.max_context;
  return v;
}

BatchView batch_view(const BatchLayout& b, const BatchPacking& p, const int32_t* base) {
  BatchView v = host_batch_view(b);  // the scalars; the arrays move to the packed copy
  v.token_ids = base + p.offsets[0];
  v.positions = base + p.offsets[1];
  v.slots = base + p.offsets[2];
  v.seq_of_token = base + p.offsets[3];
  v.context_lens = base + p.offsets[4];
  v.block_tables = base + p.offsets[5];
  v.out_rows = base + p.offsets[6];
  v.tails = base + p.offsets[7];
  return v;
}

BatchView Backend::upload_batch_into(const BatchLayout& b, void* dst) {
  const BatchPacking p = batch_packing(b);
  std::vector<int32_t> packed(p.total);
  pack_batch(b, p, packed.data());
  // Same-dtype uploads are byte copies on every backend: the ids travel as 4-byte elements.
  upload(dst, DType::F32, packed.data(), DType::F32, p.total);
  return batch_view(b, p, static_cast<const int32_t*>(dst));
}

void Backend::begin_capture() {
  throw InvalidArgumentError("the " + name() + " backend cannot capture graphs");
}

std::unique_ptr<BackendGraph> Backend::end_capture() {
  throw InvalidArgumentError("the " + name() + " backend cannot capture graphs");
}

void Backend::replay(BackendGraph&) {
  throw InvalidArgumentError("the " + name() + " backend cannot replay graphs");
}

Buffer::Buffer(Backend& backend, size_t bytes)
    : backend_(&backend), data_(backend.alloc(bytes)), bytes_(bytes) {}

Buffer::~Buffer() {
  if (data_) backend_->release(data_);
}

Buffer::Buffer(Buffer&& o) noexcept : backend_(o.backend_), data_(o.data_), bytes_(o.bytes_) {
  o.data_ = nullptr;
  o.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (data_) backend_->release(data_);
    backend_ = o.backend_;
    data_ = o.data_;
    bytes_ = o.bytes_;
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (device == "cpu") return std::make_unique<CpuBackend>(threads);
  if (device == "cuda") {
#ifdef DENSEKV_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
      cudaGetLastError();  // clear the sticky "no device" error
      throw InvalidArgumentError("--device cuda: no CUDA device is available (use --device cpu)");
    }
    return std::make_unique<CudaBackend>(0);
#else
    throw InvalidArgumentError(
        "--device cuda: this binary was built without CUDA (nvcc not found; use --device cpu)");
#endif
  }
  throw InvalidArgumentError("unknown --device '" + device + "' (expected cpu or cuda)");
}

}  // namespace densekv
