// SPDX-License-Identifier: MIT
// Definitions of the fp32 GEMMs declared in linear_f32.hpp: host checks, then one kernel family
// parameterized by operand loaders (activations: f32 | e4m3 codes with 1 x 128 scales; weights:
// bf16 | e4m3 codes with 128 x 128 scales; dense | grouped over experts).
//
// Mapping: a warp computes a tile of 8 rows x 4 consecutive columns; a block is 8 warps side by
// side (8 rows x 32 columns), so the warps of a block read the same activation rows (from L1) and
// each streams its own weight rows. Each warp step covers one 128-wide chunk of K: lane l takes
// elements [k0 + 4 l, k0 + 4 l + 4), so the warp's loads of a row are contiguous (coalesced;
// 16-, 8- or 4-byte vectors when the host found the rows aligned, else element by element), and
// a chunk is exactly one 128-wide scale block. Each lane keeps 32 fp32 partial sums (8 x 4); at
// the end one reduce-scatter (31 shuffles in a fixed order) leaves the sum of tile element l in
// lane l, which writes it. The order of every sum is fixed by the shapes alone, so results are
// deterministic, and a row's result does not depend on the other rows of its tile.
//
// Block scaling: the dequantizing form multiplies each weight code by its block scale in fp32
// (code * scale rounded once, as the ref twin and checkpoint dequantizers do), then FMAs with x.
// The native form follows DeepSeek's two-level accumulation: the code products of a 128-wide block
// are summed unscaled (each product is exact in fp32), then the sum is multiplied by
// xs[m, b] * ws[n / 128, b] into the accumulator. Each lane applies the scale to its own 4-element
// share of the block before the cross-lane sum; by distributivity that is the same sum, and it
// saves a warp reduction per block.
//
// A dense bf16 weight from 8 rows runs as three tensor-core GEMMs of x's exact bf16 parts (the
// three-part path, below). Other calls with f32 activations and M >= 16 rows (grouped: 16 per
// expert on average) run the tiled kernel below instead (64 x 128 output tiles in shared memory,
// 4 x 8 per thread; dense: K split over blocks when tiles are few; grouped: one block per expert
// row tile): the warp kernel reads each weight element once per 8-row tile and sustains 5-7
// TFLOP/s (H100, session 11), several times slower than cuBLAS's SGEMM from 8 rows up. The native
// form stays on the warp kernel (`launch` says why).
//
// Grouped: the block stages the expert offsets (clamped into [0, R]) in shared memory; a warp
// walks its 8 rows as runs of one expert (binary search for the owner of a row), accumulating each
// run with that expert's weight rows, and writes only rows that some expert owns.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <type_traits>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/gemm_mma.cuh"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/kernels/cuda/linear.hpp"
#include "r1/kernels/cuda/linear_f32.hpp"

namespace r1::cuda::detail::f32gemm {

inline constexpr int kWarps = 8;                // warps per block, side by side along N
inline constexpr int kThreads = kWarps * 32;
inline constexpr int kRows = 8;                 // rows of a warp's tile
inline constexpr int kCols = 4;                 // columns of a warp's tile
inline constexpr int kVec = 4;                  // consecutive K elements per lane per step
inline constexpr int kChunk = 32 * kVec;        // K elements per warp step
inline constexpr int kMaxExperts = int(kGroupedMaxExperts);  // offsets staged in shared memory
inline constexpr int kMaxGridY = 65535;
static_assert(kRows * kCols == 32, "the reduce-scatter leaves one tile element per lane");
static_assert(kChunk == 128, "a warp step must cover exactly one 128-wide scale block");
static_assert(128 % kCols == 0, "a warp's columns must share one 128-row weight-scale block");

// ---------------------------------------------------------------------------------------------
// Device: element loads

/// Elements [k, k + 4) of a row as fp32; elements at or past k_end read as 0. VEC: one vector
/// load (the host checked the alignment and that K % 4 == 0, so a group is all in or all out).
template <bool VEC>
__device__ __forceinline__ void load4(const float* row, int k, int k_end, float (&v)[kVec]) {
  if constexpr (VEC) {
    const float4 q = k < k_end ? *reinterpret_cast<const float4*>(row + k) : make_float4(0.f, 0.f, 0.f, 0.f);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
#pragma unroll
    for (int j = 0; j < kVec; ++j) v[j] = k + j < k_end ? row[k + j] : 0.0f;
  }
}

template <bool VEC>
__device__ __forceinline__ void load4(const bf16* row, int k, int k_end, float (&v)[kVec]) {
  if constexpr (VEC) {
    const uint2 q = k < k_end ? *reinterpret_cast<const uint2*>(row + k) : make_uint2(0u, 0u);
    v[0] = __uint_as_float(q.x << 16);
    v[1] = __uint_as_float(q.x & 0xffff0000u);
    v[2] = __uint_as_float(q.y << 16);
    v[3] = __uint_as_float(q.y & 0xffff0000u);
  } else {
#pragma unroll
    for (int j = 0; j < kVec; ++j) v[j] = k + j < k_end ? float(row[k + j]) : 0.0f;
  }
}

template <bool VEC>
__device__ __forceinline__ void load4(const fp8_e4m3* row, int k, int k_end, float (&v)[kVec]) {
  if constexpr (VEC) {
    const uint32_t q = k < k_end ? *reinterpret_cast<const uint32_t*>(row + k) : 0u;
#pragma unroll
    for (int j = 0; j < kVec; ++j) v[j] = float(fp8_e4m3::from_bits(uint8_t(q >> (8 * j))));
  } else {
#pragma unroll
    for (int j = 0; j < kVec; ++j) v[j] = k + j < k_end ? float(row[k + j]) : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
// Operand policies (POD members, device accessors)

/// Activations in f32: x[r, k] = x[r * ld + k].
struct ActF32 {
  static constexpr bool kQuantized = false;
  const float* x = nullptr;
  int64_t ld = 0;
  template <bool VEC>
  __device__ __forceinline__ void load(int r, int k, int k_end, float (&v)[kVec]) const {
    load4<VEC>(x + int64_t(r) * ld, k, k_end, v);
  }
};

/// Activations quantized 1 x 128: e4m3 codes x[r * ld + k], scales s[r * s_rs + b * s_bs].
struct ActFp8 {
  static constexpr bool kQuantized = true;
  const fp8_e4m3* x = nullptr;
  int64_t ld = 0;
  const float* s = nullptr;
  int64_t s_rs = 0, s_bs = 0;
  template <bool VEC>
  __device__ __forceinline__ void load(int r, int k, int k_end, float (&v)[kVec]) const {
    load4<VEC>(x + int64_t(r) * ld, k, k_end, v);
  }
  __device__ __forceinline__ float scale(int r, int b) const { return s[int64_t(r) * s_rs + int64_t(b) * s_bs]; }
};

/// A warp's weight operand: kCols rows of one expert (columns past N repeat row N - 1, whose
/// results are discarded) and, for FP8, the scale row of their 128-row block.
template <class T>
struct WeightTile {
  const T* row[kCols];
  const float* s;  // FP8: ws[n0 / 128, b] = s[b * s_bs]
  int64_t s_bs;
  template <bool VEC>
  __device__ __forceinline__ void load(int c, int k, int k_end, float (&v)[kVec]) const {
    load4<VEC>(row[c], k, k_end, v);
  }
  __device__ __forceinline__ float scale(int b) const { return s[int64_t(b) * s_bs]; }
};

/// Weights [N, K] of E experts: expert e at w + e * group, or ptrs[e] when ptrs is set (dense:
/// one expert, group 0). FP8 (kBlockScaled) adds the scale grids [ceil(N / 128), ceil(K / 128)]:
/// s + e * s_group (or s_ptrs[e]), element (i, b) at i * s_rs + b * s_bs.
template <class T>
struct Weights {
  static constexpr bool kBlockScaled = std::is_same_v<T, fp8_e4m3>;
  const T* w = nullptr;
  const T* const* ptrs = nullptr;
  int64_t ld = 0, group = 0;
  const float* s = nullptr;
  const float* const* s_ptrs = nullptr;
  int64_t s_rs = 0, s_bs = 0, s_group = 0;

  __device__ __forceinline__ WeightTile<T> tile(int e, int n0, int n) const {
    const T* base = ptrs ? ptrs[e] : w + int64_t(e) * group;
    WeightTile<T> t;
#pragma unroll
    for (int c = 0; c < kCols; ++c) t.row[c] = base + int64_t(min(n0 + c, n - 1)) * ld;
    t.s = nullptr;
    t.s_bs = s_bs;
    if constexpr (kBlockScaled) t.s = (s_ptrs ? s_ptrs[e] : s + int64_t(e) * s_group) + int64_t(n0 / 128) * s_rs;
    return t;
  }
};

/// Kernel parameters: operands, output y[r * ldy + n] (f32), sizes, and for grouped calls the
/// device offsets [groups + 1].
template <class A, class W>
struct Params {
  A a;
  W w;
  float* y = nullptr;
  int64_t ldy = 0;
  int m = 0, n = 0, k = 0;
  const int32_t* offsets = nullptr;
  int groups = 1;
};

// ---------------------------------------------------------------------------------------------
// Device: the kernel

/// The expert owning `row` under offsets `off` [groups + 1] (already clamped into [0, m]): the last
/// e with off[e] <= row, if row < off[e + 1]; -1 when no expert owns it (before offsets[0], past
/// offsets[E], or offsets that are not non-decreasing).
__device__ __forceinline__ int expert_of(const int* off, int groups, int row) {
  int lo = 0, hi = groups - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (off[mid] <= row) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return off[lo] <= row && row < off[lo + 1] ? lo : -1;
}

/// One step of reduce_scatter: a lane keeps v[0 .. H) or v[H .. 2H) (its lane bit H picks the
/// upper half) in v[0 .. H), adding the partner's (lane ^ H) copy of that half. (One template per
/// step, so every index is a constant: a loop over the steps that nvcc does not unroll would
/// index v at run time and move it to local memory.)
template <int H>
__device__ __forceinline__ void reduce_scatter_step(float (&v)[32], int lane) {
  const bool upper = (lane & H) != 0;
#pragma unroll
  for (int i = 0; i < H; ++i) {
    const float send = upper ? v[i] : v[i + H];
    const float keep = upper ? v[i + H] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, H);
  }
}

/// Sums v[i] over the 32 lanes for every i; lane l returns the sum for i = l. Recursive halving:
/// 16 + 8 + 4 + 2 + 1 shuffles (not 32 x 5 for 32 butterfly reductions), in a fixed order.
__device__ __forceinline__ float reduce_scatter(float (&v)[32], int lane) {
  reduce_scatter_step<16>(v, lane);
  reduce_scatter_step<8>(v, lane);
  reduce_scatter_step<4>(v, lane);
  reduce_scatter_step<2>(v, lane);
  reduce_scatter_step<1>(v, lane);
  return v[0];
}

/// acc[r * kCols + c] += sum over k in [k_lo, k_hi) of a[m0 + r, k] * w_e[n0 + c, k] for the tile
/// rows r in [r_lo, r_hi) (a lane's share: its 4 elements of every 128-wide chunk; k_lo is a
/// multiple of 128).
template <bool VEC, class A, class W>
__device__ __forceinline__ void accumulate(const Params<A, W>& p, int e, int m0, int r_lo, int r_hi, int n0,
                                           int lane, int k_lo, int k_hi, float (&acc)[32]) {
  const auto wt = p.w.tile(e, n0, p.n);
#pragma unroll 2
  for (int k0 = k_lo; k0 < k_hi; k0 += kChunk) {
    const int k = k0 + lane * kVec, b = k0 / kChunk;
    float wv[kCols][kVec];
#pragma unroll
    for (int c = 0; c < kCols; ++c) wt.template load<VEC>(c, k, p.k, wv[c]);
    [[maybe_unused]] float ws = 1.0f;
    if constexpr (W::kBlockScaled) {
      ws = wt.scale(b);
      if constexpr (!A::kQuantized) {  // dequantize: code * scale, rounded once
#pragma unroll
        for (int c = 0; c < kCols; ++c)
#pragma unroll
          for (int j = 0; j < kVec; ++j) wv[c][j] = __fmul_rn(wv[c][j], ws);
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r < r_lo || r >= r_hi) continue;  // warp-uniform
      float xv[kVec];
      p.a.template load<VEC>(m0 + r, k, p.k, xv);
      if constexpr (A::kQuantized) {
        // two-level accumulation: unscaled block sum (exact products), then times both scales
        const float s = __fmul_rn(p.a.scale(m0 + r, b), ws);
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          float part = __fmul_rn(xv[0], wv[c][0]);
#pragma unroll
          for (int j = 1; j < kVec; ++j) part = fmaf(xv[j], wv[c][j], part);
          acc[r * kCols + c] = fmaf(part, s, acc[r * kCols + c]);
        }
      } else {
#pragma unroll
        for (int c = 0; c < kCols; ++c)
#pragma unroll
          for (int j = 0; j < kVec; ++j) acc[r * kCols + c] = fmaf(xv[j], wv[c][j], acc[r * kCols + c]);
      }
    }
  }
}

/// Grid: x over 32-column block tiles, y over 8-row tiles (striding past 65535 tiles).
/// KSPLIT: the block's 8 warps share one 4-column tile and split K instead (warp w takes the w-th
/// eighth of the 128-wide chunks), their sums added in warp order through shared memory: for
/// small N, whose 32-column tiles are too few to keep the GPU's loads in flight (N = 2112: 66
/// blocks, each warp walking all of K = 7168 alone).
template <class A, class W, bool GROUPED, bool VEC, bool KSPLIT>
__global__ void __launch_bounds__(kThreads) linear_f32_kernel(const Params<A, W> p) {
  static_assert(!A::kQuantized || W::kBlockScaled, "quantized activations need a block-scaled FP8 weight");
  const int* off = nullptr;  // grouped: [groups + 1] offsets clamped into [0, m]
  if constexpr (GROUPED) {
    extern __shared__ int staged_offsets[];
    for (int i = int(threadIdx.x); i <= p.groups; i += kThreads) staged_offsets[i] = min(max(p.offsets[i], 0), p.m);
    __syncthreads();
    off = staged_offsets;
  }
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int n0 = KSPLIT ? int(blockIdx.x) * kCols : (int(blockIdx.x) * kWarps + warp) * kCols;
  if (n0 >= p.n) return;  // whole warps (KSPLIT: the whole block); no block barrier follows
  // this warp's K range: all of K, or (KSPLIT) its eighth of the 128-wide chunks
  const int chunks = (p.k + kChunk - 1) / kChunk;
  const int k_lo = KSPLIT ? (chunks * warp / kWarps) * kChunk : 0;
  const int k_hi = KSPLIT ? min(p.k, (chunks * (warp + 1) / kWarps) * kChunk) : p.k;
  [[maybe_unused]] __shared__ float split_sums[KSPLIT ? kWarps : 1][32];
  const int m_tiles = (p.m - 1) / kRows + 1;
  for (int mt = int(blockIdx.y); mt < m_tiles; mt += int(gridDim.y)) {
    const int m0 = mt * kRows, rows = min(kRows, p.m - m0);
    float acc[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc[i] = 0.0f;
    if constexpr (GROUPED) {
      for (int r = 0; r < rows;) {  // runs of rows of one expert (warp-uniform)
        const int e = expert_of(off, p.groups, m0 + r);
        if (e < 0) {
          ++r;
          continue;
        }
        const int r_end = min(rows, off[e + 1] - m0);
        accumulate<VEC>(p, e, m0, r, r_end, n0, lane, k_lo, k_hi, acc);
        r = r_end;
      }
    } else {
      accumulate<VEC>(p, 0, m0, 0, rows, n0, lane, k_lo, k_hi, acc);
    }
    float v = reduce_scatter(acc, lane);
    if constexpr (KSPLIT) {
      split_sums[warp][lane] = v;
      __syncthreads();
      if (warp == 0) {
        v = split_sums[0][lane];
#pragma unroll
        for (int w = 1; w < kWarps; ++w) v += split_sums[w][lane];
      }
      __syncthreads();  // the next row tile overwrites split_sums
      if (warp != 0) continue;
    }
    const int r = lane / kCols, c = lane % kCols;
    bool write = r < rows && n0 + c < p.n;
    if constexpr (GROUPED) write = write && expert_of(off, p.groups, m0 + r) >= 0;
    if (write) p.y[int64_t(m0 + r) * p.ldy + (n0 + c)] = v;
  }
}

// ---------------------------------------------------------------------------------------------
// Device: the tiled kernel (f32 activations, M >= kTiledMinRows; dense or grouped)
//
// A block computes a 64 x 128 tile of y; 256 threads, each 4 rows x 8 columns (two runs of 4 columns,
// 64 apart, so the warps' shared-memory reads are conflict-free). K goes in steps of 32: both
// operands are staged in shared memory as fp32, transposed ([k][row], [k][column]; bf16 widened,
// FP8 dequantized as code * scale rounded once), double buffered, the next step's global loads in
// flight while this one computes. Sums are two-level: each 128-wide block of K is summed on its
// own, then added into the accumulator, which keeps fp32 error near sqrt(128) + sqrt(K / 128)
// roundings instead of sqrt(K). Long K with few tiles is split over blockIdx.y (whole 128-wide
// blocks per split) into fp32 partials, summed in split order (deterministic).

inline constexpr int kTBM = 64, kTBN = 128, kTBK = 32, kTThreads = 256;
inline constexpr int kTiledMinRows = 16;
inline constexpr int kTiledSmem = int(sizeof(float)) * 2 * kTBK * (kTBM + kTBN);  // 48 KB
static_assert(128 % kTBK == 0 && kTBN == 128, "a block of K and a column tile must each be one scale block");

/// Partial sums of split s go to partial + s * m * n (row-major m x n); nullptr: y.
template <class A, class W>
struct TiledParams {
  Params<A, W> p;
  float* partial = nullptr;
  int kb_per_split = 0;  // 128-wide blocks of K per split
};

/// GROUPED: blockIdx.x / n_tiles counts the 64-row tiles of expert 0, then expert 1, ... (rows
/// [offsets[e], offsets[e + 1]), clamped into [0, m]); blocks past the last tile return at once.
template <class A, class W, bool VEC, bool GROUPED>
__global__ void __launch_bounds__(kTThreads) linear_f32_tiled_kernel(const TiledParams<A, W> tp) {
  static_assert(!A::kQuantized, "the native form runs on the warp kernel (launch says why)");
  using T = std::remove_cv_t<std::remove_pointer_t<decltype(tp.p.w.w)>>;
  const Params<A, W>& p = tp.p;
  extern __shared__ __align__(16) float tsmem[];
  float* sx = tsmem;                      // [2][kTBK][kTBM]
  float* sw = tsmem + 2 * kTBK * kTBM;    // [2][kTBK][kTBN]
  const int tid = int(threadIdx.x), ty = tid / 16, tx = tid % 16;
  const int n_tiles = (p.n + kTBN - 1) / kTBN;
  const int n0 = int(blockIdx.x) % n_tiles * kTBN;
  int m0 = int(blockIdx.x) / n_tiles * kTBM, m_end = min(p.m, m0 + kTBM), e = 0;
  if constexpr (GROUPED) {
    int* off = reinterpret_cast<int*>(tsmem + 2 * kTBK * (kTBM + kTBN));  // [groups + 1], clamped
    for (int i = tid; i <= p.groups; i += kTThreads) off[i] = min(max(p.offsets[i], 0), p.m);
    __syncthreads();
    int slot = int(blockIdx.x) / n_tiles;  // the same in every thread: the exits below are block-wide
    e = -1;
    for (int g = 0, lo = off[0]; g < p.groups; ++g) {
      const int hi = max(lo, off[g + 1]);  // offsets that go down own nothing
      const int tiles = (hi - lo + kTBM - 1) / kTBM;
      if (slot < tiles) {
        e = g;
        m0 = lo + slot * kTBM;
        m_end = min(hi, m0 + kTBM);
        break;
      }
      slot -= tiles;
      lo = hi;
    }
    if (e < 0) return;
  }
  const T* w_base = p.w.ptrs ? p.w.ptrs[e] : p.w.w + int64_t(e) * p.w.group;
  [[maybe_unused]] const float* s_base = nullptr;  // this expert's weight scales (FP8)
  if constexpr (W::kBlockScaled) s_base = p.w.s_ptrs ? p.w.s_ptrs[e] : p.w.s + int64_t(e) * p.w.s_group;
  const int kb_total = (p.k + 127) / 128;
  const int kb_lo = int(blockIdx.y) * tp.kb_per_split, kb_hi = min(kb_total, kb_lo + tp.kb_per_split);
  const int k_lo = kb_lo * 128, k_hi = min(p.k, kb_hi * 128);
  const int steps = (k_hi - k_lo + kTBK - 1) / kTBK;

  // this thread's share of a step's loads: x row lr, K offset lkx (8 values); weight column lc,
  // K offset lkw (16 values). A warp takes 32 consecutive rows (columns) at one K offset: each
  // thread reads whole 32-byte sectors of its row, and the transposed shared-memory stores of the
  // warp hit 32 different banks.
  const int lr = tid % kTBM, lkx = tid / kTBM * 8, lc = tid % kTBN, lkw = tid / kTBN * 16;
  static_assert(kTThreads == kTBM * 4 && kTThreads == kTBN * 2, "a step's loads: 8 x values, 16 w values a thread");
  const bool x_in = m0 + lr < m_end, w_in = n0 + lc < p.n;
  const T* w_row = w_base + int64_t(min(n0 + lc, p.n - 1)) * p.w.ld;
  float xr[8], wr[16];
  const auto load_step = [&](int step) {
    const int k = k_lo + step * kTBK;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float v[kVec];
      if (x_in) {
        p.a.template load<VEC>(m0 + lr, k + lkx + 4 * h, k_hi, v);
      } else {
#pragma unroll
        for (int j = 0; j < kVec; ++j) v[j] = 0.0f;
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) xr[4 * h + j] = v[j];
    }
#pragma unroll
    for (int h = 0; h < 4; ++h) {
      float v[kVec];
      if (w_in) {
        load4<VEC>(w_row, k + lkw + 4 * h, k_hi, v);
      } else {
#pragma unroll
        for (int j = 0; j < kVec; ++j) v[j] = 0.0f;
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) wr[4 * h + j] = v[j];
    }
    if constexpr (W::kBlockScaled) {  // dequantize: code * scale, rounded once
      const float ws = s_base[int64_t(n0 / 128) * p.w.s_rs + int64_t(k / 128) * p.w.s_bs];
#pragma unroll
      for (int j = 0; j < 16; ++j) wr[j] = __fmul_rn(wr[j], ws);
    }
  };
  const auto store_step = [&](int buf) {
#pragma unroll
    for (int j = 0; j < 8; ++j) sx[(buf * kTBK + lkx + j) * kTBM + lr] = xr[j];
#pragma unroll
    for (int j = 0; j < 16; ++j) sw[(buf * kTBK + lkw + j) * kTBN + lc] = wr[j];
  };

  float acc[4][8], blk[4][8];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = blk[i][j] = 0.0f;
  const auto fold = [&] {  // a 128-wide block of K is complete: add its sums in
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] += blk[i][j], blk[i][j] = 0.0f;
  };


  if (steps > 0) {
    load_step(0);
    store_step(0);
  }
  __syncthreads();
  for (int step = 0; step < steps; ++step) {
    const int buf = step & 1;
    if (step + 1 < steps) load_step(step + 1);  // in flight during the FMAs below
#pragma unroll 8
    for (int kk = 0; kk < kTBK; ++kk) {
      const float4 a = *reinterpret_cast<const float4*>(sx + (buf * kTBK + kk) * kTBM + 4 * ty);
      // columns 4 tx .. 4 tx + 3 and 64 + 4 tx .. 64 + 4 tx + 3: each float4 load of the 16
      // threads of a row group reads 256 contiguous bytes (2 wavefronts, no bank conflict)
      const float4 b0 = *reinterpret_cast<const float4*>(sw + (buf * kTBK + kk) * kTBN + 4 * tx);
      const float4 b1 = *reinterpret_cast<const float4*>(sw + (buf * kTBK + kk) * kTBN + kTBN / 2 + 4 * tx);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) blk[i][j] = fmaf(av[i], bv[j], blk[i][j]);
    }
    const int k_next = k_lo + (step + 1) * kTBK;
    if (k_next % 128 == 0 || step + 1 == steps) fold();
    if (step + 1 < steps) store_step(buf ^ 1);
    __syncthreads();
  }

  // store: split partials or y
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = m0 + 4 * ty + i;
    if (r >= m_end) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int c = n0 + (j < 4 ? 4 * tx + j : kTBN / 2 + 4 * tx + j - 4);
      if (c >= p.n) continue;
      if (tp.partial) {
        tp.partial[int64_t(blockIdx.y) * p.m * p.n + int64_t(r) * p.n + c] = acc[i][j];
      } else {
        p.y[int64_t(r) * p.ldy + c] = acc[i][j];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host: checks and launch

/// The K split of a dense call: among 1 .. kb_total / 4 splits (at least 4 whole 128-wide blocks
/// of K each), the one whose (tile, split) blocks fill their last wave of `slots` resident blocks
/// best (no split when the tiles alone fill a wave); a smaller split unless a larger one fills at
/// least 2% more. (Session 12, H100: at M = 64, N = 7168, K = 16384 the former rule gave 280
/// blocks for 264 slots, a second wave of 16.)
/// Returns the 128-wide blocks per split.
inline int64_t tiled_kb_per_split(int64_t tiles, int64_t kb_total, int64_t slots) {
  if (tiles >= slots) return std::max<int64_t>(1, kb_total);  // a wave of tiles already: no split
  int64_t best = kb_total;  // one split
  double best_fill = 0;
  for (int64_t s = 1; s <= std::max<int64_t>(1, kb_total / 4); ++s) {
    const int64_t per = ceil_div(kb_total, s), used = ceil_div(kb_total, per), blocks = tiles * used;
    const double fill = double(blocks) / double(ceil_div(blocks, slots) * slots);
    if (fill > best_fill + 0.02) best = per, best_fill = fill;
  }
  return std::max<int64_t>(1, best);
}

/// The tiled kernel. Dense: with its K split (tiled_kb_per_split). Grouped: one block per (expert
/// row tile, column tile) over an upper bound of the row tiles, ceil(m / 64) + groups (no split).
template <class A, class W, bool GROUPED>
void launch_tiled(const Params<A, W>& p, bool vec, stream_t stream) {
  const int64_t row_tiles = GROUPED ? ceil_div(p.m, kTBM) + p.groups : ceil_div(p.m, kTBM);
  const int64_t tiles = row_tiles * ceil_div(p.n, kTBN);
  R1_CHECK(tiles < (int64_t(1) << 31), "cuda.linear_f32", "too many output tiles (", tiles, ")");
  const int smem = kTiledSmem + (GROUPED ? int(sizeof(int)) * (p.groups + 1) : 0);
  const auto run = [&]<bool V>(const TiledParams<A, W>& tp, dim3 grid) {
    linear_f32_tiled_kernel<A, W, V, GROUPED><<<grid, kTThreads, smem, stream>>>(tp);
  };
  // both variants prepared (their occupancy is the same code's; the split reads the one that runs)
  const KernelInfo& k = vec ? prepare_kernel<linear_f32_tiled_kernel<A, W, true, GROUPED>>(
                                  kTThreads, kTiledSmem + int(sizeof(int)) * (kMaxExperts + 1), "cuda.linear_f32")
                            : prepare_kernel<linear_f32_tiled_kernel<A, W, false, GROUPED>>(
                                  kTThreads, kTiledSmem + int(sizeof(int)) * (kMaxExperts + 1), "cuda.linear_f32");
  const int64_t kb_total = ceil_div(p.k, 128);
  const int64_t slots = int64_t(std::max(1, k.blocks_per_sm)) * current_device().sms;
  TiledParams<A, W> tp;
  tp.p = p;
  tp.kb_per_split = int(GROUPED ? kb_total : tiled_kb_per_split(tiles, kb_total, slots));
  const int used = int(std::max<int64_t>(1, ceil_div(kb_total, tp.kb_per_split)));  // splits with work
  const dim3 grid{unsigned(tiles), unsigned(used), 1u};
  std::optional<mma::Scratch> part;
  if (used > 1) {
    part.emplace(std::size_t(used) * std::size_t(p.m) * std::size_t(p.n) * sizeof(float), stream);
    tp.partial = static_cast<float*>(part->get());
  }
  if (vec) {
    run.template operator()<true>(tp, grid);
  } else {
    run.template operator()<false>(tp, grid);
  }
  R1_CUDA_CHECK_LAUNCH();
  if (used > 1) {
    const int64_t total = int64_t(p.m) * p.n;
    const int blocks = int(std::min<int64_t>(ceil_div(total, 256), int64_t(current_device().sms) * 8));
    mma::splitk_reduce_kernel<float><<<blocks, 256, 0, stream>>>(tp.partial, used, p.m, p.n, p.y, p.ldy);
    R1_CUDA_CHECK_LAUNCH();
  }
}

using KernelChoice = LinearF32Kernel;

/// R1_LINEAR_F32_KERNEL, read once (linear_f32.hpp: parse_linear_f32_kernel).
inline KernelChoice kernel_choice() {
  static const KernelChoice c = parse_linear_f32_kernel(std::getenv("R1_LINEAR_F32_KERNEL"));
  return c;
}

template <class A, class W, bool GROUPED>
void launch(const Params<A, W>& p, bool vec, stream_t stream) {
  const KernelChoice choice = kernel_choice();
  // The tiled kernel from 16 rows (grouped: 16 rows per expert on average), for f32 activations.
  // The native form (e4m3 activation codes) stays on the warp kernel: with it tiny-r1-mtp's
  // `--fp8 native --activations f32` run stays on the fp64 activation-quantization simulation
  // (cosine 1.0 at every position, H100); with the tiled kernel's summation order (block sums
  // folded every 128, 64 or 32 elements) one position fell to 0.99968 from the first MoE layer on
  // (session 12; the router's call was not the cause). Its e4m3 decisions are that sensitive to
  // the order of fp32 sums; an exact (fp64) block sum would make the tiled kernel safe, at half rate.
  if constexpr (!A::kQuantized) {
    if (p.k > 0 && choice != KernelChoice::warp &&
        (choice == KernelChoice::tiled || p.m >= kTiledMinRows * (GROUPED ? p.groups : 1))) {
      launch_tiled<A, W, GROUPED>(p, vec, stream);
      return;
    }
  }
  const int64_t row_tiles = std::min<int64_t>(ceil_div(p.m, kRows), kMaxGridY);
  // Few column tiles (and K long enough for 8 warps): split K inside the block (KSPLIT above).
  const bool ksplit = choice != KernelChoice::warp &&
                      ceil_div(p.n, kWarps * kCols) * row_tiles < 2 * int64_t(current_device().sms) &&
                      ceil_div(p.k, kChunk) >= kWarps;
  const dim3 grid{unsigned(ceil_div(p.n, ksplit ? kCols : kWarps * kCols)), unsigned(row_tiles), 1u};
  const std::size_t smem = GROUPED ? std::size_t(p.groups + 1) * sizeof(int) : 0;
  if (vec && ksplit) {
    linear_f32_kernel<A, W, GROUPED, true, true><<<grid, kThreads, smem, stream>>>(p);
  } else if (vec) {
    linear_f32_kernel<A, W, GROUPED, true, false><<<grid, kThreads, smem, stream>>>(p);
  } else if (ksplit) {
    linear_f32_kernel<A, W, GROUPED, false, true><<<grid, kThreads, smem, stream>>>(p);
  } else {
    linear_f32_kernel<A, W, GROUPED, false, false><<<grid, kThreads, smem, stream>>>(p);
  }
  R1_CUDA_CHECK_LAUNCH();
}

/// A device matrix operand with unit-stride rows.
template <class T>
void check_matrix(const View<T, 2>& v, const char* op, const char* name) {
  require_device(v, op, name);
  require_matrix(v, op, name);
}

/// The output [m, n] and the sizes the kernel indexes with 32-bit coordinates.
inline void check_output(const View<float, 2>& y, int64_t m, int64_t n, int64_t k, const char* op) {
  check_matrix(y, op, "y");
  require_dim(y, 0, m, op, "y", "rows");
  require_dim(y, 1, n, op, "y", "columns");
  require_int32(m, op, "M");
  require_int32(n, op, "N");
  require_int32(k, op, "K");
}

/// A dense weight [n, k] (x has k input features).
template <class T>
void check_weight(const View<const T, 2>& w, int64_t k, const char* op) {
  check_matrix(w, op, "weight");
  R1_CHECK(w.shape[1] == k, op, "x has ", k, " input features, weight has ", w.shape[1], " (weight shape [",
           w.shape[0], ", ", w.shape[1], "])");
}

/// A dense weight_scale_inv grid for an [n, k] weight in 128 x 128 blocks (any strides).
inline void check_weight_scales(const View<const float, 2>& ws, int64_t n, int64_t k, const char* op) {
  require_device(ws, op, "weight_scale_inv");
  R1_CHECK(ws.shape[0] == ceil_div(n, 128) && ws.shape[1] == ceil_div(k, 128), op, "weight_scale_inv has shape [",
           ws.shape[0], ", ", ws.shape[1], "], expected [", ceil_div(n, 128), ", ", ceil_div(k, 128), "] for a [",
           n, ", ", k, "] weight in 128x128 blocks");
}

/// Quantized activations: codes [m, k] with k % 128 == 0, scales [m, k / 128] (any strides).
inline void check_quantized(const View<const fp8_e4m3, 2>& xq, const View<const float, 2>& xs, const char* op) {
  check_matrix(xq, op, "xq");
  require_device(xs, op, "x scale");
  const int64_t m = xq.shape[0], k = xq.shape[1];
  R1_CHECK(k % 128 == 0, op, "K = ", k, " is not a multiple of the 128-channel block: activations cannot be ",
           "quantized 1 x 128");
  require_dim(xs, 0, m, op, "x scale", "rows");
  require_dim(xs, 1, k / 128, op, "x scale", "groups");
}

/// An expert table against the expected [experts, rows, cols].
template <class T>
void check_experts(const ExpertWeights<T>& w, int64_t experts, int64_t rows, int64_t cols, const char* op,
                   const char* name) {
  // An empty [rows, cols] matrix has no storage (a zero-size tensor's data is null); the kernels
  // never read it (K = 0 writes zeros, N = 0 returns first).
  R1_CHECK(w.data != nullptr || w.ptrs != nullptr || rows == 0 || cols == 0, op, name, " holds no weights");
  R1_CHECK(w.experts == experts && w.rows == rows && w.cols == cols, op, name, " are ", w.experts, " x [", w.rows,
           ", ", w.cols, "], expected ", experts, " x [", rows, ", ", cols, "]");
  R1_CHECK(w.row_stride >= cols, op, name, " rows overlap (row stride ", w.row_stride, " < ", cols, ")");
  if (w.data) {
    R1_CHECK(experts <= 1 || w.expert_stride >= rows * w.row_stride, op, name, " experts overlap (expert stride ",
             w.expert_stride, ")");
  }
}

/// True when every expert's rows can be read in `bytes`-wide vectors (pointer tables are
/// documented 16-byte aligned; their row strides are checked).
template <class T>
bool experts_vector_aligned(const ExpertWeights<T>& w, int64_t bytes) {
  const int64_t es = int64_t(sizeof(T));
  return (w.cols * es) % bytes == 0 && (w.row_stride * es) % bytes == 0 &&
         (!w.data || (aligned_to(w.data, bytes) && (w.expert_stride * es) % bytes == 0));
}

/// The grouped call's shared checks: x rows [R, K] with unit-stride rows, y [R, N], offsets.
template <class TX>
void check_grouped(const View<const TX, 2>& x, const View<const int32_t, 1>& offsets, const View<float, 2>& y,
                   const char* op, const char* x_name) {
  check_matrix(x, op, x_name);
  check_grouped_offsets(offsets, op);
  check_output(y, x.shape[0], y.shape[1], x.shape[1], op);
}

template <class T>
Weights<T> dense_weights(const View<const T, 2>& w) {
  Weights<T> wt;
  wt.w = w.data;
  wt.ld = row_stride(w);
  return wt;
}

template <class T>
Weights<T> expert_weights(const ExpertWeights<T>& w) {
  Weights<T> wt;
  wt.w = w.data;
  wt.ptrs = w.ptrs;
  wt.ld = w.row_stride;
  wt.group = w.expert_stride;
  return wt;
}

inline void set_scales(Weights<fp8_e4m3>& wt, const View<const float, 2>& ws) {
  wt.s = ws.data;
  wt.s_rs = ws.stride[0];
  wt.s_bs = ws.stride[1];
}

inline void set_scales(Weights<fp8_e4m3>& wt, const ExpertWeights<float>& ws) {
  wt.s = ws.data;
  wt.s_ptrs = ws.ptrs;
  wt.s_rs = ws.row_stride;
  wt.s_bs = 1;
  wt.s_group = ws.expert_stride;
}

inline ActF32 act_f32(const View<const float, 2>& x) { return ActF32{x.data, row_stride(x)}; }

inline ActFp8 act_fp8(const View<const fp8_e4m3, 2>& xq, const View<const float, 2>& xs) {
  return ActFp8{xq.data, row_stride(xq), xs.data, xs.stride[0], xs.stride[1]};
}

template <class A, class W>
Params<A, W> make_params(const A& a, const W& w, const View<float, 2>& y, int64_t m, int64_t n, int64_t k) {
  Params<A, W> p;
  p.a = a;
  p.w = w;
  p.y = y.data;
  p.ldy = row_stride(y);
  p.m = int(m);
  p.n = int(n);
  p.k = int(k);
  return p;
}

template <class A, class W>
void set_offsets(Params<A, W>& p, const View<const int32_t, 1>& offsets) {
  p.offsets = offsets.data;
  p.groups = int(offsets.shape[0] - 1);
}

// ---------------------------------------------------------------------------------------------
// Dense bf16 weight from kSplit3MinRows rows: three exact bf16 parts of x on the tensor cores
//
// x = h + m + l exactly, with h = bf16(x), m = bf16(x - h), l = bf16(x - h - m): each residual is
// exact in fp32, and three 8-bit bf16 significands hold fp32's 24. So x . w = h . w + m . w + l . w
// with every product exact (bf16 x bf16 fits in fp32); only the sums differ from the CUDA-core
// kernels' (the tensor cores' fp32 accumulation, in their order). The parts are stacked as 3 R rows
// of one bf16 GEMM with f32 output (cuda::linear: r1's mma.sync kernel or cuBLASLt, whichever the
// row count picks), which reads the weight once; then y = (l . w + m . w) + h . w. Rows go in
// chunks whose parts and partial outputs fit kSplit3ScratchBytes. Measured on the H100 (session 11 and
// 12): the CUDA-core kernels reach 5-27 TFLOP/s from 8 rows up, below PyTorch's fp32 GEMM.

inline constexpr int64_t kSplit3MinRows = 8;
inline constexpr std::size_t kSplit3ScratchBytes = std::size_t(256) << 20;

/// parts [3, R, K] bf16 (dense) = the h, m, l parts of x [R, K] (row stride ldx). A non-finite
/// value goes whole into h, with zero m and l (inf - inf would turn an infinity into NaN); a finite
/// one that rounds to bf16 infinity (|x| > 3.3895e38) takes bf16's largest as h, the rest exact below.
__global__ void split3_kernel(const float* __restrict__ x, int64_t ldx, int rows, int k, bf16* __restrict__ parts) {
  const int64_t plane = int64_t(rows) * k;
  for (int r = int(blockIdx.y); r < rows; r += int(gridDim.y)) {
    for (int c = int(blockIdx.x * blockDim.x + threadIdx.x); c < k; c += int(gridDim.x * blockDim.x)) {
      const float v = x[int64_t(r) * ldx + c];
      bf16 h(v);
      if (isfinite(v) && !isfinite(float(h))) h = bf16::from_bits(v < 0 ? 0xff7fu : 0x7f7fu);
      const float r1 = isfinite(v) ? v - float(h) : 0.0f;
      const bf16 mid(r1);
      const int64_t i = int64_t(r) * k + c;
      parts[i] = h;
      parts[plane + i] = mid;
      parts[2 * plane + i] = bf16(r1 - float(mid));
    }
  }
}

/// y [R, N] (row stride ldy) = (ys[2] + ys[1]) + ys[0], ys [3, R, N] dense: the smallest parts first.
__global__ void combine3_kernel(const float* __restrict__ ys, int rows, int n, float* __restrict__ y, int64_t ldy) {
  const int64_t plane = int64_t(rows) * n;
  for (int r = int(blockIdx.y); r < rows; r += int(gridDim.y)) {
    for (int c = int(blockIdx.x * blockDim.x + threadIdx.x); c < n; c += int(gridDim.x * blockDim.x)) {
      const int64_t i = int64_t(r) * n + c;
      y[int64_t(r) * ldy + c] = (ys[2 * plane + i] + ys[plane + i]) + ys[i];
    }
  }
}

/// y = x . w^T through split3_kernel, cuda::linear<float> and combine3_kernel, a chunk of rows at a time.
inline void dense_bf16_split3(View<const float, 2> x, View<const bf16, 2> w, View<float, 2> y, stream_t stream) {
  const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[0];
  // rows per chunk: the parts [3, rows, K] bf16 and their products [3, rows, N] f32 within the budget
  const std::size_t row_bytes = 3 * (sizeof(bf16) * std::size_t(k) + sizeof(float) * std::size_t(n));
  const int64_t chunk = std::clamp<int64_t>(int64_t(kSplit3ScratchBytes / row_bytes), kSplit3MinRows, m);
  mma::Scratch parts(std::size_t(3 * chunk * k) * sizeof(bf16), stream);
  mma::Scratch ys(std::size_t(3 * chunk * n) * sizeof(float), stream);
  const auto grid = [](int64_t rows, int64_t cols) {
    return dim3{unsigned(std::min<int64_t>(ceil_div(cols, 256), 64)), unsigned(std::min<int64_t>(rows, 65535)), 1u};
  };
  for (int64_t r0 = 0; r0 < m; r0 += chunk) {
    const int64_t rows = std::min(chunk, m - r0);
    bf16* pp = static_cast<bf16*>(parts.get());
    float* yp = static_cast<float*>(ys.get());
    split3_kernel<<<grid(rows, k), 256, 0, stream>>>(x.data + r0 * row_stride(x), row_stride(x), int(rows), int(k), pp);
    R1_CUDA_CHECK_LAUNCH();
    cuda::linear<float>(make_view<2>(static_cast<const bf16*>(pp), {3 * rows, k}, Space::cuda), w,
                        make_view<2>(yp, {3 * rows, n}, Space::cuda), stream);
    combine3_kernel<<<grid(rows, n), 256, 0, stream>>>(yp, int(rows), int(n), y.data + r0 * row_stride(y),
                                                        row_stride(y));
    R1_CUDA_CHECK_LAUNCH();
  }
}

// ---------------------------------------------------------------------------------------------
// Host: the operations (src/cuda/linear_f32.cu defines the public functions with them)

inline void dense_bf16(View<const float, 2> x, View<const bf16, 2> w, View<float, 2> y, stream_t stream) {
  const char* op = "cuda.linear_f32";
  check_matrix(x, op, "x");
  check_weight(w, x.shape[1], op);
  const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[0];
  check_output(y, m, n, k, op);
  if (m == 0 || n == 0) return;
  if (m >= kSplit3MinRows && k > 0 && kernel_choice() == KernelChoice::automatic) {
    dense_bf16_split3(x, w, y, stream);
    return;
  }
  const bool vec = rows_vector_aligned(x, 16) && rows_vector_aligned(w, 8);
  launch<ActF32, Weights<bf16>, false>(make_params(act_f32(x), dense_weights(w), y, m, n, k), vec, stream);
}

inline void dense_fp8_dequant(View<const float, 2> x, View<const fp8_e4m3, 2> wq, View<const float, 2> ws,
                              View<float, 2> y, stream_t stream) {
  const char* op = "cuda.linear_f32";
  check_matrix(x, op, "x");
  check_weight(wq, x.shape[1], op);
  const int64_t m = x.shape[0], k = x.shape[1], n = wq.shape[0];
  check_weight_scales(ws, n, k, op);
  check_output(y, m, n, k, op);
  if (m == 0 || n == 0) return;
  Weights<fp8_e4m3> wt = dense_weights(wq);
  set_scales(wt, ws);
  const bool vec = rows_vector_aligned(x, 16) && rows_vector_aligned(wq, 4);
  launch<ActF32, Weights<fp8_e4m3>, false>(make_params(act_f32(x), wt, y, m, n, k), vec, stream);
}

inline void dense_fp8_native(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                             View<const float, 2> ws, View<float, 2> y, stream_t stream) {
  const char* op = "cuda.linear_f32";
  check_quantized(xq, xs, op);
  check_weight(wq, xq.shape[1], op);
  const int64_t m = xq.shape[0], k = xq.shape[1], n = wq.shape[0];
  check_weight_scales(ws, n, k, op);
  check_output(y, m, n, k, op);
  if (m == 0 || n == 0) return;
  Weights<fp8_e4m3> wt = dense_weights(wq);
  set_scales(wt, ws);
  const bool vec = rows_vector_aligned(xq, 4) && rows_vector_aligned(wq, 4);
  launch<ActFp8, Weights<fp8_e4m3>, false>(make_params(act_fp8(xq, xs), wt, y, m, n, k), vec, stream);
}

inline void grouped_bf16(View<const float, 2> x, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& w,
                         View<float, 2> y, stream_t stream) {
  const char* op = "cuda.grouped_linear_f32";
  check_grouped(x, offsets, y, op, "x");
  const int64_t rows = x.shape[0], k = x.shape[1], n = y.shape[1], experts = offsets.shape[0] - 1;
  check_experts(w, experts, n, k, op, "expert weights");
  if (rows == 0 || n == 0) return;
  auto p = make_params(act_f32(x), expert_weights(w), y, rows, n, k);
  set_offsets(p, offsets);
  const bool vec = rows_vector_aligned(x, 16) && experts_vector_aligned(w, 8);
  launch<ActF32, Weights<bf16>, true>(p, vec, stream);
}

inline void grouped_fp8_dequant(View<const float, 2> x, View<const int32_t, 1> offsets,
                                const ExpertWeights<fp8_e4m3>& wq, const ExpertWeights<float>& ws, View<float, 2> y,
                                stream_t stream) {
  const char* op = "cuda.grouped_linear_f32";
  check_grouped(x, offsets, y, op, "x");
  const int64_t rows = x.shape[0], k = x.shape[1], n = y.shape[1], experts = offsets.shape[0] - 1;
  check_experts(wq, experts, n, k, op, "expert weights");
  check_experts(ws, experts, ceil_div(n, 128), ceil_div(k, 128), op, "expert weight scales");
  if (rows == 0 || n == 0) return;
  Weights<fp8_e4m3> wt = expert_weights(wq);
  set_scales(wt, ws);
  auto p = make_params(act_f32(x), wt, y, rows, n, k);
  set_offsets(p, offsets);
  const bool vec = rows_vector_aligned(x, 16) && experts_vector_aligned(wq, 4);
  launch<ActF32, Weights<fp8_e4m3>, true>(p, vec, stream);
}

inline void grouped_fp8_native(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const int32_t, 1> offsets,
                               const ExpertWeights<fp8_e4m3>& wq, const ExpertWeights<float>& ws, View<float, 2> y,
                               stream_t stream) {
  const char* op = "cuda.grouped_linear_f32";
  check_quantized(xq, xs, op);
  check_grouped(xq, offsets, y, op, "xq");
  const int64_t rows = xq.shape[0], k = xq.shape[1], n = y.shape[1], experts = offsets.shape[0] - 1;
  check_experts(wq, experts, n, k, op, "expert weights");
  check_experts(ws, experts, ceil_div(n, 128), k / 128, op, "expert weight scales");
  if (rows == 0 || n == 0) return;
  Weights<fp8_e4m3> wt = expert_weights(wq);
  set_scales(wt, ws);
  auto p = make_params(act_fp8(xq, xs), wt, y, rows, n, k);
  set_offsets(p, offsets);
  const bool vec = rows_vector_aligned(xq, 4) && experts_vector_aligned(wq, 4);
  launch<ActFp8, Weights<fp8_e4m3>, true>(p, vec, stream);
}

}  // namespace r1::cuda::detail::f32gemm
