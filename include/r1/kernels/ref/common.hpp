// SPDX-License-Identifier: MIT
// Helpers shared by the reference kernels: argument checks with messages that name the op and the
// argument, the compute-type rule (fp32, or fp64 for double operands) and the dot product every
// matrix product here is built from.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1::ref {

/// The arithmetic type of a reference kernel: fp64 when any operand is double, fp32 otherwise
/// (bf16, fp16, fp8 and f32 operands all compute in fp32, the precision the CUDA twins use).
template <class... T>
using compute_t =
    std::conditional_t<(std::is_same_v<std::remove_const_t<T>, double> || ...), double, float>;

/// A stored value in compute type C (narrow storage types go through their exact fp32 value).
template <class C, class T>
R1_HD C to_compute(T x) {
  using U = std::remove_const_t<T>;
  if constexpr (std::is_same_v<U, double> || std::is_same_v<U, float>) {
    return C(x);
  } else {
    return C(to_f32(x));
  }
}
/// A compute-type value rounded to storage type T.
template <class T, class C>
R1_HD T from_compute(C x) {
  if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
    return T(x);
  } else {
    return from_f32<T>(float(x));
  }
}

}  // namespace r1::ref

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

/// Dot product of two rows with a fixed summation order: eight interleaved partial sums (so the
/// compiler can vectorize without -ffast-math) combined pairwise, then the tail. The order is part
/// of the reference: results are identical run to run and for any row count.
template <class C>
C dot(const C* a, const C* b, int64_t n) {
  C acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t body = n - n % 8;
  for (int64_t k = 0; k < body; k += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[k + j] * b[k + j];
  }
  C tail = 0;
  for (int64_t k = body; k < n; ++k) tail += a[k] * b[k];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

/// Copies row `i` of a rank-2 view into `out` in compute type C.
template <class C, class T>
void row_to(const View<T, 2>& v, int64_t i, C* out) {
  const int64_t n = v.shape[1];
  for (int64_t k = 0; k < n; ++k) out[k] = to_compute<C>(v(i, k));
}

/// Ceiling division for non-negative sizes.
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace r1::ref::detail
