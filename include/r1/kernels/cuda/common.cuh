// SPDX-License-Identifier: MIT
// Device-side building blocks of r1's CUDA kernels (nvcc only): PTX wrappers for asynchronous
// copies, ldmatrix and mma.sync, and host-side launch helpers (per-device properties, one-time
// kernel attributes, occupancy, the architecture of the machine code a kernel runs as).
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <mutex>

#include "r1/core/cuda.hpp"
#include "r1/core/error.hpp"
#include "r1/kernels/cuda/common.hpp"

namespace r1::cuda::detail {

// ---------------------------------------------------------------------------------------------
// Host: device properties and kernel preparation

/// At most this many devices per process (a static table per kernel keeps their attributes).
inline constexpr int kMaxDevices = 64;

struct DeviceInfo {
  int device = -1;
  int sms = 0;
  int cc_major = 0, cc_minor = 0;
  int smem_optin = 0;  ///< bytes of dynamic shared memory a block may opt in to
};

/// Properties of the current device, queried once per device.
inline const DeviceInfo& current_device() {
  static std::mutex mu;
  static std::array<DeviceInfo, kMaxDevices> cache{};
  int dev = 0;
  R1_CUDA_CHECK(cudaGetDevice(&dev));
  R1_CHECK(dev >= 0 && dev < kMaxDevices, "cuda", "device index ", dev, " exceeds r1's limit of ",
           kMaxDevices);
  std::lock_guard<std::mutex> lock(mu);
  DeviceInfo& d = cache[size_t(dev)];
  if (d.device < 0) {
    R1_CUDA_CHECK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev));
    R1_CUDA_CHECK(cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, dev));
    R1_CUDA_CHECK(cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, dev));
    R1_CUDA_CHECK(cudaDeviceGetAttribute(&d.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    d.device = dev;
  }
  return d;
}

/// What a kernel needs to know before launching it on the current device.
struct KernelInfo {
  int blocks_per_sm = 0;  ///< resident blocks per SM at the given block size and shared memory
};

/// Raises the kernel's dynamic shared memory limit and reads its occupancy, once per device.
template <auto Kernel>
const KernelInfo& prepare_kernel(int threads, int smem_bytes, const char* op) {
  static std::mutex mu;
  static std::array<KernelInfo, kMaxDevices> cache{};
  const DeviceInfo& dev = current_device();
  std::lock_guard<std::mutex> lock(mu);
  KernelInfo& k = cache[size_t(dev.device)];
  if (k.blocks_per_sm == 0) {
    R1_CHECK(smem_bytes <= dev.smem_optin, op, "kernel needs ", smem_bytes,
             " bytes of shared memory per block; this GPU (sm_", dev.cc_major, dev.cc_minor,
             ") allows ", dev.smem_optin);
    R1_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes));
    cudaFuncAttributes attr{};
    R1_CUDA_CHECK(cudaFuncGetAttributes(&attr, Kernel));
    int blocks = 0;
    R1_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, Kernel, threads, smem_bytes));
    R1_CHECK(blocks > 0, op, "kernel cannot be resident on this GPU (", threads, " threads, ",
             smem_bytes, " bytes of shared memory, ", attr.numRegs, " registers per thread)");
    k.blocks_per_sm = blocks;
  }
  return k;
}

/// An empty kernel compiled with the same architectures as every r1 kernel: its binary
/// architecture is the one all of them run with on the current device.
template <int = 0>
__global__ void arch_probe_kernel() {}

/// Architecture of the machine code r1's kernels run as on the current device (major * 10 + minor:
/// 80, 90, ...). It decides which instructions a kernel may use: an sm_89 GPU runs the sm_80
/// machine code of a "90a;80" build, so the device's compute capability alone does not say whether
/// e4m3 mma.sync or wgmma were compiled in.
inline int binary_arch() {
  static std::mutex mu;
  static std::array<int, kMaxDevices> cache{};
  const int dev = current_device().device;
  std::lock_guard<std::mutex> lock(mu);
  if (cache[size_t(dev)] == 0) {
    cudaFuncAttributes attr{};
    R1_CUDA_CHECK(cudaFuncGetAttributes(&attr, arch_probe_kernel<0>));
    cache[size_t(dev)] = attr.binaryVersion;
  }
  return cache[size_t(dev)];
}

// ---------------------------------------------------------------------------------------------
// Device: PTX wrappers

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/// 16-byte global -> shared copy, bypassing L1; `valid == false` writes 16 zero bytes instead.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
/// 4-byte global -> shared copy; `valid == false` writes zeros.
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/// Four 8x8 b16 matrices from shared memory; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

/// d += a . b, m16n8k16, bf16 operands, fp32 accumulators.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// d += a . b, m16n8k16, f16 operands, fp32 accumulators.
__device__ __forceinline__ void mma_f16_16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                              uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/// d += a . b, m16n8k32, e4m3 operands, fp32 accumulators (sm_89 and newer machine code only;
/// launchers check the kernel's binary architecture before choosing a kernel that uses it).
__device__ __forceinline__ void mma_e4m3_16832(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  (void)d;
  (void)a;
  (void)b0;
  (void)b1;
  __trap();
#endif
}

/// Bytes 0 and 1 of `w` (two e4m3 codes) as f16x2 holding value / 256, exactly. The e4m3 exponent
/// and mantissa bits placed into an f16 shift every value (subnormals included) by 2^-8, since the
/// two formats' exponent biases differ by 8; the caller multiplies the 2^-16 back into the fp32
/// product sums. (e4m3 NaN codes decode as 1.875: NaN operands are not propagated on this path.)
__device__ __forceinline__ uint32_t e4m3x2_lo_to_f16x2_scaled(uint32_t w) {
  return ((w & 0x80u) << 8) | ((w & 0x7fu) << 7) | ((w & 0x8000u) << 16) | ((w & 0x7f00u) << 15);
}

}  // namespace r1::cuda::detail
