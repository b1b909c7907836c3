// SPDX-License-Identifier: MIT
// RMSNorm and its fused variants (residual add; 1x128 FP8 quantized output):
//   y[t, i] = w[i] * x[t, i] / sqrt(mean_j(x[t, j]^2) + eps)
// Statistics, the normalization and the weight product run in the compute type (fp32, or fp64
// for double operands); the result is rounded once to the output type (r1-spec §2: at most one
// bf16 ulp from Hugging Face's two-rounding order).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

namespace detail {
/// 1 / sqrt(mean(x^2) + eps) of one row.
template <class C>
C rms_inv(const C* x, int64_t n, float eps) {
  C ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  return C(1) / std::sqrt(ss / C(n) + C(eps));
}

template <class TX, class TW, class TY>
void check_rmsnorm(const View<TX, 2>& x, const View<TW, 1>& w, const View<TY, 2>& y,
                   const char* op) {
  require_host(x, op, "x");
  require_host(w, op, "weight");
  require_host(y, op, "y");
  require_dim(w, 0, x.shape[1], op, "weight", "elements");
  require_dim(y, 0, x.shape[0], op, "y", "rows");
  require_dim(y, 1, x.shape[1], op, "y", "columns");
}
}  // namespace detail

/// y = rmsnorm(x) * w.
/// @param x   [tokens, dim] input (any storage type)
/// @param w   [dim] weight
/// @param eps added to the mean square (rms_norm_eps, 1e-6 for R1)
/// @param y   [tokens, dim] output; may alias x
template <class TX, class TW, class TY>
void rmsnorm(View<TX, 2> x, View<TW, 1> w, float eps, View<TY, 2> y) {
  static_assert(!std::is_const_v<TY>, "rmsnorm: y must be writable");
  using C = compute_t<TX, TW, TY>;
  detail::check_rmsnorm(x, w, y, "rmsnorm");
  const int64_t n = x.shape[1];
  std::vector<C> row(static_cast<size_t>(n), C(0));  // [dim]
  for (int64_t t = 0; t < x.shape[0]; ++t) {
    detail::row_to(x, t, row.data());
    const C inv = detail::rms_inv(row.data(), n, eps);
    for (int64_t i = 0; i < n; ++i) y(t, i) = from_compute<TY>(row[size_t(i)] * inv * to_compute<C>(w(i)));
  }
}

/// Fused residual add + RMSNorm, the pre-norm block boundary:
///   residual += x   (stored in the residual's type), then y = rmsnorm(residual) * w.
/// @param residual [tokens, dim] residual stream, updated in place
/// @param x        [tokens, dim] the sub-layer output to add
/// @param w        [dim] weight of the following norm
/// @param y        [tokens, dim] normalized output (must not alias residual)
template <class TR, class TX, class TW, class TY>
void add_rmsnorm(View<TR, 2> residual, View<TX, 2> x, View<TW, 1> w, float eps, View<TY, 2> y) {
  static_assert(!std::is_const_v<TR> && !std::is_const_v<TY>,
                "add_rmsnorm: residual and y must be writable");
  using C = compute_t<TR, TX, TW, TY>;
  detail::check_rmsnorm(residual, w, y, "add_rmsnorm");
  detail::require_host(x, "add_rmsnorm", "x");
  detail::require_dim(x, 0, residual.shape[0], "add_rmsnorm", "x", "rows");
  detail::require_dim(x, 1, residual.shape[1], "add_rmsnorm", "x", "columns");
  const int64_t n = residual.shape[1];
  std::vector<C> row(static_cast<size_t>(n), C(0));  // [dim]
  for (int64_t t = 0; t < residual.shape[0]; ++t) {
    for (int64_t i = 0; i < n; ++i) {
      // The normalization reads the residual as stored, so bf16 residuals round before the norm,
      // exactly as an unfused add followed by rmsnorm would.
      residual(t, i) = from_compute<TR>(to_compute<C>(residual(t, i)) + to_compute<C>(x(t, i)));
      row[size_t(i)] = to_compute<C>(residual(t, i));
    }
    const C inv = detail::rms_inv(row.data(), n, eps);
    for (int64_t i = 0; i < n; ++i) y(t, i) = from_compute<TY>(row[size_t(i)] * inv * to_compute<C>(w(i)));
  }
}

/// RMSNorm whose output goes straight into 1 x Group FP8 activation quantization (the input of an
/// FP8 linear in native mode), without an intermediate rounding:
///   yq[t, i] = e4m3(y[t, i] / s[t, g]),  s[t, g] = max(amax over group g of y[t, :], 1e-4) / 448
/// Bit-identical to rmsnorm (output in the compute type) followed by act_quant<Group>.
/// @param yq [tokens, dim] e4m3 output
/// @param ys [tokens, dim / Group] dequantization scales (multipliers; float or double)
template <int Group, class TX, class TW, class TS>
void rmsnorm_quant_fp8(View<TX, 2> x, View<TW, 1> w, float eps, View<fp8_e4m3, 2> yq, View<TS, 2> ys) {
  using C = compute_t<TX, TW>;
  detail::check_rmsnorm(x, w, yq, "rmsnorm_quant_fp8");
  const int64_t n = x.shape[1];
  detail::check_act_quant_shapes<Group>(x.shape[0], n, yq, ys, "rmsnorm_quant_fp8");
  std::vector<C> row(static_cast<size_t>(n), C(0));  // [dim]
  for (int64_t t = 0; t < x.shape[0]; ++t) {
    detail::row_to(x, t, row.data());
    const C inv = detail::rms_inv(row.data(), n, eps);
    for (int64_t i = 0; i < n; ++i) row[size_t(i)] = row[size_t(i)] * inv * to_compute<C>(w(i));
    detail::quantize_row_fp8<Group>(row.data(), n, yq, ys, t);
  }
}

}  // namespace r1::ref
