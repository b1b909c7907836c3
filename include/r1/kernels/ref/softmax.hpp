// SPDX-License-Identifier: MIT
// Row softmax in fp32 with max subtraction; -inf entries (masked) get probability 0. A row with no
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
/// In-place softmax of one fp32 row of length n; returns false if no entry is finite.
inline bool softmax_row(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (!std::isfinite(mx)) return false;
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
  return true;
}
}  // namespace detail

/// Softmax over the last dimension, in place.
/// @param x [rows, n] logits in, probabilities out
template <class T>
void softmax(View<T, 2> x) {
  static_assert(!std::is_const_v<T>, "softmax: x is overwritten");
  detail::require_host(x, "softmax", "x");
  const int64_t n = x.shape[1];
  std::vector<float> row(static_cast<size_t>(n), 0.0f);  // [n]
  for (int64_t r = 0; r < x.shape[0]; ++r) {
    detail::row_to_f32(x, r, row.data());
    R1_CHECK(n == 0 || detail::softmax_row(row.data(), n), "softmax", "row ", r,
             " has no finite entry (all masked or NaN)");
    for (int64_t i = 0; i < n; ++i) x(r, i) = from_f32<T>(row[size_t(i)]);
  }
}

}  // namespace r1::ref
