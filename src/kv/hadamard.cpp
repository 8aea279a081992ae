#include "kv/hadamard.h"

#include <cmath>

#include "core/check.h"

namespace densekv {

void hadamard_transform(float* x, int n) {
  CHECK_MSG(is_power_of_two(n), "Hadamard size must be a power of two");
  // Butterflies: after the pass of width h, x holds H_(2h) applied within each run of 2h entries.
  for (int h = 1; h < n; h *= 2) {
    for (int i = 0; i < n; i += 2 * h) {
      for (int j = i; j < i + h; ++j) {
        float a = x[j];
        float b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  for (int i = 0; i < n; ++i) x[i] *= norm;
}

void hadamard_transform_rows(float* x, int rows, int n) {
  for (int r = 0; r < rows; ++r) hadamard_transform(x + static_cast<size_t>(r) * n, n);
}

}  // namespace densekv
