// SPDX-License-Identifier: MIT
// fp32 GEMMs on the GPU for the precise activation policy (host-callable declarations; definitions
// in linear_f32.cuh, compiled in src/cuda/linear_f32.cu): f32 activations (or FP8-quantized ones),
// every product exact or one fp32 rounding, fp32 sums, f32 output, so a model run with f32
// activations follows the fp64 oracle to fp32 rounding. The twins of ref::linear,
// ref::linear_fp8_dequant<128, 128> and ref::linear_fp8_native<128, 128>, dense and grouped over
// MoE experts:
//   y[m, n] = sum_k x[m, k] * w[n, k]                                     (bf16 weight)
//   y[m, n] = sum_k x[m, k] * (float(wq[n, k]) * ws[n / 128, k / 128])     (FP8 weight, dequantized)
//   y[m, n] = sum_b xs[m, b] * ws[n / 128, b] * (sum_{k in block b} float(xq[m, k]) * float(wq[n, k]))
// Kernels (linear_f32.cuh says why each): up to 7 rows a warp kernel on the CUDA cores (8 rows x 4
// columns a warp, K split across the block's warps when the columns are few); from 8 rows a dense
// bf16 weight runs as three tensor-core GEMMs of x's exact bf16 parts (h + m + l = x; products
// exact, fp32 accumulation); from 16 rows the other f32-activation forms run a shared-memory tiled
// CUDA-core kernel; the native form always runs the warp kernel. Results are deterministic for a
// given device and shape (the tensor-core path follows cuBLASLt's algorithm choice).
//
// Every call is stream-ordered and asynchronous and reads nothing back to the host. The tiled and
// three-part paths take stream-ordered scratch (split-K partials, the parts and their products) and
// the three-part path calls cuda::linear, whose first call per shape may query cuBLASLt and set
// kernel attributes: run each shape once before capturing it in a CUDA graph (the models do).
// Operands: unit-stride rows with any row stride and any alignment (aligned rows are read in
// vectors); y must not overlap the inputs. K = 0 writes zeros; M = 0 or N = 0 does nothing.
#pragma once

#include <cstdint>
#include <string_view>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// y = x . w^T: f32 activations, bf16 weight, f32 output (fp32 FMAs; from 8 rows x's three exact bf16
/// parts on the tensor cores). Twin of ref::linear.
/// @param x [M, K] f32, unit-stride rows
/// @param w [N, K] bf16 weight (PyTorch layout), unit-stride rows
/// @param y [M, N] f32, unit-stride rows (e.g. a column slice of a wider buffer)
void linear_f32(View<const float, 2> x, View<const bf16, 2> w, View<float, 2> y, stream_t stream);

/// y = x . dequant(wq, ws)^T: f32 activations and an FP8 weight in 128 x 128 blocks, each weight
/// element dequantized in the kernel as the fp32 product code * scale (exactly as the ref twin
/// ref::linear_fp8_dequant<128, 128> does). Ragged K and N edges are allowed.
/// @param x  [M, K] f32, unit-stride rows
/// @param wq [N, K] e4m3 weight codes, unit-stride rows
/// @param ws [ceil(N / 128), ceil(K / 128)] f32 weight_scale_inv (multipliers), any strides
/// @param y  [M, N] f32, unit-stride rows
void linear_f32(View<const float, 2> x, View<const fp8_e4m3, 2> wq, View<const float, 2> ws, View<float, 2> y,
                stream_t stream);

/// DeepSeek's FP8 GEMM in fp32 FMA: activations quantized 1 x 128 (act_quant<128>) times the
/// block-scaled FP8 weight. Each lane's share of a 128-wide block is summed over the exact code
/// products, then multiplied by xs[m, b] * ws[n / 128, b]. Twin of ref::linear_fp8_native<128, 128>.
/// @param xq [M, K] e4m3 activation codes, unit-stride rows; K % 128 == 0
/// @param xs [M, K / 128] f32 activation scales, any strides (e.g. mn_major_scales)
/// @param wq [N, K] e4m3 weight codes, unit-stride rows
/// @param ws [ceil(N / 128), K / 128] f32 weight_scale_inv, any strides
/// @param y  [M, N] f32, unit-stride rows
void linear_f32(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                View<const float, 2> ws, View<float, 2> y, stream_t stream);

/// Grouped over MoE experts (rows grouped by expert, as cuda::grouped_linear): expert e owns rows
/// [offsets[e], offsets[e + 1]) of x and y, offsets values clamped into [0, R]; rows no expert
/// owns (past offsets[E]) are not written. offsets are read on the device, so a captured graph
/// replays with new routing. Pointer-table weights (ExpertWeights::pointers) must be 16-byte aligned.
/// @param x       [R, K] f32, unit-stride rows, grouped by expert
/// @param offsets [E + 1] int32 device array, non-decreasing; E <= 1024
/// @param w       E weights [N, K] bf16
/// @param y       [R, N] f32, unit-stride rows
void grouped_linear_f32(View<const float, 2> x, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& w,
                        View<float, 2> y, stream_t stream);

/// Grouped linear_f32 with FP8 expert weights dequantized in the kernel (see the dense form).
/// @param wq E weights [N, K] e4m3
/// @param ws E weight scales [ceil(N / 128), ceil(K / 128)] f32
void grouped_linear_f32(View<const float, 2> x, View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& wq,
                        const ExpertWeights<float>& ws, View<float, 2> y, stream_t stream);

/// Grouped FP8 native linear_f32 (DeepSeek's FP8 GEMM per expert, see the dense form).
/// @param xq [R, K] e4m3 codes grouped by expert; K % 128 == 0
/// @param xs [R, K / 128] f32 activation scales, any strides
/// @param wq E weights [N, K] e4m3
/// @param ws E weight scales [ceil(N / 128), K / 128] f32
void grouped_linear_f32(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const int32_t, 1> offsets,
                        const ExpertWeights<fp8_e4m3>& wq, const ExpertWeights<float>& ws, View<float, 2> y,
                        stream_t stream);

namespace detail {
/// Which kernels linear_f32 runs: picked by shape and operand form (automatic), or, for
/// comparisons, every call on the warp kernel without its K split (warp) or every f32-activation
/// call with K > 0 on the tiled kernel (tiled). Set for a whole program by R1_LINEAR_F32_KERNEL.
enum class LinearF32Kernel { automatic, warp, tiled };

/// R1_LINEAR_F32_KERNEL's value (unset or empty: automatic); anything else is an r1::Error naming
/// the choices.
inline LinearF32Kernel parse_linear_f32_kernel(const char* s) {
  const std::string_view v = s ? s : "";
  if (v.empty() || v == "automatic") return LinearF32Kernel::automatic;
  if (v == "warp") return LinearF32Kernel::warp;
  if (v == "tiled") return LinearF32Kernel::tiled;
  ::r1::fail("cuda.linear_f32", "R1_LINEAR_F32_KERNEL=", v, " is not a kernel choice (automatic, warp, tiled)");
}
}  // namespace detail

}  // namespace r1::cuda
