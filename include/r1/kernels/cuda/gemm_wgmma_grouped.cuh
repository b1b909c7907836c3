// SPDX-License-Identifier: MIT
// r1's Hopper grouped (MoE expert) GEMMs, sm_90a: TMA + wgmma on the building blocks of
// gemm_wgmma.cuh (mbarriers, TMA, shared-memory descriptors, the 128 x 128 tile with one producer
// and two consumer warpgroups), over rows grouped by expert:
//   y[r, :] = x[r, :] . W_e^T        for the rows r in [offsets[e], offsets[e + 1]) of expert e
// in two flavours: FP8 with DeepSeek's 128 x 128 block scaling (per-128-K fp32 promotion, the order
// of operations of ref::linear_fp8_native and of the dense kernel) and bf16 (fp32 accumulation).
//
// Work decomposition: a persistent grid (one block per SM). Every block first turns the expert row
// offsets (device memory: nothing waits for the routing on the host, and a CUDA graph replays the
// call with new routing) into a table of each expert's first M tile in shared memory, then walks
// the tiles (expert, M tile, N tile) with a grid stride, M-tile-major so that the blocks running
// together share the activation tile. Producer and consumers walk the same sequence and keep one
// running stage counter across tiles, so the ring of shared-memory stages never drains between
// tiles: the producer loads the next tile's first stages while the consumers store the last one.
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
inline constexpr int GROUPED_SMEM = SMEM + TABLE_BYTES;

struct GroupedParams {
  int m = 0, n = 0, kb_total = 0;  // rows R of x / y, output features N, 128-byte K stages
  int groups = 0;                  // experts E
  const int32_t* offsets = nullptr;  // [E + 1] device: expert e owns rows [offsets[e], offsets[e + 1])
  void* y = nullptr;                 // [R, N] bf16, row stride ldy elements
  int64_t ldy = 0;
  // FP8 only: xs(r, b) = xs[r * xs_rs + b * xs_bs]; ws(e, nb, b) = ws[e * ws_group + nb * ws_rs + b * ws_bs]
  const float* xs = nullptr;
  int64_t xs_rs = 0, xs_bs = 0;
  const float* ws = nullptr;
  int64_t ws_rs = 0, ws_bs = 0, ws_group = 0;
  bool y_pairs = false;  // y rows take aligned 2-element stores
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

/// Rows [lo, hi) of expert e, clamped into [0, m] so that inconsistent offsets cannot address
/// memory outside x and y (the rows they describe are then simply not computed).
__device__ __forceinline__ void grouped_expert_rows(const GroupedParams& p, int e, int& lo, int& hi) {
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

/// Tile `tile` of the M-tile-major walk. tile_start[e] (shared memory, [E + 1]) is expert e's first
/// M tile; the owner of M tile mt is the last e with tile_start[e] <= mt (an empty expert shares
/// its start with the next one, so the last is the one that has rows).
__device__ __forceinline__ GroupedTile grouped_tile(const GroupedParams& p, const int* tile_start, int n_tiles,
                                                    int tile) {
  const int mt = tile / n_tiles, nt = tile % n_tiles;
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
  t.n0 = nt * BN;
  return t;
}

/// Stores this thread's 64 accumulators of the warpgroup's 64 x 128 fragment as bf16: rows r0 and
/// r0 + 8 of every n8 column pair, only rows below m_end (this expert's) and columns below N.
__device__ __forceinline__ void grouped_store(const GroupedParams& p, const float (&acc)[64], int r0, int m_end,
                                              int n0, int lane) {
  bf16* y = static_cast<bf16*>(p.y);
#pragma unroll
  for (int jb = 0; jb < 16; ++jb) {
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

// ---------------------------------------------------------------------------------------------
// The kernel

/// FP8 == true: e4m3 operands with block scaling; false: bf16 operands (K stages of 64 elements).
template <bool FP8>
__global__ void __launch_bounds__(THREADS, 1)
    grouped_kernel(const __grid_constant__ CUtensorMap map_x, const __grid_constant__ CUtensorMap map_w,
                   const GroupedParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) char smem_raw[];
  // 128-byte swizzled TMA destinations (and the descriptors' swizzle phase) want 1024-byte alignment.
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t bars = base + STAGES * STAGE_BYTES;
  int* tile_start = reinterpret_cast<int*>(smem_raw + (base - smem_u32(smem_raw)) + STAGES * STAGE_BYTES +
                                           BAR_BYTES);  // [groups + 1]
  const auto a_addr = [&](int s) { return base + uint32_t(s) * STAGE_BYTES; };
  const auto b_addr = [&](int s) { return base + uint32_t(s) * STAGE_BYTES + A_BYTES; };
  const auto full = [&](int s) { return bars + uint32_t(s) * 8; };
  const auto empty = [&](int s) { return bars + uint32_t(STAGES + s) * 8; };

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
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

  const int n_tiles = (p.n + BN - 1) / BN;
  const int total_tiles = tile_start[p.groups] * n_tiles;  // < 2^30: checked by the launcher

  const int wg = int(threadIdx.x) / 128;
  if (wg == 0) {
    if (threadIdx.x == 0) {
      uint32_t it = 0;  // stages loaded so far, across tiles
      for (int tile = int(blockIdx.x); tile < total_tiles; tile += int(gridDim.x)) {
        const GroupedTile t = grouped_tile(p, tile_start, n_tiles, tile);
        for (int i = 0; i < p.kb_total; ++i, ++it) {
          const int s = int(it % STAGES);
          const uint32_t phase = (it / STAGES) & 1u;
          mbar_wait(empty(s), phase ^ 1u);  // a fresh barrier counts its previous phase as complete
          mbar_expect_tx(full(s), STAGE_BYTES);
          tma_load_2d(a_addr(s), &map_x, full(s), i * KB, t.m0);
          tma_load_3d(b_addr(s), &map_w, full(s), i * KB, t.n0, t.e);
        }
      }
    }
    return;
  }

  // Consumers: warpgroup c owns rows m0 + 64c .. m0 + 64c + 63 of each tile.
  const int c = wg - 1;
  const int tid = int(threadIdx.x) % 128, warp = tid / 32, lane = tid % 32;
  uint32_t it = 0;  // stages consumed so far, across tiles (the producer's count)
  for (int tile = int(blockIdx.x); tile < total_tiles; tile += int(gridDim.x)) {
    const GroupedTile t = grouped_tile(p, tile_start, n_tiles, tile);
    // accumulator element j of this thread: row 16 * warp + lane / 4 (+ 8 when j & 2),
    // column 8 * (j / 4) + 2 * (lane % 4) + (j & 1)
    const int r0 = t.m0 + 64 * c + 16 * warp + lane / 4, r1 = r0 + 8;
    // Warpgroup-uniform: a warpgroup whose rows are all the next expert's (or past R) only keeps
    // the ring's protocol (wait for the stage, release it) and stores nothing.
    const bool active = t.m0 + 64 * c < t.m_end;
    float acc[64];
#pragma unroll
    for (int j = 0; j < 64; ++j) acc[j] = 0.0f;

    if constexpr (FP8) {
      const float* ws_row = p.ws + int64_t(t.e) * p.ws_group + int64_t(t.n0 / 128) * p.ws_rs;
      float part[64];
#pragma unroll
      for (int j = 0; j < 64; ++j) part[j] = 0.0f;
      for (int i = 0; i < p.kb_total; ++i, ++it) {
        const int s = int(it % STAGES);
        const uint32_t phase = (it / STAGES) & 1u;
        if (!active) {
          // Wait even though nothing is read: releasing a stage before it is full would let this
          // warp's arrivals run a phase ahead of the other warpgroup's.
          mbar_wait(full(s), phase);
          if (lane == 0) mbar_arrive(empty(s));
          continue;
        }
        // The block's scales, fetched while the tiles are in flight (rows past the expert: none).
        const float sw = __ldg(ws_row + int64_t(i) * p.ws_bs);
        const float sx0 = r0 < t.m_end ? __ldg(p.xs + int64_t(r0) * p.xs_rs + int64_t(i) * p.xs_bs) : 0.0f;
        const float sx1 = r1 < t.m_end ? __ldg(p.xs + int64_t(r1) * p.xs_rs + int64_t(i) * p.xs_bs) : 0.0f;
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
    } else {
      // bf16: no promotion, so the wgmmas of stage i run while stage i + 1 is waited for; a stage
      // is released once the group after it has been issued and it is known complete.
      if (!active) {
        for (int i = 0; i < p.kb_total; ++i, ++it) {
          mbar_wait(full(int(it % STAGES)), (it / STAGES) & 1u);
          if (lane == 0) mbar_arrive(empty(int(it % STAGES)));
        }
        continue;
      }
      for (int i = 0; i < p.kb_total; ++i, ++it) {
        const int s = int(it % STAGES);
        mbar_wait(full(s), (it / STAGES) & 1u);
        const uint64_t da = smem_desc_sw128(a_addr(s) + uint32_t(64 * c) * KB);
        const uint64_t db = smem_desc_sw128(b_addr(s));
        fence_regs(acc);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < KB / 32; ++ks) {
          wgmma_m64n128k16_bf16(acc, da + uint64_t(2 * ks), db + uint64_t(2 * ks), (i > 0 || ks > 0) ? 1 : 0);
        }
        wgmma_commit();
        wgmma_wait_one();  // the previous stage's group is done
        fence_regs(acc);
        if (i > 0 && lane == 0) mbar_arrive(empty(int((it - 1) % STAGES)));
      }
      wgmma_wait_all();
      fence_regs(acc);
      if (p.kb_total > 0 && lane == 0) mbar_arrive(empty(int((it - 1) % STAGES)));
    }
    if (active) grouped_store(p, acc, r0, t.m_end, t.n0, lane);
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
  constexpr auto kernel = grouped_kernel<FP8>;
  const KernelInfo& ki = prepare_kernel<kernel>(THREADS, GROUPED_SMEM, op);
  // A single row (expert) still needs a valid (16-byte multiple) stride in the map.
  const int64_t row_bytes = round_up(k_bytes, 16);
  const CUtensorMap mx = tensor_map_rows(x, p.m, k_bytes, p.m > 1 ? lda : row_bytes, BM, op);
  const int64_t ldb_map = p.n > 1 ? ldb : row_bytes;
  const CUtensorMap mw =
      tensor_map_experts(w, p.groups, p.n, k_bytes, ldb_map, p.groups > 1 ? w_es : round_up(p.n * ldb_map, 16), BN, op);
  p.kb_total = int(ceil_div(k_bytes, int64_t(KB)));
  // sum over experts of ceil(rows_e / BM) <= R / BM + (experts with rows)
  const int64_t n_tiles = ceil_div(p.n, BN);
  const int64_t max_tiles = (ceil_div(p.m, BM) + std::min<int64_t>(p.groups, p.m)) * n_tiles;
  // (2^30: the kernel's int tile index plus the grid stride stays below 2^31)
  R1_CHECK(max_tiles < (int64_t(1) << 30), op, "too many output tiles (", max_tiles, ")");
  const int64_t grid = std::max<int64_t>(1, std::min<int64_t>(max_tiles, int64_t(current_device().sms) * ki.blocks_per_sm));
  kernel<<<unsigned(grid), THREADS, GROUPED_SMEM, stream>>>(mx, mw, p);
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda::detail::wgmma
