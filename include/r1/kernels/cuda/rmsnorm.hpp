// SPDX-License-Identifier: MIT
// RMSNorm on the GPU, the CUDA twins of ref::rmsnorm, ref::add_rmsnorm and ref::rmsnorm_quant_fp8
// (host-callable declarations; definitions in rmsnorm.cuh, instantiated in src/cuda/rmsnorm.cu).
// Same arithmetic as the ref, in the ref's compute type (fp32, or fp64 when the residual or the input
// is double): inv = 1 / sqrt(sum(x^2) / D + eps) (IEEE division and square root, no rsqrt),
// y = (x * inv) * w rounded once to the output type. Only the order of the sum of squares differs (a
// tree instead of a left-to-right loop), so outputs agree with the ref to the last rounding (one ulp
// of the output type) and bit for bit whenever the sum is exact.
// Instantiated types: w bf16; x, residual and y bf16 or f32 (the residual stream may be kept in f32);
// and, for the f32 activation policy, fp64 arithmetic with f32 outputs: rmsnorm<double, bf16,
// float>, add_rmsnorm<double, float, bf16, float> and rmsnorm_quant_fp8<128, double, bf16> on its
// f64 residual stream, rmsnorm_quant_fp8<128, float, bf16, double> on its f32 q_a / kv_a outputs.
// Why fp64: FP8 native's oracle quantizes fp64 activations. The first layer's normalized
// embeddings (products of bf16 values) put some quantizer inputs exactly on e4m3 rounding ties,
// which fp64 keeps (they round to even) and fp32 arithmetic perturbs, and an fp32-computed scale
// can be one f32 ulp off the oracle's (fp64, rounded to f32), enough to move a later near-tie
// (docs/model.md, "FP8 native with f32 activations"). There an f32 output is rounded once from an
// fp64 value that departs from the ref's only by the reordered fp64 sum (~1e-16 relative), so it is
// the ref's f32 value except for the rare element (about 1 in 10^7) that close to an f32 rounding
// boundary, one f32 ulp away; the e4m3 codes are the ref's (the quotient y / s does not depend on
// the norm, which cancels, beyond a few fp64 roundings).
#pragma once

#include <type_traits>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// The arithmetic type of a norm over these storage types: fp64 when any of them is double, fp32
/// otherwise (bf16 and f32 operands compute in fp32): the ref twins' compute_t rule, so a kernel
/// rounds where its ref twin does.
template <class... T>
using norm_compute_t = std::conditional_t<(std::is_same_v<T, double> || ...), double, float>;

/// y = rmsnorm(x) * w.
/// @param x   [tokens, dim] unit-stride rows (any row stride)
/// @param w   [dim] weight, unit stride
/// @param eps added to the mean square (1e-6 for R1)
/// @param y   [tokens, dim] unit-stride rows; may alias x exactly
template <class TX, class TW, class TY>
void rmsnorm(View<const TX, 2> x, View<const TW, 1> w, float eps, View<TY, 2> y, stream_t stream);

/// residual += x (rounded to the residual's type), then y = rmsnorm(residual) * w.
/// @param residual [tokens, dim] updated in place
/// @param x        [tokens, dim] the sub-layer output
/// @param w        [dim] weight of the following norm
/// @param y        [tokens, dim] must not alias residual
template <class TR, class TX, class TW, class TY>
void add_rmsnorm(View<TR, 2> residual, View<const TX, 2> x, View<const TW, 1> w, float eps, View<TY, 2> y,
                 stream_t stream);

/// RMSNorm fused with 1 x Group FP8 activation quantization, without rounding y in between:
///   ys[t, g] = max(amax_g |y|, 1e-4) / 448,  yq[t, i] = e4m3_rne_satfinite(y[t, i] / ys[t, g]).
/// bf16 or f32 x: the conversions of cuda::act_quant (fp32 division, CUDA's saturating e4m3
/// rounding). f64 x: y, its amax, the scale s and the quotient y / s in fp64, the quotient rounded to
/// fp32 and then to e4m3 (ref::rmsnorm_quant_fp8 with double x and double scales, the oracle's
/// `(x / s).float()`), ys = float(s): the codes are the ref's, the scales the ref's rounded to f32.
/// C = double with bf16 or f32 x reads x exactly into fp64 and computes as for f64 x (the ref on x
/// converted to double): the f32 activation policy's norms of fp32 GEMM outputs (q_a, kv_a) whose
/// quantized outputs FP8 native's GEMMs read.
/// @tparam C compute type: float (bf16 / f32 x only) or double; by default the ref's
/// @param x  [tokens, dim] bf16, f32 or f64, dim % Group == 0
/// @param yq [tokens, dim] e4m3, unit-stride rows
/// @param ys [tokens, dim / Group] f32 scales, any strides (e.g. cuda::mn_major_scales)
template <int Group, class TX, class TW, class C = norm_compute_t<TX>>
void rmsnorm_quant_fp8(View<const TX, 2> x, View<const TW, 1> w, float eps, View<fp8_e4m3, 2> yq,
                       View<float, 2> ys, stream_t stream);

}  // namespace r1::cuda
