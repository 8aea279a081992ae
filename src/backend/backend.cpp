#include "backend/backend.h"

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
