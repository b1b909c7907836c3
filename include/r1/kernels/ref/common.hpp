// SPDX-License-Identifier: MIT
// Helpers shared by the reference kernels: argument checks with messages that name the op and the
// argument, and the fp32 dot product every matrix product here is built from.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1::ref::detail {

/// Reference kernels read and write host memory only.
template <class T, int R>
void require_host(const View<T, R>& v, const char* op, const char* name) {
  require_space(v, Space::host, op, name);
}

/// Checks that `v` has `expected` extent along `dim`; the message names both.
template <class T, int R>
void require_dim(const View<T, R>& v, int dim, int64_t expected, const char* op, const char* name,
                 const char* what) {
  R1_CHECK(v.shape[dim] == expected, op, name, " has ", v.shape[dim], " ", what, " (dimension ",
           dim, "), expected ", expected);
}

/// Dot product of two fp32 rows with a fixed summation order: eight interleaved partial sums
/// (so the compiler can vectorize without -ffast-math) combined pairwise, then the tail. The order
/// is part of the reference: results are identical run to run and for any row count.
inline float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t body = n - n % 8;
  for (int64_t k = 0; k < body; k += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[k + j] * b[k + j];
  }
  float tail = 0;
  for (int64_t k = body; k < n; ++k) tail += a[k] * b[k];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

/// Copies row `i` of a rank-2 view into `out` as fp32 (to_f32 of each element).
template <class T>
void row_to_f32(const View<T, 2>& v, int64_t i, float* out) {
  const int64_t n = v.shape[1];
  for (int64_t k = 0; k < n; ++k) out[k] = to_f32(v(i, k));
}

/// Ceiling division for non-negative sizes.
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace r1::ref::detail
