// CUDA backend: device selection, memory, host <-> device copies, batch upload, scratch buffers.
// The ops live in one .cu each (matmul.cu, rmsnorm.cu, ...).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_elem.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/errors.h"
#include "core/log.h"

namespace densekv {

CudaBackend::CudaBackend(int device) : device_(device) {
  CUDA_CHECK(cudaSetDevice(device_));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  sm_count_ = prop.multiProcessorCount;
  const char* pdl = std::getenv("DENSEKV_PDL");
  pdl_ = prop.major >= 9 && (pdl == nullptr || std::strcmp(pdl, "off") != 0);
  // Peak memory bandwidth for the reports (0 = unknown where the driver does not say).
  int mem_khz = 0, bus_bits = 0;
  if (cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, device_) != cudaSuccess ||
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device_) != cudaSuccess) {
    cudaGetLastError();  // clear it
    mem_khz = bus_bits = 0;
  }
  peak_gbs_ = 2.0 * mem_khz * 1e3 * (bus_bits / 8.0) / 1e9;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CHECK(cublasLtCreate(&lt_) == CUBLAS_STATUS_SUCCESS);
  gemm_workspace_bytes_ = 32u << 20;
  CUDA_CHECK(cudaMalloc(&gemm_workspace_, gemm_workspace_bytes_));
  spdlog::info("cuda: {} (sm_{}{}, {} SMs, {:.1f} GiB, {:.0f} GB/s peak memory bandwidth)",
               prop.name, prop.major, prop.minor, sm_count_,
               static_cast<double>(prop.totalGlobalMem) / (1u << 30), peak_gbs_);
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  for (auto& [key, plan] : gemm_plans_) destroy_gemm_plan(plan);
  for (Scratch& s : scratch_) cudaFree(s.p);
  cudaFree(picks_dev_);
  cudaFree(penalized_dev_);
  cudaFreeHost(penalty_staging_);
  if (penalty_copied_) cudaEventDestroy(penalty_copied_);
  cudaFree(batch_dev_);
  cudaFreeHost(batch_host_);
  cudaFree(gemm_workspace_);
  cublasLtDestroy(lt_);
  cudaStreamDestroy(stream_);
}

MemoryInfo CudaBackend::memory_info() const {
  MemoryInfo m;
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaMemGetInfo(&m.free_bytes, &m.total_bytes));
  m.peak_gbs = peak_gbs_;
  return m;
}

void CudaBackend::set_model_dtype(DType model_dtype) {
  dtype_ = model_dtype == DType::F16 ? DType::F16 : DType::BF16;
}

void CudaBackend::synchronize() {
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void* CudaBackend::alloc(size_t bytes) {
  CHECK_MSG(!capturing_, "alloc while capturing a graph");
  void* p = nullptr;
  const size_t rounded = std::max<size_t>(256, (bytes + 255) / 256 * 256);
  if (cudaMalloc(&p, rounded) != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error("out of GPU memory allocating " + std::to_string(bytes) + " bytes (" +
                std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) +
                " MiB)");
  }
  CUDA_CHECK(cudaMemsetAsync(p, 0, rounded, stream_));
  return p;
}

void CudaBackend::release(void* p) {
  if (!p) return;
  CHECK_MSG(!capturing_, "release while capturing a graph");
  // Work queued on the stream may still use p.
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  CUDA_CHECK(cudaFree(p));
}

void* CudaBackend::scratch(int slot, size_t bytes) {
  CHECK(slot >= 0 && slot < 4);
  Scratch& s = scratch_[slot];
  if (s.bytes < bytes) {
    CHECK_MSG(!capturing_,
              "scratch buffer growing while capturing a graph (run the same shapes "
              "once before capturing)");
    ++epoch_;
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaFree(s.p));
    s.bytes = std::max(bytes, s.bytes * 2);
    CUDA_CHECK(cudaMalloc(&s.p, s.bytes));
  }
  return s.p;
}

void* CudaBackend::picks_buffer(size_t bytes) {
  CHECK_MSG(!capturing_, "picking tokens while capturing a graph");
  if (picks_bytes_ < bytes) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaFree(picks_dev_));
    picks_bytes_ = std::max<size_t>(bytes, 16 << 10);
    CUDA_CHECK(cudaMalloc(&picks_dev_, picks_bytes_));
  }
  return picks_dev_;
}

void CudaBackend::upload(void* dst, DType dst_dtype, const void* src, DType src_dtype, size_t n) {
  CHECK_MSG(!capturing_, "upload while capturing a graph");
  if (dst_dtype == src_dtype) {
    CUDA_CHECK(
        cudaMemcpyAsync(dst, src, n * dtype_size(src_dtype), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  // Convert on the host in chunks, then copy.
  const size_t chunk = size_t(1) << 22;
  std::vector<char> staging(std::min(n, chunk) * dtype_size(dst_dtype));
  for (size_t off = 0; off < n; off += chunk) {
    const size_t len = std::min(chunk, n - off);
    cpu::convert_row(staging.data(), dst_dtype,
                     static_cast<const char*>(src) + off * dtype_size(src_dtype), src_dtype, len);
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off * dtype_size(dst_dtype),
                               staging.data(), len * dtype_size(dst_dtype), cudaMemcpyHostToDevice,
                               stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
}

void CudaBackend::download_f32(const Tensor& src, float* dst) {
  CHECK_MSG(!capturing_, "download while capturing a graph");
  const size_t es = dtype_size(src.dtype);
  std::vector<char> raw(static_cast<size_t>(src.rows * src.cols) * es);
  if (!raw.empty()) {
    CUDA_CHECK(cudaMemcpy2DAsync(raw.data(), src.cols * es, src.data, src.stride * es,
                                 src.cols * es, src.rows, cudaMemcpyDeviceToHost, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  cpu::convert_row(dst, DType::F32, raw.data(), src.dtype,
                   static_cast<size_t>(src.rows * src.cols));
}

BatchView CudaBackend::upload_batch(const BatchLayout& b) {
  CHECK_MSG(!capturing_, "upload_batch while capturing a graph");
  const BatchPacking p = batch_packing(b);
  // The previous batch's copy and kernels must be done before the staging/device buffers change.
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (p.total > batch_cap_) {
    CUDA_CHECK(cudaFreeHost(batch_host_));
    CUDA_CHECK(cudaFree(batch_dev_));
    batch_cap_ = std::max(p.total, batch_cap_ * 2);
    CUDA_CHECK(cudaMallocHost(&batch_host_, batch_cap_ * sizeof(int32_t)));
    CUDA_CHECK(cudaMalloc(&batch_dev_, batch_cap_ * sizeof(int32_t)));
  }
  pack_batch(b, p, batch_host_);
  CUDA_CHECK(cudaMemcpyAsync(batch_dev_, batch_host_, p.bytes(), cudaMemcpyHostToDevice, stream_));
  return batch_view(b, p, batch_dev_);
}

}  // namespace densekv
