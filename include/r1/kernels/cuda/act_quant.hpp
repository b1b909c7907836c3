// SPDX-License-Identifier: MIT
// DeepSeek's activation quantization on the GPU, the CUDA twin of ref::act_quant (host-callable
// declaration; definition in act_quant.cuh, instantiated for Group = 128 and x in bf16 or f32 in
// src/cuda/act_quant.cu), and its inverse act_dequant (ref::act_dequant's twin). Bit-identical to the ref twin: for each row t and group g
//   s[t, g]  = max(amax_{k in g} |x[t, k]|, 1e-4) / 448      (fp32 division)
//   xq[t, k] = e4m3_rne_satfinite(x[t, k] / s[t, g])          (fp32 division, not a reciprocal)
// The scales can be written in any layout: mn_major_scales() gives the one cuBLASLt's FP8 GEMM
// needs, so the quantizer emits it directly and no transpose runs between the two.
#pragma once

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// Quantizes activations per row per `Group` channels to e4m3 with f32 scales.
/// @param x  [rows, K] bf16 or f32, unit-stride rows; K % Group == 0
/// @param xq [rows, K] e4m3 output, unit-stride rows
/// @param xs [rows, K / Group] f32 scales, any strides (x ~= float(xq) * xs)
template <int Group, class TX>
void act_quant(View<const TX, 2> x, View<fp8_e4m3, 2> xq, View<float, 2> xs, stream_t stream);

/// The inverse ("fake quantization"), the CUDA twin of ref::act_dequant: y[t, k] = float(xq[t, k]) *
/// xs[t, k / Group], one fp32 product (exact for f32 output: a code has 4 significant bits).
/// @param xq [rows, K] e4m3, unit-stride rows; K % Group == 0
/// @param xs [rows, K / Group] f32 scales, any strides
/// @param y  [rows, K] f32, unit-stride rows (any row stride)
template <int Group>
void act_dequant(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<float, 2> y, stream_t stream);

/// A [rows, groups] view of scales stored group-major ("MN-major"): element (r, g) lives at
/// data[g * ld + r]. With ld == rows (the default) this is the dense layout cuBLASLt's VEC128_32F
/// activation scaling reads; r1's own FP8 kernel reads it (or any other layout) too.
/// @param data  [groups, ld] floats
inline View<float, 2> mn_major_scales(float* data, int64_t rows, int64_t groups, Space space = Space::cuda,
                                      int64_t ld = -1) {
  if (ld < 0) ld = rows;
  R1_CHECK(rows >= 0 && groups >= 0 && ld >= rows, "mn_major_scales", "rows ", rows, ", groups ", groups,
           ", leading dimension ", ld, " (must be >= rows)");
  View<float, 2> v;
  v.data = data;
  v.space = space;
  v.shape[0] = rows;
  v.shape[1] = groups;
  v.stride[0] = 1;
  v.stride[1] = ld;
  return v;
}

}  // namespace r1::cuda
