// SPDX-License-Identifier: MIT
// MLA prefill attention for Hopper (sm_90a) on R1's head dims (dn 128, dr 64, dv 128): the
// FlashAttention-3 structure, written for r1 (mla_prefill.cuh dispatches here when the machine code
// is sm_90a, the dims are R1's and every operand is TMA-describable).
//
// Work items are (128-query tile, head); one persistent block per SM takes the next item from a
// work counter as it finishes one (tile_of's order: head by head, heaviest query tiles first),
// three warpgroups:
//  - warpgroup 0, one thread: the producer. Per item TMA loads Q [128, 192] (q_nope columns 0..127
//    and q_pe 0..63 as three 128 x 64 boxes), then for every 128-key tile K [128, 192] (k_nope, k_pe
//    shared by the heads) and V [128, 128], each into its own two-stage ring (mbarriers `full` /
//    `empty` per ring: K is free again as soon as S is computed, V only after P V, an iteration
//    later; Q as soon as the consumers hold it in registers). The rings run on across items, so the
//    next item's loads overlap the current item's last tiles and its stores.
//    The tensor maps are 3-D (dim, head, row) with the views' strides, so the column slices of the
//    layer's [T, H, 192] and [S, H, 256] tensors are read in place; rows past the end arrive as zeros.
//  - warpgroups 1 and 2: consumers of 64 query rows each. Q is read once per item into wgmma A
//    fragments (ldmatrix from the swizzled boxes). Per key tile: S = Q K^T with twelve
//    wgmma.m64n128k16 (Q from registers, K K-major in shared memory, 128-byte swizzled as TMA wrote
//    it), causal mask (only on tiles that cross the diagonal or the last key), online softmax in
//    fp32 in registers (log2 domain), P re-packed from the S accumulators into wgmma A fragments,
//    and O += P V with eight wgmma.m64n128k16 (V [keys, dv] the MN-major B operand, imm-trans-b).
// The consumers follow FlashAttention-3's schedule: within a warpgroup, S_j and P_{j-1} V_{j-1} are
// issued together and the softmax of S_j runs while the tensor cores still do P_{j-1} V_{j-1}
// (intra-warpgroup overlap); across the two warpgroups, named barriers make them take turns issuing
// (inter-warpgroup pingpong), so one warpgroup's softmax hides behind the other's GEMMs.
// S, O, P and Q take 208 registers per consumer thread: setmaxnreg moves them from the producer
// (24 + 2 x 240 per 3 threads <= 168 each).
// Every mbarrier wait is bounded (gemm_wgmma.cuh's mbar_wait): a protocol error traps.
#pragma once

#include <array>
#include <cstdlib>
#include <mutex>

#include "r1/kernels/cuda/gemm_wgmma.cuh"
#include "r1/kernels/cuda/mla_common.cuh"

namespace r1::cuda::detail::mla_sm90 {

namespace W = detail::wgmma;

inline constexpr int BM = 128, BN = 128, DN = 128, DR = 64, DV = 128, STAGES = 2, THREADS = 384;
inline constexpr int SUB = 128 * 128;  // bytes of one 128-row x 64-column bf16 box (128-byte rows)
inline constexpr int Q_BYTES = 3 * SUB, K_BYTES = 3 * SUB, V_BYTES = 2 * SUB;
inline constexpr int BAR_BYTES = 8 * (2 + 4 * STAGES);
inline constexpr int SMEM = 1024 /* alignment slack */ + Q_BYTES + STAGES * (K_BYTES + V_BYTES) + BAR_BYTES;

struct Params {
  bf16* o;  // [tokens, heads, 128], element (t, h, c) at o[t * o_t + h * o_h + c]
  int64_t o_t, o_h;
  int tokens, keys, q_start, heads;
  int m_tiles;       // ceil(tokens / BM); work items are (query tile, head), m_tiles * heads of them
  float scale_log2;  // scale * log2(e)
  // [2] zeros: the next item to hand out and the blocks that found none left (the last of them
  // zeroes both again); nullptr: one block per item (grid = items)
  unsigned* counter;
};

/// Work item i (0 .. m_tiles * heads - 1) as (first query row, head): head by head, heaviest
/// (latest) query tiles first. Blocks take the next item when they are done with one, so the items
/// in flight belong to a few heads (whose K and V stay in L2 for all their query tiles) and the
/// light items come last in each head and fill the gaps.
struct Tile {
  int m0, h, nj, rows;  // nj key tiles of BN; rows: valid query rows (<= BM)
};
__device__ __forceinline__ Tile tile_of(const Params& p, int i) {
  Tile t;
  t.m0 = (p.m_tiles - 1 - i % p.m_tiles) * BM;
  t.h = i / p.m_tiles;
  t.rows = min(BM, p.tokens - t.m0);
  const int kv_end = min(p.keys, p.q_start + t.m0 + t.rows);  // keys any row of the tile sees
  t.nj = (kv_end + BN - 1) / BN;
  return t;
}

/// 3-D TMA load of the box at (c0 = column, c1 = head, c2 = row), completing on `bar`.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1,
                                            int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], [%2];\n" ::
          "r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

/// Descriptor of an MN-major (N contiguous) 128-byte-swizzled B tile: rows of 64 bf16 (128 bytes)
/// along N per swizzle atom, consecutive K rows 128 bytes apart, 8-row groups 1024 bytes apart, and
/// N = 128 as two such atoms `atom_bytes` apart. CUTLASS's canonical MN-major SW128 layout puts the
/// atom stride in the leading-offset field and the 8-row-group stride in the stride-offset field.
__device__ __forceinline__ uint64_t smem_desc_mn_sw128(uint32_t addr, uint32_t atom_bytes) {
  return uint64_t((addr >> 4) & 0x3fffu) | (uint64_t(atom_bytes >> 4) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/// d (+)= A . B, m64n128k16 bf16 -> fp32: A 64 x 16 from registers (per warp the mma.sync m16n8k16
/// A fragment), B 16 x 128 MN-major in shared memory (descriptor, imm-trans-b = 1); scale_d == 0
/// overwrites d.
__device__ __forceinline__ void wgmma_m64n128k16_rs_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t db,
                                                       int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}

/// d (+)= A . B, m64n128k16 bf16 -> fp32: A from registers, B 128 x 16 K-major in shared memory.
/// The wrappers' argument lists are what wgmma's 64 accumulator registers need.
__device__ __forceinline__ void wgmma_m64n128k16_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t db, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}

template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

/// One consumer warpgroup's online-softmax state for its 64 query rows: per thread two rows
/// (r = 0: row0, r = 1: row0 + 8), running max (raw score units) and running sum.
struct Softmax {
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};

  /// S tile j (raw scores, in place) -> P = exp2(S * scale_log2 - m); alpha[r] rescales the O
  /// accumulated so far. `mask`: the tile crosses the diagonal or the last key.
  __device__ __forceinline__ void step(float (&sacc)[64], bool mask, int n0, int pos0, int tq, int keys,
                                       float scale_log2, float (&alpha)[2]) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < 64; ++i) {
      if (mask) {
        const int key = n0 + 8 * (i / 4) + 2 * tq + (i & 1);
        if (key > pos0 + ((i & 2) ? 8 : 0) || key >= keys) sacc[i] = -INFINITY;
      }
      mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], sacc[i]);
    }
    float m_use[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m_run[r], mx[r]);
      // scale > 0, so the max of raw scores is the max of scaled ones; a row with nothing visible
      // yet (m_new = -inf) stays empty: its exponent base is 0 and its P row all zeros.
      m_use[r] = m_new == -INFINITY ? 0.0f : m_new * scale_log2;
      alpha[r] = m_run[r] == -INFINITY ? 0.0f : mla::exp2_ftz(m_run[r] * scale_log2 - m_use[r]);
      m_run[r] = m_new;
    }
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < 64; ++i) {
      const float pe = mla::exp2_ftz(fmaf(sacc[i], scale_log2, -m_use[(i >> 1) & 1]));  // one FFMA + MUFU
      sacc[i] = pe;
      rs[(i >> 1) & 1] += pe;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) l_run[r] = l_run[r] * alpha[r] + rs[r];
  }
};

/// S = Q K^T for one key tile into sacc (issued and committed, not waited for): twelve k16 steps,
/// Q from registers (qa: this warpgroup's 64 rows as wgmma A fragments, k-step ks), K [128, 192]
/// from shared memory as three 128-byte-swizzled boxes of 64 columns.
__device__ __forceinline__ void issue_s(float (&sacc)[64], const uint32_t (&qa)[12][4], uint32_t k_base) {
#pragma unroll
  for (int i = 0; i < 64; ++i) sacc[i] = 0.0f;
  W::wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < (DN + DR) / 16; ++ks) {
    const uint32_t off = uint32_t(ks / 4) * SUB + uint32_t(ks % 4) * 32u;
    wgmma_m64n128k16_rs(sacc, qa[ks], W::smem_desc_sw128(k_base + off), ks);
  }
  W::wgmma_commit();
}

/// This warpgroup's 64 Q rows [64, 192] from the 128-byte-swizzled boxes at q_base (64 columns
/// each, rows 128 bytes apart, 16-byte chunk j of row r stored at chunk j ^ (r % 8)) into wgmma A
/// fragments: per warp the m16n8k16 A fragment of rows 16 warp .. 16 warp + 15, by ldmatrix.x4
/// (lane l addresses row l % 8 of matrix l / 8: rows + 8 (l / 8 % 2), columns + 8 (l / 16)).
__device__ __forceinline__ void load_q_frags(uint32_t (&qa)[12][4], uint32_t q_base, int warp, int lane) {
  const int row = 16 * warp + 8 * ((lane >> 3) & 1) + (lane & 7);
#pragma unroll
  for (int ks = 0; ks < (DN + DR) / 16; ++ks) {
    const int chunk = (ks % 4) * 2 + (lane >> 4);  // 16-byte chunk within the 128-byte row
    const uint32_t addr = q_base + uint32_t(ks / 4) * SUB + uint32_t(row) * 128u + uint32_t((chunk ^ (row & 7)) * 16);
    ldmatrix_x4(qa[ks], addr);
  }
}

/// O += P V for one key tile (issued and committed, not waited for): V [128 keys, 128] is the
/// MN-major B operand, its two 64-column swizzle atoms (boxes) SUB bytes apart; one n128 wgmma
/// per 16 keys (two n64 halves measured 1274 against 1187 us at T = 4096 on an H100).
__device__ __forceinline__ void issue_pv(float (&o)[64], const uint32_t (&pa)[8][4], uint32_t v_base) {
  W::wgmma_fence();  // O and P were written since the last fence
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk)
    wgmma_m64n128k16_rs_tb(o, pa[kk], smem_desc_mn_sw128(v_base + uint32_t(kk) * 2048u, SUB), 1);
  W::wgmma_commit();
}

/// O *= alpha per row (the accumulator's rows: element i belongs to row (i >> 1) & 1 of the thread).
__device__ __forceinline__ void rescale_o(float (&o)[64], const float (&alpha)[2]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) o[i] *= alpha[(i >> 1) & 1];
}

/// P (fp32, in the S accumulator layout) as wgmma A fragments: k-step kk (keys 16kk .. 16kk + 15)
/// is S's column tiles 2kk and 2kk + 1.
__device__ __forceinline__ void pack_p(const float (&sacc)[64], uint32_t (&pa)[8][4]) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
#pragma unroll
    for (int r = 0; r < 4; ++r) pa[kk][r] = mla::pack_bf16(sacc[8 * kk + 2 * r], sacc[8 * kk + 2 * r + 1]);
  }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

/// Raises the transaction count of the barrier's current phase without arriving. q_full's producer
/// arrives with a plain arrive after it, which publishes `item`.
__device__ __forceinline__ void expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

/// Named barrier `id` (1..15; 0 is __syncthreads) over both consumer warpgroups: sync waits, arrive
/// does not.
__device__ __forceinline__ void named_sync(int id) {
  asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory");
}
__device__ __forceinline__ void named_arrive(int id) {
  asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory");
}

// Persistent: one block per SM; its producer takes the next work item from p.counter (an atomic)
// and hands it to the consumers with Q (in `item`, published by q_full's phase); the rings' stage /
// phase counters run on across items, so the producer loads the next item's Q, K and V while the
// consumers still work on (and store) the current one. -1 ends the consumers' loop.
// (a template only so that the header can be included by several translation units)
template <int = 0>
__global__ void __launch_bounds__(THREADS, 1)
    prefill_kernel(const __grid_constant__ CUtensorMap map_qn, const __grid_constant__ CUtensorMap map_qp,
                   const __grid_constant__ CUtensorMap map_kn, const __grid_constant__ CUtensorMap map_kp,
                   const __grid_constant__ CUtensorMap map_v, const Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) char smem_raw[];
  __shared__ int item;  // the item whose Q is in sq (-1: none left)
  // 128-byte swizzled TMA destinations (and the descriptors' swizzle phase) want 1024-byte alignment.
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t sq = base, sk = base + Q_BYTES, sv = sk + STAGES * K_BYTES, bars = sv + STAGES * V_BYTES;
  const auto k_addr = [&](int s) { return sk + uint32_t(s) * K_BYTES; };
  const auto v_addr = [&](int s) { return sv + uint32_t(s) * V_BYTES; };
  // Q's buffer is free again once both consumer warpgroups hold it in registers; K and V have their
  // own rings: key tile j's K is released as soon as S_j is computed, its V only after P_j V_j, one
  // iteration later (see the consumer loop).
  const uint32_t q_full = bars, q_empty = bars + 8u;
  const auto k_full = [&](int s) { return bars + 8u * uint32_t(2 + s); };
  const auto k_empty = [&](int s) { return bars + 8u * uint32_t(2 + STAGES + s); };
  const auto v_full = [&](int s) { return bars + 8u * uint32_t(2 + 2 * STAGES + s); };
  const auto v_empty = [&](int s) { return bars + 8u * uint32_t(2 + 3 * STAGES + s); };
  const int items = p.m_tiles * p.heads;

  if (threadIdx.x == 0) {
    W::mbar_init(q_full, 1);  // the producer's arrive.expect_tx; the TMA bytes complete the phase
    W::mbar_init(q_empty, 8);  // one arrive per consumer warp
    for (int s = 0; s < STAGES; ++s) {
      W::mbar_init(k_full(s), 1);
      W::mbar_init(v_full(s), 1);
      W::mbar_init(k_empty(s), 8);
      W::mbar_init(v_empty(s), 8);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  const int wg = int(threadIdx.x) / 128;
  // Registers move from the producer (which needs few) to the consumers (S, O, P and Q fragments:
  // 208 live values); 128 x 24 + 256 x 240 fits the 384 x 168 the block was launched with.
  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
    if (threadIdx.x == 0) {
      // In consumption order. Q of item n waits for the consumers to hold item n - 1's Q in
      // registers; K of key tile c (counted over all items) for K of c - 2's release (S done), V of
      // c for V of c - 2's (P V done, in the consumers' next iteration), so both arrive early.
      int c = 0;  // key tiles loaded so far, over all items
      for (int n = 0;; ++n) {
        const int i = p.counter ? int(atomicAdd(p.counter, 1u)) : (n == 0 ? int(blockIdx.x) : items);
        W::mbar_wait(q_empty, (uint32_t(n) & 1u) ^ 1u);  // a fresh barrier counts its previous phase as complete
        if (i >= items) {
          item = -1;
          W::mbar_arrive(q_full);  // completes the phase (no bytes), releasing `item`
          // the last block to find no item left zeroes the counter for the next launch
          if (p.counter && atomicAdd(p.counter + 1, 1u) == gridDim.x - 1) {
            p.counter[0] = 0;
            p.counter[1] = 0;
          }
          break;
        }
        item = i;
        const Tile t = tile_of(p, i);
        expect_tx(q_full, Q_BYTES);
        tma_load_3d(sq, &map_qn, q_full, 0, t.h, t.m0);
        tma_load_3d(sq + SUB, &map_qn, q_full, 64, t.h, t.m0);
        tma_load_3d(sq + 2 * SUB, &map_qp, q_full, 0, t.h, t.m0);
        W::mbar_arrive(q_full);  // publishes `item`; the phase completes once Q's bytes have landed too
        for (int j = 0; j < t.nj; ++j, ++c) {
          const int s = c % STAGES;
          const uint32_t phase = uint32_t(c / STAGES) & 1u;
          const int n0 = j * BN;
          W::mbar_wait(k_empty(s), phase ^ 1u);
          W::mbar_expect_tx(k_full(s), K_BYTES);
          tma_load_3d(k_addr(s), &map_kn, k_full(s), 0, t.h, n0);
          tma_load_3d(k_addr(s) + SUB, &map_kn, k_full(s), 64, t.h, n0);
          tma_load_3d(k_addr(s) + 2 * SUB, &map_kp, k_full(s), 0, 0, n0);
          W::mbar_wait(v_empty(s), phase ^ 1u);
          W::mbar_expect_tx(v_full(s), V_BYTES);
          tma_load_3d(v_addr(s), &map_v, v_full(s), 0, t.h, n0);
          tma_load_3d(v_addr(s) + SUB, &map_v, v_full(s), 64, t.h, n0);
        }
      }
    }
    return;
  }

  asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
  // Consumers: warpgroup c owns query rows m0 + 64c .. m0 + 64c + 63 of every item.
  const int c = wg - 1;
  const int t = int(threadIdx.x) % 128, warp = t / 32, lane = t % 32, tq = lane % 4;
  // accumulator element i of this thread: row 16 * warp + lane / 4 (+ 8 when i & 2),
  // column 8 * (i / 4) + 2 * (lane % 4) + (i & 1)
  const uint32_t q_base = sq + uint32_t(64 * c) * 128u;

  // FlashAttention-3's intra-warpgroup overlap: iteration j issues S_j = Q K_j^T and then
  // O += P_{j-1} V_{j-1} back to back, waits only for S_j and computes its softmax (exp on the
  // MUFU, max / sum on the FMA pipes) while the tensor cores still run P_{j-1} V_{j-1}. O is
  // rescaled by alpha_{j-1} = exp2(m_{j-2} - m_{j-1}) between the two issues, while S_j runs, so
  // at the top of iteration j O holds P_i V_i for i < j - 1 relative to m_{j-2}.
  // The two consumer warpgroups also take turns issuing their GEMMs (named barriers 1 and 2,
  // FlashAttention-3's inter-warpgroup pingpong): one's GEMMs run while the other does its softmax.
  // Each issue unit (S_0; S_j + P_{j-1} V_{j-1}; the last P V; over all items in order) waits for
  // the other warpgroup's previous unit. Warpgroup 1 opens the schedule and warpgroup 0 takes its
  // last hand-over after the last item, so every barrier phase sees 128 syncs and 128 arrivals.
  const auto turn_wait = [&] { named_sync(1 + c); };
  const auto turn_pass = [&] { named_arrive(2 - c); };
  if (c == 1) named_arrive(1);

  float o[64];        // O [64 rows, 128 columns] in the m64n128 accumulator layout (as S)
  float sacc[64];     // S_j, then P_j in fp32
  uint32_t pa[8][4];  // P_j as wgmma A fragments
  uint32_t qa[12][4];  // this warpgroup's Q [64, 192] as wgmma A fragments, k-step ks = 16 columns
  float alpha[2];
  int kc = 0;  // key tiles consumed so far, over all items (the rings' counter)
  for (int n = 0;; ++n) {
    W::mbar_wait(q_full, uint32_t(n) & 1u);
    // lane 0 reads `item` and arrives on q_empty after it: its own arrive orders the read before
    // the producer's next write (with all lanes reading, racecheck flagged the other lanes' reads)
    int i = 0;
    if (lane == 0) i = *static_cast<volatile int*>(&item);
    i = __shfl_sync(0xffffffffu, i, 0);
    if (i < 0) break;
    const Tile tl = tile_of(p, i);
    const int row0 = tl.m0 + 64 * c + 16 * warp + lane / 4;  // token of this thread's first row; second: + 8
    const int pos0 = p.q_start + row0;                       // its position = last key it sees
    const int wg_first_pos = p.q_start + tl.m0 + 64 * c;     // keys up to here are visible to every row
    const auto tile_mask = [&](int j) { return j * BN + BN - 1 > wg_first_pos || j * BN + BN > p.keys; };
#pragma unroll
    for (int e = 0; e < 64; ++e) o[e] = 0.0f;
    Softmax sm;

    load_q_frags(qa, q_base, warp, lane);
    __syncwarp();
    if (lane == 0) W::mbar_arrive(q_empty);  // this warp's reads of Q (and of `item`) are done

    const int s0 = kc % STAGES;
    W::mbar_wait(k_full(s0), uint32_t(kc / STAGES) & 1u);
    turn_wait();
    issue_s(sacc, qa, k_addr(s0));
    turn_pass();
    wgmma_wait<0>();
    fence_regs(sacc);
    if (lane == 0) W::mbar_arrive(k_empty(s0));  // this warp's reads of K_0 are done
    sm.step(sacc, tile_mask(0), 0, pos0, tq, p.keys, p.scale_log2, alpha);  // O is still zero: alpha unused
    pack_p(sacc, pa);
    for (int j = 1; j < tl.nj; ++j) {
      const int s = (kc + j) % STAGES, sp = (kc + j - 1) % STAGES;
      W::mbar_wait(k_full(s), uint32_t((kc + j) / STAGES) & 1u);
      W::mbar_wait(v_full(sp), uint32_t((kc + j - 1) / STAGES) & 1u);
      fence_regs(o);
      turn_wait();
      issue_s(sacc, qa, k_addr(s));
      rescale_o(o, alpha);  // by alpha_{j-1}, while S_j runs
      issue_pv(o, pa, v_addr(sp));
      turn_pass();
      wgmma_wait<1>();  // S_j is done; P_{j-1} V_{j-1} may still run
      fence_regs(sacc);
      if (lane == 0) W::mbar_arrive(k_empty(s));
      sm.step(sacc, tile_mask(j), j * BN, pos0, tq, p.keys, p.scale_log2, alpha);
      wgmma_wait<0>();
      fence_regs(o);
      if (lane == 0) W::mbar_arrive(v_empty(sp));
      pack_p(sacc, pa);
    }
    {
      const int sl = (kc + tl.nj - 1) % STAGES;
      W::mbar_wait(v_full(sl), uint32_t((kc + tl.nj - 1) / STAGES) & 1u);
      fence_regs(o);
      turn_wait();
      rescale_o(o, alpha);
      issue_pv(o, pa, v_addr(sl));
      turn_pass();
      wgmma_wait<0>();
      fence_regs(o);
      if (lane == 0) W::mbar_arrive(v_empty(sl));
    }
    kc += tl.nj;

    // normalize and store (the producer is already loading the next item)
    float l_run[2] = {sm.l_run[0], sm.l_run[1]};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
      l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int tok = row0 + 8 * r;
      if (tok >= p.tokens) continue;
      const float inv = l_run[r] > 0.0f ? 1.0f / l_run[r] : 0.0f;
      bf16* dst = p.o + int64_t(tok) * p.o_t + int64_t(tl.h) * p.o_h;
#pragma unroll
      for (int nt = 0; nt < 16; ++nt) {
        const int col = 8 * nt + 2 * tq;
        *reinterpret_cast<uint32_t*>(dst + col) = mla::pack_bf16(o[4 * nt + 2 * r] * inv, o[4 * nt + 2 * r + 1] * inv);
      }
    }
  }
  if (c == 0) named_sync(1);  // warpgroup 1's last hand-over
#else
  (void)map_qn;
  (void)map_qp;
  (void)map_kn;
  (void)map_kp;
  (void)map_v;
  (void)p;
  __trap();
#endif
}

// ---------------------------------------------------------------------------------------------
// Host

/// TMA map of a bf16 [rows, heads, dim] view (unit last stride; head and row strides in elements)
/// in boxes of 128 rows x one head x 64 columns, 128-byte swizzled; rows past the end read as zeros.
inline CUtensorMap tensor_map_rhd(const bf16* base, int64_t rows, int64_t heads, int64_t dim, int64_t h_stride,
                                  int64_t r_stride, const char* op) {
  // A dimension of extent 1 may carry any stride in a View; the map still needs a 16-byte multiple.
  if (heads == 1) h_stride = round_up(dim, 8);
  if (rows == 1) r_stride = round_up(heads * h_stride, 8);
  CUtensorMap map{};
  const cuuint64_t dims[3] = {cuuint64_t(dim), cuuint64_t(heads), cuuint64_t(rows)};
  const cuuint64_t strides[2] = {cuuint64_t(h_stride * 2), cuuint64_t(r_stride * 2)};
  const cuuint32_t box[3] = {64, 1, 128};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  const CUresult r = W::tensor_map_encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<bf16*>(base), dims,
                                             strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                             CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  R1_CHECK(r == CUDA_SUCCESS, op, "cuTensorMapEncodeTiled failed (error ", int(r), ") for a [", rows, ", ", heads,
           ", ", dim, "] operand with strides ", r_stride, ", ", h_stride);
  return map;
}

/// Zeroed work counters for the persistent kernel (Params::counter), per device: kCounterSlots
/// slots of two, handed out in turn, so that launches in flight at once on different streams each
/// have their own (a kernel leaves its slot zeroed; a graph that captured a launch keeps its slot,
/// and a graph never runs concurrently with itself). Limit: 64 launches issued on other streams
/// while one is still queued would give the 65th its slot; the branch mla-static-schedule replaces
/// the counter by a static schedule without shared state (to be measured). Allocated on first use and kept for the
/// process; nullptr when that first use is inside a stream capture (no allocation there): the call
/// then runs one block per item.
inline constexpr int kCounterSlots = 64;
inline unsigned* work_counter(stream_t stream) {
  static std::mutex mu;
  static std::array<unsigned*, kMaxDevices> buf{};
  static std::array<uint32_t, kMaxDevices> next{};
  const int dev = current_device().device;
  std::lock_guard<std::mutex> lock(mu);
  if (buf[size_t(dev)] == nullptr) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    R1_CUDA_CHECK(cudaStreamIsCapturing(stream, &st));
    if (st != cudaStreamCaptureStatusNone) return nullptr;
    void* p = nullptr;
    R1_CUDA_CHECK(cudaMalloc(&p, sizeof(unsigned) * 2 * kCounterSlots));
    R1_CUDA_CHECK(cudaMemset(p, 0, sizeof(unsigned) * 2 * kCounterSlots));
    buf[size_t(dev)] = static_cast<unsigned*>(p);
  }
  return buf[size_t(dev)] + 2 * (next[size_t(dev)]++ % kCounterSlots);
}

/// Whether the Hopper kernel takes this call: sm_90a machine code, R1's head dims, operands that
/// TMA can describe (16-byte aligned bases and strides), pair stores of the output. Setting
/// R1_MLA_PREFILL_SM90=0 forces the mma.sync kernel (for comparisons).
inline bool usable(const View<const bf16, 3>& qn, const View<const bf16, 3>& qp, const View<const bf16, 3>& kn,
                   const View<const bf16, 2>& kp, const View<const bf16, 3>& v, const View<bf16, 3>& out) {
  if (qn.shape[2] != DN || qp.shape[2] != DR || v.shape[2] != DV) return false;
  if (const char* e = std::getenv("R1_MLA_PREFILL_SM90"); e && e[0] == '0') return false;
  if (!(mla::vec_ok(qn) && mla::vec_ok(qp) && mla::vec_ok(kn) && mla::vec_ok(kp) && mla::vec_ok(v) &&
        mla::vec_ok(out)))
    return false;
  return binary_arch() == 90;
}

inline void launch(const View<const bf16, 3>& qn, const View<const bf16, 3>& qp, const View<const bf16, 3>& kn,
                   const View<const bf16, 2>& kp, const View<const bf16, 3>& v, float scale_log2, int64_t q_start,
                   const View<bf16, 3>& out, stream_t stream, const char* op) {
  const int64_t tokens = qn.shape[0], heads = qn.shape[1], keys = kn.shape[0];
  constexpr auto kernel = prefill_kernel<0>;
  const KernelInfo& k = prepare_kernel<kernel>(THREADS, SMEM, op);
  const CUtensorMap mqn = tensor_map_rhd(qn.data, tokens, heads, DN, qn.stride[1], qn.stride[0], op);
  const CUtensorMap mqp = tensor_map_rhd(qp.data, tokens, heads, DR, qp.stride[1], qp.stride[0], op);
  const CUtensorMap mkn = tensor_map_rhd(kn.data, keys, heads, DN, kn.stride[1], kn.stride[0], op);
  const CUtensorMap mkp = tensor_map_rhd(kp.data, keys, 1, DR, 0, kp.stride[0], op);
  const CUtensorMap mv = tensor_map_rhd(v.data, keys, heads, DV, v.stride[1], v.stride[0], op);
  Params p{};
  p.o = out.data;
  p.o_t = out.stride[0];
  p.o_h = out.stride[1];
  p.tokens = int(tokens);
  p.keys = int(keys);
  p.q_start = int(q_start);
  p.heads = int(heads);
  p.m_tiles = int(ceil_div(tokens, BM));
  p.scale_log2 = scale_log2;
  const int64_t items = int64_t(p.m_tiles) * heads;
  R1_CHECK(items < (int64_t(1) << 31), op, tokens, " tokens x ", heads, " heads is too many work items");
  // R1_MLA_PREFILL_PERSISTENT=0: one block per item (for comparisons; also what a call inside a
  // stream capture runs when it is the first on its device)
  const char* pe = std::getenv("R1_MLA_PREFILL_PERSISTENT");
  p.counter = pe && pe[0] == '0' ? nullptr : work_counter(stream);
  const int64_t blocks =
      p.counter ? std::min<int64_t>(items, int64_t(k.blocks_per_sm) * current_device().sms) : items;
  kernel<<<unsigned(blocks), THREADS, SMEM, stream>>>(mqn, mqp, mkn, mkp, mv, p);
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda::detail::mla_sm90
