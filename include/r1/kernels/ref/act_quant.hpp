// SPDX-License-Identifier: MIT
// DeepSeek's activation quantization (inference/kernel.py act_quant, "dynamic" 1 x 128):
// for each token row and each group g of `Group` consecutive channels
//   s[t, g]  = max(amax_{k in g} |x[t, k]|, 1e-4) / 448          (the dequant multiplier)
//   xq[t, k] = e4m3_rne(fp32(x[t, k] / s[t, g]))                  (|x / s| <= 448 by construction)
// The 1e-4 floor (DeepSeek commit b15f0db) keeps an all-zero group at scale 1e-4/448 instead of 0/0.
// The scale is computed and stored in the scale tensor's type: f32 as DeepSeek's kernel (and the
// CUDA twin) keeps it, or f64 for an fp64 simulation. The quotient x / s is formed in the wider of
// the two types and rounded to fp32 before the e4m3 rounding, as both DeepSeek's Triton kernel
// (fp32 throughout) and the project's fp64 oracle (`(x / s).float().to(float8_e4m3fn)`) do.
// K must be a multiple of Group, as in DeepSeek's kernel: a ragged K is an r1::Error.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

/// Floor of the per-group amax, so an all-zero group gets a finite scale.
inline constexpr float kActQuantAmaxFloor = 1e-4f;

namespace detail {
template <int Group, class TQ, class TS>
void check_act_quant_shapes(int64_t rows, int64_t k, const View<TQ, 2>& xq, const View<TS, 2>& xs,
                            const char* op) {
  static_assert(Group > 0, "act_quant: group must be positive");
  static_assert(std::is_floating_point_v<std::remove_const_t<TS>>, "act_quant: scales are float or double");
  R1_CHECK(k % Group == 0, op, "K = ", k, " is not a multiple of the ", Group,
           "-channel activation quantization group");
  require_host(xq, op, "xq");
  require_host(xs, op, "scale");
  require_dim(xq, 0, rows, op, "xq", "rows");
  require_dim(xq, 1, k, op, "xq", "columns");
  require_dim(xs, 0, rows, op, "scale", "rows");
  require_dim(xs, 1, k / Group, op, "scale", "groups");
}

/// Quantizes one row (compute type C) into row t of (xq, xs).
template <int Group, class C, class TS>
void quantize_row_fp8(const C* x, int64_t k, const View<fp8_e4m3, 2>& xq, const View<TS, 2>& xs, int64_t t) {
  using S = std::remove_const_t<TS>;
  using Q = compute_t<C, S>;  // precision of the quotient before its fp32 rounding
  for (int64_t g = 0; g < k / Group; ++g) {
    C amax = 0;
    for (int64_t i = g * Group; i < (g + 1) * Group; ++i) amax = std::max(amax, C(std::fabs(x[i])));
    // Division (not multiplication by 448 / amax) is what DeepSeek's kernel does; it decides the
    // rounding of values on an e4m3 rounding boundary.
    const S s = std::max(S(amax), S(kActQuantAmaxFloor)) / S(fp8_e4m3::max_finite);
    xs(t, g) = s;
    for (int64_t i = g * Group; i < (g + 1) * Group; ++i) xq(t, i) = fp8_e4m3(float(Q(x[i]) / Q(s)));
  }
}
}  // namespace detail

/// Quantizes activations per token per `Group` channels to e4m3 with float or double scales.
/// @param x  [tokens, K] input (any storage type)
/// @param xq [tokens, K] e4m3 codes
/// @param xs [tokens, K / Group] scales: x ~= float(xq) * xs
template <int Group, class TX, class TS>
void act_quant(View<TX, 2> x, View<fp8_e4m3, 2> xq, View<TS, 2> xs) {
  static_assert(!std::is_const_v<TS>, "act_quant: scale must be writable");
  using C = compute_t<TX>;
  detail::require_host(x, "act_quant", "x");
  const int64_t k = x.shape[1];
  detail::check_act_quant_shapes<Group>(x.shape[0], k, xq, xs, "act_quant");
  std::vector<C> row(static_cast<size_t>(k), C(0));  // [K]
  for (int64_t t = 0; t < x.shape[0]; ++t) {
    detail::row_to(x, t, row.data());
    detail::quantize_row_fp8<Group>(row.data(), k, xq, xs, t);
  }
}

/// The inverse, for "fake quantization": y[t, k] = float(xq[t, k]) * xs[t, k / Group], in the
/// wider of the scale and output types.
/// @param y [tokens, K]
template <int Group, class TS, class TY>
void act_dequant(View<const fp8_e4m3, 2> xq, View<TS, 2> xs, View<TY, 2> y) {
  using C = compute_t<TS, TY>;
  detail::check_act_quant_shapes<Group>(xq.shape[0], xq.shape[1], xq, xs, "act_dequant");
  detail::require_host(y, "act_dequant", "y");
  detail::require_dim(y, 0, xq.shape[0], "act_dequant", "y", "rows");
  detail::require_dim(y, 1, xq.shape[1], "act_dequant", "y", "columns");
  for (int64_t t = 0; t < xq.shape[0]; ++t)
    for (int64_t k = 0; k < xq.shape[1]; ++k)
      y(t, k) = from_compute<TY>(C(float(xq(t, k))) * C(xs(t, k / Group)));
}

}  // namespace r1::ref
