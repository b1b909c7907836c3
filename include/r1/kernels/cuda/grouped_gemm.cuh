// SPDX-License-Identifier: MIT
// Definitions of the grouped (MoE expert) GEMMs declared in grouped_gemm.hpp: host checks, then
// r1's persistent grouped mma.sync kernel (gemm_mma.cuh) or, for own_wgmma (explicit, or what
// `automatic` picks for large row counts: grouped_gemm_default_backend), the Hopper TMA + wgmma
// kernel (gemm_wgmma_grouped.cuh) where it applies: sm_90a machine code and stacked weights (its
// TMA maps describe one [E, N, K] tensor; per-expert pointer tables stay on the mma.sync kernel).
// src/cuda/grouped_gemm.cu defines the exported functions with the *_impl functions below.
#pragma once

#include <type_traits>

#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/fp8_operands.cuh"
#include "r1/kernels/cuda/gemm_mma.cuh"
#include "r1/kernels/cuda/gemm_wgmma_grouped.cuh"
#include "r1/kernels/cuda/grouped_gemm.hpp"

namespace r1::cuda::detail {

inline constexpr int64_t kMaxExperts = kGroupedMaxExperts;

/// Checks an expert table against the expected [experts, rows, cols] and, for a stacked tensor,
/// the 16-byte alignment cp.async needs.
template <class T>
void check_experts(const ExpertWeights<T>& w, int64_t experts, int64_t rows, int64_t cols, const char* op,
                   const char* name) {
  R1_CHECK(w.data != nullptr || w.ptrs != nullptr, op, name, " holds no weights");
  R1_CHECK(w.experts == experts && w.rows == rows && w.cols == cols, op, name, " are ", w.experts, " x [",
           w.rows, ", ", w.cols, "], expected ", experts, " x [", rows, ", ", cols, "]");
  R1_CHECK(w.row_stride >= cols, op, name, " rows overlap (row stride ", w.row_stride, " < ", cols, ")");
  if (w.data) {
    R1_CHECK(experts <= 1 || w.expert_stride >= rows * w.row_stride, op, name, " experts overlap (expert stride ",
             w.expert_stride, ")");
  }
}

template <class T>
void check_experts_aligned(const ExpertWeights<T>& w, const char* op, const char* name) {
  const int64_t es = int64_t(sizeof(T));
  const bool ok = (w.row_stride * es) % 16 == 0 &&
                  (!w.data || (aligned_to(w.data, 16) && (w.expert_stride * es) % 16 == 0));
  R1_CHECK(ok, op, name, " rows must start on 16-byte boundaries (row stride ", w.row_stride,
           ", expert stride ", w.expert_stride, ")");
}

/// True when a grouped call runs on the Hopper wgmma kernel: `backend` (automatic resolved by the
/// per-shape default) is own_wgmma, the weights (and FP8 scales) are stacked tensors, and this
/// device runs r1's sm_90a machine code. Otherwise the mma.sync kernel runs the call: own_wgmma
/// with pointer tables or on another GPU falls back to it rather than failing.
inline bool grouped_uses_wgmma(GemmBackend backend, GemmKind kind, int64_t rows, int64_t experts, int64_t n,
                               int64_t k, bool stacked) {
  if (backend == GemmBackend::automatic) backend = grouped_gemm_default_backend(kind, rows, experts, n, k);
  // (K == 0 has no tile for a TMA map to describe: the mma.sync kernel writes its zeros.)
  return backend == GemmBackend::own_wgmma && stacked && k > 0 && experts <= wgmma::kMaxGroups &&
         binary_arch() == 90;
}

/// The wgmma grouped kernel's parameters shared by its bf16 and FP8 forms: sizes, the device
/// offsets [groups + 1] (null: one expert owning every row, groups = 1) and the output y [rows, N].
inline wgmma::GroupedParams grouped_wgmma_params(int64_t rows, int64_t n, const int32_t* offsets, int64_t groups,
                                                 View<bf16, 2> y) {
  wgmma::GroupedParams gp;
  gp.m = int(rows);
  gp.n = int(n);
  gp.groups = int(groups);
  gp.offsets = offsets;
  gp.y = y.data;
  gp.ldy = row_stride(y);
  gp.y_pairs = aligned_to(y.data, 4) && gp.ldy % 2 == 0;
  gp.y_vec = aligned_to(y.data, 16) && gp.ldy % 8 == 0;
  return gp;
}

/// The dense own_wgmma GEMMs: y [M, N] = x [M, K] . w [N, K]^T on the Hopper grouped kernel with
/// one expert owning every row (no offsets array: nothing to allocate or write first). Operand
/// shapes are checked by the callers (linear, linear_fp8_native). False, with nothing launched,
/// where the kernel does not apply (no sm_90a machine code, K = 0, rows off 16 bytes): the caller
/// runs its mma.sync kernel.
inline bool dense_wgmma_bf16_impl(View<const bf16, 2> x, View<const bf16, 2> w, View<bf16, 2> y, stream_t stream) {
  const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[0];
  if (binary_arch() != 90 || k == 0 || k % 8 != 0 || !rows_vector_aligned(x, 16) || !rows_vector_aligned(w, 16)) {
    return false;
  }
  wgmma::GroupedParams gp = grouped_wgmma_params(m, n, nullptr, 1, y);
  wgmma::launch_grouped<false>(x.data, row_stride(x) * 2, w.data, row_stride(w) * 2, 0, k * 2, gp, stream,
                               "cuda.linear");
  return true;
}

inline bool dense_wgmma_fp8_impl(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                                 View<const float, 2> ws, View<bf16, 2> y, stream_t stream) {
  const int64_t m = xq.shape[0], k = xq.shape[1], n = wq.shape[0];
  if (binary_arch() != 90 || k == 0 || !rows_vector_aligned(xq, 16) || !rows_vector_aligned(wq, 16)) return false;
  wgmma::GroupedParams gp = grouped_wgmma_params(m, n, nullptr, 1, y);
  gp.xs = xs.data;
  gp.xs_rs = xs.stride[0];
  gp.xs_bs = xs.stride[1];
  gp.ws = ws.data;
  gp.ws_rs = ws.stride[0];
  gp.ws_bs = ws.stride[1];
  wgmma::launch_grouped<true>(xq.data, row_stride(xq), wq.data, row_stride(wq), 0, k, gp, stream,
                              "cuda.linear_fp8_native");
  return true;
}

inline void grouped_linear_impl(View<const bf16, 2> x, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& w,
                                View<bf16, 2> y, stream_t stream, GemmBackend backend) {
  const char* op = "cuda.grouped_linear";
  R1_CHECK(backend != GemmBackend::cublaslt, op, "there is no ", gemm_backend_name(backend),
           " grouped-GEMM policy (use own, own_sm80, own_wgmma or automatic)");
  require_device(x, op, "x");
  require_device(y, op, "y");
  require_matrix(x, op, "x");
  require_matrix(y, op, "y");
  check_grouped_offsets(offsets, op);
  const int64_t rows = x.shape[0], k = x.shape[1], n = y.shape[1], experts = offsets.shape[0] - 1;
  require_dim(y, 0, rows, op, "y", "rows");
  check_experts(w, experts, n, k, op, "expert weights");
  check_experts_aligned(w, op, "expert weights");
  R1_CHECK(k % 8 == 0 && rows_vector_aligned(x, 16), op, "x rows must be 16-byte aligned with K % 8 == 0 (K = ",
           k, ", row stride ", row_stride(x), ")");
  require_int32(rows, op, "rows");
  require_int32(n, op, "N");
  require_int32(k, op, "K");
  if (rows == 0 || n == 0) return;
  if (grouped_uses_wgmma(backend, GemmKind::bf16, rows, experts, n, k, w.data != nullptr)) {
    wgmma::GroupedParams gp = grouped_wgmma_params(rows, n, offsets.data, experts, y);
    wgmma::launch_grouped<false>(x.data, row_stride(x) * 2, w.data, w.row_stride * 2, w.expert_stride * 2, k * 2,
                                 gp, stream, op);
    return;
  }
  mma::Params p;
  p.a = reinterpret_cast<const uint8_t*>(x.data);
  p.lda = row_stride(x) * 2;
  p.b = reinterpret_cast<const uint8_t*>(w.data);
  p.ldb = w.row_stride * 2;
  p.b_group = w.expert_stride * 2;
  p.b_ptrs = reinterpret_cast<const void* const*>(w.ptrs);
  p.y = y.data;
  p.ldy = row_stride(y);
  p.m = int(rows);
  p.n = int(n);
  p.k = int(k);
  p.k_bytes = k * 2;
  p.kb_total = int(ceil_div(p.k_bytes, mma::kStageBytes));
  p.offsets = offsets.data;
  p.groups = int(experts);
  p.y_pairs = aligned_to(y.data, 4) && p.ldy % 2 == 0;
  mma::launch_grouped<mma::Operand::bf16, bf16>(p, stream, op);
}

inline void grouped_linear_fp8_native_impl(View<const fp8_e4m3, 2> xq, View<const float, 2> xs,
                                           View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& wq,
                                           const ExpertWeights<float>& ws, View<bf16, 2> y, stream_t stream,
                                           GemmBackend backend) {
  const char* op = "cuda.grouped_linear_fp8_native";
  R1_CHECK(backend != GemmBackend::cublaslt, op, "there is no ", gemm_backend_name(backend),
           " grouped-GEMM policy (use own, own_sm80, own_wgmma or automatic)");
  check_grouped_offsets(offsets, op);
  const int64_t rows = xq.shape[0], k = xq.shape[1], n = y.shape[1], experts = offsets.shape[0] - 1;
  check_fp8_activations(xq, xs, y, n, op);
  check_experts(wq, experts, n, k, op, "expert weights");
  check_experts_aligned(wq, op, "expert weights");
  check_experts(ws, experts, ceil_div(n, 128), k / 128, op, "expert weight scales");
  if (rows == 0 || n == 0) return;
  if (grouped_uses_wgmma(backend, GemmKind::fp8_block, rows, experts, n, k, wq.data != nullptr && ws.data != nullptr)) {
    wgmma::GroupedParams gp = grouped_wgmma_params(rows, n, offsets.data, experts, y);
    gp.xs = xs.data;
    gp.xs_rs = xs.stride[0];
    gp.xs_bs = xs.stride[1];
    gp.ws = ws.data;
    gp.ws_rs = ws.row_stride;
    gp.ws_bs = 1;
    gp.ws_group = ws.expert_stride;
    wgmma::launch_grouped<true>(xq.data, row_stride(xq), wq.data, wq.row_stride, wq.expert_stride, k, gp, stream, op);
    return;
  }
  mma::Params p = fp8_params(xq, xs, y, n);
  p.b = reinterpret_cast<const uint8_t*>(wq.data);
  p.ldb = wq.row_stride;
  p.b_group = wq.expert_stride;
  p.b_ptrs = reinterpret_cast<const void* const*>(wq.ptrs);
  p.ws = ws.data;
  p.ws_ptrs = ws.ptrs;
  p.ws_rs = ws.row_stride;
  p.ws_bs = 1;
  p.ws_group = ws.expert_stride;
  p.offsets = offsets.data;
  p.groups = int(experts);
  if (fp8_operand(backend) == mma::Operand::e4m3) {
    mma::launch_grouped<mma::Operand::e4m3, bf16>(p, stream, op);
  } else {
    mma::launch_grouped<mma::Operand::e4m3_as_f16, bf16>(p, stream, op);
  }
}

}  // namespace r1::cuda::detail
