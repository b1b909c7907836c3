// SPDX-License-Identifier: MIT
// Dense<T>: unquantized weights stored as T (bf16 in the published checkpoints, f32 or f16 for
// user-made ones); the math runs in fp32 on whatever the activations are.
#pragma once

#include <type_traits>

#include "r1/core/dtype.hpp"

namespace r1::quant {

/// Unquantized linear weights of storage type `T`. A policy: an empty struct whose members
/// describe the storage; layers and kernels pick their code path from it at compile time.
/// @tparam T weight storage type: float, bf16 or fp16.
template <class T>
struct Dense {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, fp16>,
                "Dense<T>: T must be float, bf16 or fp16");
  using weight_type = T;
  static constexpr DType weight_dtype = dtype_v<T>;
  static constexpr bool has_scale = false;             // no weight_scale_inv tensor
  static constexpr bool quantizes_activations = false;  // inputs are used as they are
};

}  // namespace r1::quant
