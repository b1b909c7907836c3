// SPDX-License-Identifier: MIT
// What the dense and grouped FP8 GEMMs share on the host: the checks of the quantized activations,
// their scales and the output, the kernel-parameter fields they fill, and the choice between the
// e4m3 mma.sync kernels and the sm_80 ones that decode e4m3 to f16 in registers.
#pragma once

#include "r1/core/dtype.hpp"
#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/gemm_mma.cuh"
#include "r1/kernels/cuda/gemm_policy.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda::detail {

/// True when r1's kernels run e4m3 mma.sync on the current device: their machine code is for
/// sm_89 or newer (a "90a;80" build runs its sm_80 code on an sm_89 GPU).
inline bool native_fp8_mma() { return binary_arch() >= 89; }

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

}  // namespace r1::cuda::detail
