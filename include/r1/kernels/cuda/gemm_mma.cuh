// SPDX-License-Identifier: MIT
// r1's portable tensor-core GEMM (mma.sync, sm_80 and newer), the engine behind the own-kernel
// policy of linear, linear_fp8_native and the grouped (MoE) GEMMs:
//
//   y[m, n] = sum_k x[m, k] * w[n, k]        x [M, K], w [N, K] row-major ("TN"), fp32 accumulation
//
// Operands are staged 128 bytes of K at a time (64 bf16 or 128 e4m3), so one pipeline stage of an
// FP8 GEMM is exactly one 128-wide scale block: its products are summed in a fresh fp32 fragment
// and promoted into the running fp32 accumulator as  acc += part * (xs[m, kb] * ws[n/128, kb]),
// DeepSeek's fp8_gemm semantics (and the ref twin's order of operations).
//
// Structure (per thread block, one BM x BN output tile):
//  - a STAGES-deep cp.async pipeline of 128-byte-wide rows of x and w in shared memory, XOR-swizzled
//    in 16-byte chunks (chunk j of row r lives at j ^ (r % 8)) so that cp.async stores and ldmatrix
//    loads are free of bank conflicts; rows past M or N and K past the end are zero-filled;
//  - warps tile the block as WARPS_M x WARPS_N, each owning a WM x WN accumulator of m16n8 tiles;
//  - ldmatrix.x4 reads fragments: the byte layout of an m16n8k32 e4m3 fragment is the b16 layout of
//    an m16n8k16 bf16 fragment, so one fragment loader serves both element types.
// Decode shapes (few rows) are weight-streaming: the dense launcher splits K across blocks when
// the output tiles alone cannot fill the GPU, writes fp32 partial sums, and reduces them in a fixed
// order (deterministic). The grouped kernel maps a persistent grid over (expert, M tile, N tile)
// with the per-expert row counts read on the device, so it needs no host synchronisation and can be
// captured in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cub/block/block_scan.cuh>
#include <limits>

#include "r1/core/dtype.hpp"
#include "r1/kernels/cuda/common.cuh"
#include "r1/tensor/memory.hpp"

namespace r1::cuda::detail::mma {

/// How the mainloop multiplies a stage. All three read 128 bytes of K per stage.
enum class Operand : uint8_t {
  bf16,         ///< bf16 x bf16, m16n8k16
  e4m3,         ///< e4m3 x e4m3, m16n8k32 (sm_89+ machine code)
  e4m3_as_f16,  ///< e4m3 codes decoded to f16 in registers, two m16n8k16 per k32 (any sm_80+)
};
template <Operand OP>
inline constexpr bool is_fp8 = OP != Operand::bf16;

inline constexpr int kStageBytes = 128;  // bytes of K per pipeline stage (one FP8 scale block)

/// A block tile: BM x BN outputs, WARPS_M x WARPS_N warps, STAGES pipeline stages.
template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int STAGES_>
struct Tile {
  static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, STAGES = STAGES_;
  static constexpr int THREADS = WARPS_M * WARPS_N * 32;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp tile
  static constexpr int MT = WM / 16, NT = WN / 8;              // m16 / n8 fragments per warp
  static constexpr int A_BYTES = BM * kStageBytes, B_BYTES = BN * kStageBytes;
  static constexpr int SX_OFF = A_BYTES + B_BYTES;  // BM activation scales (FP8)
  static constexpr int SW_OFF = SX_OFF + BM * 4;    // one weight scale (FP8), 16 bytes reserved
  static constexpr int STAGE_BYTES = (SW_OFF + 16 + 127) / 128 * 128;
  static constexpr int SMEM = STAGES * STAGE_BYTES;
  static constexpr int A_CHUNKS = BM * 8, B_CHUNKS = BN * 8;  // 16-byte chunks per stage

  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tiles are made of m16 x n16 fragments");
  static_assert(BM % 8 == 0 && BN % 8 == 0, "the 8-row swizzle period must divide the tile");
  static_assert(128 % BN == 0, "an N tile must lie inside one 128-row FP8 weight-scale block");
  static_assert(THREADS > BM, "one thread per activation-scale row plus one for the weight scale");
  static_assert(STAGES >= 2, "a pipeline needs two stages");
};

// The tile shapes r1 ships; the launchers choose by the number of rows.
using TileRows16 = Tile<16, 128, 1, 4, 5>;   // decode, M <= 16: 18.5 KB per stage
using TileRows64 = Tile<64, 128, 1, 4, 4>;   // M <= 64: 24.8 KB per stage
using TileRows128 = Tile<128, 128, 2, 4, 4>; // larger M: 32.6 KB per stage, 8 warps

/// Kernel parameters (POD, passed by value).
struct Params {
  const uint8_t* a = nullptr;  // x [rows, K]; row stride lda bytes
  int64_t lda = 0;
  const uint8_t* b = nullptr;  // w [N, K] (dense) or expert 0's weight (grouped); row stride ldb bytes
  int64_t ldb = 0;
  int64_t b_group = 0;                 // grouped: bytes between experts' weights (b_ptrs == nullptr)
  const void* const* b_ptrs = nullptr; // grouped: per-expert weight pointers, or nullptr
  void* y = nullptr;                   // [rows, N]; row stride ldy elements
  int64_t ldy = 0;
  int m = 0, n = 0;                    // rows of x / y, output features
  int64_t k_bytes = 0;                 // bytes of one row of K
  int k = 0;                           // elements of K (unaligned bf16 loader)
  int kb_total = 0;                    // stages covering K: ceil(k_bytes / 128)
  // FP8 scales: xs(r, kb) = xs[r * xs_rs + kb * xs_bs], ws(nb, kb) = ws[nb * ws_rs + kb * ws_bs]
  const float* xs = nullptr;
  int64_t xs_rs = 0, xs_bs = 0;
  const float* ws = nullptr;
  int64_t ws_rs = 0, ws_bs = 0;
  int64_t ws_group = 0;                 // grouped: floats between experts' scales (ws_ptrs == nullptr)
  const float* const* ws_ptrs = nullptr;
  // dense split-K: block (.., s) sums stages [s * kb_per_split, (s + 1) * kb_per_split)
  int kb_per_split = 0;
  float* partial = nullptr;  // [splits, m, n] fp32 partial sums, or nullptr to write y
  int group_m = 8;           // dense raster: M tiles per band of the swizzled tile order
  // grouped
  const int32_t* offsets = nullptr;  // [groups + 1] row offsets of the experts
  int groups = 0;
  bool y_pairs = false;  // y rows take aligned 2-element stores
};

/// One output tile's coordinates and operand bases.
struct TileArgs {
  int m0, m_end;     // rows [m0, min(m0 + BM, m_end)) of x / y
  int n0;            // first output feature
  int kb0, kb1;      // stages [kb0, kb1)
  const uint8_t* b;  // this tile's weight matrix
  const float* ws;   // FP8: weight-scale row of this tile's 128-row block
};

template <Operand OP>
__device__ __forceinline__ void mma_step(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (OP == Operand::bf16) {
    mma_bf16_16816(d, a, b0, b1);
  } else if constexpr (OP == Operand::e4m3) {
    mma_e4m3_16832(d, a, b0, b1);
  } else {
    // The k32 fragment holds, per thread, K bytes 4t..4t+3 (a0/a1/b0) and 16+4t..16+4t+3
    // (a2/a3/b1). An m16n8k16 fragment holds K positions {2t, 2t+1} (a0/a1/b0) and {8+2t, 9+2t}
    // (a2/a3/b1). Feeding bytes 4t,4t+1 to positions 2t,2t+1 and bytes 4t+2,4t+3 to 8+2t,9+2t in A
    // and in B alike permutes K identically on both sides, so the dot products are unchanged.
    const auto lo = [](uint32_t w) { return e4m3x2_lo_to_f16x2_scaled(w); };
    const auto hi = [](uint32_t w) { return e4m3x2_lo_to_f16x2_scaled(w >> 16); };
    mma_f16_16816(d, lo(a[0]), lo(a[1]), hi(a[0]), hi(a[1]), lo(b0), hi(b0));
    mma_f16_16816(d, lo(a[2]), lo(a[3]), hi(a[2]), hi(a[3]), lo(b1), hi(b1));
  }
}

/// The mainloop and epilogue of one tile shape / operand / loader combination.
/// ALIGNED: rows of x and w start on 16 bytes and K fills whole 16-byte chunks, so stages are
/// fetched with cp.async; otherwise (bf16 only) with element loads.
template <class Cfg, Operand OP, bool ALIGNED>
struct Mainloop {
  static constexpr int BM = Cfg::BM, BN = Cfg::BN, WM = Cfg::WM, WN = Cfg::WN, MT = Cfg::MT,
                       NT = Cfg::NT, THREADS = Cfg::THREADS, STAGES = Cfg::STAGES;
  static_assert(ALIGNED || OP == Operand::bf16, "FP8 operands are always staged with cp.async");
  using Acc = float[MT][NT][4];

  __device__ static void load_stage(const Params& p, const TileArgs& t, char* slot, int kb, int tid) {
    const uint32_t s = smem_u32(slot);
    const int64_t kbyte = int64_t(kb) * kStageBytes;
    if constexpr (ALIGNED) {
#pragma unroll
      for (int i = 0; i < (Cfg::A_CHUNKS + THREADS - 1) / THREADS; ++i) {
        const int c = tid + i * THREADS;
        if (Cfg::A_CHUNKS % THREADS == 0 || c < Cfg::A_CHUNKS) {
          const int r = c >> 3, j = c & 7;
          const int row = t.m0 + r;
          const int64_t kc = kbyte + j * 16;
          const bool valid = row < t.m_end && kc < p.k_bytes;
          cp_async16(s + r * kStageBytes + ((j ^ (r & 7)) << 4),
                     valid ? p.a + int64_t(row) * p.lda + kc : p.a, valid);
        }
      }
#pragma unroll
      for (int i = 0; i < (Cfg::B_CHUNKS + THREADS - 1) / THREADS; ++i) {
        const int c = tid + i * THREADS;
        if (Cfg::B_CHUNKS % THREADS == 0 || c < Cfg::B_CHUNKS) {
          const int r = c >> 3, j = c & 7;
          const int row = t.n0 + r;
          const int64_t kc = kbyte + j * 16;
          const bool valid = row < p.n && kc < p.k_bytes;
          cp_async16(s + Cfg::A_BYTES + r * kStageBytes + ((j ^ (r & 7)) << 4),
                     valid ? t.b + int64_t(row) * p.ldb + kc : t.b, valid);
        }
      }
    } else {
      // Element loads for odd K or unaligned rows (bf16): each 16-byte chunk is 8 consecutive K.
      const auto fetch = [&](const uint8_t* base, int64_t ld, int row, bool row_ok, int64_t k0) {
        const uint16_t* src = reinterpret_cast<const uint16_t*>(base + int64_t(row) * ld);
        uint32_t w[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t ka = k0 + 2 * e, kb2 = ka + 1;
          const uint32_t lo = row_ok && ka < p.k ? src[ka] : 0u;
          const uint32_t hi = row_ok && kb2 < p.k ? src[kb2] : 0u;
          w[e] = lo | (hi << 16);
        }
        return make_uint4(w[0], w[1], w[2], w[3]);
      };
      for (int c = tid; c < Cfg::A_CHUNKS + Cfg::B_CHUNKS; c += THREADS) {
        const bool is_a = c < Cfg::A_CHUNKS;
        const int cc = is_a ? c : c - Cfg::A_CHUNKS;
        const int r = cc >> 3, j = cc & 7;
        const int64_t k0 = kbyte / 2 + j * 8;
        const uint4 v = is_a ? fetch(p.a, p.lda, t.m0 + r, t.m0 + r < t.m_end, k0)
                             : fetch(t.b, p.ldb, t.n0 + r, t.n0 + r < p.n, k0);
        *reinterpret_cast<uint4*>(slot + (is_a ? 0 : Cfg::A_BYTES) + r * kStageBytes + ((j ^ (r & 7)) << 4)) = v;
      }
    }
    if constexpr (is_fp8<OP>) {
      if (tid < BM) {
        const int row = t.m0 + tid;
        const bool valid = row < t.m_end;
        cp_async4(s + Cfg::SX_OFF + tid * 4, valid ? p.xs + int64_t(row) * p.xs_rs + int64_t(kb) * p.xs_bs : p.xs,
                  valid);
      }
      if (tid == THREADS - 1) cp_async4(s + Cfg::SW_OFF, t.ws + int64_t(kb) * p.ws_bs, true);
    }
  }

  /// acc += the stage's 128 bytes of K, for this warp's WM x WN tile.
  __device__ static void compute_stage(const char* slot, Acc& acc, int wm, int wn, int lane) {
    const uint32_t a_base = smem_u32(slot), b_base = a_base + Cfg::A_BYTES;
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {  // 32 bytes of K per step: k16 bf16 or k32 e4m3
      uint32_t af[MT][4];
      uint32_t bfr[NT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        // lanes 0-15 address rows 0-15 at chunk 2ks, lanes 16-31 the same rows at chunk 2ks+1:
        // matrices {rows 0-7, 8-15} x {bytes 0-15, 16-31} = fragment registers a0..a3.
        const int row = wm * WM + mt * 16 + (lane & 15);
        const int chunk = ks * 2 + (lane >> 4);
        ldmatrix_x4(af[mt], a_base + row * kStageBytes + ((chunk ^ (row & 7)) << 4));
      }
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        // matrices: (n 0-7, bytes 0-15), (n 0-7, bytes 16-31), (n 8-15, 0-15), (n 8-15, 16-31)
        // = b0, b1 of fragment 2np and b0, b1 of fragment 2np+1.
        const int row = wn * WN + np * 16 + (lane & 7) + ((lane >> 4) << 3);
        const int chunk = ks * 2 + ((lane >> 3) & 1);
        uint32_t r[4];
        ldmatrix_x4(r, b_base + row * kStageBytes + ((chunk ^ (row & 7)) << 4));
        bfr[2 * np][0] = r[0];
        bfr[2 * np][1] = r[1];
        bfr[2 * np + 1][0] = r[2];
        bfr[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mma_step<OP>(acc[mt][nt], af[mt], bfr[nt][0], bfr[nt][1]);
    }
  }

  /// The whole K range of one tile into acc. Leaves the shared-memory stages free for reuse.
  __device__ static void run(const Params& p, const TileArgs& t, char* smem, Acc& acc) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp % Cfg::WARPS_M, wn = warp / Cfg::WARPS_M;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.0f;

    const int nkb = t.kb1 - t.kb0;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < nkb) load_stage(p, t, smem + s * Cfg::STAGE_BYTES, t.kb0 + s, tid);
      cp_async_commit();
    }
#pragma unroll 1  // the body is 4 k-steps of MT x NT mma; unrolling it only raises register pressure
    for (int i = 0; i < nkb; ++i) {
      cp_async_wait<STAGES - 2>();  // stage i has landed (this thread's copies) ...
      __syncthreads();              // ... and everyone's; everyone is also done with stage i - 1
      const int next = i + STAGES - 1;
      if (next < nkb) load_stage(p, t, smem + (next % STAGES) * Cfg::STAGE_BYTES, t.kb0 + next, tid);
      cp_async_commit();
      const char* cur = smem + (i % STAGES) * Cfg::STAGE_BYTES;
      if constexpr (is_fp8<OP>) {
        Acc part;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) part[mt][nt][e] = 0.0f;
        compute_stage(cur, part, wm, wn, lane);
        // Promotion: the block's fp32 sum times xs * ws, added on the CUDA cores. The f16 path's
        // products carry 2^-16 (see e4m3x2_lo_to_f16x2_scaled); 65536 * sw is exact.
        const float sw = *reinterpret_cast<const float*>(cur + Cfg::SW_OFF);
        const float* sx = reinterpret_cast<const float*>(cur + Cfg::SX_OFF);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const int r = wm * WM + mt * 16 + (lane >> 2);
          float s0 = sx[r] * sw, s1 = sx[r + 8] * sw;
          if constexpr (OP == Operand::e4m3_as_f16) {
            s0 *= 65536.0f;
            s1 *= 65536.0f;
          }
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            acc[mt][nt][0] += part[mt][nt][0] * s0;
            acc[mt][nt][1] += part[mt][nt][1] * s0;
            acc[mt][nt][2] += part[mt][nt][2] * s1;
            acc[mt][nt][3] += part[mt][nt][3] * s1;
          }
        }
      } else {
        compute_stage(cur, acc, wm, wn, lane);
      }
    }
    cp_async_wait<0>();
    __syncthreads();
  }

  /// Writes the tile: to y (converted to TY) or, for split-K, to fp32 partial sums [rows, N].
  template <class TY>
  __device__ static void store(const Params& p, const TileArgs& t, const Acc& acc, float* partial) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp % Cfg::WARPS_M, wn = warp / Cfg::WARPS_M;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        // fragment c0,c1 hold row lane/4, columns 2(lane%4) + {0,1}; c2,c3 the row 8 below
        const int row = t.m0 + wm * WM + mt * 16 + (lane >> 2) + half * 8;
        if (row >= t.m_end) continue;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const int col = t.n0 + wn * WN + nt * 8 + (lane & 3) * 2;
          if (col >= p.n) continue;
          const float v0 = acc[mt][nt][half * 2], v1 = acc[mt][nt][half * 2 + 1];
          const bool two = col + 1 < p.n;
          if (partial) {
            float* dst = partial + int64_t(row) * p.n + col;
            dst[0] = v0;
            if (two) dst[1] = v1;
          } else {
            TY* dst = static_cast<TY*>(p.y) + int64_t(row) * p.ldy + col;
            if constexpr (std::is_same_v<TY, float>) {
              if (two && p.y_pairs) {
                *reinterpret_cast<float2*>(dst) = make_float2(v0, v1);
              } else {
                dst[0] = v0;
                if (two) dst[1] = v1;
              }
            } else {
              const TY c0(v0), c1(v1);
              if (two && p.y_pairs) {
                *reinterpret_cast<uint32_t*>(dst) = uint32_t(c0.bits) | (uint32_t(c1.bits) << 16);
              } else {
                dst[0] = c0;
                if (two) dst[1] = c1;
              }
            }
          }
        }
      }
    }
  }
};

/// One tile per block; blockIdx.x walks the (M, N) tiles in bands of group_m M tiles (so blocks
/// running together share weight tiles in L2), blockIdx.y is the K split.
template <class Cfg, Operand OP, bool ALIGNED, class TY>
__global__ void __launch_bounds__(Cfg::THREADS, 1) dense_kernel(const Params p) {
  extern __shared__ __align__(128) char smem[];
  using ML = Mainloop<Cfg, OP, ALIGNED>;
  const int m_tiles = (p.m + Cfg::BM - 1) / Cfg::BM, n_tiles = (p.n + Cfg::BN - 1) / Cfg::BN;
  const int pid = int(blockIdx.x);
  const int band = p.group_m * n_tiles;
  const int first_m = (pid / band) * p.group_m;
  const int rows_in_band = min(m_tiles - first_m, p.group_m);
  const int mt = first_m + (pid % band) % rows_in_band;
  const int nt = (pid % band) / rows_in_band;
  const int split = int(blockIdx.y);
  TileArgs t;
  t.m0 = mt * Cfg::BM;
  t.m_end = p.m;
  t.n0 = nt * Cfg::BN;
  t.kb0 = split * p.kb_per_split;
  t.kb1 = min(p.kb_total, t.kb0 + p.kb_per_split);
  t.b = p.b;
  t.ws = is_fp8<OP> ? p.ws + int64_t(t.n0 / 128) * p.ws_rs : nullptr;
  typename ML::Acc acc;
  ML::run(p, t, smem, acc);
  ML::template store<TY>(p, t, acc, p.partial ? p.partial + int64_t(split) * p.m * p.n : nullptr);
}

/// Rows [lo, hi) of expert e, clamped into [0, m] so that inconsistent offsets cannot address
/// memory outside x and y (the rows they describe are then simply not computed).
__device__ __forceinline__ void expert_rows(const Params& p, int e, int& lo, int& hi) {
  lo = min(max(p.offsets[e], 0), p.m);
  hi = min(max(p.offsets[e + 1], lo), p.m);
}

/// Persistent grouped GEMM: every block first scans the experts' row counts (device memory, so a
/// CUDA graph can replay it with new routing), then walks the tiles (expert, M tile, N tile) with a
/// grid stride. Tiles are numbered M-tile-major: blocks running together read the same expert.
template <class Cfg, Operand OP, class TY>
__global__ void __launch_bounds__(Cfg::THREADS, 1) grouped_kernel(const Params p) {
  extern __shared__ __align__(128) char smem[];
  int* tile_start = reinterpret_cast<int*>(smem + Cfg::SMEM);  // [groups + 1] first M tile of expert e
  using ML = Mainloop<Cfg, OP, true>;
  using Scan = cub::BlockScan<int, Cfg::THREADS>;
  __shared__ typename Scan::TempStorage scan_tmp;

  int carry = 0;
  for (int base = 0; base < p.groups; base += Cfg::THREADS) {
    const int e = base + int(threadIdx.x);
    int tiles = 0;
    if (e < p.groups) {
      int lo, hi;
      expert_rows(p, e, lo, hi);
      tiles = (hi - lo + Cfg::BM - 1) / Cfg::BM;
    }
    int before, total;
    Scan(scan_tmp).ExclusiveSum(tiles, before, total);
    if (e < p.groups) tile_start[e] = carry + before;
    carry += total;
    __syncthreads();  // scan_tmp is reused by the next chunk of experts
  }
  if (threadIdx.x == 0) tile_start[p.groups] = carry;
  __syncthreads();

  const int n_tiles = (p.n + Cfg::BN - 1) / Cfg::BN;
  const int64_t total_tiles = int64_t(tile_start[p.groups]) * n_tiles;
  for (int64_t tile = blockIdx.x; tile < total_tiles; tile += gridDim.x) {
    const int mt = int(tile / n_tiles), nt = int(tile % n_tiles);
    // the expert owning M tile mt: the last e with tile_start[e] <= mt (empty experts share their
    // start with the next expert, so the last one is the expert that has rows)
    int lo_e = 0, hi_e = p.groups - 1;
    while (lo_e < hi_e) {
      const int mid = (lo_e + hi_e + 1) >> 1;
      if (tile_start[mid] <= mt) {
        lo_e = mid;
      } else {
        hi_e = mid - 1;
      }
    }
    const int e = lo_e;
    int row_lo, row_hi;
    expert_rows(p, e, row_lo, row_hi);
    TileArgs t;
    t.m0 = row_lo + (mt - tile_start[e]) * Cfg::BM;
    t.m_end = row_hi;
    t.n0 = nt * Cfg::BN;
    t.kb0 = 0;
    t.kb1 = p.kb_total;
    t.b = p.b_ptrs ? static_cast<const uint8_t*>(p.b_ptrs[e]) : p.b + int64_t(e) * p.b_group;
    if constexpr (is_fp8<OP>) {
      const float* ws_e = p.ws_ptrs ? p.ws_ptrs[e] : p.ws + int64_t(e) * p.ws_group;
      t.ws = ws_e + int64_t(t.n0 / 128) * p.ws_rs;
    } else {
      t.ws = nullptr;
    }
    typename ML::Acc acc;
    ML::run(p, t, smem, acc);
    ML::template store<TY>(p, t, acc, nullptr);
  }
}

/// y = sum over splits of the fp32 partial sums, in split order (deterministic).
template <class TY>
__global__ void splitk_reduce_kernel(const float* __restrict__ partial, int splits, int m, int n,
                                     TY* __restrict__ y, int64_t ldy) {
  const int64_t total = int64_t(m) * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < splits; ++k) s += partial[int64_t(k) * total + i];
    const int64_t row = i / n, col = i % n;
    y[row * ldy + col] = TY(s);
  }
}

// ---------------------------------------------------------------------------------------------
// Host side

/// Calls f.template operator()<Tile>() with the tile shape for `rows` rows per GEMM (or per
/// expert, on average, for grouped GEMMs).
template <class F>
void with_tile(int64_t rows, F&& f) {
  if (rows <= 16) {
    f.template operator()<TileRows16>();
  } else if (rows <= 64) {
    f.template operator()<TileRows64>();
  } else {
    f.template operator()<TileRows128>();
  }
}

/// Number of K splits for a dense GEMM: minimises a simple time model, max(bytes, flops / ridge)
/// spread over the SMs that get work, plus the partial sums' round trip through memory.
inline int choose_splits(int64_t m, int64_t n, int kb_total, int64_t tiles, int sms, int blocks_per_sm,
                         double main_bytes, double flops) {
  constexpr double kRidge = 250.0;  // flop/byte where an mma.sync GEMM turns matrix-bound (order of magnitude)
  const int max_splits = std::max(1, std::min(32, kb_total / 4));  // >= 4 stages keep a split's pipeline busy
  const double slots = double(sms) * blocks_per_sm;
  int best = 1;
  double best_t = std::numeric_limits<double>::max();
  for (int s = 1; s <= max_splits; ++s) {
    const int per = int(ceil_div(kb_total, s));
    if (ceil_div(kb_total, per) != s) continue;  // same partition as a smaller s
    const double ctas = double(tiles) * s;
    const double waves = std::ceil(ctas / slots);
    const double fill = ctas >= slots ? ctas / (waves * slots) : std::min(1.0, ctas / sms);
    const double extra = s > 1 ? 2.0 * s * double(m) * double(n) * 4.0 : 0.0;
    const double t = std::max(main_bytes, flops / kRidge) / fill + extra;
    if (t < best_t * 0.97) {  // a split must win clearly: it costs a launch and determinism is kept anyway
      best_t = t;
      best = s;
    }
  }
  return best;
}

/// Stream-ordered scratch memory from r1's device pool, returned when it goes out of scope
/// (the free is ordered after the work enqueued on the stream, so it is safe without a sync).
class Scratch {
 public:
  Scratch(std::size_t bytes, stream_t stream) : bytes_(bytes), stream_(stream), p_(device_alloc(bytes, stream)) {}
  ~Scratch() { device_free(p_, bytes_, stream_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return p_; }

 private:
  std::size_t bytes_;
  stream_t stream_;
  void* p_;
};

/// Launches a dense GEMM: picks the tile by M, the K split by the time model, and reduces the
/// partial sums when split. `p` holds operands and sizes; `flops` and `bytes` describe the GEMM.
template <Operand OP, bool ALIGNED, class TY>
void launch_dense(Params p, double bytes, double flops, stream_t stream, const char* op) {
  with_tile(p.m, [&]<class Cfg>() {
    constexpr auto kernel = dense_kernel<Cfg, OP, ALIGNED, TY>;
    const KernelInfo& ki = prepare_kernel<kernel>(Cfg::THREADS, Cfg::SMEM, op);
    const DeviceInfo& dev = current_device();
    const int64_t m_tiles = ceil_div(p.m, Cfg::BM), n_tiles = ceil_div(p.n, Cfg::BN);
    R1_CHECK(m_tiles * n_tiles < (int64_t(1) << 31), op, "too many output tiles (", m_tiles, " x ",
             n_tiles, ")");
    const int splits = p.kb_total == 0 ? 1
                                       : choose_splits(p.m, p.n, p.kb_total, m_tiles * n_tiles, dev.sms,
                                                       ki.blocks_per_sm, bytes, flops);
    p.kb_per_split = splits == 1 ? p.kb_total : int(ceil_div(p.kb_total, splits));
    p.group_m = 8;
    const dim3 grid(unsigned(m_tiles * n_tiles), unsigned(splits));
    if (splits == 1) {
      p.partial = nullptr;
      kernel<<<grid, Cfg::THREADS, Cfg::SMEM, stream>>>(p);
      R1_CUDA_CHECK_LAUNCH();
      return;
    }
    Scratch part(std::size_t(splits) * std::size_t(p.m) * std::size_t(p.n) * sizeof(float), stream);
    p.partial = static_cast<float*>(part.get());
    kernel<<<grid, Cfg::THREADS, Cfg::SMEM, stream>>>(p);
    R1_CUDA_CHECK_LAUNCH();
    const int64_t total = int64_t(p.m) * p.n;
    const int blocks = int(std::min<int64_t>(ceil_div(total, 256), int64_t(dev.sms) * 8));
    splitk_reduce_kernel<TY><<<blocks, 256, 0, stream>>>(p.partial, splits, p.m, p.n, static_cast<TY*>(p.y), p.ldy);
    R1_CUDA_CHECK_LAUNCH();
  });
}

/// Launches a grouped GEMM over p.groups experts whose row offsets live on the device. The tile
/// shape follows the average rows per expert; the persistent grid is as large as the GPU holds,
/// or as the largest possible tile count when that is smaller.
template <Operand OP, class TY>
void launch_grouped(Params p, stream_t stream, const char* op) {
  const int64_t active = std::max<int64_t>(1, std::min<int64_t>(p.groups, p.m));
  const int64_t avg_rows = ceil_div(std::max(p.m, 1), active);
  with_tile(avg_rows, [&]<class Cfg>() {
    constexpr auto kernel = grouped_kernel<Cfg, OP, TY>;
    const int smem = Cfg::SMEM + int(round_up((int64_t(p.groups) + 1) * 4, 16));
    // The grouped kernel's shared memory depends on the expert count: prepare for the largest
    // count r1 supports, so one preparation serves every call.
    constexpr int kMaxExperts = 1024;
    R1_CHECK(p.groups <= kMaxExperts, op, p.groups, " experts exceed the supported ", kMaxExperts);
    const int smem_max = Cfg::SMEM + int(round_up((kMaxExperts + 1) * 4, 16));
    const KernelInfo& ki = prepare_kernel<kernel>(Cfg::THREADS, smem_max, op);
    const DeviceInfo& dev = current_device();
    const int64_t n_tiles = ceil_div(p.n, Cfg::BN);
    // sum over experts of ceil(rows_e / BM) <= rows / BM + (experts with rows)
    const int64_t max_m_tiles = ceil_div(p.m, Cfg::BM) + std::min<int64_t>(p.groups, p.m);
    const int64_t max_tiles = max_m_tiles * n_tiles;
    const int64_t grid = std::max<int64_t>(1, std::min<int64_t>(max_tiles, int64_t(dev.sms) * ki.blocks_per_sm));
    kernel<<<unsigned(grid), Cfg::THREADS, smem, stream>>>(p);
    R1_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace r1::cuda::detail::mma
