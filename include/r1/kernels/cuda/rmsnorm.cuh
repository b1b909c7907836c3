// SPDX-License-Identifier: MIT
// Definitions of r1::cuda::rmsnorm, add_rmsnorm and rmsnorm_quant_fp8 (declared in rmsnorm.hpp).
// One block per row, two passes over it: the first sums squares (and, for add_rmsnorm, writes the
// rounded residual), the second re-reads the row (from L1/L2: a row is at most tens of KiB) and
// writes the output. Every element is read and written by the same thread and every first-pass
// read precedes the block barrier of the reduction, so y may alias x. Rows whose width is a
// multiple of 8 and whose pointers allow it move in 16-byte vectors; other rows element by element.
// Also holds the small vector load/store helpers the other elementwise kernels (swiglu, embedding)
// share.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "r1/kernels/cuda/act_quant.cuh"
#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/rmsnorm.hpp"

namespace r1::cuda::detail {

// ---------------------------------------------------------------------------------------------
// Vector helpers: U consecutive elements as fp32

/// Loads p[0 .. U) as fp32. VEC (U == 8): one 16-byte load for bf16, two for f32; the address
/// must then be 16-byte aligned. Otherwise element by element.
template <int U, bool VEC, class T>
__device__ __forceinline__ void load_f32(const T* p, float (&v)[U]) {
  if constexpr (VEC && U == 8 && std::is_same_v<T, bf16>) {
    const uint4 q = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __uint_as_float(w[i] << 16);
      v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  } else if constexpr (VEC && U == 8 && std::is_same_v<T, float>) {
    const float4 a = *reinterpret_cast<const float4*>(p);
    const float4 b = *reinterpret_cast<const float4*>(p + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
    v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
#pragma unroll
    for (int i = 0; i < U; ++i) v[i] = float(p[i]);
  }
}

/// Stores v[0 .. U) rounded to T (round to nearest even), vectorized as load_f32.
template <int U, bool VEC, class T>
__device__ __forceinline__ void store_f32(T* p, const float (&v)[U]) {
  if constexpr (VEC && U == 8 && std::is_same_v<T, bf16>) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = uint32_t(bf16(v[2 * i]).bits) | (uint32_t(bf16(v[2 * i + 1]).bits) << 16);
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  } else if constexpr (VEC && U == 8 && std::is_same_v<T, float>) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    *reinterpret_cast<float4*>(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
  } else {
#pragma unroll
    for (int i = 0; i < U; ++i) p[i] = T(v[i]);
  }
}

/// v rounded through storage type T and back (what a store followed by a load gives).
template <class T>
__device__ __forceinline__ float round_to(float v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    return float(T(v));
  }
}

/// Quantizes U = 8 fp32 values of one lane of a 1 x Group block held by Group / 8 consecutive lanes:
/// the lanes reduce amax with shuffles, divide by the scale and round to e4m3 (as act_quant does).
/// Every lane of the warp must call it (inactive lanes pass zeros and discard the result).
template <int Group, bool VEC>
__device__ __forceinline__ float quantize8_store(const float (&v)[8], uint8_t* dst, bool active) {
  constexpr int kLanes = Group / 8;
  static_assert(Group % 8 == 0 && kLanes <= 32 && (kLanes & (kLanes - 1)) == 0,
                "quantize8: Group / 8 lanes must be a power of two <= 32");
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(v[i]));
#pragma unroll
  for (int off = kLanes / 2; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float s = fmaxf(amax, kAmaxFloor) / fp8_e4m3::max_finite;
  if (active) {
    uint8_t q[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) q[i] = fp8_e4m3(v[i] / s).bits;
    if constexpr (VEC) {
      *reinterpret_cast<uint2*>(dst) = make_uint2(uint32_t(q[0]) | (uint32_t(q[1]) << 8) | (uint32_t(q[2]) << 16) |
                                                      (uint32_t(q[3]) << 24),
                                                  uint32_t(q[4]) | (uint32_t(q[5]) << 8) | (uint32_t(q[6]) << 16) |
                                                      (uint32_t(q[7]) << 24));
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) dst[i] = q[i];
    }
  }
  return s;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
/// `red` is 33 floats of shared memory; it may be reused after the call returns.
__device__ __forceinline__ float block_sum(float v, float* red) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < int(blockDim.x >> 5) ? red[lane] : 0.0f;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) red[32] = s;
  }
  __syncthreads();
  return red[32];
}

// ---------------------------------------------------------------------------------------------
// RMSNorm kernels

enum class NormMode { plain, add, quant };

template <class TR, class TX, class TW, class TY>
struct RmsnormArgs {
  const TX* x;             // [rows, dim] (ldx)
  TR* residual;            // [rows, dim] (ldr), add mode
  const TW* w;             // [dim]
  TY* y;                   // [rows, dim] (ldy), plain and add modes
  uint8_t* yq;             // [rows, dim] (ldq) e4m3 codes, quant mode
  float* ys;               // [rows, dim / Group] (ys_rs, ys_bs), quant mode
  int64_t ldx, ldr, ldy, ldq, ys_rs, ys_bs;
  int dim;
  float eps;
};

inline constexpr int kNormMaxThreads = 512;

template <NormMode M, int Group, int U, bool VEC, class TR, class TX, class TW, class TY>
__global__ void __launch_bounds__(kNormMaxThreads) rmsnorm_kernel(RmsnormArgs<TR, TX, TW, TY> a) {
  __shared__ float red[33];
  const int64_t t = blockIdx.x;
  const int units = a.dim / U;
  const TX* x = a.x + t * a.ldx;
  TR* r = M == NormMode::add ? a.residual + t * a.ldr : nullptr;
  float ss = 0.0f;
  for (int u = int(threadIdx.x); u < units; u += int(blockDim.x)) {
    float v[U];
    load_f32<U, VEC>(x + int64_t(u) * U, v);
    if constexpr (M == NormMode::add) {
      float rv[U];
      load_f32<U, VEC>(r + int64_t(u) * U, rv);
#pragma unroll
      for (int i = 0; i < U; ++i) v[i] = rv[i] + v[i];
      store_f32<U, VEC>(r + int64_t(u) * U, v);
      // the norm reads the residual as stored, as the ref (and an unfused add) does
#pragma unroll
      for (int i = 0; i < U; ++i) v[i] = round_to<TR>(v[i]);
    }
#pragma unroll
    for (int i = 0; i < U; ++i) ss = fmaf(v[i], v[i], ss);
  }
  ss = block_sum(ss, red);
  // IEEE division and square root, as the ref's 1 / sqrt(ss / n + eps): no rsqrt approximation
  const float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, float(a.dim)), a.eps)));
  if constexpr (M == NormMode::quant) {
    // warp-uniform trip count: the quantizer's shuffles need every lane of the warp
    for (int base = 0; base < units; base += int(blockDim.x)) {
      const int u = base + int(threadIdx.x);
      const bool active = u < units;
      float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (active) {
        float wv[8];
        load_f32<8, VEC>(x + int64_t(u) * 8, v);
        load_f32<8, VEC>(a.w + int64_t(u) * 8, wv);
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __fmul_rn(__fmul_rn(v[i], inv), wv[i]);
      }
      const float s = quantize8_store<Group, VEC>(v, a.yq + t * a.ldq + int64_t(u) * 8, active);
      if (active && u % (Group / 8) == 0) a.ys[t * a.ys_rs + int64_t(u / (Group / 8)) * a.ys_bs] = s;
    }
  } else {
    TY* y = a.y + t * a.ldy;
    for (int u = int(threadIdx.x); u < units; u += int(blockDim.x)) {
      float v[U], wv[U];
      if constexpr (M == NormMode::add) {
        load_f32<U, VEC>(r + int64_t(u) * U, v);
      } else {
        load_f32<U, VEC>(x + int64_t(u) * U, v);
      }
      load_f32<U, VEC>(a.w + int64_t(u) * U, wv);
      // (x * inv) * w, two roundings in the ref's order (no fused multiply-add to differ)
#pragma unroll
      for (int i = 0; i < U; ++i) v[i] = __fmul_rn(__fmul_rn(v[i], inv), wv[i]);
      store_f32<U, VEC>(y + int64_t(u) * U, v);
    }
  }
}

/// Threads per row: units spread evenly over at most kNormMaxThreads threads, whole warps.
inline int norm_threads(int64_t units) {
  const int64_t per = ceil_div(units, kNormMaxThreads);
  return int(std::max<int64_t>(32, round_up(ceil_div(units, std::max<int64_t>(per, 1)), 32)));
}

template <class T>
void require_weight(const View<const T, 1>& w, int64_t dim, const char* op) {
  require_device(w, op, "weight");
  R1_CHECK(w.shape[0] == dim, op, "weight has ", w.shape[0], " elements, expected ", dim);
  R1_CHECK(dim <= 1 || w.stride[0] == 1, op, "weight must be unit-stride (stride ", w.stride[0], ")");
}

/// Rows of `v` and the weight can move in 16-byte vectors (8 elements per unit).
template <class T>
bool norm_vec_ok(const View<T, 2>& v) {
  return v.shape[1] % 8 == 0 && rows_vector_aligned(v, 16);
}

template <NormMode M, int Group, class TR, class TX, class TW, class TY>
void launch_rmsnorm(const RmsnormArgs<TR, TX, TW, TY>& a, int64_t rows, bool vec, stream_t stream) {
  if (vec || M == NormMode::quant) {
    const int threads = norm_threads(a.dim / 8);
    if (vec) {
      rmsnorm_kernel<M, Group, 8, true><<<unsigned(rows), threads, 0, stream>>>(a);
    } else {
      rmsnorm_kernel<M, Group, 8, false><<<unsigned(rows), threads, 0, stream>>>(a);
    }
  } else {
    rmsnorm_kernel<M, Group, 1, false><<<unsigned(rows), norm_threads(a.dim), 0, stream>>>(a);
  }
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda::detail

namespace r1::cuda {

template <class TX, class TW, class TY>
void rmsnorm(View<const TX, 2> x, View<const TW, 1> w, float eps, View<TY, 2> y, stream_t stream) {
  static_assert(std::is_same_v<TX, bf16> || std::is_same_v<TX, float>, "rmsnorm: x is bf16 or f32");
  static_assert(std::is_same_v<TY, bf16> || std::is_same_v<TY, float>, "rmsnorm: y is bf16 or f32");
  const char* op = "cuda.rmsnorm";
  detail::require_device(x, op, "x");
  detail::require_device(y, op, "y");
  detail::require_matrix(x, op, "x");
  detail::require_matrix(y, op, "y");
  const int64_t rows = x.shape[0], dim = x.shape[1];
  detail::require_weight(w, dim, op);
  detail::require_dim(y, 0, rows, op, "y", "rows");
  detail::require_dim(y, 1, dim, op, "y", "columns");
  detail::require_int32(rows, op, "rows");
  detail::require_int32(dim, op, "dim");
  if (rows == 0) return;
  R1_CHECK(dim > 0, op, "dim must be positive");
  detail::RmsnormArgs<TY, TX, TW, TY> a{};
  a.x = x.data;
  a.w = w.data;
  a.y = y.data;
  a.ldx = detail::row_stride(x);
  a.ldy = detail::row_stride(y);
  a.dim = int(dim);
  a.eps = eps;
  const bool vec = detail::norm_vec_ok(x) && detail::norm_vec_ok(y) && detail::aligned_to(w.data, 16);
  detail::launch_rmsnorm<detail::NormMode::plain, 128>(a, rows, vec, stream);
}

template <class TR, class TX, class TW, class TY>
void add_rmsnorm(View<TR, 2> residual, View<const TX, 2> x, View<const TW, 1> w, float eps, View<TY, 2> y,
                 stream_t stream) {
  static_assert(std::is_same_v<TR, bf16> || std::is_same_v<TR, float>, "add_rmsnorm: residual is bf16 or f32");
  static_assert(std::is_same_v<TX, bf16> || std::is_same_v<TX, float>, "add_rmsnorm: x is bf16 or f32");
  static_assert(std::is_same_v<TY, bf16> || std::is_same_v<TY, float>, "add_rmsnorm: y is bf16 or f32");
  const char* op = "cuda.add_rmsnorm";
  detail::require_device(residual, op, "residual");
  detail::require_device(x, op, "x");
  detail::require_device(y, op, "y");
  detail::require_matrix(residual, op, "residual");
  detail::require_matrix(x, op, "x");
  detail::require_matrix(y, op, "y");
  const int64_t rows = residual.shape[0], dim = residual.shape[1];
  detail::require_weight(w, dim, op);
  detail::require_dim(x, 0, rows, op, "x", "rows");
  detail::require_dim(x, 1, dim, op, "x", "columns");
  detail::require_dim(y, 0, rows, op, "y", "rows");
  detail::require_dim(y, 1, dim, op, "y", "columns");
  detail::require_int32(rows, op, "rows");
  detail::require_int32(dim, op, "dim");
  if (rows == 0) return;
  R1_CHECK(dim > 0, op, "dim must be positive");
  R1_CHECK(static_cast<const void*>(y.data) != static_cast<const void*>(residual.data), op,
           "y must not alias residual");
  detail::RmsnormArgs<TR, TX, TW, TY> a{};
  a.x = x.data;
  a.residual = residual.data;
  a.w = w.data;
  a.y = y.data;
  a.ldx = detail::row_stride(x);
  a.ldr = detail::row_stride(residual);
  a.ldy = detail::row_stride(y);
  a.dim = int(dim);
  a.eps = eps;
  const bool vec = detail::norm_vec_ok(x) && detail::norm_vec_ok(residual) && detail::norm_vec_ok(y) &&
                   detail::aligned_to(w.data, 16);
  detail::launch_rmsnorm<detail::NormMode::add, 128>(a, rows, vec, stream);
}

template <int Group, class TX, class TW>
void rmsnorm_quant_fp8(View<const TX, 2> x, View<const TW, 1> w, float eps, View<fp8_e4m3, 2> yq,
                       View<float, 2> ys, stream_t stream) {
  static_assert(std::is_same_v<TX, bf16> || std::is_same_v<TX, float>, "rmsnorm_quant_fp8: x is bf16 or f32");
  const char* op = "cuda.rmsnorm_quant_fp8";
  detail::require_device(x, op, "x");
  detail::require_device(yq, op, "yq");
  detail::require_device(ys, op, "scale");
  detail::require_matrix(x, op, "x");
  detail::require_matrix(yq, op, "yq");
  const int64_t rows = x.shape[0], dim = x.shape[1];
  detail::require_weight(w, dim, op);
  R1_CHECK(dim % Group == 0, op, "dim = ", dim, " is not a multiple of the ", Group,
           "-channel activation quantization group");
  detail::require_dim(yq, 0, rows, op, "yq", "rows");
  detail::require_dim(yq, 1, dim, op, "yq", "columns");
  detail::require_dim(ys, 0, rows, op, "scale", "rows");
  detail::require_dim(ys, 1, dim / Group, op, "scale", "groups");
  detail::require_int32(rows, op, "rows");
  detail::require_int32(dim, op, "dim");
  if (rows == 0) return;
  R1_CHECK(dim > 0, op, "dim must be positive");
  detail::RmsnormArgs<float, TX, TW, float> a{};
  a.x = x.data;
  a.w = w.data;
  a.yq = reinterpret_cast<uint8_t*>(yq.data);
  a.ys = ys.data;
  a.ldx = detail::row_stride(x);
  a.ldq = detail::row_stride(yq);
  a.ys_rs = ys.stride[0];
  a.ys_bs = ys.stride[1];
  a.dim = int(dim);
  a.eps = eps;
  const bool vec = detail::norm_vec_ok(x) && detail::rows_vector_aligned(yq, 8) && detail::aligned_to(w.data, 16);
  detail::launch_rmsnorm<detail::NormMode::quant, Group>(a, rows, vec, stream);
}

}  // namespace r1::cuda
