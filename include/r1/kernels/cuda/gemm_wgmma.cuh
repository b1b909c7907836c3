// SPDX-License-Identifier: MIT
// r1's Hopper FP8 GEMM (sm_90a): TMA loads into a shared-memory ring, wgmma on the tensor cores,
// DeepSeek's block scaling with per-128-K promotion on the CUDA cores:
//   y[m, n] = sum_b xs[m, b] * ws[n / 128, b] * (sum_{k in block b} xq[m, k] * wq[n, k])
//
// One thread block computes a 128 x 128 output tile with three warpgroups:
//  - warpgroup 0, one thread: the producer. For every 128-wide K block it waits until the ring
//    slot is free (mbarrier `empty`), then issues two TMA loads (the 128 x 128-byte tiles of xq and
//    wq, 128-byte swizzled; rows past M or N arrive as zeros) that complete on mbarrier `full`.
//  - warpgroups 1 and 2: consumers of 64 rows each. Per K block: wait `full`, four
//    wgmma.m64n128k32.e4m3 (the first with scale-d = 0, so the fragment holds exactly this block's
//    fp32 sum), wait for them, release the slot (one arrive per warp on `empty`), then
//    acc += part * (xs[row, b] * ws[n0 / 128, b]) in fp32, the same order of operations as the
//    ref twin and as the mma.sync kernel.
// The wgmma operands are described by shared-memory matrix descriptors for K-major tiles with
// 128-byte swizzle (the layout TMA's SWIZZLE_128B writes): rows of 128 bytes, 8-row core groups
// 1024 bytes apart (stride byte offset), the leading byte offset unused because one k32 step
// (32 bytes) stays inside a swizzle row; successive k32 steps advance the start address by 32 bytes.
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

inline constexpr int BM = 128, BN = 128, KB = 128;  // tile rows, tile columns, K bytes per stage
inline constexpr int STAGES = 5;
inline constexpr int THREADS = 384;                          // producer + 2 consumer warpgroups
inline constexpr int A_BYTES = BM * KB, B_BYTES = BN * KB;   // 16 KiB each
inline constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
inline constexpr int BAR_BYTES = 2 * STAGES * 8;
inline constexpr int SMEM = 1024 /* alignment slack */ + STAGES * STAGE_BYTES + BAR_BYTES;

struct Params {
  int m = 0, n = 0, kb_total = 0;
  void* y = nullptr;  // [m, n] bf16, row stride ldy
  int64_t ldy = 0;
  const float* xs = nullptr;  // xs(r, b) = xs[r * xs_rs + b * xs_bs]
  int64_t xs_rs = 0, xs_bs = 0;
  const float* ws = nullptr;  // ws(nb, b) = ws[nb * ws_rs + b * ws_bs]
  int64_t ws_rs = 0, ws_bs = 0;
  int group_m = 8;  // raster: M tiles per band
  bool y_pairs = false;
};

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
__device__ __forceinline__ void fence_regs(float (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
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
// The kernel

// (a template only so that the header can be included by several translation units)
template <int = 0>
__global__ void __launch_bounds__(THREADS, 1)
    fp8_kernel(const __grid_constant__ CUtensorMap map_x, const __grid_constant__ CUtensorMap map_w, const Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) char smem_raw[];
  // 128-byte swizzled TMA destinations (and the descriptors' swizzle phase) want 1024-byte alignment.
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t bars = base + STAGES * STAGE_BYTES;
  const auto a_addr = [&](int s) { return base + uint32_t(s) * STAGE_BYTES; };
  const auto b_addr = [&](int s) { return base + uint32_t(s) * STAGE_BYTES + A_BYTES; };
  const auto full = [&](int s) { return bars + uint32_t(s) * 8; };
  const auto empty = [&](int s) { return bars + uint32_t(STAGES + s) * 8; };

  // Output tile, in bands of group_m M tiles so that blocks running together share weight tiles.
  const int m_tiles = (p.m + BM - 1) / BM, n_tiles = (p.n + BN - 1) / BN;
  const int pid = int(blockIdx.x), band = p.group_m * n_tiles;
  const int first_m = (pid / band) * p.group_m;
  const int rows_in_band = min(m_tiles - first_m, p.group_m);
  const int m0 = (first_m + (pid % band) % rows_in_band) * BM;
  const int n0 = ((pid % band) / rows_in_band) * BN;

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(full(s), 1);  // the producer's arrive.expect_tx; the TMA bytes complete the phase
      mbar_init(empty(s), 8);  // one arrive per consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  const int wg = int(threadIdx.x) / 128;
  if (wg == 0) {
    if (threadIdx.x == 0) {
      for (int i = 0; i < p.kb_total; ++i) {
        const int s = i % STAGES;
        const uint32_t phase = uint32_t(i / STAGES) & 1u;
        mbar_wait(empty(s), phase ^ 1u);  // a fresh barrier counts its previous phase as complete
        mbar_expect_tx(full(s), STAGE_BYTES);
        tma_load_2d(a_addr(s), &map_x, full(s), i * KB, m0);
        tma_load_2d(b_addr(s), &map_w, full(s), i * KB, n0);
      }
    }
    return;
  }

  // Consumers: warpgroup c owns rows m0 + 64c .. m0 + 64c + 63 of the tile.
  const int c = wg - 1;
  const int t = int(threadIdx.x) % 128, warp = t / 32, lane = t % 32;
  // accumulator element j of this thread: row 16 * warp + lane / 4 (+ 8 when j & 2),
  // column 8 * (j / 4) + 2 * (lane % 4) + (j & 1)
  const int r0 = m0 + 64 * c + 16 * warp + lane / 4, r1 = r0 + 8;
  const float* ws_row = p.ws + int64_t(n0 / 128) * p.ws_rs;
  float acc[64], part[64];
#pragma unroll
  for (int j = 0; j < 64; ++j) acc[j] = part[j] = 0.0f;

  for (int i = 0; i < p.kb_total; ++i) {
    const int s = i % STAGES;
    const uint32_t phase = uint32_t(i / STAGES) & 1u;
    // The block's scales, fetched while the tiles are in flight.
    const float sw = __ldg(ws_row + int64_t(i) * p.ws_bs);
    const float sx0 = r0 < p.m ? __ldg(p.xs + int64_t(r0) * p.xs_rs + int64_t(i) * p.xs_bs) : 0.0f;
    const float sx1 = r1 < p.m ? __ldg(p.xs + int64_t(r1) * p.xs_rs + int64_t(i) * p.xs_bs) : 0.0f;
    mbar_wait(full(s), phase);
    const uint64_t da = smem_desc_sw128(a_addr(s) + uint32_t(64 * c) * KB);
    const uint64_t db = smem_desc_sw128(b_addr(s));
    fence_regs(part);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < KB / 32; ++ks) {
      wgmma_m64n128k32_e4m3(part, da + uint64_t(2 * ks), db + uint64_t(2 * ks), ks);  // +32 bytes per k32
    }
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(part);
    if (lane == 0) mbar_arrive(empty(s));  // this warp's reads of slot s are done
    const float s0 = sx0 * sw, s1 = sx1 * sw;
#pragma unroll
    for (int j = 0; j < 64; ++j) acc[j] += part[j] * ((j & 2) ? s1 : s0);
  }

  bf16* y = static_cast<bf16*>(p.y);
#pragma unroll
  for (int jb = 0; jb < 16; ++jb) {
    const int col = n0 + 8 * jb + 2 * (lane % 4);
    if (col >= p.n) continue;
    const bool two = col + 1 < p.n;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = h ? r1 : r0;
      if (row >= p.m) continue;
      const bf16 v0(acc[4 * jb + 2 * h]), v1(acc[4 * jb + 2 * h + 1]);
      bf16* dst = y + int64_t(row) * p.ldy + col;
      if (two && p.y_pairs) {
        *reinterpret_cast<uint32_t*>(dst) = uint32_t(v0.bits) | (uint32_t(v1.bits) << 16);
      } else {
        dst[0] = v0;
        if (two) dst[1] = v1;
      }
    }
  }
#else
  (void)map_x;
  (void)map_w;
  (void)p;
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

/// Launches the Hopper FP8 GEMM. Operands are checked by the caller (linear_fp8_native): K % 128,
/// 16-byte aligned rows, scale shapes. xq: [m, k] rows lda bytes apart; wq: [n, k] rows ldb apart.
inline void launch_fp8(const void* xq, int64_t lda, const void* wq, int64_t ldb, int64_t k, Params p, stream_t stream,
                       const char* op) {
  R1_CHECK(binary_arch() == 90, op, "own_wgmma needs sm_90a machine code on an sm_90 GPU (this device runs sm_",
           binary_arch(), " code; build with R1_CUDA_ARCHITECTURES containing 90a)");
  constexpr auto kernel = fp8_kernel<0>;
  (void)prepare_kernel<kernel>(THREADS, SMEM, op);
  // A single row still needs a valid (16-byte multiple) stride in the map.
  const CUtensorMap mx = tensor_map_rows(xq, p.m, k, p.m > 1 ? lda : round_up(k, 16), BM, op);
  const CUtensorMap mw = tensor_map_rows(wq, p.n, k, p.n > 1 ? ldb : round_up(k, 16), BN, op);
  const int64_t tiles = ceil_div(p.m, BM) * ceil_div(p.n, BN);
  R1_CHECK(tiles < (int64_t(1) << 31), op, "too many output tiles");
  p.kb_total = int(k / KB);
  p.group_m = 8;
  fp8_kernel<0><<<unsigned(tiles), THREADS, SMEM, stream>>>(mx, mw, p);
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda::detail::wgmma
