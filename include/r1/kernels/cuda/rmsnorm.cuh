// SPDX-License-Identifier: MIT
// Definitions of r1::cuda::rmsnorm, add_rmsnorm and rmsnorm_quant_fp8 (declared in rmsnorm.hpp).
// One block per row, two passes over it: the first sums squares (and, for add_rmsnorm, writes the
// rounded residual), the second re-reads the row (from L1/L2: a row is at most tens of KiB) and
// writes the output. Every element is read and written by the same thread and every first-pass
// read precedes the block barrier of the reduction, so y may alias x. Rows whose width is a
// multiple of 8 and whose pointers allow it move in 16-byte vectors; other rows element by element.
// The arithmetic runs in a compute type C derived from the storage types (norm_compute_t): fp32,
// or fp64 when the residual, the input or the output is double, as the ref twins' compute_t (an
// f64 residual stream then keeps the quantizers' inputs as exact as the oracle's, see rmsnorm.hpp);
// rmsnorm_quant_fp8 may also ask for fp64 with an f32 input (through RmsnormArgs' TR).
// C is derived inside the kernel rather than passed as a template argument, so the kernels' names,
// and the fp32 instantiations' code, are those of the fp32-only kernels.
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
// Correctly rounded arithmetic in the compute type (norm_compute_t, rmsnorm.hpp)

// IEEE round-to-nearest operations in fp32 or fp64, one name for both compute types: explicit
// intrinsics, so nothing is contracted into a fused multiply-add or approximated where the ref
// rounds each step.
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqrt_rn(double a) { return __dsqrt_rn(a); }
/// a * b + c rounded once (sums of squares: the order differs from the ref's anyway).
__device__ __forceinline__ float fma_rn(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_rn(double a, double b, double c) { return fma(a, b, c); }
__device__ __forceinline__ float fmax_c(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double fmax_c(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ float fabs_c(float a) { return fabsf(a); }
__device__ __forceinline__ double fabs_c(double a) { return fabs(a); }

/// v converted to To, round to nearest even: directly between fp32 and fp64, through fp32 when
/// either side is narrower (bf16 -> fp32 is exact; fp64 -> bf16 rounds to fp32 first, as the ref's
/// from_compute, so an fp64 value meets the same two roundings there as in the ref).
template <class To, class From>
__device__ __forceinline__ To convert_rn(From v) {
  constexpr bool wide_to = std::is_same_v<To, float> || std::is_same_v<To, double>;
  constexpr bool wide_from = std::is_same_v<From, float> || std::is_same_v<From, double>;
  if constexpr (wide_to && wide_from) {
    return To(v);
  } else {
    return To(float(v));
  }
}

// ---------------------------------------------------------------------------------------------
// Vector helpers: U consecutive elements in compute type C (float or double)

/// Loads p[0 .. U) as C. VEC (U == 8): one 16-byte load for bf16, two for f32, four for f64; the
/// address must then be 16-byte aligned. Otherwise element by element. Exact except f64 -> fp32.
template <int U, bool VEC, class T, class C>
__device__ __forceinline__ void load_c(const T* p, C (&v)[U]) {
  static_assert(std::is_same_v<C, float> || std::is_same_v<C, double>, "load_c: compute type is float or double");
  if constexpr (VEC && U == 8 && std::is_same_v<T, bf16>) {
    const uint4 q = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = C(__uint_as_float(w[i] << 16));
      v[2 * i + 1] = C(__uint_as_float(w[i] & 0xffff0000u));
    }
  } else if constexpr (VEC && U == 8 && std::is_same_v<T, float>) {
    const float4 a = *reinterpret_cast<const float4*>(p);
    const float4 b = *reinterpret_cast<const float4*>(p + 4);
    v[0] = C(a.x), v[1] = C(a.y), v[2] = C(a.z), v[3] = C(a.w);
    v[4] = C(b.x), v[5] = C(b.y), v[6] = C(b.z), v[7] = C(b.w);
  } else if constexpr (VEC && U == 8 && std::is_same_v<T, double>) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const double2 d = *reinterpret_cast<const double2*>(p + 2 * i);
      v[2 * i] = C(d.x);
      v[2 * i + 1] = C(d.y);
    }
  } else {
#pragma unroll
    for (int i = 0; i < U; ++i) v[i] = convert_rn<C>(p[i]);
  }
}

/// Stores v[0 .. U) rounded to T (convert_rn), vectorized as load_c.
template <int U, bool VEC, class T, class C>
__device__ __forceinline__ void store_c(T* p, const C (&v)[U]) {
  if constexpr (VEC && U == 8 && std::is_same_v<T, bf16>) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[i] = uint32_t(convert_rn<bf16>(v[2 * i]).bits) | (uint32_t(convert_rn<bf16>(v[2 * i + 1]).bits) << 16);
    }
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  } else if constexpr (VEC && U == 8 && std::is_same_v<T, float>) {
    *reinterpret_cast<float4*>(p) = make_float4(float(v[0]), float(v[1]), float(v[2]), float(v[3]));
    *reinterpret_cast<float4*>(p + 4) = make_float4(float(v[4]), float(v[5]), float(v[6]), float(v[7]));
  } else if constexpr (VEC && U == 8 && std::is_same_v<T, double>) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      *reinterpret_cast<double2*>(p + 2 * i) = make_double2(double(v[2 * i]), double(v[2 * i + 1]));
    }
  } else {
#pragma unroll
    for (int i = 0; i < U; ++i) p[i] = convert_rn<T>(v[i]);
  }
}

/// load_c into fp32, the elementwise kernels' common case.
template <int U, bool VEC, class T>
__device__ __forceinline__ void load_f32(const T* p, float (&v)[U]) {
  load_c<U, VEC>(p, v);
}

/// store_c from fp32.
template <int U, bool VEC, class T>
__device__ __forceinline__ void store_f32(T* p, const float (&v)[U]) {
  store_c<U, VEC>(p, v);
}

/// v rounded through storage type T and back (what a store followed by a load gives).
template <class T, class C>
__device__ __forceinline__ C round_to(C v) {
  if constexpr (std::is_same_v<T, C>) {
    return v;
  } else {
    return convert_rn<C>(convert_rn<T>(v));
  }
}

/// Quantizes U = 8 values (compute type C) of one lane of a 1 x Group block held by Group / 8
/// consecutive lanes: the lanes reduce amax with shuffles, divide by the scale and round to e4m3 (as
/// act_quant does); returns the scale. In fp64 (ref::act_quant's rule for double inputs and scales)
/// the scale and the quotient are fp64 and the quotient is rounded to fp32 before e4m3, never
/// straight from fp64 (which would skip the fp32 rounding the oracle's ties depend on).
/// Every lane of the warp must call it (inactive lanes pass zeros and discard the result).
template <int Group, bool VEC, class C>
__device__ __forceinline__ C quantize8_store(const C (&v)[8], uint8_t* dst, bool active) {
  constexpr int kLanes = Group / 8;
  static_assert(Group % 8 == 0 && kLanes <= 32 && (kLanes & (kLanes - 1)) == 0,
                "quantize8: Group / 8 lanes must be a power of two <= 32");
  C amax = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) amax = fmax_c(amax, fabs_c(v[i]));
#pragma unroll
  for (int off = kLanes / 2; off > 0; off >>= 1) amax = fmax_c(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  // the floor is the fp32 constant in both types, as the ref's S(kActQuantAmaxFloor)
  const C s = fmax_c(amax, C(kAmaxFloor)) / C(fp8_e4m3::max_finite);
  if (active) {
    uint8_t q[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) q[i] = fp8_e4m3(float(v[i] / s)).bits;
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
/// `red` is 33 values of shared memory; it may be reused after the call returns.
template <class C>
__device__ __forceinline__ C block_sum(C v, C* red) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    C s = lane < int(blockDim.x >> 5) ? red[lane] : C(0);
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

/// TR is the residual's type in add mode. Quant mode reads no residual: there TR = double selects
/// fp64 arithmetic for a bf16 / f32 x (the kernel computes in norm_compute_t<TR, TX, TY>).
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
  using C = norm_compute_t<TR, TX, TY>;  // fp64 for a double residual or input, else fp32
  __shared__ C red[33];
  const int64_t t = blockIdx.x;
  const int units = a.dim / U;
  const TX* x = a.x + t * a.ldx;
  TR* r = M == NormMode::add ? a.residual + t * a.ldr : nullptr;
  C ss = 0;
  for (int u = int(threadIdx.x); u < units; u += int(blockDim.x)) {
    C v[U];
    load_c<U, VEC>(x + int64_t(u) * U, v);
    if constexpr (M == NormMode::add) {
      C rv[U];
      load_c<U, VEC>(r + int64_t(u) * U, rv);
#pragma unroll
      for (int i = 0; i < U; ++i) v[i] = rv[i] + v[i];
      store_c<U, VEC>(r + int64_t(u) * U, v);
      // the norm reads the residual as stored, as the ref (and an unfused add) does
#pragma unroll
      for (int i = 0; i < U; ++i) v[i] = round_to<TR>(v[i]);
    }
#pragma unroll
    for (int i = 0; i < U; ++i) ss = fma_rn(v[i], v[i], ss);
  }
  ss = block_sum(ss, red);
  // IEEE division and square root, as the ref's 1 / sqrt(ss / n + eps): no rsqrt approximation
  const C inv = div_rn(C(1), sqrt_rn(add_rn(div_rn(ss, C(a.dim)), C(a.eps))));
  if constexpr (M == NormMode::quant) {
    // warp-uniform trip count: the quantizer's shuffles need every lane of the warp
    for (int base = 0; base < units; base += int(blockDim.x)) {
      const int u = base + int(threadIdx.x);
      const bool active = u < units;
      C v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (active) {
        C wv[8];
        load_c<8, VEC>(x + int64_t(u) * 8, v);
        load_c<8, VEC>(a.w + int64_t(u) * 8, wv);
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = mul_rn(mul_rn(v[i], inv), wv[i]);
      }
      const C s = quantize8_store<Group, VEC>(v, a.yq + t * a.ldq + int64_t(u) * 8, active);
      // the scales are f32 in every mode (what the FP8 GEMMs read): an fp64 scale rounded once
      if (active && u % (Group / 8) == 0) a.ys[t * a.ys_rs + int64_t(u / (Group / 8)) * a.ys_bs] = float(s);
    }
  } else {
    TY* y = a.y + t * a.ldy;
    for (int u = int(threadIdx.x); u < units; u += int(blockDim.x)) {
      C v[U], wv[U];
      if constexpr (M == NormMode::add) {
        load_c<U, VEC>(r + int64_t(u) * U, v);
      } else {
        load_c<U, VEC>(x + int64_t(u) * U, v);
      }
      load_c<U, VEC>(a.w + int64_t(u) * U, wv);
      // (x * inv) * w, two roundings in the ref's order (no fused multiply-add to differ)
#pragma unroll
      for (int i = 0; i < U; ++i) v[i] = mul_rn(mul_rn(v[i], inv), wv[i]);
      store_c<U, VEC>(y + int64_t(u) * U, v);
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
  static_assert(std::is_same_v<TX, bf16> || std::is_same_v<TX, float> || std::is_same_v<TX, double>,
                "rmsnorm: x is bf16, f32 or f64");
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
  static_assert(std::is_same_v<TR, bf16> || std::is_same_v<TR, float> || std::is_same_v<TR, double>,
                "add_rmsnorm: residual is bf16, f32 or f64");
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

template <int Group, class TX, class TW, class C>
void rmsnorm_quant_fp8(View<const TX, 2> x, View<const TW, 1> w, float eps, View<fp8_e4m3, 2> yq,
                       View<float, 2> ys, stream_t stream) {
  static_assert(std::is_same_v<TX, bf16> || std::is_same_v<TX, float> || std::is_same_v<TX, double>,
                "rmsnorm_quant_fp8: x is bf16, f32 or f64");
  static_assert(std::is_same_v<C, double> || (std::is_same_v<C, float> && !std::is_same_v<TX, double>),
                "rmsnorm_quant_fp8: the compute type is float or double, double for f64 x");
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
  detail::RmsnormArgs<C, TX, TW, float> a{};  // no residual: TR carries the compute type
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
