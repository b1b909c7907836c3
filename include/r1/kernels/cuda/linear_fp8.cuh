// SPDX-License-Identifier: MIT
// Definition of r1::cuda::linear_fp8_native (declared in linear_fp8.hpp): host checks, then
// cuBLASLt's block-scaled FP8 GEMM, r1's mma.sync kernel (e4m3 mma where the machine code has it,
// e4m3 decoded to f16 in registers on sm_80) or r1's Hopper TMA + wgmma kernel (own_wgmma).
#pragma once

#include <string>

#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/cublaslt.hpp"
#include "r1/kernels/cuda/fp8_operands.cuh"
#include "r1/kernels/cuda/gemm_mma.cuh"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/kernels/cuda/linear_fp8.hpp"

namespace r1::cuda::detail {

/// The implementation; src/cuda/linear_fp8.cu defines linear_fp8_native_128 with it.
inline void linear_fp8_native_impl(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                                   View<const float, 2> ws, View<bf16, 2> y, stream_t stream, GemmBackend backend) {
  const char* op = "cuda.linear_fp8_native";
  require_device(wq, op, "weight");
  require_device(ws, op, "weight_scale_inv");
  require_matrix(wq, op, "weight");
  const int64_t m = xq.shape[0], k = xq.shape[1], n = wq.shape[0];
  R1_CHECK(wq.shape[1] == k, op, "xq has ", k, " input features, weight has ", wq.shape[1], " (weight shape [",
           wq.shape[0], ", ", wq.shape[1], "])");
  check_fp8_activations(xq, xs, y, n, op);
  R1_CHECK(rows_vector_aligned(wq, 16), op, "weight rows must start on 16-byte boundaries (row stride ",
           row_stride(wq), ")");
  R1_CHECK(ws.shape[0] == ceil_div(n, 128) && ws.shape[1] == k / 128, op, "weight_scale_inv has shape [",
           ws.shape[0], ", ", ws.shape[1], "], expected [", ceil_div(n, 128), ", ", k / 128, "] for a [", n,
           ", ", k, "] weight in 128x128 blocks");
  if (m == 0 || n == 0) return;
  if (backend == GemmBackend::automatic) {
    backend = gemm_default_backend(GemmKind::fp8_block, m, n, k);
    // The default falls back to r1's kernel where cuBLASLt cannot take these operands (device,
    // scale layout) or has no algorithm for them.
    if (backend == GemmBackend::cublaslt) {
      if (k > 0 && cublaslt::fp8_block_unsupported(xs, ws, m).empty() &&
          cublaslt::try_linear_fp8_block(xq, xs, wq, ws, y, stream)) {
        return;
      }
      backend = GemmBackend::own;
    }
  }
  if (backend == GemmBackend::cublaslt) {
    cublaslt::linear_fp8_block(xq, xs, wq, ws, y, stream);
    return;
  }
  // own: the Hopper kernel from kOwnWgmmaMinRows rows where sm_90a code runs.
  const bool own_hopper = backend == GemmBackend::own && m >= kOwnWgmmaMinRows;
  if ((backend == GemmBackend::own_wgmma || own_hopper) && k > 0) {
    // r1's Hopper TMA + wgmma kernel: the grouped one over one expert owning every row (persistent,
    // its K blocks' promotion overlapped with the next block's wgmmas); without sm_90a code the
    // mma.sync kernel below.
    if (detail::dense_wgmma_fp8(xq, xs, wq, ws, y, stream)) return;
  }
  mma::Params p = fp8_params(xq, xs, y, n);
  p.b = reinterpret_cast<const uint8_t*>(wq.data);
  p.ldb = row_stride(wq);
  p.ws = ws.data;
  p.ws_rs = ws.stride[0];
  p.ws_bs = ws.stride[1];
  const double bytes = double(m * k + n * k) + 2.0 * double(m * n) + 4.0 * double(m * (k / 128)) +
                       4.0 * double(ws.shape[0] * ws.shape[1]);
  const double flops = 2.0 * double(m) * double(n) * double(k);
  if (fp8_operand(backend) == mma::Operand::e4m3) {
    mma::launch_dense<mma::Operand::e4m3, true, bf16>(p, bytes, flops, stream, op);
  } else {
    mma::launch_dense<mma::Operand::e4m3_as_f16, true, bf16>(p, bytes, flops, stream, op);
  }
}

}  // namespace r1::cuda::detail
