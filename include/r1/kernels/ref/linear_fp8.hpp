// SPDX-License-Identifier: MIT
// Linear layers over FP8 block-scaled weights (DeepSeek-V3's checkpoint format, r1-spec §6):
//   W[n, k] = float(Wq[n, k]) * S[n / BN, k / BK],   S = weight_scale_inv  [ceil(N/BN), ceil(K/BK)]
// Edge blocks may be ragged in N and in K; the scale grid uses ceil.
//  - dequant_fp8_block: W itself.
//  - linear_fp8_dequant: y = x . W^T, activations unquantized (fp32 math).
//  - linear_fp8_native: DeepSeek's fp8_gemm on act_quant output:
//      y[m, n] = sum_b xs[m, b] * S[n / BN, b] * (sum_{k in block b} float(xq[m, k]) * float(Wq[n, k]))
//    inner sums and the sum over blocks in the compute type (fp32 as DeepSeek's kernel, fp64 for
//    double scales or output). K must be a multiple of BK (act_quant's group).
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/common.hpp"
#include "r1/kernels/ref/linear.hpp"

namespace r1::ref {

namespace detail {
template <int BN, int BK, class TS>
void check_fp8_scale(int64_t n, int64_t k, const View<TS, 2>& ws, const char* op) {
  static_assert(BN > 0 && BK > 0, "fp8 block sizes must be positive");
  require_host(ws, op, "weight_scale_inv");
  R1_CHECK(ws.shape[0] == ceil_div(n, BN) && ws.shape[1] == ceil_div(k, BK), op,
           "weight_scale_inv has shape [", ws.shape[0], ", ", ws.shape[1], "], expected [",
           ceil_div(n, BN), ", ", ceil_div(k, BK), "] for a [", n, ", ", k, "] weight in ", BN,
           "x", BK, " blocks");
}

/// Dequantizes row n of an FP8 weight. The product code * scale is rounded to fp32 (as checkpoint
/// dequantizers and the oracle produce it), then widened to C.
template <int BN, int BK, class C, class TW, class TS>
void dequant_row(const View<TW, 2>& wq, const View<TS, 2>& ws, int64_t n, C* out) {
  const int64_t k = wq.shape[1];
  for (int64_t j = 0; j < k; ++j) out[j] = C(to_f32(wq(n, j)) * to_f32(ws(n / BN, j / BK)));
}
}  // namespace detail

/// Dequantizes a block-scaled FP8 weight.
/// @param wq [N, K] e4m3 codes
/// @param ws [ceil(N/BN), ceil(K/BK)] f32 weight_scale_inv (multipliers)
/// @param w  [N, K] output (float, bf16, ...)
template <int BN, int BK, class TW, class TS, class TO>
void dequant_fp8_block(View<TW, 2> wq, View<TS, 2> ws, View<TO, 2> w) {
  static_assert(std::is_same_v<std::remove_const_t<TW>, fp8_e4m3>, "dequant_fp8_block: wq must be e4m3");
  static_assert(!std::is_const_v<TO>, "dequant_fp8_block: w must be writable");
  detail::require_host(wq, "dequant_fp8_block", "wq");
  detail::require_host(w, "dequant_fp8_block", "w");
  detail::check_fp8_scale<BN, BK>(wq.shape[0], wq.shape[1], ws, "dequant_fp8_block");
  detail::require_dim(w, 0, wq.shape[0], "dequant_fp8_block", "w", "rows");
  detail::require_dim(w, 1, wq.shape[1], "dequant_fp8_block", "w", "columns");
  std::vector<float> row(static_cast<size_t>(wq.shape[1]), 0.0f);  // [K]
  for (int64_t n = 0; n < wq.shape[0]; ++n) {
    detail::dequant_row<BN, BK>(wq, ws, n, row.data());
    for (int64_t k = 0; k < wq.shape[1]; ++k) w(n, k) = from_compute<TO>(row[size_t(k)]);
  }
}

/// y = x . dequant(Wq, S)^T with unquantized activations.
/// @param x  [M, K] activations
/// @param wq [N, K] e4m3 weight
/// @param ws [ceil(N/BN), ceil(K/BK)] weight_scale_inv
/// @param y  [M, N] output
template <int BN, int BK, class TX, class TW, class TS, class TY>
void linear_fp8_dequant(View<TX, 2> x, View<TW, 2> wq, View<TS, 2> ws, View<TY, 2> y) {
  static_assert(std::is_same_v<std::remove_const_t<TW>, fp8_e4m3>, "linear_fp8_dequant: wq must be e4m3");
  static_assert(!std::is_const_v<TY>, "linear_fp8_dequant: y must be writable");
  detail::check_linear(x, wq, y, "linear_fp8_dequant");
  detail::check_fp8_scale<BN, BK>(wq.shape[0], wq.shape[1], ws, "linear_fp8_dequant");
  using C = compute_t<TX, TY>;
  detail::linear_rows<C>(x, wq.shape[0], y,
                         [&](int64_t n, C* out) { detail::dequant_row<BN, BK>(wq, ws, n, out); });
}

/// DeepSeek's FP8 GEMM on quantized activations (see the file comment).
/// @param xq [M, K] e4m3 activations from act_quant<BK>
/// @param xs [M, K / BK] activation scales
/// @param wq [N, K] weight codes: e4m3, or any type holding e4m3 values exactly (a host-side
///           float copy of the codes, which only saves the decode)
/// @param ws [ceil(N/BN), K / BK] weight_scale_inv
/// @param y  [M, N] output
template <int BN, int BK, class TXQ, class TXS, class TW, class TS, class TY>
void linear_fp8_native(View<TXQ, 2> xq, View<TXS, 2> xs, View<TW, 2> wq, View<TS, 2> ws,
                       View<TY, 2> y) {
  static_assert(std::is_same_v<std::remove_const_t<TXQ>, fp8_e4m3>, "linear_fp8_native: xq must be e4m3");
  static_assert(!std::is_const_v<TY>, "linear_fp8_native: y must be writable");
  const char* op = "linear_fp8_native";
  detail::check_linear(xq, wq, y, op);
  const int64_t m = xq.shape[0], n_out = wq.shape[0], k = xq.shape[1];
  R1_CHECK(k % BK == 0, op, "K = ", k, " is not a multiple of the ", BK,
           "-channel block: activations cannot be quantized 1 x ", BK);
  detail::check_fp8_scale<BN, BK>(n_out, k, ws, op);
  detail::require_host(xs, op, "x scale");
  detail::require_dim(xs, 0, m, op, "x scale", "rows");
  detail::require_dim(xs, 1, k / BK, op, "x scale", "groups");
  using C = compute_t<TXS, TS, TY>;
  const int64_t nb = k / BK;
  std::vector<C> xc(static_cast<size_t>(m * k), C(0));  // [M, K] e4m3 values, unscaled
  for (int64_t i = 0; i < m; ++i) detail::row_to(xq, i, xc.data() + i * k);
  std::vector<C> wrow(static_cast<size_t>(k), C(0));  // [K] e4m3 values, unscaled
  for (int64_t n = 0; n < n_out; ++n) {
    detail::row_to(wq, n, wrow.data());
    for (int64_t i = 0; i < m; ++i) {
      C acc = 0;
      for (int64_t b = 0; b < nb; ++b) {
        const C part = detail::dot(xc.data() + i * k + b * BK, wrow.data() + b * BK, BK);
        acc += part * (to_compute<C>(xs(i, b)) * to_compute<C>(ws(n / BN, b)));
      }
      y(i, n) = from_compute<std::remove_const_t<TY>>(acc);
    }
  }
}

}  // namespace r1::ref
