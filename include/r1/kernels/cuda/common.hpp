// SPDX-License-Identifier: MIT
// Argument checks shared by the CUDA launchers, run on the host before anything is enqueued:
// memory space, shapes, unit-stride rows and alignment, each failing with an r1::Error that names
// the op and the argument. Compiles with g++ alone.
#pragma once

#include <cstdint>

#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda::detail {

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

/// Kernels read and write device memory only.
template <class T, int R>
void require_device(const View<T, R>& v, const char* op, const char* name) {
  require_space(v, Space::cuda, op, name);
}

template <class T, int R>
void require_dim(const View<T, R>& v, int dim, int64_t expected, const char* op, const char* name,
                 const char* what) {
  R1_CHECK(v.shape[dim] == expected, op, name, " has ", v.shape[dim], " ", what, " (dimension ",
           dim, "), expected ", expected);
}

/// A matrix whose rows are unit-stride with non-negative row stride (GEMM operands and outputs).
template <class T>
void require_matrix(const View<T, 2>& v, const char* op, const char* name) {
  R1_CHECK(v.rows_contiguous(), op, name, " must have unit-stride rows (stride ", v.stride[1],
           " along dimension 1)");
  R1_CHECK(v.shape[0] <= 1 || v.stride[0] >= v.shape[1], op, name, " rows overlap (row stride ",
           v.stride[0], " < ", v.shape[1], " columns)");
}

/// The row stride a kernel uses: a single row may carry any stride, so it gets its own width.
template <class T>
int64_t row_stride(const View<T, 2>& v) {
  return v.shape[0] <= 1 ? v.shape[1] : v.stride[0];
}

/// True when the address is a multiple of `bytes`.
inline bool aligned_to(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % uintptr_t(bytes) == 0;
}

/// The largest power of two (at most 256) dividing the address: what cuBLASLt asks for.
inline int alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && a % uintptr_t(al) != 0) al /= 2;
  return al;
}

/// True when rows of `v` can be read in `bytes`-wide vectors: base and row stride aligned.
template <class T>
bool rows_vector_aligned(const View<T, 2>& v, int64_t bytes) {
  const int64_t es = int64_t(sizeof(T));
  return aligned_to(v.data, bytes) && (row_stride(v) * es) % bytes == 0 && (v.shape[1] * es) % bytes == 0;
}

/// Sizes that index a kernel's int32 coordinates must stay below 2^31.
inline void require_int32(int64_t v, const char* op, const char* what) {
  R1_CHECK(v >= 0 && v < (int64_t(1) << 31), op, what, " = ", v, " does not fit the kernel's 32-bit ",
           "coordinates");
}

}  // namespace r1::cuda::detail
