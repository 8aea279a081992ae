// The decode GEMMs of small batches, CudaBackend::matmul through cuBLASLt (set_gemv_rows(0)) and
// through the matrix-vector kernel (gemv.cu), side by side in one run: the Llama-3.1-8B and
// Qwen2.5-7B shapes, bf16, x [m, K] @ w [N, K]^T as the model lays them out (o and down accumulate
// into the residual, Qwen's qkv adds its bias, lm_head writes fp32 logits), m = 1, 2, 3, 4.
// Each is timed as a CUDA graph of 20 calls over rotating weight copies of >= 600 MB (no call
// finds its weights in L2), median of 5 replays. bytes: weights + x + out (read and written);
// frac: GB/s over the measured device-to-device copy bandwidth (bytes read + written per second);
// of_read: a plain streaming read of the same bytes (stream_read.h, the roofline of one launch)
// over the kernel's time. c8..c1: the kernel with 8, 4, 2, 1 output columns per block
// (set_gemv_cols); gemv: with the backend's choice, the time the ratio and GB/s are of.
//
//   gemv_bench [--json FILE] [--rows 1,2,3,4]   (rows above 4: cuBLASLt alone)
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "stream_read.h"

using namespace densekv;

namespace {

struct Shape {
  const char* model;
  const char* name;
  int n, k;
  bool accumulate, bias, f32_out;
};

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  std::vector<int> rows = {1, 2, 3, 4};
  for (int i = 1; i < argc; ++i) {
    const bool more = i + 1 < argc;
    if (!std::strcmp(argv[i], "--json") && more) {
      json_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--rows") && more) {
      rows = parse_ints(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: gemv_bench [--json FILE] [--rows 1,2,4,32]\n");
      return 2;
    }
  }
  for (int m : rows) {
    if (m < 1 || m > 256) {
      std::fprintf(stderr, "gemv_bench: --rows must be in [1, 256], got %d\n", m);
      return 2;
    }
  }
  CudaBackend be(0);
  be.set_model_dtype(DType::BF16);
  const cudaStream_t st = be.stream();
  std::mt19937 rng(7);
  const DevicePattern dev_pattern = upload_pattern(be, rng);
  const Buffer& pattern = dev_pattern.buf;
  const size_t pattern_bytes = dev_pattern.bytes;
  const ReadRoofline roof(be, pattern, pattern_bytes);

  const Shape shapes[] = {
      {"llama-3.1-8b", "qkv", 6144, 4096, false, false, false},
      {"llama-3.1-8b", "o", 4096, 4096, true, false, false},
      {"llama-3.1-8b", "gate_up", 28672, 4096, false, false, false},
      {"llama-3.1-8b", "down", 4096, 14336, true, false, false},
      {"llama-3.1-8b", "lm_head", 128256, 4096, false, false, true},
      {"qwen2.5-7b", "qkv", 4608, 3584, false, true, false},
      {"qwen2.5-7b", "o", 3584, 3584, true, false, false},
      {"qwen2.5-7b", "gate_up", 37888, 3584, false, false, false},
      {"qwen2.5-7b", "down", 3584, 18944, true, false, false},
      {"qwen2.5-7b", "lm_head", 152064, 3584, false, false, true},
  };
  FILE* json = json_path.empty() ? nullptr : std::fopen(json_path.c_str(), "w");
  std::printf("%-13s %-8s %3s %9s %9s %7s %7s %7s %7s %8s %8s %8s %6s %8s %7s\n", "model", "gemm",
              "m", "bytes_MB", "cublas_us", "c8", "c4", "c2", "c1", "gemv_us", "ratio", "GB/s",
              "frac", "read_us", "of_read");
  const int calls = 20;
  for (const Shape& s : shapes) {
    const size_t wbytes = size_t(s.n) * s.k * 2;
    const int copies = static_cast<int>(std::max<size_t>(2, (size_t(600) << 20) / wbytes + 1));
    std::vector<Buffer> w;
    for (int c = 0; c < copies; ++c) {
      w.emplace_back(be, wbytes);
      fill(w.back().data(), wbytes, pattern.data(), pattern_bytes, st);
    }
    Buffer bias(be, size_t(s.n) * 2);
    fill(bias.data(), bias.size(), pattern.data(), pattern_bytes, st);
    const DType out_t = s.f32_out ? DType::F32 : DType::BF16;
    for (int m : rows) {
      Buffer xb(be, size_t(m) * s.k * 2), ob(be, size_t(m) * s.n * dtype_size(out_t));
      fill(xb.data(), xb.size(), pattern.data(), pattern_bytes, st);
      CUDA_CHECK(cudaMemsetAsync(ob.data(), 0, ob.size(), st));
      const Tensor x = make_tensor(xb.data(), DType::BF16, m, s.k);
      const Tensor out = make_tensor(ob.data(), out_t, m, s.n);
      const Tensor b = s.bias ? make_tensor(bias.data(), DType::BF16, 1, s.n) : Tensor{};
      auto time_us = [&](int gemv_rows, int cols = 0) {
        be.set_gemv_rows(gemv_rows);
        be.set_gemv_cols(cols);
        return 1e3 * graph_ms(be, calls, [&](int i) {
                 const Buffer& wc = w[size_t(i) % w.size()];
                 be.matmul(x, make_tensor(wc.data(), DType::BF16, s.n, s.k), b, out, s.accumulate);
               });
      };
      const double cublas_us = time_us(0);
      const int64_t launches = be.gemv_launches();
      // More rows than the gemv kernel takes: cuBLASLt alone (the "gemv" columns repeat it).
      const bool gemv = m <= CudaBackend::kMaxGemvRows;
      const double gemv_us = gemv ? time_us(CudaBackend::kMaxGemvRows) : cublas_us;
      double cols_us[4];
      for (int i = 0; i < 4; ++i)
        cols_us[i] = gemv ? time_us(CudaBackend::kMaxGemvRows, 8 >> i) : 0;
      if (gemv && be.gemv_launches() == launches) {
        std::fprintf(stderr, "gemv_bench: %s %s m=%d did not run the gemv kernel\n", s.model,
                     s.name, m);
        return 1;
      }
      const double bytes = static_cast<double>(wbytes) + static_cast<double>(xb.size()) +
                           static_cast<double>(ob.size()) * (s.accumulate ? 2 : 1);
      const double gbs = bytes / (gemv_us * 1e3);
      const double read_us = roof.read_us(be, bytes, calls);
      std::printf(
          "%-13s %-8s %3d %9.1f %9.1f %7.1f %7.1f %7.1f %7.1f %8.1f %7.3fx %8.0f %6.3f %8.1f "
          "%7.3f\n",
          s.model, s.name, m, bytes / 1e6, cublas_us, cols_us[0], cols_us[1], cols_us[2],
          cols_us[3], gemv_us, gemv_us / cublas_us, gbs, gbs / roof.copy_gbs, read_us,
          read_us / gemv_us);
      if (json) {
        std::fprintf(json,
                     "{\"model\":\"%s\",\"gemm\":\"%s\",\"m\":%d,\"n\":%d,\"k\":%d,\"bytes\":%.0f,"
                     "\"cublas_us\":%.2f,\"gemv_us\":%.2f,\"gbs\":%.1f,\"copy_gbs\":%.1f,"
                     "\"read_us\":%.2f,\"c8_us\":%.2f,\"c4_us\":%.2f,\"c2_us\":%.2f,"
                     "\"c1_us\":%.2f}\n",
                     s.model, s.name, m, s.n, s.k, bytes, cublas_us, gemv_us, gbs, roof.copy_gbs,
                     read_us, cols_us[0], cols_us[1], cols_us[2], cols_us[3]);
      }
    }
  }
  if (json) std::fclose(json);
  return 0;
}
