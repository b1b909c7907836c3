// SPDX-License-Identifier: MIT
// Definition of r1::cuda::act_quant (declared in act_quant.hpp). One warp per (row, group): each
// lane loads Group / 32 consecutive values (one 8- or 16-byte load when rows allow), the warp
// reduces |x| with shuffles, and every lane divides by the scale and rounds with CUDA's
// saturating e4m3 conversion (the same conversion r1::fp8_e4m3 uses on the host).
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/common.cuh"

namespace r1::cuda {

namespace detail {

/// DeepSeek's floor on a group's amax (the ref twin's kActQuantAmaxFloor).
inline constexpr float kAmaxFloor = 1e-4f;

template <int Group, class TX, bool VEC>
__global__ void __launch_bounds__(256) act_quant_kernel(const TX* __restrict__ x, int64_t ldx, int64_t rows,
                                                        int groups, uint8_t* __restrict__ xq, int64_t ldq,
                                                        float* __restrict__ xs, int64_t xs_rs, int64_t xs_bs) {
  constexpr int PER = Group / 32;
  const int64_t w = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = int(threadIdx.x & 31);
  if (w >= rows * groups) return;  // whole warps exit together: the shuffles below see 32 lanes
  const int64_t row = w / groups;
  const int g = int(w % groups);
  const TX* src = x + row * ldx + int64_t(g) * Group + lane * PER;
  float v[PER];
  if constexpr (VEC && std::is_same_v<TX, bf16> && PER == 4) {
    const uint2 u = *reinterpret_cast<const uint2*>(src);
    v[0] = float(bf16::from_bits(uint16_t(u.x)));
    v[1] = float(bf16::from_bits(uint16_t(u.x >> 16)));
    v[2] = float(bf16::from_bits(uint16_t(u.y)));
    v[3] = float(bf16::from_bits(uint16_t(u.y >> 16)));
  } else if constexpr (VEC && std::is_same_v<TX, float> && PER == 4) {
    const float4 u = *reinterpret_cast<const float4*>(src);
    v[0] = u.x;
    v[1] = u.y;
    v[2] = u.z;
    v[3] = u.w;
  } else {
#pragma unroll
    for (int i = 0; i < PER; ++i) v[i] = float(src[i]);
  }
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < PER; ++i) amax = fmaxf(amax, fabsf(v[i]));
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float s = fmaxf(amax, kAmaxFloor) / fp8_e4m3::max_finite;
  uint8_t q[PER];
#pragma unroll
  for (int i = 0; i < PER; ++i) q[i] = fp8_e4m3(v[i] / s).bits;
  uint8_t* dst = xq + row * ldq + int64_t(g) * Group + lane * PER;
  if constexpr (VEC && PER == 4) {
    *reinterpret_cast<uint32_t*>(dst) = uint32_t(q[0]) | (uint32_t(q[1]) << 8) | (uint32_t(q[2]) << 16) |
                                        (uint32_t(q[3]) << 24);
  } else {
#pragma unroll
    for (int i = 0; i < PER; ++i) dst[i] = q[i];
  }
  if (lane == 0) xs[row * xs_rs + int64_t(g) * xs_bs] = s;
}

/// One thread per element: y = code * scale.
template <int Group>
__global__ void __launch_bounds__(256) act_dequant_kernel(const uint8_t* __restrict__ xq, int64_t ldq, int64_t rows,
                                                          int64_t k, const float* __restrict__ xs, int64_t xs_rs,
                                                          int64_t xs_bs, float* __restrict__ y, int64_t ldy) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * k) return;
  const int64_t r = i / k, c = i % k;
  y[r * ldy + c] = float(fp8_e4m3::from_bits(xq[r * ldq + c])) * xs[r * xs_rs + (c / Group) * xs_bs];
}

/// The arguments act_quant and act_dequant share: a plain [rows, K] matrix (act_quant's input x,
/// act_dequant's output y), its e4m3 codes [rows, K] and its scales [rows, K / Group], all on the
/// device, unit-stride rows for the matrices; K % Group == 0.
template <int Group, class TP, class TQ, class TS>
void check_act_quant_args(const View<TP, 2>& plain, const char* plain_name, const View<TQ, 2>& xq,
                          const View<TS, 2>& xs, const char* op) {
  require_device(plain, op, plain_name);
  require_device(xq, op, "xq");
  require_device(xs, op, "scale");
  require_matrix(plain, op, plain_name);
  require_matrix(xq, op, "xq");
  const int64_t rows = plain.shape[0], k = plain.shape[1];
  R1_CHECK(k % Group == 0, op, "K = ", k, " is not a multiple of the ", Group,
           "-channel activation quantization group");
  require_dim(xq, 0, rows, op, "xq", "rows");
  require_dim(xq, 1, k, op, "xq", "columns");
  require_dim(xs, 0, rows, op, "scale", "rows");
  require_dim(xs, 1, k / Group, op, "scale", "groups");
}

}  // namespace detail

template <int Group>
void act_dequant(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<float, 2> y, stream_t stream) {
  const char* op = "cuda.act_dequant";
  detail::check_act_quant_args<Group>(y, "y", xq, xs, op);
  const int64_t rows = y.shape[0], k = y.shape[1];
  if (rows == 0 || k == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = detail::ceil_div(rows * k, kThreads);
  R1_CHECK(blocks < (int64_t(1) << 31), op, "grid of ", blocks, " blocks is too large");
  detail::act_dequant_kernel<Group><<<unsigned(blocks), kThreads, 0, stream>>>(
      reinterpret_cast<const uint8_t*>(xq.data), detail::row_stride(xq), rows, k, xs.data, xs.stride[0],
      xs.stride[1], y.data, detail::row_stride(y));
  R1_CUDA_CHECK_LAUNCH();
}

template <int Group, class TX>
void act_quant(View<const TX, 2> x, View<fp8_e4m3, 2> xq, View<float, 2> xs, stream_t stream) {
  static_assert(Group % 32 == 0 && Group > 0, "act_quant: one warp per group needs Group % 32 == 0");
  static_assert(std::is_same_v<TX, bf16> || std::is_same_v<TX, float>, "act_quant: x is bf16 or f32");
  const char* op = "cuda.act_quant";
  detail::check_act_quant_args<Group>(x, "x", xq, xs, op);
  const int64_t rows = x.shape[0], k = x.shape[1];
  detail::require_int32(k / Group, op, "groups per row");
  if (rows == 0 || k == 0) return;
  const int groups = int(k / Group);
  const int64_t warps = rows * groups;
  R1_CHECK(warps < (int64_t(1) << 40), op, rows, " rows x ", groups, " groups is too many");
  constexpr int kThreads = 256;
  const int64_t blocks = detail::ceil_div(warps * 32, kThreads);
  R1_CHECK(blocks < (int64_t(1) << 31), op, "grid of ", blocks, " blocks is too large");
  constexpr int64_t vec_bytes = int64_t(Group / 32) * int64_t(sizeof(TX));
  const bool vec = detail::rows_vector_aligned(x, vec_bytes) && detail::rows_vector_aligned(xq, Group / 32);
  auto* q = reinterpret_cast<uint8_t*>(xq.data);
  const int64_t ldx = detail::row_stride(x), ldq = detail::row_stride(xq);
  if (vec) {
    detail::act_quant_kernel<Group, TX, true><<<unsigned(blocks), kThreads, 0, stream>>>(
        x.data, ldx, rows, groups, q, ldq, xs.data, xs.stride[0], xs.stride[1]);
  } else {
    detail::act_quant_kernel<Group, TX, false><<<unsigned(blocks), kThreads, 0, stream>>>(
        x.data, ldx, rows, groups, q, ldq, xs.data, xs.stride[0], xs.stride[1]);
  }
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda
