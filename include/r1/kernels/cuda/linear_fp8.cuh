// SPDX-License-Identifier: MIT
// Definition of r1::cuda::linear_fp8_native (declared in linear_fp8.hpp): host checks, then
// cuBLASLt's block-scaled FP8 GEMM or r1's mma.sync kernel (e4m3 mma where the machine code has
// it, e4m3 decoded to f16 in registers on sm_80).
#pragma once

#include <string>

#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/cublaslt.cuh"
#include "r1/kernels/cuda/gemm_mma.cuh"
#include "r1/kernels/cuda/linear_fp8.hpp"

namespace r1::cuda::detail {

/// True when r1's kernels run e4m3 mma.sync on the current device: their machine code is for
/// sm_89 or newer (a "90a;80" build runs its sm_80 code on an sm_89 GPU).
inline bool native_fp8_mma() {
  constexpr auto probe = mma::dense_kernel<mma::TileRows16, mma::Operand::e4m3, true, bf16>;
  return prepare_kernel<probe>(mma::TileRows16::THREADS, mma::TileRows16::SMEM, "cuda.linear_fp8")
             .binary_arch >= 89;
}

/// The FP8 operand encoding the own kernels use for `backend` on this device.
inline mma::Operand fp8_operand(GemmBackend backend) {
  return backend != GemmBackend::own_sm80 && native_fp8_mma() ? mma::Operand::e4m3 : mma::Operand::e4m3_as_f16;
}

/// Checks shared by the dense and grouped FP8 GEMMs: activations, their scales, output rows.
inline void check_fp8_activations(const View<const fp8_e4m3, 2>& xq, const View<const float, 2>& xs,
                                  const View<bf16, 2>& y, int64_t n, const char* op) {
  require_device(xq, op, "xq");
  require_device(xs, op, "x scale");
  require_device(y, op, "y");
  require_matrix(xq, op, "xq");
  require_matrix(y, op, "y");
  const int64_t m = xq.shape[0], k = xq.shape[1];
  R1_CHECK(k % 128 == 0, op, "K = ", k, " is not a multiple of the 128-channel block: activations cannot be ",
           "quantized 1 x 128");
  R1_CHECK(rows_vector_aligned(xq, 16), op, "xq rows must start on 16-byte boundaries (row stride ",
           row_stride(xq), ")");
  require_dim(xs, 0, m, op, "x scale", "rows");
  require_dim(xs, 1, k / 128, op, "x scale", "groups");
  require_dim(y, 0, m, op, "y", "rows");
  require_dim(y, 1, n, op, "y", "columns");
  require_int32(m, op, "M");
  require_int32(n, op, "N");
  require_int32(k, op, "K");
}

/// Fills the FP8 operand fields of mma::Params (weight fields are the caller's).
inline mma::Params fp8_params(const View<const fp8_e4m3, 2>& xq, const View<const float, 2>& xs,
                              const View<bf16, 2>& y, int64_t n) {
  mma::Params p;
  p.a = reinterpret_cast<const uint8_t*>(xq.data);
  p.lda = row_stride(xq);
  p.y = y.data;
  p.ldy = row_stride(y);
  p.m = int(xq.shape[0]);
  p.n = int(n);
  p.k = int(xq.shape[1]);
  p.k_bytes = xq.shape[1];
  p.kb_total = int(xq.shape[1] / 128);
  p.xs = xs.data;
  p.xs_rs = xs.stride[0];
  p.xs_bs = xs.stride[1];
  p.y_pairs = aligned_to(y.data, 4) && p.ldy % 2 == 0;
  return p;
}

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
    // The default falls back to r1's kernel where cuBLASLt cannot take these operands.
    if (backend == GemmBackend::cublaslt && (k == 0 || !cublaslt::fp8_block_unsupported(xs, ws, m).empty())) {
      backend = GemmBackend::own;
    }
  }
  if (backend == GemmBackend::cublaslt) {
    cublaslt::linear_fp8_block(xq, xs, wq, ws, y, stream);
    return;
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
