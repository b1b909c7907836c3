// SPDX-License-Identifier: MIT
// Grouped GEMMs over MoE experts on the GPU (host-callable declarations; definitions in
// grouped_gemm.cuh, instantiated in src/cuda/grouped_gemm.cu). The rows of x are already permuted
// by expert (ref::moe_permute's layout): expert e owns rows [offsets[e], offsets[e + 1]), and
//   y[r, :] = x[r, :] . W_e^T        for every row r of expert e
// Every expert has the same [N, K] weight shape. offsets live in device memory and are read by the
// kernel, so nothing waits for the routing on the host and the call can be captured in a CUDA
// graph and replayed with new routing; experts may own 0 rows, or all of them.
//
// Weights: R1 checkpoints store one tensor per expert, so ExpertWeights takes either one [E, N, K]
// tensor (stacked at load time; one allocation, one stride) or a device array of E pointers to
// separate [N, K] tensors with a common row stride (the checkpoint's own tensors, no copy).
#pragma once

#include <cstdint>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/gemm_policy.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// Most experts a grouped GEMM takes (the kernels stage the offsets in shared memory).
inline constexpr int64_t kGroupedMaxExperts = 1024;

namespace detail {
/// The offsets argument of a grouped GEMM: device, contiguous, [E + 1] with 1 <= E <= 1024.
inline void check_grouped_offsets(const View<const int32_t, 1>& offsets, const char* op) {
  require_device(offsets, op, "offsets");
  R1_CHECK(offsets.shape[0] >= 2, op, "offsets has ", offsets.shape[0], " entries; it needs experts + 1 >= 2");
  R1_CHECK(offsets.stride[0] == 1, op, "offsets must be contiguous (stride ", offsets.stride[0], ")");
  R1_CHECK(offsets.shape[0] - 1 <= kGroupedMaxExperts, op, offsets.shape[0] - 1, " experts exceed the supported ",
           kGroupedMaxExperts);
}
}  // namespace detail

/// The [rows, cols] matrices of E experts (weights, or FP8 weight scales), in device memory.
template <class T>
struct ExpertWeights {
  const T* data = nullptr;         ///< [E, rows, cols] with strides {expert_stride, row_stride, 1}
  const T* const* ptrs = nullptr;  ///< or: device array [E] of [rows, cols] matrices (row_stride)
  int64_t experts = 0, rows = 0, cols = 0;
  int64_t row_stride = 0, expert_stride = 0;

  /// One stacked tensor [E, rows, cols] with unit-stride rows.
  static ExpertWeights stacked(View<const T, 3> v) {
    R1_CHECK(v.space == Space::cuda, "expert_weights", "weights must be in cuda memory, got ",
             space_name(v.space));
    R1_CHECK(v.shape[2] <= 1 || v.stride[2] == 1, "expert_weights", "rows must be unit-stride (stride ",
             v.stride[2], ")");
    ExpertWeights w;
    w.data = v.data;
    w.experts = v.shape[0];
    w.rows = v.shape[1];
    w.cols = v.shape[2];
    w.row_stride = v.shape[1] <= 1 ? v.shape[2] : v.stride[1];
    w.expert_stride = v.stride[0];
    return w;
  }
  /// E separate [rows, cols] matrices; `device_ptrs` is a device array of E pointers, each
  /// 16-byte aligned (it is read by the kernel; the pointers cannot be checked on the host).
  static ExpertWeights pointers(const T* const* device_ptrs, int64_t experts, int64_t rows, int64_t cols,
                                int64_t row_stride) {
    R1_CHECK(device_ptrs != nullptr && experts > 0 && rows >= 0 && cols >= 0 && row_stride >= cols,
             "expert_weights", "invalid pointer table (", experts, " experts of [", rows, ", ", cols,
             "], row stride ", row_stride, ")");
    ExpertWeights w;
    w.ptrs = device_ptrs;
    w.experts = experts;
    w.rows = rows;
    w.cols = cols;
    w.row_stride = row_stride;
    return w;
  }
};

/// bf16 grouped GEMM: y[r] = x[r] . W_e^T for the rows r of each expert e.
/// @param x       [R, K] bf16, rows grouped by expert; rows 16-byte aligned, K % 8 == 0
/// @param offsets [E + 1] int32 device array: expert e owns rows [offsets[e], offsets[e + 1]);
///                non-decreasing from 0 to R (values outside [0, R] are clamped, never followed)
/// @param w       E weights [N, K] bf16
/// @param y       [R, N] bf16
/// @param backend own, own_sm80, own_wgmma (Hopper TMA + wgmma kernel for stacked weights on
///                sm_90a; pointer tables or other GPUs run the mma.sync kernel) or automatic
///                (own_wgmma from large row counts, see grouped_gemm_default_backend). There is no
///                cuBLASLt grouped policy.
void grouped_linear(View<const bf16, 2> x, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& w,
                    View<bf16, 2> y, stream_t stream, GemmBackend backend = GemmBackend::automatic);

namespace detail {
/// The dense own_wgmma GEMMs on the Hopper grouped kernel with one expert owning every row (see
/// grouped_gemm.cuh): false, launching nothing, where that kernel does not apply.
bool dense_wgmma_bf16(View<const bf16, 2> x, View<const bf16, 2> w, View<bf16, 2> y, stream_t stream);
bool dense_wgmma_fp8(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                     View<const float, 2> ws, View<bf16, 2> y, stream_t stream);

void grouped_linear_fp8_native_128(View<const fp8_e4m3, 2> xq, View<const float, 2> xs,
                                   View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& wq,
                                   const ExpertWeights<float>& ws, View<bf16, 2> y, stream_t stream,
                                   GemmBackend backend);
}

/// FP8 grouped GEMM with DeepSeek's block scaling (linear_fp8_native per expert).
/// @param xq      [R, K] e4m3, rows grouped by expert; K % 128 == 0
/// @param xs      [R, K / 128] f32 activation scales, any strides
/// @param offsets [E + 1] int32 device array (see grouped_linear)
/// @param wq      E weights [N, K] e4m3
/// @param ws      E weight scales [ceil(N / 128), K / 128] f32
/// @param y       [R, N] bf16
/// @param backend as for grouped_linear (own_wgmma needs stacked wq and ws)
template <int BN, int BK>
void grouped_linear_fp8_native(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const int32_t, 1> offsets,
                               const ExpertWeights<fp8_e4m3>& wq, const ExpertWeights<float>& ws, View<bf16, 2> y,
                               stream_t stream, GemmBackend backend = GemmBackend::automatic) {
  static_assert(BN == 128 && BK == 128, "cuda::grouped_linear_fp8_native implements DeepSeek's 128 x 128 blocks");
  detail::grouped_linear_fp8_native_128(xq, xs, offsets, wq, ws, y, stream, backend);
}

}  // namespace r1::cuda
