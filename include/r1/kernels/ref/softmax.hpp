// SPDX-License-Identifier: MIT
// Row softmax in the compute type (fp32, or fp64 for double) with max subtraction; -inf entries (masked) get probability 0. A row with no
// finite entry has no distribution and is an r1::Error rather than a row of NaNs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

namespace detail {
/// In-place softmax of one row of length n; returns false if no entry is finite.
template <class C>
bool softmax_row(C* x, int64_t n) {
  C mx = -std::numeric_limits<C>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (!std::isfinite(mx)) return false;
  C sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const C inv = C(1) / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
  return true;
}
}  // namespace detail

/// Softmax over the last dimension, in place.
/// @param x [rows, n] logits in, probabilities out
template <class T>
void softmax(View<T, 2> x) {
  static_assert(!std::is_const_v<T>, "softmax: x is overwritten");
  using C = compute_t<T>;
  detail::require_host(x, "softmax", "x");
  const int64_t n = x.shape[1];
  std::vector<C> row(static_cast<size_t>(n), C(0));  // [n]
  for (int64_t r = 0; r < x.shape[0]; ++r) {
    detail::row_to(x, r, row.data());
    R1_CHECK(n == 0 || detail::softmax_row(row.data(), n), "softmax", "row ", r,
             " has no finite entry (all masked or NaN)");
    for (int64_t i = 0; i < n; ++i) x(r, i) = from_compute<T>(row[size_t(i)]);
  }
}

}  // namespace r1::ref
