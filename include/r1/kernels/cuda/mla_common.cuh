// SPDX-License-Identifier: MIT
// Shared device helpers and host argument checks of r1's MLA kernels (mla_prefill.cuh,
// mla_decode.cuh, mla.cuh): fragment packing, chunked loads with zero padding, view checks, the
// shared-memory opt-in of the fallback kernels.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/cublaslt.cuh"
#include "r1/kernels/cuda/mla.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1::cuda {

namespace detail::mla {

inline constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

/// 2^x with results below 2^-126 flushed to zero: one MUFU.EX2. exp2f also handles subnormal
/// results (a compare and two predicated multiplies per call), which softmax weights of bf16
/// tensor-core attention never need: such a weight is under 1e-38 of the row's largest, which is 1.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/// Two floats as a bf16x2 register (lo in the low half: the lower column / k index).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  return uint32_t(bf16(lo).bits) | (uint32_t(bf16(hi).bits) << 16);
}

/// Copies an 8-value chunk to shared memory: cp.async when the source is vector-aligned, element
/// loads otherwise; src == nullptr writes zeros. `n` values are valid (element path only).
__device__ __forceinline__ void load_chunk(bf16* dst, const bf16* src, int n, bool vec) {
  if (vec) {
    cp_async16(smem_u32(dst), src ? src : dst, src != nullptr);
  } else {
    uint16_t v[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = src && e < n ? src[e].bits : uint16_t(0);
    *reinterpret_cast<uint4*>(dst) = make_uint4(v[0] | (uint32_t(v[1]) << 16), v[2] | (uint32_t(v[3]) << 16),
                                                v[4] | (uint32_t(v[5]) << 16), v[6] | (uint32_t(v[7]) << 16));
  }
}

/// Source of chunk [c, c + 8) of a row made of two parts: [0, n1) from a, [P1, P1 + n2) from b
/// (column P1 + i is b[i]), zeros elsewhere. With vec, n1 and n2 are multiples of 8, so a chunk
/// never straddles two parts. *n gets the number of valid values.
__device__ __forceinline__ const bf16* two_part(const bf16* a, int n1, const bf16* b, int p1, int n2, int c, int* n) {
  if (c < n1) {
    *n = min(8, n1 - c);
    return a + c;
  }
  if (c >= p1 && c < p1 + n2) {
    *n = min(8, p1 + n2 - c);
    return b + (c - p1);
  }
  *n = 0;
  return nullptr;
}

/// Column source of a two-part row (see two_part): a[c] for c < n1, b[c - p1] for c in
/// [p1, p1 + n2), nullptr (a zero) elsewhere. Per element, so it is right for any n1, n2.
__host__ __device__ __forceinline__ const bf16* two_part_elem(const bf16* a, int n1, const bf16* b, int p1, int n2,
                                                              int c) {
  if (c < n1) return a + c;
  if (c >= p1 && c < p1 + n2) return b + (c - p1);
  return nullptr;
}

/// Chunk [c, c + 8) of a two-part row into shared memory. With vec (n1, p1 and n2 multiples of 8,
/// 16-byte aligned sources) one cp.async; otherwise element by element, because a chunk may then
/// straddle the end of a and the start of b (two_part + load_chunk would zero b's first values
/// there, as it reports only the values left in a). a or b may be nullptr for a row past the data.
__device__ __forceinline__ void load_chunk_two_part(bf16* dst, const bf16* a, int n1, const bf16* b, int p1, int n2,
                                                    int c, bool vec) {
  if (vec) {
    int n = 0;
    const bf16* src = a ? two_part(a, n1, b, p1, n2, c, &n) : nullptr;
    load_chunk(dst, src, n, true);
    return;
  }
  uint16_t v[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const bf16* src = a ? two_part_elem(a, n1, b, p1, n2, c + e) : nullptr;
    v[e] = src ? src->bits : uint16_t(0);
  }
  *reinterpret_cast<uint4*>(dst) = make_uint4(v[0] | (uint32_t(v[1]) << 16), v[2] | (uint32_t(v[3]) << 16),
                                              v[4] | (uint32_t(v[5]) << 16), v[6] | (uint32_t(v[7]) << 16));
}


template <class T, int R>
void require_last_unit(const View<T, R>& v, const char* op, const char* name) {
  R1_CHECK(v.rows_contiguous(), op, name, " must be unit-stride in its last dimension (stride ", v.stride[R - 1], ")");
  for (int d = 0; d < R; ++d)
    R1_CHECK(v.stride[d] >= 0, op, name, " has a negative stride along dimension ", d);
}

/// 16-byte loads are possible: base aligned and every stride a multiple of 8 elements.
template <class T, int R>
bool vec_ok(const View<T, R>& v) {
  if (!aligned_to(v.data, 16)) return false;
  for (int d = 0; d < R - 1; ++d)
    if (v.shape[d] > 1 && v.stride[d] % 8 != 0) return false;
  return true;
}

/// Largest element offset + 1 of a view must fit the kernels' int64 math; sizes their int32 math.
template <class T, int R>
void require_sizes(const View<T, R>& v, const char* op, const char* name) {
  for (int d = 0; d < R; ++d) require_int32(v.shape[d], op, name);
}

/// For the fallback kernels, whose dynamic shared memory is sized at run time by the head dims:
/// checks `smem` bytes against the device's opt-in limit (the error names `what...`, the dims) and,
/// past the 48 KB any launch may use, raises the kernel's limit to the device's, once per device
/// (prepare_kernel fixes it at the size of its first call, which suits compile-time tiles only).
template <auto Kernel, class... What>
void prepare_dynamic_smem(int64_t smem, const char* op, const What&... what) {
  static std::mutex mu;
  static std::array<bool, kMaxDevices> raised{};
  const DeviceInfo& dev = current_device();
  R1_CHECK(smem <= dev.smem_optin, op, what..., " need ", smem, " bytes of shared memory per block in the fallback ",
           "kernel; this GPU (sm_", dev.cc_major, dev.cc_minor, ") allows ", dev.smem_optin);
  if (smem <= 48 * 1024) return;
  std::lock_guard<std::mutex> lock(mu);
  if (!raised[size_t(dev.device)]) {
    R1_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dev.smem_optin));
    raised[size_t(dev.device)] = true;
  }
}

}  // namespace detail::mla
}  // namespace r1::cuda
