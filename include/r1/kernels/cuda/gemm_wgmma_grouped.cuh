// SPDX-License-Identifier: MIT
// r1's Hopper grouped (MoE expert) GEMMs, sm_90a: TMA + wgmma on the building blocks of
// gemm_wgmma.cuh (mbarriers, TMA, shared-memory descriptors; one producer and two consumer
// warpgroups on 128-row tiles), over rows grouped by expert:
//   y[r, :] = x[r, :] . W_e^T        for the rows r in [offsets[e], offsets[e + 1]) of expert e
// in two flavours: FP8 with DeepSeek's 128 x 128 block scaling (per-128-K fp32 promotion, the order
// of operations of ref::linear_fp8_native) and bf16 (fp32 accumulation). The dense own_wgmma GEMMs
// (linear, linear_fp8_native) are this kernel over one expert owning every row.
//
// Work decomposition: a persistent grid (one block per SM). Every block first turns the expert row
// offsets (device memory: nothing waits for the routing on the host, and a CUDA graph replays the
// call with new routing) into a table of each expert's first M tile in shared memory, then walks
// the tiles (expert, M tile, N tile) with a grid stride, in bands of kRasterBand M tiles so that
// the blocks running together share activation and weight tiles in L2. Producer and consumers
// walk the same sequence and keep one running stage counter across tiles, so the ring of
// shared-memory stages never drains between tiles: the producer loads the next tile's first
// stages while the consumers store the last one.
//  - A (activations): one 2D TMA map over x [R, K bytes]. A tile starts at the expert's first row
//    and may run into the next expert's rows (or past R: zeros); those rows are computed but never
//    stored, and a consumer warpgroup whose 64 rows all lie past the expert's end skips the math.
//  - B (weights): one 3D TMA map over the stacked weights [E, N, K bytes]; rows past N of an expert
//    arrive as zeros (the box stays inside one expert), so ragged N (576, 2112) needs nothing else.
// Per-expert pointer tables have no single tensor to describe: the callers send them to the
// mma.sync kernel (gemm_mma.cuh) instead.
// Every mbarrier wait is bounded (gemm_wgmma.cuh's mbar_wait): a protocol error traps.
#pragma once

#include <cub/block/block_scan.cuh>

#include "r1/kernels/cuda/gemm_wgmma.cuh"

namespace r1::cuda::detail::wgmma {

/// Experts a grouped call may have (the shared-memory tile table is sized for it).
inline constexpr int kMaxGroups = 1024;
inline constexpr int TABLE_BYTES = ((kMaxGroups + 1) * 4 + 15) / 16 * 16;  // int tile_start[groups + 1]

/// M tiles per band of the tile walk: the blocks running together cover up to kRasterBand M tiles
/// and the N tiles next to each other, so an activation tile and a weight tile are each fetched
/// from memory about once per band and then read from L2 (a plain M-major walk over a wide N, say
/// N = 8192 in 256-column tiles, would stream every weight tile once per ~4 M tiles).
inline constexpr int kRasterBand = 8;

/// The grouped kernel for output tiles of 128 rows x TBN columns: TBN = 128 (bf16 and FP8: two
/// m64n128 fragments, 5 ring stages of 32 KiB) or TBN = 256 (bf16 only: two m64n256 fragments of
/// 128 fp32 accumulators a thread, 4 stages of 48 KiB). The wider tile moves fewer bytes (shared
/// memory and L2) per flop and has half as many tiles' epilogues: dense bf16 8192^3 went from 2151
/// to 1714 us on an H100 (session 13). FP8 keeps 128 (its fragment plus the promoted sum would
/// need 256 registers).
/// Measured and not kept (H100, session 13): 64-byte K stages (8 of 24 KiB) for the wide tile, 1.3x
/// slower at 8192^3; 6 stages for the 128-column tiles, MoE bf16 at T = 4096 1.2x slower; dense
/// calls in CTA pairs sharing each weight tile through TMA multicast (branch wgmma-cta-pairs), no
/// faster (bf16 8192^3 1652 vs 1645 us, FP8 1371 vs 1296 us).
template <int TBN>
struct GroupedCfg {
  static_assert(TBN == 128 || TBN == 256, "grouped wgmma tiles are 128 or 256 columns wide");
  static constexpr int ACC = TBN / 2;  // fp32 accumulators a consumer thread holds (64 x TBN per warpgroup)
  static constexpr int STAGES = TBN == 256 ? 4 : wgmma::STAGES;
  static constexpr int B_BYTES = TBN * KB;
  static constexpr int STAGE_BYTES = A_BYTES + B_BYTES;  // a multiple of 1024: swizzle-aligned stages
  static constexpr int BAR_BYTES = 2 * STAGES * 8;
  static constexpr int SMEM = 1024 /* alignment slack */ + STAGES * STAGE_BYTES + BAR_BYTES + TABLE_BYTES;
};

struct GroupedParams {
  int m = 0, n = 0, kb_total = 0;  // rows R of x / y, output features N, 128-byte K stages
  int groups = 0;                  // experts E
  const int32_t* offsets = nullptr;  // [E + 1] device: expert e owns rows [offsets[e], offsets[e + 1]);
                                     // null: one expert owning every row (the dense GEMMs)
  void* y = nullptr;                 // [R, N] bf16, row stride ldy elements
  int64_t ldy = 0;
  // FP8 only: xs(r, b) = xs[r * xs_rs + b * xs_bs]; ws(e, nb, b) = ws[e * ws_group + nb * ws_rs + b * ws_bs]
  const float* xs = nullptr;
  int64_t xs_rs = 0, xs_bs = 0;
  const float* ws = nullptr;
  int64_t ws_rs = 0, ws_bs = 0, ws_group = 0;
  bool y_pairs = false;  // y rows take aligned 2-element stores
  bool y_vec = false;    // y rows start on 16 bytes (and ldy % 8 == 0): 8-element stores
};

// ---------------------------------------------------------------------------------------------
// Device: the pieces gemm_wgmma.cuh does not have

/// 3D TMA load of the box at (c0 = K byte, c1 = row, c2 = expert) into shared memory, completing on `bar`.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1,
                                            int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

/// Waits until at most one committed wgmma group is still running (the one just issued).
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }

/// d (+)= A . B for one k16 step: A 64 x 16 bf16 and B 128 x 16 bf16, both K-major in shared
/// memory (the same 128-byte swizzled tiles as the e4m3 k32 step: 32 bytes of K per row), d 64 x 128
/// fp32 across the warpgroup. scale_d == 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n128k16_bf16(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, "
      "%43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n}\n"
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

/// d (+)= A . B for one k16 step: A 64 x 16 bf16 and B 256 x 16 bf16 (K-major, 128-byte swizzled
/// tiles as above), d 64 x 256 fp32 across the warpgroup. scale_d == 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n256k16_bf16(float (&d)[128], uint64_t da, uint64_t db, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, "
      "%43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, "
      "%85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, "
      "%105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, "
      "%122, %123, %124, %125, %126, %127}, "
      "%128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]),
        "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]),
        "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]),
        "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]),
        "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(scale_d));
#else
  (void)d;
  (void)da;
  (void)db;
  (void)scale_d;
  __trap();
#endif
}

/// Rows [lo, hi) of expert e, clamped into [0, m] so that inconsistent offsets cannot address
/// memory outside x and y (the rows they describe are then simply not computed).
__device__ __forceinline__ void grouped_expert_rows(const GroupedParams& p, int e, int& lo, int& hi) {
  if (p.offsets == nullptr) {  // a dense GEMM: no offsets array to read (nor to write before the call)
    lo = 0;
    hi = p.m;
    return;
  }
  lo = min(max(__ldg(p.offsets + e), 0), p.m);
  hi = min(max(__ldg(p.offsets + e + 1), lo), p.m);
}

/// One output tile of the grouped walk.
struct GroupedTile {
  int e;      // expert
  int m0;     // first row of x / y
  int m_end;  // the expert's end row: rows >= m_end are not this expert's
  int n0;     // first output feature
};

/// Tile `tile` of the banded walk: bands of kRasterBand M tiles, inside a band the M tiles first,
/// then the N tiles. tile_start[e] (shared memory, [E + 1]) is expert e's first M tile; the owner
/// of M tile mt is the last e with tile_start[e] <= mt (an empty expert shares its start with the
/// next one, so the last is the one that has rows).
template <int TBN>
__device__ __forceinline__ GroupedTile grouped_tile(const GroupedParams& p, const int* tile_start, int m_tiles,
                                                    int n_tiles, int tile) {
  const int band = tile / (kRasterBand * n_tiles);
  const int first_mt = band * kRasterBand;
  const int band_rows = min(kRasterBand, m_tiles - first_mt);  // M tiles in this band (the last may have fewer)
  const int r = tile - first_mt * n_tiles;
  const int mt = first_mt + r % band_rows, nt = r / band_rows;
  int lo_e = 0, hi_e = p.groups - 1;
  while (lo_e < hi_e) {
    const int mid = (lo_e + hi_e + 1) >> 1;
    if (tile_start[mid] <= mt) {
      lo_e = mid;
    } else {
      hi_e = mid - 1;
    }
  }
  GroupedTile t;
  t.e = lo_e;
  int lo, hi;
  grouped_expert_rows(p, t.e, lo, hi);
  t.m0 = lo + (mt - tile_start[t.e]) * BM;
  t.m_end = hi;
  t.n0 = nt * TBN;
  return t;
}

/// Stores this thread's ACC accumulators of the warpgroup's 64 x (2 ACC) fragment as bf16: rows r0
/// and r0 + 8 of every n8 column pair, only rows below m_end (this expert's) and columns below N.
template <int ACC>
__device__ __forceinline__ void grouped_store(const GroupedParams& p, const float (&acc)[ACC], int r0, int m_end,
                                              int n0, int lane) {
  bf16* y = static_cast<bf16*>(p.y);
#pragma unroll
  for (int jb = 0; jb < ACC / 4; ++jb) {
    const int col = n0 + 8 * jb + 2 * (lane % 4);
    if (col >= p.n) continue;
    const bool two = col + 1 < p.n;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = r0 + 8 * h;
      if (row >= m_end) continue;
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
}

/// a[i] for a run-time i in [0, 4), as selects (an indexed register array would go to local memory).
__device__ __forceinline__ uint32_t pick4(const uint32_t (&a)[4], int i) {
  return i == 0 ? a[0] : i == 1 ? a[1] : i == 2 ? a[2] : a[3];
}

/// grouped_store with 16-byte stores, for y rows on 16 bytes (p.y_vec): the four lanes of a quad
/// hold two columns each of four consecutive n8 blocks; a 4 x 4 transpose of their bf16 pairs
/// (three xor shuffles) gives lane q all 8 columns of block 4g + q. A quarter of the store
/// instructions, each a full 16-byte piece of a row (the epilogue is where the tensor cores wait:
/// skipping its stores took m4096 n7168 k2048 from ~210 to ~180 us, H100, session 13). A block
/// that crosses N is stored element by element.
template <int ACC>
__device__ __forceinline__ void grouped_store_vec(const GroupedParams& p, const float (&acc)[ACC], int r0, int m_end,
                                                  int n0, int lane) {
  bf16* y = static_cast<bf16*>(p.y);
  const int q = lane % 4;
#pragma unroll
  for (int g = 0; g < ACC / 16; ++g) {
    const int col0 = n0 + 8 * (4 * g + q);  // this lane's block after the transpose
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t w[4];  // w[j]: this lane's two columns of block 4g + j, row r0 + 8h
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const bf16 v0(acc[4 * (4 * g + j) + 2 * h]), v1(acc[4 * (4 * g + j) + 2 * h + 1]);
        w[j] = uint32_t(v0.bits) | (uint32_t(v1.bits) << 16);
      }
      // t[r] = lane (q ^ r)'s w[q]: in round r every lane sends its w[q ^ r], which is what lane
      // q ^ r wants from it.
      uint32_t t[4];
      t[0] = w[q];
#pragma unroll
      for (int r = 1; r < 4; ++r) t[r] = __shfl_xor_sync(0xffffffffu, pick4(w, q ^ r), r);
      // columns 2c, 2c + 1 of block 4g + q came from lane c: t[q ^ c]
      const uint32_t o0 = pick4(t, q), o1 = pick4(t, q ^ 1), o2 = pick4(t, q ^ 2), o3 = pick4(t, q ^ 3);
      const int row = r0 + 8 * h;
      if (row >= m_end || col0 >= p.n) continue;
      bf16* dst = y + int64_t(row) * p.ldy + col0;
      if (col0 + 8 <= p.n) {
        *reinterpret_cast<uint4*>(dst) = make_uint4(o0, o1, o2, o3);
      } else {
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          const uint32_t o = c < 2 ? o0 : c < 4 ? o1 : c < 6 ? o2 : o3;
          if (c < p.n - col0) dst[c].bits = uint16_t(o >> (16 * (c % 2)));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The kernel

/// FP8 == true: e4m3 operands with block scaling (TBN = 128); false: bf16 operands (K stages of 64
/// elements, TBN = 128 or 256).
template <bool FP8, int TBN>
__global__ void __launch_bounds__(THREADS, 1)
    grouped_kernel(const __grid_constant__ CUtensorMap map_x, const __grid_constant__ CUtensorMap map_w,
                   const GroupedParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = GroupedCfg<TBN>;
  static_assert(!FP8 || TBN == 128, "the FP8 grouped kernel has 128-column tiles");
  constexpr int NST = Cfg::STAGES, SB = Cfg::STAGE_BYTES, ACC = Cfg::ACC;
  extern __shared__ __align__(1024) char smem_raw[];
  // 128-byte swizzled TMA destinations (and the descriptors' swizzle phase) want 1024-byte alignment.
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t bars = base + NST * SB;
  int* tile_start = reinterpret_cast<int*>(smem_raw + (base - smem_u32(smem_raw)) + NST * SB +
                                           Cfg::BAR_BYTES);  // [groups + 1]
  const auto a_addr = [&](int s) { return base + uint32_t(s) * SB; };
  const auto b_addr = [&](int s) { return base + uint32_t(s) * SB + A_BYTES; };
  const auto full = [&](int s) { return bars + uint32_t(s) * 8; };
  const auto empty = [&](int s) { return bars + uint32_t(NST + s) * 8; };

  if (threadIdx.x == 0) {
    for (int s = 0; s < NST; ++s) {
      mbar_init(full(s), 1);   // the producer's arrive.expect_tx; the TMA bytes complete the phase
      mbar_init(empty(s), 8);  // one arrive per consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }

  // Each expert's first M tile: an exclusive scan of ceil(rows_e / BM), THREADS experts at a time.
  using Scan = cub::BlockScan<int, THREADS>;
  __shared__ typename Scan::TempStorage scan_tmp;
  int carry = 0;
  for (int first = 0; first < p.groups; first += THREADS) {
    const int e = first + int(threadIdx.x);
    int tiles = 0;
    if (e < p.groups) {
      int lo, hi;
      grouped_expert_rows(p, e, lo, hi);
      tiles = (hi - lo + BM - 1) / BM;
    }
    int before, total;
    Scan(scan_tmp).ExclusiveSum(tiles, before, total);
    if (e < p.groups) tile_start[e] = carry + before;
    carry += total;
    __syncthreads();  // scan_tmp is reused by the next chunk of experts
  }
  if (threadIdx.x == 0) tile_start[p.groups] = carry;
  __syncthreads();  // the table and the barrier initialisation are visible to every thread

  const int m_tiles = tile_start[p.groups];
  const int n_tiles = (p.n + TBN - 1) / TBN;
  const int total_tiles = m_tiles * n_tiles;  // < 2^30: checked by the launcher

  // Registers move from the producer warpgroup (one thread issuing TMA) to the consumers (a 64 x 256
  // fragment is 128 accumulators a thread): 128 x 40 + 256 x 232 = the 384 x 168 of the launch.
  const int wg = int(threadIdx.x) / 128;
  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
    if (threadIdx.x == 0) {
      uint32_t it = 0;  // stages loaded so far, across tiles
      for (int tile = int(blockIdx.x); tile < total_tiles; tile += int(gridDim.x)) {
        const GroupedTile t = grouped_tile<TBN>(p, tile_start, m_tiles, n_tiles, tile);
        for (int i = 0; i < p.kb_total; ++i, ++it) {
          const int s = int(it % NST);
          const uint32_t phase = (it / NST) & 1u;
          mbar_wait(empty(s), phase ^ 1u);  // a fresh barrier counts its previous phase as complete
          mbar_expect_tx(full(s), SB);
          tma_load_2d(a_addr(s), &map_x, full(s), i * KB, t.m0);
          tma_load_3d(b_addr(s), &map_w, full(s), i * KB, t.n0, t.e);
        }
      }
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");

  // Consumers: warpgroup c owns rows m0 + 64c .. m0 + 64c + 63 of each tile.
  const int c = wg - 1;
  const int tid = int(threadIdx.x) % 128, warp = tid / 32, lane = tid % 32;
  const auto stage_of = [](uint32_t i) { return int(i % NST); };
  const auto phase_of = [](uint32_t i) { return (i / NST) & 1u; };
  // One lane per warp releases a slot (its warp's reads of it are done).
  const auto release = [&](int s) {
    if (lane == 0) mbar_arrive(empty(s));
  };
  uint32_t it = 0;  // stages consumed so far, across tiles (the producer's count)
  for (int tile = int(blockIdx.x); tile < total_tiles; tile += int(gridDim.x)) {
    const GroupedTile t = grouped_tile<TBN>(p, tile_start, m_tiles, n_tiles, tile);
    // accumulator element j of this thread: row 16 * warp + lane / 4 (+ 8 when j & 2),
    // column 8 * (j / 4) + 2 * (lane % 4) + (j & 1)
    const int r0 = t.m0 + 64 * c + 16 * warp + lane / 4, r1 = r0 + 8;
    // Warpgroup-uniform: a warpgroup whose rows are all the next expert's (or past R) only keeps
    // the ring's protocol (wait for the stage, release it) and stores nothing. It still waits for
    // each stage to be full: releasing one early would let this warp's arrivals run a phase ahead
    // of the other warpgroup's.
    if (t.m0 + 64 * c >= t.m_end) {
      for (int i = 0; i < p.kb_total; ++i, ++it) {
        mbar_wait(full(stage_of(it)), phase_of(it));
        release(stage_of(it));
      }
      continue;
    }
    float acc[ACC];
#pragma unroll
    for (int j = 0; j < ACC; ++j) acc[j] = 0.0f;

    if constexpr (FP8) {
      // Two fragments in turn: the wgmmas of K block i + 1 run on the tensor cores while block i's
      // exact fp32 sum is promoted (acc += part * xs * ws) on the CUDA cores, in the same order of
      // operations as the ref twin. Block i's slot is released once its group is known complete.
      const float* ws_row = p.ws + int64_t(t.e) * p.ws_group + int64_t(t.n0 / 128) * p.ws_rs;
      // Scale rows clamped into x: a row past the expert (or past R) reads some valid row's scale
      // and is never stored. Unconditional loads keep every path between a wgmma issue and its
      // wait free of divergent branches (ptxas otherwise serializes the wgmmas).
      const float* xs0 = p.xs + int64_t(min(r0, p.m - 1)) * p.xs_rs;
      const float* xs1 = p.xs + int64_t(min(r1, p.m - 1)) * p.xs_rs;
      const int kb = p.kb_total;
      float part0[64], part1[64];
      float sa0 = 0.0f, sa1 = 0.0f, sb0 = 0.0f, sb1 = 0.0f;  // the two fragments' row scales (xs * ws)
      // Waits for block i's stage and issues its four k32 steps into `part`; fetches its scales.
      const auto issue = [&](float(&part)[64], int i, float& s0, float& s1) {
        const float sw = __ldg(ws_row + int64_t(i) * p.ws_bs);
        s0 = __ldg(xs0 + int64_t(i) * p.xs_bs) * sw;
        s1 = __ldg(xs1 + int64_t(i) * p.xs_bs) * sw;
        const uint32_t st = it + uint32_t(i);
        mbar_wait(full(stage_of(st)), phase_of(st));
        const uint64_t da = smem_desc_sw128(a_addr(stage_of(st)) + uint32_t(64 * c) * KB);
        const uint64_t db = smem_desc_sw128(b_addr(stage_of(st)));
        fence_regs(part);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < KB / 32; ++ks) {
          wgmma_m64n128k32_e4m3(part, da + uint64_t(2 * ks), db + uint64_t(2 * ks), ks);  // +32 bytes per k32
        }
        wgmma_commit();
      };
      // Block i's group (in `part`) is complete: release its slot and promote it.
      const auto finish = [&](float(&part)[64], int i, float s0, float s1) {
        fence_regs(part);
        release(stage_of(it + uint32_t(i)));
#pragma unroll
        for (int j = 0; j < 64; ++j) acc[j] += part[j] * ((j & 2) ? s1 : s0);
      };
      // kb >= 1 (the launcher's K > 0). Block i is in part0 for even i, part1 for odd i.
      issue(part0, 0, sa0, sa1);
      int i = 0;
      for (; i + 2 < kb; i += 2) {
        issue(part1, i + 1, sb0, sb1);
        wgmma_wait_one();
        finish(part0, i, sa0, sa1);
        issue(part0, i + 2, sa0, sa1);
        wgmma_wait_one();
        finish(part1, i + 1, sb0, sb1);
      }
      if (i + 1 < kb) {  // two blocks left: i in part0, i + 1
        issue(part1, i + 1, sb0, sb1);
        wgmma_wait_one();
        finish(part0, i, sa0, sa1);
        wgmma_wait_all();
        finish(part1, i + 1, sb0, sb1);
      } else {  // block i, the last
        wgmma_wait_all();
        finish(part0, i, sa0, sa1);
      }
      it += uint32_t(kb);
    } else {
      // bf16: no promotion, so the wgmmas of stage i run while stage i + 1 is waited for; a stage
      // is released once the group after it has been issued and it is known complete.
      for (int i = 0; i < p.kb_total; ++i, ++it) {
        const int s = stage_of(it);
        mbar_wait(full(s), phase_of(it));
        const uint64_t da = smem_desc_sw128(a_addr(s) + uint32_t(64 * c) * KB);
        const uint64_t db = smem_desc_sw128(b_addr(s));
        fence_regs(acc);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < KB / 32; ++ks) {
          const int scale_d = (i > 0 || ks > 0) ? 1 : 0;
          if constexpr (TBN == 256) {
            wgmma_m64n256k16_bf16(acc, da + uint64_t(2 * ks), db + uint64_t(2 * ks), scale_d);
          } else {
            wgmma_m64n128k16_bf16(acc, da + uint64_t(2 * ks), db + uint64_t(2 * ks), scale_d);
          }
        }
        wgmma_commit();
        wgmma_wait_one();  // the previous stage's group is done
        fence_regs(acc);
        if (i > 0) release(stage_of(it - 1));
      }
      wgmma_wait_all();
      fence_regs(acc);
      if (p.kb_total > 0) release(stage_of(it - 1));
    }
    if (p.y_vec) {
      grouped_store_vec(p, acc, r0, t.m_end, t.n0, lane);
    } else {
      grouped_store(p, acc, r0, t.m_end, t.n0, lane);
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

/// TMA map of stacked expert matrices [experts, rows, k_bytes] (row stride ld, expert stride
/// es bytes) in 1 x 128 x 128-byte boxes, 128-byte swizzled; rows past `rows` of an expert give zeros.
inline CUtensorMap tensor_map_experts(const void* base, int64_t experts, int64_t rows, int64_t k_bytes, int64_t ld,
                                      int64_t es, int box_rows, const char* op) {
  CUtensorMap map{};
  const cuuint64_t dims[3] = {cuuint64_t(k_bytes), cuuint64_t(rows), cuuint64_t(experts)};
  const cuuint64_t strides[2] = {cuuint64_t(ld), cuuint64_t(es)};
  const cuuint32_t box[3] = {cuuint32_t(KB), cuuint32_t(box_rows), 1};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  const CUresult r = tensor_map_encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 3, const_cast<void*>(base), dims,
                                          strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  R1_CHECK(r == CUDA_SUCCESS, op, "cuTensorMapEncodeTiled failed (error ", int(r), ") for ", experts,
           " expert weights [", rows, ", ", k_bytes, "] bytes with row stride ", ld, " and expert stride ", es);
  return map;
}

/// Launches the grouped kernel with TBN-column tiles (see launch_grouped).
template <bool FP8, int TBN>
void launch_grouped_tiles(const void* x, int64_t lda, const void* w, int64_t ldb, int64_t w_es, int64_t k_bytes,
                          GroupedParams p, stream_t stream, const char* op) {
  using Cfg = GroupedCfg<TBN>;
  constexpr auto kernel = grouped_kernel<FP8, TBN>;
  const KernelInfo& ki = prepare_kernel<kernel>(THREADS, Cfg::SMEM, op);
  // A single row (expert) still needs a valid (16-byte multiple) stride in the map.
  const int64_t row_bytes = round_up(k_bytes, 16);
  const CUtensorMap mx = tensor_map_rows(x, p.m, k_bytes, p.m > 1 ? lda : row_bytes, BM, op);
  const int64_t ldb_map = p.n > 1 ? ldb : row_bytes;
  const CUtensorMap mw = tensor_map_experts(w, p.groups, p.n, k_bytes, ldb_map,
                                            p.groups > 1 ? w_es : round_up(p.n * ldb_map, 16), TBN, op);
  p.kb_total = int(ceil_div(k_bytes, int64_t(KB)));
  // sum over experts of ceil(rows_e / BM) <= R / BM + (experts with rows)
  const int64_t n_tiles = ceil_div(p.n, TBN);
  const int64_t max_tiles = (ceil_div(p.m, BM) + std::min<int64_t>(p.groups, p.m)) * n_tiles;
  // (2^30: the kernel's int tile index plus the grid stride stays below 2^31)
  R1_CHECK(max_tiles < (int64_t(1) << 30), op, "too many output tiles (", max_tiles, ")");
  const int64_t grid =
      std::max<int64_t>(1, std::min<int64_t>(max_tiles, int64_t(current_device().sms) * ki.blocks_per_sm));
  kernel<<<unsigned(grid), THREADS, Cfg::SMEM, stream>>>(mx, mw, p);
  R1_CUDA_CHECK_LAUNCH();
}

/// Tile width of a bf16 grouped call: 256 columns for one expert (a dense GEMM) when the M tiles
/// times the 256-column N tiles still fill every SM at least once; 128 otherwise: few rows or a
/// narrow N would leave SMs idle, and with many experts (MoE: ~128 rows each at 4096 tokens) the
/// wider tile measured slower (moe_gemms_bf16 T4096 13.6 ms vs 12.2 ms on an H100, session 13).
inline int grouped_bf16_tile_n(int64_t rows, int64_t n, int64_t groups) {
  if (groups != 1) return 128;
  return ceil_div(rows, int64_t(BM)) * ceil_div(n, int64_t(256)) >= current_device().sms ? 256 : 128;
}

/// Launches a Hopper grouped GEMM. Operands are checked by the caller (grouped_gemm.cuh): 16-byte
/// aligned rows, stacked weights, scale shapes, E <= kMaxGroups.
/// x: [R, k_bytes] bytes, rows lda bytes apart; w: [E, N, k_bytes] bytes, rows ldb and experts
/// w_es bytes apart. p holds everything else (p.m = R, p.n = N, p.groups = E).
template <bool FP8>
void launch_grouped(const void* x, int64_t lda, const void* w, int64_t ldb, int64_t w_es, int64_t k_bytes,
                    GroupedParams p, stream_t stream, const char* op) {
  R1_CHECK(binary_arch() == 90, op, "own_wgmma needs sm_90a machine code on an sm_90 GPU (this device runs sm_",
           binary_arch(), " code; build with R1_CUDA_ARCHITECTURES containing 90a)");
  R1_CHECK(p.groups >= 1 && p.groups <= kMaxGroups, op, p.groups, " experts: the Hopper grouped GEMM takes 1 to ",
           kMaxGroups);
  if constexpr (FP8) {
    launch_grouped_tiles<true, 128>(x, lda, w, ldb, w_es, k_bytes, p, stream, op);
  } else if (grouped_bf16_tile_n(p.m, p.n, p.groups) == 256) {
    launch_grouped_tiles<false, 256>(x, lda, w, ldb, w_es, k_bytes, p, stream, op);
  } else {
    launch_grouped_tiles<false, 128>(x, lda, w, ldb, w_es, k_bytes, p, stream, op);
  }
}

}  // namespace r1::cuda::detail::wgmma
