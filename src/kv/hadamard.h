// The orthonormal Walsh-Hadamard rotation of the k4v2 KV format (Sylvester order):
//   H[i][j] = (-1)^popcount(i & j) / sqrt(n),  n a power of two.
// H is symmetric and orthonormal, so H = H^T = H^-1: the same call rotates and rotates back.
// Keys and values are rotated before they are stored, queries are rotated the same way
// (q.k = Hq.Hk), and the attention output, a mix of rotated values, is rotated back with H.
#pragma once

namespace densekv {

inline bool is_power_of_two(int n) {
  return n > 0 && (n & (n - 1)) == 0;
}

// x[n] <- H x in place, O(n log n) butterflies then one scale by 1/sqrt(n). CHECKs n is a power
// of two.
void hadamard_transform(float* x, int n);

// Each of `rows` rows of x [rows][n] <- H row.
void hadamard_transform_rows(float* x, int rows, int n);

}  // namespace densekv
