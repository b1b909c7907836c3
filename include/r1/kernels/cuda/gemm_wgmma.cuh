// SPDX-License-Identifier: MIT
// The building blocks of r1's Hopper (sm_90a) GEMMs: mbarriers with bounded waits, TMA loads,
// shared-memory matrix descriptors, the e4m3 wgmma step, the ring and tile constants, and the
// host-side TMA maps. The kernel built from them is gemm_wgmma_grouped.cuh's (the MoE grouped
// GEMMs, and the dense own_wgmma GEMMs as one expert owning every row); mla_prefill_sm90.cuh and
// mla_decode_sm90.cuh use the same blocks.
//
// A tile is 128 output rows (two consumer warpgroups of 64) fed by one producer thread: for every
// 128-byte K stage it waits until a ring slot is free (mbarrier `empty`, one arrive per consumer
// warp), then issues the TMA loads of the x and weight tiles (128-byte swizzled; rows past the
// matrix arrive as zeros) that complete on mbarrier `full`.
// The wgmma operands are described by shared-memory matrix descriptors for K-major tiles with
// 128-byte swizzle (the layout TMA's SWIZZLE_128B writes): rows of 128 bytes, 8-row core groups
// 1024 bytes apart (stride byte offset), the leading byte offset unused because one k step
// (32 bytes) stays inside a swizzle row; successive k steps advance the start address by 32 bytes.
// Every mbarrier wait is bounded: a protocol error traps (a launch failure) instead of hanging.
#pragma once

#include <cuda.h>  // CUtensorMap (types only; the encoder is fetched through the runtime)
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <mutex>

#include "r1/core/dtype.hpp"
#include "r1/kernels/cuda/common.cuh"

namespace r1::cuda::detail::wgmma {

inline constexpr int BM = 128, KB = 128;  // tile rows, K bytes per stage
inline constexpr int STAGES = 5;          // ring stages of a 128-column tile (32 KiB each)
inline constexpr int THREADS = 384;       // producer + 2 consumer warpgroups
inline constexpr int A_BYTES = BM * KB;   // 16 KiB

// ---------------------------------------------------------------------------------------------
// Device: mbarriers, TMA, wgmma

/// Polls before a wait is declared lost (seconds on any GPU): then the kernel traps.
inline constexpr uint32_t kMaxPolls = 1u << 26;

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/// True once the phase of parity `parity` has completed.
__device__ __forceinline__ bool mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t polls = 0;
  while (!mbar_try_wait(bar, parity)) {
    if (++polls == kMaxPolls) {
      // `trap` aborts the kernel. The `break` after it is never reached, but it keeps ptxas from
      // seeing a no-return call: with __trap() it ignored setmaxnreg's larger register budget in
      // the warp-specialized kernels (it allocated at the entry's 168, spilled the wgmma operands
      // and serialized the wgmmas; mla_prefill_sm90.cuh).
      asm volatile("trap;");
      break;
    }
  }
}

/// 2D TMA load of the box at (c0 = K byte, c1 = row) into shared memory, completing on `bar`.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1)
      : "memory");
}

/// Shared-memory matrix descriptor of a K-major tile with 128-byte swizzle starting at `addr`
/// (a 1024-byte-aligned tile base, plus k-step offsets below 128 bytes): start address >> 4 in
/// bits 0-13, leading byte offset (unused here) 16 bytes in bits 16-29, stride byte offset 1024
/// (8 rows of 128 bytes) in bits 32-45, base offset 0, swizzle mode 1 (128 bytes) in bits 62-63.
__device__ __forceinline__ uint64_t smem_desc_sw128(uint32_t addr) {
  return uint64_t((addr >> 4) & 0x3fffu) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

/// Keeps the compiler from moving accumulator registers across the asynchronous wgmma region.
template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

/// d (+)= A . B for one k32 step: A 64 x 32 e4m3 and B 128 x 32 e4m3 (both K-major in shared
/// memory, given by descriptors), d 64 x 128 fp32 across the warpgroup. scale_d == 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, "
      "%43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
#else
  (void)d;
  (void)da;
  (void)db;
  (void)scale_d;
  __trap();
#endif
}

// ---------------------------------------------------------------------------------------------
// Host

/// cuTensorMapEncodeTiled from the driver, fetched through the runtime (no link to libcuda).
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static std::mutex mu;
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (!fn) {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    R1_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
    R1_CHECK(q == cudaDriverEntryPointSuccess && f, "cuda.wgmma", "the driver has no cuTensorMapEncodeTiled");
    fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }
  return fn;
}

/// TMA map of a [rows, k_bytes] byte matrix (row stride `ld` bytes) in 128 x 128-byte boxes,
/// 128-byte swizzled; reads past the last row give zeros.
inline CUtensorMap tensor_map_rows(const void* base, int64_t rows, int64_t k_bytes, int64_t ld, int box_rows,
                                   const char* op) {
  CUtensorMap map{};
  const cuuint64_t dims[2] = {cuuint64_t(k_bytes), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(ld)};
  const cuuint32_t box[2] = {cuuint32_t(KB), cuuint32_t(box_rows)};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = tensor_map_encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(base), dims,
                                          strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  R1_CHECK(r == CUDA_SUCCESS, op, "cuTensorMapEncodeTiled failed (error ", int(r), ") for a [", rows, ", ",
           k_bytes, "] operand with row stride ", ld, " bytes");
  return map;
}

}  // namespace r1::cuda::detail::wgmma
