// SPDX-License-Identifier: MIT
// SwiGLU on the GPU, the CUDA twin of ref::swiglu (host-callable declarations; definitions in
// swiglu.cuh, instantiated in src/cuda/swiglu.cu): out = silu(gate) * up with
// silu(z) = z / (1 + exp(-z)) in fp32 (CUDA's full-precision expf, IEEE division: within a few fp32
// ulps of the ref's std::exp, so bf16 outputs match the ref to one bf16 ulp, rarely).
// gate and up may be column slices of one [rows, 2 * width] GEMM output (any row strides).
#pragma once

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// @param gate [rows, width] unit-stride rows
/// @param up   [rows, width] unit-stride rows
/// @param out  [rows, width] unit-stride rows; may alias gate or up exactly
template <class TG, class TU, class TY>
void swiglu(View<const TG, 2> gate, View<const TU, 2> up, View<TY, 2> out, stream_t stream);

/// SwiGLU fused with 1 x Group FP8 activation quantization (the input of the FP8 down projection),
/// saving a write and a read of the intermediate. Bit-identical to swiglu with a bf16 output
/// followed by act_quant<Group, bf16>: the product is rounded to bf16 first, then
///   ys[r, g] = max(amax_g, 1e-4) / 448,  yq[r, i] = e4m3_rne_satfinite(bf16(y[r, i]) / ys[r, g]).
/// @param yq [rows, width] e4m3, unit-stride rows; width % Group == 0
/// @param ys [rows, width / Group] f32 scales, any strides (e.g. cuda::mn_major_scales)
template <int Group, class TG, class TU>
void swiglu_quant_fp8(View<const TG, 2> gate, View<const TU, 2> up, View<fp8_e4m3, 2> yq, View<float, 2> ys,
                      stream_t stream);

}  // namespace r1::cuda
