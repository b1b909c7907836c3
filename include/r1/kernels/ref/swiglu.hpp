// SPDX-License-Identifier: MIT
// SwiGLU activation of DeepSeek's FFNs (dense MLP, routed and shared experts):
//   out = silu(gate) * up,   silu(z) = z * sigmoid(z) = z / (1 + exp(-z))
// in the compute type (fp32, or fp64 for double operands). The down projection follows as a
// separate linear.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

/// silu(z) = z / (1 + e^-z); for z -> -inf the quotient goes to -0 without producing NaN.
template <class C>
R1_HD C silu(C z) {
  return z / (C(1) + std::exp(-z));
}

/// @param gate [rows, width] W_gate . x
/// @param up   [rows, width] W_up . x
/// @param out  [rows, width] silu(gate) * up; may alias gate or up
template <class TG, class TU, class TY>
void swiglu(View<TG, 2> gate, View<TU, 2> up, View<TY, 2> out) {
  static_assert(!std::is_const_v<TY>, "swiglu: out must be writable");
  using C = compute_t<TG, TU, TY>;
  const char* op = "swiglu";
  detail::require_host(gate, op, "gate");
  detail::require_host(up, op, "up");
  detail::require_host(out, op, "out");
  for (int d = 0; d < 2; ++d) {
    detail::require_dim(up, d, gate.shape[d], op, "up", d == 0 ? "rows" : "columns");
    detail::require_dim(out, d, gate.shape[d], op, "out", d == 0 ? "rows" : "columns");
  }
  for (int64_t r = 0; r < gate.shape[0]; ++r)
    for (int64_t i = 0; i < gate.shape[1]; ++i)
      out(r, i) = from_compute<TY>(silu(to_compute<C>(gate(r, i))) * to_compute<C>(up(r, i)));
}

}  // namespace r1::ref
