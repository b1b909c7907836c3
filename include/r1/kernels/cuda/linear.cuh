// SPDX-License-Identifier: MIT
// Definition of r1::cuda::linear (declared in linear.hpp): argument checks on the host, then the
// chosen backend: cuBLASLt, r1's mma.sync kernel (gemm_mma.cuh) with 16-byte cp.async staging
// when rows allow it and an element-wise loader for odd K or unaligned rows, or (own_wgmma, and own
// from kOwnWgmmaMinRows rows; bf16 output) r1's Hopper TMA + wgmma kernel: the grouped one
// (gemm_wgmma_grouped.cuh) with one expert owning every row, rather than a second dense kernel of
// the same tile, pipeline and epilogue.
#pragma once

#include <type_traits>

#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/cublaslt.hpp"
#include "r1/kernels/cuda/gemm_mma.cuh"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/kernels/cuda/linear.hpp"

namespace r1::cuda {

namespace detail {
/// Fills the operand fields of mma::Params for a dense bf16 GEMM.
template <class TY>
mma::Params bf16_params(const View<const bf16, 2>& x, const View<const bf16, 2>& w, const View<TY, 2>& y) {
  mma::Params p;
  p.a = reinterpret_cast<const uint8_t*>(x.data);
  p.lda = row_stride(x) * 2;
  p.b = reinterpret_cast<const uint8_t*>(w.data);
  p.ldb = row_stride(w) * 2;
  p.y = y.data;
  p.ldy = row_stride(y);
  p.m = int(x.shape[0]);
  p.n = int(w.shape[0]);
  p.k = int(x.shape[1]);
  p.k_bytes = x.shape[1] * 2;
  p.kb_total = int(ceil_div(p.k_bytes, mma::kStageBytes));
  p.y_pairs = aligned_to(y.data, 2 * sizeof(TY)) && p.ldy % 2 == 0;
  return p;
}
}  // namespace detail

template <class TY>
void linear(View<const bf16, 2> x, View<const bf16, 2> w, View<TY, 2> y, stream_t stream, GemmBackend backend) {
  static_assert(std::is_same_v<TY, bf16> || std::is_same_v<TY, float>, "cuda::linear: y is bf16 or f32");
  const char* op = "cuda.linear";
  detail::require_device(x, op, "x");
  detail::require_device(w, op, "weight");
  detail::require_device(y, op, "y");
  detail::require_matrix(x, op, "x");
  detail::require_matrix(w, op, "weight");
  detail::require_matrix(y, op, "y");
  const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[0];
  R1_CHECK(w.shape[1] == k, op, "x has ", k, " input features, weight has ", w.shape[1], " (weight shape [",
           w.shape[0], ", ", w.shape[1], "])");
  detail::require_dim(y, 0, m, op, "y", "rows");
  detail::require_dim(y, 1, n, op, "y", "columns");
  detail::require_int32(m, op, "M");
  detail::require_int32(n, op, "N");
  detail::require_int32(k, op, "K");
  if (m == 0 || n == 0) return;
  if (backend == GemmBackend::own_wgmma) {
    R1_CHECK((std::is_same_v<TY, bf16>), op, "own_wgmma (r1's Hopper bf16 GEMM) writes bf16 output; for f32 ",
             "output use own, cublaslt or automatic");
  }
  // own: the Hopper kernel from kOwnWgmmaMinRows rows where sm_90a code runs (bf16 output).
  const bool own_hopper = backend == GemmBackend::own && std::is_same_v<TY, bf16> && m >= kOwnWgmmaMinRows;
  if (backend == GemmBackend::own_wgmma || own_hopper) {
    if constexpr (std::is_same_v<TY, bf16>) {
      // The Hopper kernel needs sm_90a code and 16-byte rows (TMA); otherwise (odd K, offset views,
      // other GPUs) the mma.sync kernel below runs.
      if (detail::dense_wgmma_bf16(x, w, y, stream)) return;
    }
  }
  const bool by_default = backend == GemmBackend::automatic;
  if (by_default) backend = gemm_default_backend(GemmKind::bf16, m, n, k);
  if (backend == GemmBackend::cublaslt && k > 0) {
    // The default falls back to r1's kernel where cuBLASLt has no algorithm; an explicit request throws.
    if (!by_default) {
      cublaslt::linear(x, w, y, stream);
      return;
    }
    if (cublaslt::try_linear(x, w, y, stream)) return;
  }
  // r1's own kernel (own and own_sm80 run the same bf16 mma.sync code; K = 0 writes zeros).
  const detail::mma::Params p = detail::bf16_params(x, w, y);
  const double bytes = 2.0 * double(m * k + n * k) + double(sizeof(TY)) * double(m * n);
  const double flops = 2.0 * double(m) * double(n) * double(k);
  const bool aligned = k % 8 == 0 && detail::rows_vector_aligned(x, 16) && detail::rows_vector_aligned(w, 16);
  if (aligned) {
    detail::mma::launch_dense<detail::mma::Operand::bf16, true, TY>(p, bytes, flops, stream, op);
  } else {
    detail::mma::launch_dense<detail::mma::Operand::bf16, false, TY>(p, bytes, flops, stream, op);
  }
}

}  // namespace r1::cuda
