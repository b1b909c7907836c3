// SPDX-License-Identifier: MIT
// DeepSeek's FP8 GEMM on the GPU, the CUDA twin of ref::linear_fp8_native (host-callable
// declaration; definition in linear_fp8.cuh, instantiated in src/cuda/linear_fp8.cu):
//   y[m, n] = sum_b xs[m, b] * ws[n / 128, b] * (sum_{k in block b} xq[m, k] * wq[n, k])
// with the inner sums in fp32 and each 128-wide block promoted into an fp32 accumulator (the
// "two-level accumulation" DeepSeek's kernels use), bf16 output. N may be ragged (R1's kv_a has
// 576 rows: its last scale block covers 64); K must be a multiple of 128.
#pragma once

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/kernels/cuda/gemm_policy.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

namespace detail {
void linear_fp8_native_128(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                           View<const float, 2> ws, View<bf16, 2> y, stream_t stream, GemmBackend backend);
}

/// FP8 block-scaled GEMM with DeepSeek's semantics.
/// @param xq [M, K] e4m3 activations from act_quant<128>; rows 16-byte aligned; K % 128 == 0
/// @param xs [M, K / 128] f32 activation scales, any strides. The cuBLASLt backend needs them
///           MN-major and dense (strides {1, M}: see mn_major_scales); r1's kernel reads any layout
/// @param wq [N, K] e4m3 weight, rows 16-byte aligned
/// @param ws [ceil(N / 128), K / 128] f32 weight_scale_inv (multipliers)
/// @param y  [M, N] bf16 output
/// @param backend cublaslt (Hopper only), own (mma.sync), own_sm80, own_wgmma (r1's TMA + wgmma
///           kernel, sm_90a; opt-in until validated on a device) or automatic (the per-shape
///           default, falling back to own where cuBLASLt cannot take the operands)
template <int BN, int BK>
void linear_fp8_native(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                       View<const float, 2> ws, View<bf16, 2> y, stream_t stream,
                       GemmBackend backend = GemmBackend::automatic) {
  static_assert(BN == 128 && BK == 128, "cuda::linear_fp8_native implements DeepSeek's 128 x 128 blocks");
  detail::linear_fp8_native_128(xq, xs, wq, ws, y, stream, backend);
}

/// The same with a compile-time policy: linear_fp8_native<128, 128, gemm::Own>(...).
template <int BN, int BK, gemm::Policy P>
void linear_fp8_native(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                       View<const float, 2> ws, View<bf16, 2> y, stream_t stream) {
  linear_fp8_native<BN, BK>(xq, xs, wq, ws, y, stream, P::backend);
}

}  // namespace r1::cuda
