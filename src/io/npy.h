// .npy files (NumPy format v1.0 written; v1.0/v2.0 read): little-endian float32, C order. Used by
// `densekv logits --out` and by tests that compare against transformers' logits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace densekv {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major, product(shape) values
};

// Writes a '<f4' array. Throws FileFormatError when the file cannot be written.
void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

// Reads a '<f4' C-order array. Throws FileFormatError naming the file and the problem.
NpyArray read_npy_f32(const std::string& path);

}  // namespace densekv
