// SPDX-License-Identifier: MIT
// Dense linear layer, PyTorch weight layout, no bias (no DeepSeek-V3 linear has one):
//   y[m, n] = sum_k x[m, k] * w[n, k]
// Inputs are converted to the compute type (fp32, or fp64 when an operand is double) and
// accumulated in it in detail::dot's fixed order, so a row of y does not depend on how many other
// rows are computed with it.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

namespace detail {
template <class TX, class TW, class TY>
void check_linear(const View<TX, 2>& x, const View<TW, 2>& w, const View<TY, 2>& y,
                  const char* op) {
  require_host(x, op, "x");
  require_host(w, op, "weight");
  require_host(y, op, "y");
  R1_CHECK(w.shape[1] == x.shape[1], op, "x has ", x.shape[1], " input features, weight has ",
           w.shape[1], " (weight shape [", w.shape[0], ", ", w.shape[1], "])");
  require_dim(y, 0, x.shape[0], op, "y", "rows");
  require_dim(y, 1, w.shape[0], op, "y", "columns");
}

/// y = x . w^T in compute type C, where a callback fills one weight row at a time; shared by the
/// dense and the dequantizing FP8 paths.
template <class C, class TX, class TY, class LoadRow>
void linear_rows(const View<TX, 2>& x, int64_t n_out, const View<TY, 2>& y, LoadRow&& load_row) {
  const int64_t m = x.shape[0], k = x.shape[1];
  std::vector<C> xc(static_cast<size_t>(m * k), C(0));  // [M, K]
  for (int64_t i = 0; i < m; ++i) row_to(x, i, xc.data() + i * k);
  std::vector<C> wrow(static_cast<size_t>(k), C(0));  // [K]
  for (int64_t n = 0; n < n_out; ++n) {
    load_row(n, wrow.data());
    for (int64_t i = 0; i < m; ++i) {
      y(i, n) = from_compute<std::remove_const_t<TY>>(dot(xc.data() + i * k, wrow.data(), k));
    }
  }
}
}  // namespace detail

/// y = x . w^T.
/// @param x [M, K] activations (float, bf16, ...)
/// @param w [N, K] weight (float, bf16, fp16)
/// @param y [M, N] output; must not alias x
template <class TX, class TW, class TY>
void linear(View<TX, 2> x, View<TW, 2> w, View<TY, 2> y) {
  static_assert(!std::is_const_v<TY>, "linear: y must be writable");
  detail::check_linear(x, w, y, "linear");
  using C = compute_t<TX, TW, TY>;
  detail::linear_rows<C>(x, w.shape[0], y, [&](int64_t n, C* out) { detail::row_to(w, n, out); });
}

}  // namespace r1::ref
