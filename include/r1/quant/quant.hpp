// SPDX-License-Identifier: MIT
// The quantization policies r1 ships, and the concept a policy satisfies. Room is left for
// per-channel int8 and group-wise int4 policies (Int8PerChannel, Int4Group<128>): they would add a
// policy struct here, a ref linear twin in kernels/ref and a branch in layers/linear.hpp.
#pragma once

#include <concepts>

#include "r1/quant/dense.hpp"
#include "r1/quant/fp8_block.hpp"

namespace r1::quant {

/// What layers require of a quantization policy.
template <class Q>
concept Policy = requires {
  typename Q::weight_type;
  { Q::weight_dtype } -> std::convertible_to<DType>;
  { Q::has_scale } -> std::convertible_to<bool>;
  { Q::quantizes_activations } -> std::convertible_to<bool>;
};

static_assert(Policy<Dense<bf16>> && Policy<Dense<float>> && Policy<Fp8Dequant> && Policy<Fp8Native>);

}  // namespace r1::quant
