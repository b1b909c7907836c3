// SPDX-License-Identifier: MIT
// Dense bf16 linear layer on the GPU, the CUDA twin of ref::linear (host-callable declaration):
//   y[m, n] = sum_k x[m, k] * w[n, k]      bf16 operands, fp32 accumulation, bf16 or f32 output
// Runs on the stream given, asynchronously; capturable in a CUDA graph once each shape has run
// once (the first call per shape may query cuBLASLt and set kernel attributes).
// Definitions: linear.cuh, instantiated for TY = bf16 and float in src/cuda/linear.cu.
#pragma once

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/kernels/cuda/gemm_policy.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// y = x . w^T on the device.
/// @param x       [M, K] bf16 activations, unit-stride rows (any row stride)
/// @param w       [N, K] bf16 weight (PyTorch layout), unit-stride rows
/// @param y       [M, N] bf16 or f32 output, unit-stride rows; must not overlap x or w
/// @param backend who computes it (GemmBackend::automatic: the per-shape default; own_wgmma, r1's
///                Hopper kernel, takes bf16 output only)
template <class TY>
void linear(View<const bf16, 2> x, View<const bf16, 2> w, View<TY, 2> y, stream_t stream,
            GemmBackend backend = GemmBackend::automatic);

/// The same with a compile-time policy: linear<gemm::CublasLt>(x, w, y, stream).
template <gemm::Policy P, class TY>
void linear(View<const bf16, 2> x, View<const bf16, 2> w, View<TY, 2> y, stream_t stream) {
  linear<TY>(x, w, y, stream, P::backend);
}

}  // namespace r1::cuda
