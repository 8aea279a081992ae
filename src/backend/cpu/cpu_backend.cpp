// CPU backend: memory, batch upload, and the dense ops (gather, rmsnorm, matmul, rope, swiglu,
// add, argmax). Attention and the KV write live in cpu_attention.cpp.
#include "backend/cpu/cpu_backend.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "backend/cpu/cpu_elem.h"
#include "core/check.h"
#include "core/errors.h"

namespace densekv {

using cpu::convert_row;

CpuBackend::CpuBackend(int threads) : pool_(threads) {}

void* CpuBackend::alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) {
    throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  }
  std::memset(p, 0, rounded == 0 ? 64 : rounded);
  return p;
}

void CpuBackend::release(void* p) {
  std::free(p);
}

void CpuBackend::upload(void* dst, DType dst_dtype, const void* src, DType src_dtype, size_t n) {
  if (dst_dtype == src_dtype) {
    std::memcpy(dst, src, n * dtype_size(src_dtype));
    return;
  }
  const size_t chunk = 1 << 16;
  int64_t n_chunks = static_cast<int64_t>((n + chunk - 1) / chunk);
  pool_.parallel_for(n_chunks, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      size_t off = static_cast<size_t>(c) * chunk;
      size_t len = std::min(chunk, n - off);
      convert_row(static_cast<char*>(dst) + off * dtype_size(dst_dtype), dst_dtype,
                  static_cast<const char*>(src) + off * dtype_size(src_dtype), src_dtype, len);
    }
  });
}

void CpuBackend::download_f32(const Tensor& src, float* dst) {
  for (int64_t r = 0; r < src.rows; ++r) {
    const char* row = static_cast<const char*>(src.data) + r * src.stride * dtype_size(src.dtype);
    convert_row(dst + r * src.cols, DType::F32, row, src.dtype, static_cast<size_t>(src.cols));
  }
}

BatchView CpuBackend::upload_batch(const BatchLayout& b) {
  return host_batch_view(b);
}

static float* row_f32(const Tensor& t, int64_t r) {
  CHECK(t.dtype == DType::F32);
  return t.ptr<float>() + r * t.stride;
}

void CpuBackend::gather_rows(const Tensor& src, const int32_t* idx, const Tensor& out) {
  CHECK(src.cols == out.cols);
  pool_.parallel_for(out.rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      CHECK(idx[r] >= 0 && idx[r] < src.rows);
      const char* s = static_cast<const char*>(src.data) +
                      static_cast<int64_t>(idx[r]) * src.stride * dtype_size(src.dtype);
      convert_row(row_f32(out, r), DType::F32, s, src.dtype, static_cast<size_t>(src.cols));
    }
  });
}

void CpuBackend::rmsnorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  CHECK(x.cols == w.cols && x.rows == out.rows && x.cols == out.cols);
  const float* wp = row_f32(w, 0);
  pool_.parallel_for(x.rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = row_f32(x, r);
      float* o = row_f32(out, r);
      float ss = 0.0f;
      for (int64_t i = 0; i < x.cols; ++i) ss += xr[i] * xr[i];
      float inv = 1.0f / std::sqrt(ss / static_cast<float>(x.cols) + eps);
      for (int64_t i = 0; i < x.cols; ++i) o[i] = wp[i] * (xr[i] * inv);
    }
  });
}

void CpuBackend::rope(const Tensor& x, int head_dim, const int32_t* positions,
                      const Tensor& inv_freq) {
  CHECK(head_dim % 2 == 0 && x.cols % head_dim == 0 && inv_freq.cols == head_dim / 2);
  const int half = head_dim / 2;
  const int64_t n_heads = x.cols / head_dim;
  const float* inv = row_f32(inv_freq, 0);
  pool_.parallel_for(x.rows, [&](int64_t b, int64_t e) {
    std::vector<float> cs(static_cast<size_t>(head_dim));
    for (int64_t r = b; r < e; ++r) {
      // fp32 angle, as transformers computes it: position * inv_freq in float32.
      const float pos = static_cast<float>(positions[r]);
      for (int i = 0; i < half; ++i) {
        float angle = pos * inv[i];
        cs[i] = std::cos(angle);
        cs[half + i] = std::sin(angle);
      }
      float* xr = row_f32(x, r);
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = xr + h * head_dim;
        for (int i = 0; i < half; ++i) {
          float x1 = v[i], x2 = v[half + i];
          float c = cs[i], s = cs[half + i];
          v[i] = x1 * c - x2 * s;
          v[half + i] = x2 * c + x1 * s;
        }
      }
    }
  });
}

void CpuBackend::swiglu(const Tensor& gate_up, const Tensor& out) {
  CHECK(gate_up.cols == 2 * out.cols && gate_up.rows == out.rows);
  const int64_t n = out.cols;
  pool_.parallel_for(out.rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* g = row_f32(gate_up, r);
      const float* u = g + n;
      float* o = row_f32(out, r);
      for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    }
  });
}

void CpuBackend::add(const Tensor& a, const Tensor& b, const Tensor& out) {
  CHECK(a.rows == b.rows && a.cols == b.cols && a.rows == out.rows && a.cols == out.cols);
  pool_.parallel_for(out.rows, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* ap = row_f32(a, r);
      const float* bp = row_f32(b, r);
      float* o = row_f32(out, r);
      for (int64_t i = 0; i < out.cols; ++i) o[i] = ap[i] + bp[i];
    }
  });
}

std::vector<int32_t> CpuBackend::argmax(const Tensor& x) {
  std::vector<int32_t> ids(static_cast<size_t>(x.rows));
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* xr = row_f32(x, r);
    int64_t best = 0;
    for (int64_t i = 1; i < x.cols; ++i) {
      if (xr[i] > xr[best]) best = i;
    }
    ids[static_cast<size_t>(r)] = static_cast<int32_t>(best);
  }
  return ids;
}

}  // namespace densekv
