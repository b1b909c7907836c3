// SPDX-License-Identifier: MIT
// Fp8Block<BN, BK, Mode>: DeepSeek-V3's FP8 weights. Each weight Wq[N, K] is float8 e4m3 and comes
// with an f32 `weight_scale_inv` S[ceil(N/BN), ceil(K/BK)] that *multiplies* (the name is
// historical): W[n, k] = float(Wq[n, k]) * S[n / BN, k / BK]. Edge blocks may be ragged in N and K
// (R1's kv_a has N = 576; the tiny fixture has K = 192).
//
// Two compute modes (see docs/model.md):
//  - dequant: the weight is dequantized and the GEMM runs in fp32 on unquantized activations
//    (DeepSeek's default `gemm_impl = "bf16"`, and what the Hugging Face oracle computes).
//  - native:  activations are quantized per token per BK channels (DeepSeek's act_quant:
//    scale = max(amax, 1e-4) / 448, e4m3 round-to-nearest-even) and the block-scaled products are
//    accumulated in fp32 (DeepSeek's fp8_gemm, DeepGEMM). Needs K % BK == 0 for every FP8 linear;
//    anything else is an r1::Error naming the layer and K, never a silent fallback.
#pragma once

#include "r1/core/dtype.hpp"

namespace r1::quant {

enum class Fp8Compute : uint8_t { dequant, native };

inline const char* fp8_compute_name(Fp8Compute m) {
  return m == Fp8Compute::dequant ? "dequant" : "native";
}

/// Block-scaled float8 e4m3 weights.
/// @tparam BN   rows (output features) per scale block
/// @tparam BK   columns (input features) per scale block; also the activation-quantization group
/// @tparam Mode dequant or native (see the file comment)
template <int BN, int BK, Fp8Compute Mode>
struct Fp8Block {
  static_assert(BN > 0 && BK > 0, "Fp8Block: block sizes must be positive");
  static_assert(BN % 16 == 0 && BK % 16 == 0,
                "Fp8Block: block sizes must be multiples of 16 (tensor-core tile granularity)");
  using weight_type = fp8_e4m3;
  using scale_type = float;
  static constexpr DType weight_dtype = DType::f8_e4m3;
  static constexpr DType scale_dtype = DType::f32;
  static constexpr int block_n = BN;
  static constexpr int block_k = BK;
  static constexpr Fp8Compute mode = Mode;
  static constexpr bool has_scale = true;
  static constexpr bool quantizes_activations = Mode == Fp8Compute::native;
  /// Activations are quantized in groups of this many channels (1 x BK), aligned with the weight's
  /// K blocks so one activation scale and one weight scale cover each partial dot product.
  static constexpr int act_group = BK;
};

/// The published DeepSeek-V3/R1 format, dequantized weights, fp32 math.
using Fp8Dequant = Fp8Block<128, 128, Fp8Compute::dequant>;
/// The published format with DeepSeek's FP8 compute semantics (1x128 activations).
using Fp8Native = Fp8Block<128, 128, Fp8Compute::native>;

template <class Q>
inline constexpr bool is_fp8_block_v = false;
template <int BN, int BK, Fp8Compute M>
inline constexpr bool is_fp8_block_v<Fp8Block<BN, BK, M>> = true;

}  // namespace r1::quant
