// SPDX-License-Identifier: MIT
// Rotary position embedding on adjacent pairs, the CUDA twin of ref::rope_interleaved
// (host-callable declaration; definition in rope.cuh, instantiated in src/cuda/rope.cu for x in
// bf16 or f32 and int32 or int64 positions). Same arithmetic as the ref, for token t and pair i:
//   angle = float(positions[t]) * inv_freq[i]              (fp32 product)
//   c, s  = float(cos(double angle)) * a, float(sin(double angle)) * a     (a = attention_factor)
//   (x0, x1) <- (x0 c - x1 s, x0 s + x1 c)                  (fp32, no fused multiply-add)
// cos/sin are evaluated in double and rounded to fp32 like the ref (once per token and pair, not per
// head, so their cost is negligible), which makes the result bit-identical to the ref except where
// CUDA's double cos/sin (1 ulp in double) and the host's round to different floats: about one value
// in 2^28.
#pragma once

#include <cstdint>

#include "r1/core/cuda.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// Rotates x in place.
/// @param x          [tokens, heads, dim] any strides (e.g. q_pe = q[:, :, 128:192], k_pe with heads 1)
/// @param positions  [tokens] absolute positions (int32 or int64), device, any stride
/// @param inv_freq   [dim / 2] f32 frequencies (ref::RopeTable::inv_freq), device, any stride
/// @param attention_factor  multiplies cos and sin (ref::RopeTable::attention_factor)
template <class T, class TP>
void rope_interleaved(View<T, 3> x, View<const TP, 1> positions, View<const float, 1> inv_freq,
                      float attention_factor, stream_t stream);

}  // namespace r1::cuda
