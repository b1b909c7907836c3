// SPDX-License-Identifier: MIT
// The vendor baseline: r1's GEMMs through NVIDIA cuBLASLt (host-callable declarations; the
// definitions are in cublaslt.cuh, instantiated in src/cuda/cublaslt.cu). Normally reached through
// r1::cuda::linear / linear_fp8_native with GemmBackend::cublaslt; callable directly as well.
//
// Layout: y[M, N] row-major is cuBLAS's column-major D[N, M] = W . X with W = w [N, K] row-major
// (column-major K x N, transposed) and X = x [M, K] row-major (column-major K x M).
// One cuBLASLt handle per device (created on first use, kept for the life of the process); the
// algorithm for each shape, layout and alignment is chosen once by cuBLASLt's heuristic and cached;
// the workspace that algorithm asks for comes from r1's stream-ordered device pool on the caller's
// stream, so concurrent streams never share one and graph capture sees only pool operations.
#pragma once

#include <string>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda::cublaslt {

/// y = x . w^T, bf16 operands, fp32 compute.
/// @param x [M, K] bf16, unit-stride rows
/// @param w [N, K] bf16, unit-stride rows
/// @param y [M, N] bf16 or f32, unit-stride rows
template <class TY>
void linear(View<const bf16, 2> x, View<const bf16, 2> w, View<TY, 2> y, stream_t stream);

/// linear, or false when cuBLASLt has no algorithm for this shape / layout / alignment on this GPU
/// (nothing is enqueued then; automatic dispatch falls back to r1's kernel). Bad arguments throw.
template <class TY>
bool try_linear(View<const bf16, 2> x, View<const bf16, 2> w, View<TY, 2> y, stream_t stream);

/// DeepSeek's FP8 GEMM with cuBLASLt's block scaling (CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F on
/// the weight, VEC128_32F on the activations; Hopper only):
///   y[m, n] = sum_b xs[m, b] * ws[n / 128, b] * (sum_{k in block b} xq[m, k] * wq[n, k])
/// @param xq [M, K] e4m3, K % 128 == 0
/// @param xs [M, K / 128] f32 stored MN-major and dense: strides {1, M} (see mn_major_scales)
/// @param wq [N, K] e4m3
/// @param ws [ceil(N / 128), K / 128] f32, contiguous row-major (the checkpoint's weight_scale_inv)
/// @param y  [M, N] bf16
void linear_fp8_block(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                      View<const float, 2> ws, View<bf16, 2> y, stream_t stream);

/// linear_fp8_block, or false when cuBLASLt has no algorithm for the call (nothing is enqueued).
bool try_linear_fp8_block(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                          View<const float, 2> ws, View<bf16, 2> y, stream_t stream);

/// Empty when cuBLASLt's FP8 block scaling can run these operands on the current device; otherwise
/// the reason it cannot (device generation or scale layout), for error messages and dispatch.
std::string fp8_block_unsupported(View<const float, 2> xs, View<const float, 2> ws, int64_t m);

}  // namespace r1::cuda::cublaslt
