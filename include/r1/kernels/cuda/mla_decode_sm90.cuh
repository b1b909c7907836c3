// SPDX-License-Identifier: MIT
// Hopper (sm_90a) MLA decode kernel: wgmma on the tensor cores for R1's dims (kv_lora_rank 512,
// rope 64). Included by mla_decode.cuh after DecodeParams; launch_decode picks it when the binary
// runs sm_90a code and the operands are vector-aligned, otherwise the mma.sync kernel runs.
//
// One block of 2 warpgroups per (sequence, 64 rows of (token, head), key split); key tiles of 64
// latent rows (one page for R1's page size 64). Both products read the same shared-memory tile:
//   S = Q . K^T : A = Q [64 x 576] K-major, B = the tile [64 keys x 576] K-major (wgmma n64, by
//                 warpgroup 0 alone: no score is computed twice);
//   O += P . V  : A = P [64 x 64 keys] K-major, B = the tile's c_kv part [64 keys x 512] read
//                 N-major (transposed B), each warpgroup owning 256 of the 512 output columns
//                 (128 fp32 accumulators per thread).
// The tile is stored as 9 column chunks of [64 rows x 64 dims] (128-byte rows, 128-byte swizzle,
// 1024-byte aligned), which is at once the K-major layout of the first product (8-row groups 1024
// bytes apart, k16 steps +32 bytes) and the N-major layout of the second (64-column atoms 8192
// bytes apart, 8-key groups 1024 bytes apart, k16 steps +2048 bytes). Warpgroup 1 gathers rows
// from the pages with cp.async (16-byte chunks written at their swizzled place), double-buffered,
// and hands tiles over through mbarriers; see the kernel for the handoff protocol. Softmax is
// fp32 in warpgroup 0, which passes P and the rescale factors through shared memory; both
// warpgroups' fragment rows coincide (warp w of either owns rows 16w..16w+15).
// Shared memory: Q 72 KB + 2 tiles 144 KB + P 8 KB + row data 1.5 KB + 6 mbarriers: one block
// per SM. Every mbarrier wait is bounded (gemm_wgmma.cuh's mbar_wait): a protocol error traps.
#pragma once

#include "r1/kernels/cuda/gemm_wgmma.cuh"
#include "r1/kernels/cuda/mla_common.cuh"

namespace r1::cuda::detail::mla {

struct Sm90DecodeCfg {
  static constexpr int BM = 64, BN = 64, THREADS = 256, LAT = 512, DR = 64;
  static constexpr int UNITS = (LAT + DR) / 8;            // 16-byte chunks per latent row (72)
  static constexpr int CHUNK = 64 * 128;                  // one [64 rows x 64 dims] swizzled chunk
  static constexpr int TILE = (LAT + DR) / 64 * CHUNK;    // Q or one key tile (9 chunks, 73728 B)
  static constexpr int Q_OFF = 0, K_OFF = TILE, P_OFF = 3 * TILE, RED_OFF = P_OFF + CHUNK;
  static constexpr int RED_BYTES = 4 * (2 * BM + 2 * BM + 2 * BN);  // row maxima, sums, bad keys
  static constexpr int BAR_OFF = RED_OFF + RED_BYTES, BARS = 6;     // the mbarriers (8 bytes each)
  static constexpr int SMEM = BAR_OFF + 8 * BARS + 1024;            // + alignment slack
  static_assert(BAR_OFF % 8 == 0, "mbarriers are 8-byte aligned");
  static_assert(SMEM <= 227 * 1024, "exceeds Hopper's shared memory per block");
};

/// Byte offset of 16-byte unit u (0..71) of row r (0..63) in a tile of swizzled chunks.
__device__ __forceinline__ uint32_t sw_off(int r, int u) {
  return uint32_t((u >> 3) * Sm90DecodeCfg::CHUNK + r * 128 + (((u & 7) ^ (r & 7)) << 4));
}

/// Shared-memory matrix descriptor with 128-byte swizzle: start address, leading byte offset
/// (unused for K-major swizzled operands; between 64-column atoms for N-major ones), stride byte
/// offset (between 8-row groups).
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((addr >> 4) & 0x3fffu) | (uint64_t((lbo >> 4) & 0x3fffu) << 16) |
         (uint64_t((sbo >> 4) & 0x3fffu) << 32) | (uint64_t(1) << 62);
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/// Generic-proxy shared-memory writes (cp.async, st.shared) made visible to wgmma's async proxy.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/// Keeps the compiler from moving accumulator registers across the asynchronous wgmma region.
template <int N>
__device__ __forceinline__ void fence_acc(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

/// d[64 x 32] (+)= A . B^T, A 64 x 16 and B 32 x 16 both K-major in shared memory (descriptors).
__device__ __forceinline__ void wgmma_m64n32k16_bf16(float (&d)[16], uint64_t da, uint64_t db, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(da), "l"(db), "r"(scale_d));
#else
  (void)d, (void)da, (void)db, (void)scale_d;
  __trap();
#endif
}

/// d[64 x 64] (+)= A . B^T, A 64 x 16 and B 64 x 16 both K-major in shared memory (descriptors).
__device__ __forceinline__ void wgmma_m64n64k16_bf16(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
#else
  (void)d, (void)da, (void)db, (void)scale_d;
  __trap();
#endif
}

/// d[64 x 256] (+)= A . B, A 64 x 16 K-major and B 16 x 256 N-major (transposed) in shared memory.
__device__ __forceinline__ void wgmma_m64n256k16_bf16_nb(float (&d)[128], uint64_t da, uint64_t db, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(scale_d));
#else
  (void)d, (void)da, (void)db, (void)scale_d;
  __trap();
#endif
}

// (a template only so that the header can be included by several translation units)
template <int = 0>
__global__ void __launch_bounds__(256, 1) mla_decode_sm90_kernel(const DecodeParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = Sm90DecodeCfg;
  constexpr int BM = C::BM, BN = C::BN;
  extern __shared__ __align__(1024) char smem_dec90[];
  // 128-byte swizzle is a function of the address bits: chunks must sit on 1024-byte boundaries.
  const uint32_t raw = smem_u32(smem_dec90), base = (raw + 1023u) & ~1023u;
  const uint32_t sQ = base + C::Q_OFF, sK = base + C::K_OFF, sP = base + C::P_OFF, bars = base + C::BAR_OFF;
  float* red_max = reinterpret_cast<float*>(smem_dec90 + (base - raw) + C::RED_OFF);  // [2 warpgroups][BM]
  float* red_sum = red_max + 2 * BM;                                                // [2 warpgroups][BM]
  int* s_bad = reinterpret_cast<int*>(red_sum + 2 * BM);                            // [2 buffers][BN]

  // wg through a shuffle: provably warp-uniform, so ptxas keeps the wgmma of the role branches async
  const int tid = int(threadIdx.x), wg = __shfl_sync(0xffffffffu, tid >> 7, 0), warp = (tid >> 5) & 3, lane = tid & 31;
  const int g = lane >> 2, tq = lane & 3;
  const int rb = int(blockIdx.x), split = int(blockIdx.y), b = int(blockIdx.z);
  const int rows_total = p.tokens * p.heads;
  const int len = seq_len(p, b), pos0 = first_pos(p, len);
  const int chunk = ((len + p.splits - 1) / p.splits + BN - 1) / BN * BN;
  const int k0 = split * chunk, k_end = min(len, k0 + chunk);
  const int64_t part_row0 = (int64_t(b) * p.splits + split) * rows_total;

  if (k0 >= k_end) {  // nothing in this split: an empty partial (or zeros when unsplit)
    if (p.part_o) {
      for (int r = tid; r < BM; r += C::THREADS) {
        const int gr = rb * BM + r;
        if (gr >= rows_total) continue;
        p.part_ml[(part_row0 + gr) * 2] = -INFINITY;
        p.part_ml[(part_row0 + gr) * 2 + 1] = 0.0f;
      }
    } else {
      for (int i = tid; i < BM * C::LAT; i += C::THREADS) {
        const int gr = rb * BM + i / C::LAT, c = i % C::LAT;
        if (gr >= rows_total) continue;
        const int t = gr / p.heads, h = gr % p.heads;
        p.o[int64_t(b) * p.o_b + int64_t(t) * p.o_t + int64_t(h) * p.o_h + c] = bf16(0.0f);
      }
    }
    return;  // uniform per block: a block returns here or sets up the mbarriers below with all threads
  }

  // Warp specialisation (FlashMLA's split of the work): warpgroup 0 scores each tile (S = Q K^T,
  // all 64 keys), runs the softmax, writes P and the rescale factors, and adds P . V into output
  // columns 0..255; warpgroup 1 gathers the tiles and adds P . V into columns 256..511. Its
  // product for tile j overlaps warpgroup 0's scores of tile j + 1 on the tensor cores.
  // Handoffs between the warpgroups: mbarriers in shared memory, each completed by all 128
  // threads of the producing warpgroup (an arrive releases only the arriving thread's own prior
  // writes) and waited on by all 128 threads of the other, with the phase parity given:
  //   FULL + b : tile j in buffer b = j & 1 (and Q) landed (1 arrives, 0 waits; parity (j >> 1) & 1)
  //   P_READY  : P and alpha of tile j written             (0 arrives, 1 waits; parity j & 1)
  //   P_FREE   : warpgroup 1 is done reading them          (1 arrives after tile j if j + 1 < nj,
  //                                                         0 waits before writing tile j + 1's;
  //                                                         parity j & 1)
  //   EMPTY + b: warpgroup 0 is done with buffer b         (0 arrives after tile j if j + 2 < nj,
  //                                                         1 waits before refilling it with tile
  //                                                         j + 2; parity (j >> 1) & 1)
  // Each waiter waits for every phase of its barriers in order, and no barrier can complete a
  // phase before all its waiters have passed the wait for the previous one (FULL's next use of b
  // needs EMPTY + b, P_READY's next phase needs P_FREE, P_FREE's needs P_READY, EMPTY's needs
  // FULL), so a parity always names the phase meant. Named barriers, within one warpgroup only:
  //   LOADER    : warpgroup 1's own loads landed (its 128 threads; before it arrives on FULL)
  //   LOADER + 1: warpgroup 0's own P written (its 128 threads; before its P . V)
  // Why mbarriers rather than named barriers (bar.arrive on one side, bar.sync on the other) for
  // the handoffs: compute-sanitizer's racecheck models mbarrier arrive / wait, but not that
  // producer / consumer use of named barriers, which (correct as it is by the PTX memory model)
  // drew thousands of false hazards on s_alpha and confused its tracking of __syncthreads.
  constexpr int FULL = 0, P_READY = 2, P_FREE = 3, EMPTY = 4, LOADER = 1;
  static_assert(EMPTY + 2 == C::BARS, "Sm90DecodeCfg's mbarrier count");
  using wgmma::mbar_arrive, wgmma::mbar_init, wgmma::mbar_wait;
  const auto mbar = [&](int i) { return bars + uint32_t(i) * 8u; };
  const auto bar_sync = [](int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); };
  if (tid == 0) {
    for (int i = 0; i < C::BARS; ++i) mbar_init(mbar(i), 128);  // every thread of a warpgroup arrives
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  const int nj = (k_end - k0 + BN - 1) / BN;
  float* s_alpha = red_max;  // [BM] rescale factors of the current tile (written by warpgroup 0)
  float* s_l = red_sum;      // [BM] final row sums
  float* s_m = red_sum + BM; // [BM] final row maxima (log2 units)
  // This thread's fragment rows (block-local): r0 = 16 warp + g and r0 + 8, in S and in O alike.
  const int r0 = warp * 16 + g;
  float o[128];  // O [64 rows, 256 columns 256 wg ..], wgmma fragment order
#pragma unroll
  for (int i = 0; i < 128; ++i) o[i] = 0.0f;

  if (wg == 1) {
    // ---- loader + second half of the output columns
    const int wt = tid - 128, lr = wt >> 1, lh = wt & 1;  // two threads per row, 36 chunks each
    {
      const int gr = rb * BM + lr;
      const bf16 *ql = nullptr, *qp = nullptr;
      if (gr < rows_total) {
        const int t = gr / p.heads, h = gr % p.heads;
        ql = p.ql + int64_t(b) * p.ql_b + int64_t(t) * p.ql_t + int64_t(h) * p.ql_h;
        qp = p.qp + int64_t(b) * p.qp_b + int64_t(t) * p.qp_t + int64_t(h) * p.qp_h;
      }
#pragma unroll 4
      for (int i = 0; i < C::UNITS / 2; ++i) {
        const int u = i * 2 + lh;
        const bf16* src = ql ? (u < C::LAT / 8 ? ql + u * 8 : qp + (u - C::LAT / 8) * 8) : nullptr;
        cp_async16(sQ + sw_off(lr, u), src ? src : p.pages, src != nullptr);
      }
    }
    // Key tile j [64 keys, 576] into buffer buf; keys past the split or on bad pages are zeros
    // (a bad page's keys score NaN, which P . V carries into the output).
    const auto load_k = [&](int j, int buf) {
      const int s = k0 + j * BN + lr;
      const bf16* row = nullptr;
      int bad = 0;
      if (s < k_end) {
        const int pg = p.table[int64_t(b) * p.bt_b + int64_t(s / p.page) * p.bt_s];
        bad = pg < 0 || pg >= p.num_pages;
        if (!bad) row = p.pages + int64_t(pg) * p.pg_p + int64_t(s % p.page) * p.pg_r;
      }
      if (lh == 0) s_bad[buf * BN + lr] = bad;
      const uint32_t kb = sK + uint32_t(buf) * C::TILE;
#pragma unroll 4
      for (int i = 0; i < C::UNITS / 2; ++i) {
        const int u = i * 2 + lh;
        cp_async16(kb + sw_off(lr, u), row ? row + u * 8 : p.pages, row != nullptr);
      }
    };
    load_k(0, 0);
    cp_async_commit();  // group 0: Q + tile 0
    if (nj > 1) load_k(1, 1);
    cp_async_commit();  // group 1: tile 1 (possibly empty: the group count stays uniform)
    cp_async_wait<1>();
    fence_proxy_async();
    bar_sync(LOADER, 128);
    mbar_arrive(mbar(FULL));
    for (int j = 0; j < nj; ++j) {
      const uint32_t kb = sK + uint32_t(j & 1) * C::TILE;
      mbar_wait(mbar(P_READY), uint32_t(j) & 1u);
      const float a0 = s_alpha[r0], a1 = s_alpha[r0 + 8];
#pragma unroll
      for (int i = 0; i < 128; ++i) o[i] *= (i & 2) ? a1 : a0;
      wg_fence();
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        const uint64_t da = desc_sw128(sP + uint32_t(ks * 32), 16, 1024);
        const uint64_t db = desc_sw128(kb + uint32_t(4 * C::CHUNK + ks * 16 * 128), C::CHUNK, 1024);
        wgmma_m64n256k16_bf16_nb(o, da, db, 1);
      }
      wg_commit();
      if (j + 1 < nj) {  // while the product runs: tile j + 1 (the one outstanding group) to warpgroup 0
        cp_async_wait<0>();
        fence_proxy_async();
        bar_sync(LOADER, 128);
        mbar_arrive(mbar(FULL + ((j + 1) & 1)));
      }
      wg_wait0();
      fence_acc(o);
      if (j + 1 < nj) mbar_arrive(mbar(P_FREE));
      if (j + 2 < nj) {
        mbar_wait(mbar(EMPTY + (j & 1)), uint32_t(j >> 1) & 1u);  // warpgroup 0 is done with this buffer too
        load_k(j + 2, j & 1);
      }
      cp_async_commit();
    }
  } else {
    // ---- scores, softmax, first half of the output columns
    int lim[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int gr = rb * BM + r0 + r * 8;
      lim[r] = gr < rows_total ? pos0 + gr / p.heads : -1;  // last visible key; padding rows see none
    }
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
    for (int j = 0; j < nj; ++j) {
      mbar_wait(mbar(FULL + (j & 1)), uint32_t(j >> 1) & 1u);
      const uint32_t kb = sK + uint32_t(j & 1) * C::TILE;
      const int* bad = s_bad + (j & 1) * BN;
      // S [64 rows, 64 keys] = Q . K^T over 576 dims: 9 chunks x 4 k16 steps
      float s[32];
#pragma unroll
      for (int i = 0; i < 32; ++i) s[i] = 0.0f;
      wg_fence();
#pragma unroll
      for (int c = 0; c < 9; ++c) {
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
          const uint64_t da = desc_sw128(sQ + uint32_t(c * C::CHUNK + ks * 32), 16, 1024);
          const uint64_t db = desc_sw128(kb + uint32_t(c * C::CHUNK + ks * 32), 16, 1024);
          wgmma_m64n64k16_bf16(s, da, db, c + ks > 0);  // the first step overwrites s
        }
      }
      wg_commit();
      wg_wait0();
      fence_acc(s);

      const int n0 = k0 + j * BN;
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const int kl = (i >> 2) * 8 + 2 * tq + (i & 1), key = n0 + kl, r = (i >> 1) & 1;
        float x = s[i] * p.scale_log2;
        if (key >= k_end || key > lim[r]) x = -INFINITY;
        else if (bad[kl]) x = __int_as_float(0x7fffffff);
        s[i] = x;
        mx[r] = fmaxf(mx[r], x);  // fmaxf drops NaN: the NaN reaches the output through P
      }
      float alpha[2];
      if (j > 0) mbar_wait(mbar(P_FREE), uint32_t(j - 1) & 1u);  // warpgroup 1 has read P and alpha of tile j - 1
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const int row = r0 + r * 8;
        const float m_new = fmaxf(m_run[r], mx[r]);
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        alpha[r] = exp2f(m_run[r] - m_use);
        m_run[r] = m_new;
        float rs = 0.0f;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const float p0 = exp2f(s[nt * 4 + 2 * r] - m_use), p1 = exp2f(s[nt * 4 + 2 * r + 1] - m_use);
          rs += p0 + p1;
          // P [64 rows, 64 keys] swizzled like a chunk: keys nt*8 + 2tq, +1 sit in 16-byte unit nt
          const uint32_t addr = sP + uint32_t(row * 128 + ((nt ^ (row & 7)) << 4) + 4 * tq);
          asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(pack_bf16(p0, p1)) : "memory");
        }
        l_run[r] = l_run[r] * alpha[r] + rs;  // this thread's 16 keys; the quad adds up at the end
        if (tq == 0) s_alpha[row] = alpha[r];
      }
      fence_proxy_async();
      mbar_arrive(mbar(P_READY));
#pragma unroll
      for (int i = 0; i < 128; ++i) o[i] *= alpha[(i >> 1) & 1];
      // warpgroup 0's own P . V: synchronise its 128 threads' P writes for its own wgmma
      bar_sync(LOADER + 1, 128);
      wg_fence();
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        const uint64_t da = desc_sw128(sP + uint32_t(ks * 32), 16, 1024);
        const uint64_t db = desc_sw128(kb + uint32_t(ks * 16 * 128), C::CHUNK, 1024);
        wgmma_m64n256k16_bf16_nb(o, da, db, 1);
      }
      wg_commit();
      wg_wait0();
      fence_acc(o);
      if (j + 2 < nj) mbar_arrive(mbar(EMPTY + (j & 1)));
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
      l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
    }
    if (tq == 0) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        s_l[r0 + r * 8] = l_run[r];
        s_m[r0 + r * 8] = m_run[r];
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // row sums and maxima of warpgroup 0 for both
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = r0 + r * 8, gr = rb * BM + row;
    if (gr >= rows_total) continue;
    const float l = s_l[row];
    if (p.part_o) {
      float* dst = p.part_o + (part_row0 + gr) * p.lat + wg * 256 + 2 * tq;
#pragma unroll
      for (int nt = 0; nt < 32; ++nt)
        *reinterpret_cast<float2*>(dst + nt * 8) = make_float2(o[nt * 4 + 2 * r], o[nt * 4 + 2 * r + 1]);
      if (wg == 0 && tq == 0) {
        // a NaN sum (bad page) gets a finite max so that the combine cannot skip it
        p.part_ml[(part_row0 + gr) * 2] = l != l ? 0.0f : s_m[row];
        p.part_ml[(part_row0 + gr) * 2 + 1] = l;
      }
    } else {
      const int t = gr / p.heads, h = gr % p.heads;
      bf16* dst = p.o + int64_t(b) * p.o_b + int64_t(t) * p.o_t + int64_t(h) * p.o_h + wg * 256 + 2 * tq;
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const float nan = __int_as_float(0x7fffffff);
#pragma unroll
      for (int nt = 0; nt < 32; ++nt) {
        const float a = l != l ? nan : o[nt * 4 + 2 * r] * inv, c = l != l ? nan : o[nt * 4 + 2 * r + 1] * inv;
        *reinterpret_cast<uint32_t*>(dst + nt * 8) = pack_bf16(a, c);
      }
    }
  }
#else
  (void)p;
  __trap();
#endif
}

}  // namespace r1::cuda::detail::mla
