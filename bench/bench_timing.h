// Timing helpers of the CUDA benchmarks (attention_bench, gemv_bench): event-timed medians, calls
// replayed as one CUDA graph, a random 16-bit pattern to fill device memory with, the read
// roofline of a launch.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "stream_read.h"

namespace densekv {

// Median milliseconds of fn() over `iters` runs (events on the backend's stream), after `warmup`
// runs.
template <class Fn>
inline double median_ms(cudaStream_t stream, int iters, Fn fn, int warmup = 3) {
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    CUDA_CHECK(cudaEventRecord(a, stream));
    fn();
    CUDA_CHECK(cudaEventRecord(b, stream));
    CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Milliseconds per fn() when `calls` of them run back to back: the median over 5 runs.
template <class Fn>
inline double back_to_back_ms(cudaStream_t stream, int calls, Fn fn) {
  auto run = [&] {
    for (int i = 0; i < calls; ++i) fn();
  };
  return median_ms(stream, 5, run, 1) / calls;
}

// Milliseconds per fn() when `calls` of them are captured as one CUDA graph on the backend's stream
// and the graph is replayed (median of 5 replays).
template <class Fn>
inline double graph_ms(CudaBackend& be, int calls, Fn fn) {
  be.begin_capture();
  for (int i = 0; i < calls; ++i) fn(i);
  const std::unique_ptr<BackendGraph> graph = be.end_capture();
  return back_to_back_ms(be.stream(), 1, [&] { be.replay(*graph); }) / calls;
}

// A 64 MiB pattern of 16-bit words that are finite, moderate numbers read as fp16 or bf16
// (scales, zeros and 16-bit rows stay finite; codes are arbitrary bytes).
inline std::vector<uint16_t> random_pattern(std::mt19937& rng) {
  std::vector<uint16_t> p(32u << 20);
  for (uint16_t& w : p) {
    const uint32_t r = rng();
    w = static_cast<uint16_t>(((r & 1) << 15) | ((11 + (r >> 1) % 5) << 10) | ((r >> 4) & 0x3ff));
  }
  return p;
}

// Fills n bytes of device memory by copying the device pattern over it.
inline void fill(void* dst, size_t n, const void* pattern, size_t pattern_bytes, cudaStream_t s) {
  for (size_t off = 0; off < n; off += pattern_bytes) {
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, pattern,
                               std::min(pattern_bytes, n - off), cudaMemcpyDeviceToDevice, s));
  }
}

// random_pattern's words on the device: the source fill() copies from.
struct DevicePattern {
  Buffer buf;
  size_t bytes = 0;
};
inline DevicePattern upload_pattern(CudaBackend& be, std::mt19937& rng) {
  const std::vector<uint16_t> host = random_pattern(rng);
  DevicePattern p{Buffer(be, host.size() * 2), host.size() * 2};
  be.upload(p.buf.data(), DType::F16, host.data(), DType::F16, host.size());
  be.synchronize();  // before `host` goes
  return p;
}

// "1,16,64" -> {1, 16, 64}
inline std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> v;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    v.push_back(std::stoi(s.substr(i, j - i)));
    i = j + 1;
  }
  return v;
}

// The roofline of a launch: the device-to-device copy bandwidth (2 GiB, bytes read + written per
// second), and the time of a plain streaming read (stream_read.h) of a given number of bytes.
struct ReadRoofline {
  static constexpr size_t kBufBytes = size_t(2) << 30;
  Buffer buf, sink;
  double copy_gbs = 0;

  ReadRoofline(CudaBackend& be, const Buffer& pattern, size_t pattern_bytes)
      : buf(be, kBufBytes), sink(be, 16) {
    const cudaStream_t st = be.stream();
    fill(buf.data(), kBufBytes, pattern.data(), pattern_bytes, st);
    Buffer b(be, kBufBytes);
    const double ms = median_ms(st, 10, [&] {
      CUDA_CHECK(cudaMemcpyAsync(b.data(), buf.data(), kBufBytes, cudaMemcpyDeviceToDevice, st));
    });
    copy_gbs = 2.0 * kBufBytes / (ms * 1e-3) / 1e9;
    std::printf("device-to-device copy: %.0f GB/s (read + write)\n", copy_gbs);
  }

  // Microseconds per streaming read of `bytes`, `calls` of them replayed as one graph, successive
  // calls reading successive regions of the buffer (beyond 1 GiB: 1 GiB, scaled).
  double read_us(CudaBackend& be, double bytes, int calls) const {
    const size_t n = std::min<size_t>(static_cast<size_t>(bytes) / 16 * 16, kBufBytes / 2);
    const size_t regions = kBufBytes / n;
    const auto* base = static_cast<const uint8_t*>(buf.data());
    const double ms = graph_ms(be, calls, [&](int i) {
      stream_read(base + (i % regions) * n, n, static_cast<unsigned*>(sink.data()), be.sm_count(),
                  be.stream());
    });
    return ms * 1e3 * bytes / static_cast<double>(n);
  }
};

}  // namespace densekv
