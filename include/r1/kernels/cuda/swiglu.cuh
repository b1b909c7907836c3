// SPDX-License-Identifier: MIT
// Definitions of r1::cuda::swiglu and swiglu_quant_fp8 (declared in swiglu.hpp). A 2-D grid: x over
// 8-element column units of a row (256 threads), y over rows (striding when there are more than
// 65535). Memory-bound: two reads and one write per element (one e4m3 byte for the fused variant).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/rmsnorm.cuh"
#include "r1/kernels/cuda/swiglu.hpp"

namespace r1::cuda::detail {

inline constexpr int kSwigluThreads = 256;

/// silu(g) * u as the ref: g / (1 + exp(-g)) times u, each operation rounded (no contraction).
__device__ __forceinline__ float swiglu1(float g, float u) {
  return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

template <int U, bool VEC, class TG, class TU, class TY>
__global__ void __launch_bounds__(kSwigluThreads)
    swiglu_kernel(const TG* gate, int64_t ldg, const TU* up, int64_t ldu, TY* out, int64_t ldo, int64_t rows,
                  int units) {
  const int u = int(blockIdx.x) * kSwigluThreads + int(threadIdx.x);
  if (u >= units) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    float g[U], v[U];
    load_f32<U, VEC>(gate + r * ldg + int64_t(u) * U, g);
    load_f32<U, VEC>(up + r * ldu + int64_t(u) * U, v);
#pragma unroll
    for (int i = 0; i < U; ++i) v[i] = swiglu1(g[i], v[i]);
    store_f32<U, VEC>(out + r * ldo + int64_t(u) * U, v);
  }
}

template <int Group, bool VEC, class TG, class TU>
__global__ void __launch_bounds__(kSwigluThreads)
    swiglu_quant_kernel(const TG* gate, int64_t ldg, const TU* up, int64_t ldu, uint8_t* yq, int64_t ldq,
                        float* ys, int64_t ys_rs, int64_t ys_bs, int64_t rows, int units) {
  // no early exit: the quantizer's shuffles need whole warps (units is a multiple of Group / 8,
  // so a lane group is entirely active or entirely idle)
  const int u = int(blockIdx.x) * kSwigluThreads + int(threadIdx.x);
  const bool active = u < units;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (active) {
      float g[8];
      load_f32<8, VEC>(gate + r * ldg + int64_t(u) * 8, g);
      load_f32<8, VEC>(up + r * ldu + int64_t(u) * 8, v);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = round_to<bf16>(swiglu1(g[i], v[i]));
    }
    const float s = quantize8_store<Group, VEC>(v, yq + r * ldq + int64_t(u) * 8, active);
    if (active && u % (Group / 8) == 0) ys[r * ys_rs + int64_t(u / (Group / 8)) * ys_bs] = s;
  }
}

template <class TG, class TU>
void check_swiglu_inputs(const View<const TG, 2>& gate, const View<const TU, 2>& up, const char* op) {
  require_device(gate, op, "gate");
  require_device(up, op, "up");
  require_matrix(gate, op, "gate");
  require_matrix(up, op, "up");
  require_dim(up, 0, gate.shape[0], op, "up", "rows");
  require_dim(up, 1, gate.shape[1], op, "up", "columns");
  require_int32(gate.shape[1], op, "width");
}

inline dim3 swiglu_grid(int64_t rows, int64_t units) {
  return dim3{unsigned(ceil_div(units, kSwigluThreads)), unsigned(std::min<int64_t>(rows, 65535)), 1u};
}

}  // namespace r1::cuda::detail

namespace r1::cuda {

template <class TG, class TU, class TY>
void swiglu(View<const TG, 2> gate, View<const TU, 2> up, View<TY, 2> out, stream_t stream) {
  static_assert(std::is_same_v<TG, bf16> || std::is_same_v<TG, float>, "swiglu: gate is bf16 or f32");
  static_assert(std::is_same_v<TU, bf16> || std::is_same_v<TU, float>, "swiglu: up is bf16 or f32");
  static_assert(std::is_same_v<TY, bf16> || std::is_same_v<TY, float>, "swiglu: out is bf16 or f32");
  const char* op = "cuda.swiglu";
  detail::check_swiglu_inputs(gate, up, op);
  detail::require_device(out, op, "out");
  detail::require_matrix(out, op, "out");
  detail::require_dim(out, 0, gate.shape[0], op, "out", "rows");
  detail::require_dim(out, 1, gate.shape[1], op, "out", "columns");
  const int64_t rows = gate.shape[0], width = gate.shape[1];
  if (rows == 0 || width == 0) return;
  const int64_t lg = detail::row_stride(gate), lu = detail::row_stride(up), lo = detail::row_stride(out);
  const bool vec = detail::norm_vec_ok(gate) && detail::norm_vec_ok(up) && detail::norm_vec_ok(out);
  if (vec) {
    detail::swiglu_kernel<8, true><<<detail::swiglu_grid(rows, width / 8), detail::kSwigluThreads, 0, stream>>>(
        gate.data, lg, up.data, lu, out.data, lo, rows, int(width / 8));
  } else {
    detail::swiglu_kernel<1, false><<<detail::swiglu_grid(rows, width), detail::kSwigluThreads, 0, stream>>>(
        gate.data, lg, up.data, lu, out.data, lo, rows, int(width));
  }
  R1_CUDA_CHECK_LAUNCH();
}

template <int Group, class TG, class TU>
void swiglu_quant_fp8(View<const TG, 2> gate, View<const TU, 2> up, View<fp8_e4m3, 2> yq, View<float, 2> ys,
                      stream_t stream) {
  static_assert(std::is_same_v<TG, bf16> || std::is_same_v<TG, float>, "swiglu_quant_fp8: gate is bf16 or f32");
  static_assert(std::is_same_v<TU, bf16> || std::is_same_v<TU, float>, "swiglu_quant_fp8: up is bf16 or f32");
  const char* op = "cuda.swiglu_quant_fp8";
  detail::check_swiglu_inputs(gate, up, op);
  detail::require_device(yq, op, "yq");
  detail::require_device(ys, op, "scale");
  detail::require_matrix(yq, op, "yq");
  const int64_t rows = gate.shape[0], width = gate.shape[1];
  R1_CHECK(width % Group == 0, op, "width = ", width, " is not a multiple of the ", Group,
           "-channel activation quantization group");
  detail::require_dim(yq, 0, rows, op, "yq", "rows");
  detail::require_dim(yq, 1, width, op, "yq", "columns");
  detail::require_dim(ys, 0, rows, op, "scale", "rows");
  detail::require_dim(ys, 1, width / Group, op, "scale", "groups");
  if (rows == 0 || width == 0) return;
  const int64_t lg = detail::row_stride(gate), lu = detail::row_stride(up), lq = detail::row_stride(yq);
  const bool vec = detail::norm_vec_ok(gate) && detail::norm_vec_ok(up) && detail::rows_vector_aligned(yq, 8);
  auto* q = reinterpret_cast<uint8_t*>(yq.data);
  const dim3 grid = detail::swiglu_grid(rows, width / 8);
  if (vec) {
    detail::swiglu_quant_kernel<Group, true><<<grid, detail::kSwigluThreads, 0, stream>>>(
        gate.data, lg, up.data, lu, q, lq, ys.data, ys.stride[0], ys.stride[1], rows, int(width / 8));
  } else {
    detail::swiglu_quant_kernel<Group, false><<<grid, detail::kSwigluThreads, 0, stream>>>(
        gate.data, lg, up.data, lu, q, lq, ys.data, ys.stride[0], ys.stride[1], rows, int(width / 8));
  }
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda
