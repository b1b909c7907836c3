// SPDX-License-Identifier: MIT
// Definitions of r1's MLA attention kernels (declared in mla.hpp).
//
// Prefill (mla_attention_expanded): one block of 4 warps per (64-query tile, head). Q [64, DQK]
// stays in shared memory; K [64, DQK] and V [64, DV] tiles are double-buffered with cp.async. Each
// warp owns 16 query rows: S = Q K^T (m16n8k16, fp32), causal mask, online softmax in the log2
// domain, P re-packed from the S accumulators into A fragments (no shared-memory round trip), and
// O += P V with V fragments from ldmatrix.trans. Query tiles run heaviest first (causal).
//
// Decode (mla_attention_absorbed): one block of 8 warps per (sequence, 64 rows of (token, head),
// key split). Q [64, LP + DRP] stays in shared memory; key tiles of 32 latent rows [c_kv || k_pe]
// are gathered from the pages double-buffered. S [64 x 32] is computed by 4 x 2 warps, the row max
// exchanged through shared memory, P written to shared memory, and O [64 x LP] += P . c_kv by 2 x 4
// warps (each 32 rows x LP/4 columns, 128 fp32 accumulators per thread for R1). The c_kv part of
// the key rows is the value: the latent row is read once for both products. Splits of the keys
// write fp32 partial (O, max, sum) that a combine kernel merges (flash-decoding).
//
// Dimensions smaller than the compiled tile dims are zero-padded in shared memory (zeros add
// nothing to a dot product and produce zero columns that are never stored). Shared-memory rows are
// padded by 16 bytes so ldmatrix's eight row addresses fall in distinct banks.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
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

// ---------------------------------------------------------------------------------------------
// Prefill

struct PrefillParams {
  const bf16 *qn, *qp, *kn, *kp, *v;
  bf16* o;
  int64_t qn_t, qn_h, qp_t, qp_h;  // strides (elements)
  int64_t kn_s, kn_h, kp_s, v_s, v_h;
  int64_t o_t, o_h;
  int tokens, keys, heads, dn, dr, dv;
  int q_start;
  float scale_log2;  // scale * log2(e)
  bool vec;          // 16-byte aligned rows and dims: cp.async loads
};

template <int DQK, int DV>
struct PrefillCfg {
  static constexpr int BM = 64, BN = 64, WARPS = 4, THREADS = 128;
  static constexpr int SQ = DQK + 8, SV = DV + 8;  // padded shared-memory row strides (elements)
  static constexpr int Q_ELEMS = BM * SQ, K_ELEMS = BN * SQ, V_ELEMS = BN * SV;
  static constexpr int SMEM = int(sizeof(bf16)) * (Q_ELEMS + 2 * K_ELEMS + 2 * V_ELEMS);
  static_assert(DQK % 16 == 0 && DV % 16 == 0, "head dims are tiled by 16");
};

template <int DQK, int DV>
__global__ void __launch_bounds__(128) mla_prefill_kernel(const PrefillParams p) {
  using Cfg = PrefillCfg<DQK, DV>;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, SQ = Cfg::SQ, SV = Cfg::SV;
  constexpr int NT_S = BN / 8, NT_O = DV / 8;
  extern __shared__ __align__(128) char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [BM, SQ]
  bf16* sK = sQ + Cfg::Q_ELEMS;                  // [2][BN, SQ]
  bf16* sV = sK + 2 * Cfg::K_ELEMS;              // [2][BN, SV]

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;
  const int mtile = int(gridDim.x) - 1 - int(blockIdx.x);  // heaviest (latest) queries first
  const int m0 = mtile * BM, h = int(blockIdx.y);
  const int rows_here = min(BM, p.tokens - m0);
  const int kv_end = min(p.keys, p.q_start + m0 + rows_here);  // keys any row of the tile sees
  const int nj = (kv_end + BN - 1) / BN;

  // Q tile: [q_nope || q_pe || 0]
  for (int c = tid; c < BM * (DQK / 8); c += Cfg::THREADS) {
    const int r = c / (DQK / 8), col = (c % (DQK / 8)) * 8;
    const int t = m0 + r;
    int n = 0;
    const bf16* src = nullptr;
    if (t < p.tokens) {
      src = two_part(p.qn + int64_t(t) * p.qn_t + int64_t(h) * p.qn_h, p.dn, p.qp + int64_t(t) * p.qp_t + int64_t(h) * p.qp_h,
                     p.dn, p.dr, col, &n);
    }
    load_chunk(sQ + r * SQ + col, src, n, p.vec);
  }
  const auto load_kv = [&](int j, int buf) {
    bf16* k = sK + buf * Cfg::K_ELEMS;
    bf16* vv = sV + buf * Cfg::V_ELEMS;
    const int n0 = j * BN;
    for (int c = tid; c < BN * (DQK / 8); c += Cfg::THREADS) {
      const int r = c / (DQK / 8), col = (c % (DQK / 8)) * 8;
      const int s = n0 + r;
      int n = 0;
      const bf16* src = nullptr;
      if (s < p.keys) {
        src = two_part(p.kn + int64_t(s) * p.kn_s + int64_t(h) * p.kn_h, p.dn, p.kp + int64_t(s) * p.kp_s, p.dn, p.dr,
                       col, &n);
      }
      load_chunk(k + r * SQ + col, src, n, p.vec);
    }
    for (int c = tid; c < BN * (DV / 8); c += Cfg::THREADS) {
      const int r = c / (DV / 8), col = (c % (DV / 8)) * 8;
      const int s = n0 + r;
      int n = 0;
      const bf16* src = nullptr;
      if (s < p.keys && col < p.dv) {
        src = p.v + int64_t(s) * p.v_s + int64_t(h) * p.v_h + col;
        n = min(8, p.dv - col);
      }
      load_chunk(vv + r * SV + col, src, n, p.vec);
    }
  };
  if (nj > 0) load_kv(0, 0);
  cp_async_commit();

  float o[NT_O][4];
#pragma unroll
  for (int i = 0; i < NT_O; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const int row0 = warp * 16 + g;                        // this thread's rows: row0, row0 + 8
  const int lim0 = p.q_start + m0 + row0, lim1 = lim0 + 8;  // last visible key of each row

  for (int j = 0; j < nj; ++j) {
    cp_async_wait<0>();
    __syncthreads();
    if (j + 1 < nj) load_kv(j + 1, (j + 1) & 1);
    cp_async_commit();
    const bf16* k = sK + (j & 1) * Cfg::K_ELEMS;
    const bf16* vv = sV + (j & 1) * Cfg::V_ELEMS;

    float s[NT_S][4];
#pragma unroll
    for (int i = 0; i < NT_S; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll 4
    for (int kk = 0; kk < DQK / 16; ++kk) {
      uint32_t a[4];
      ldmatrix_x4(a, smem_u32(sQ + (warp * 16 + (lane & 15)) * SQ + kk * 16 + (lane >> 4) * 8));
#pragma unroll
      for (int np = 0; np < NT_S / 2; ++np) {
        uint32_t b[4];
        ldmatrix_x4(b, smem_u32(k + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * SQ + kk * 16 + ((lane >> 3) & 1) * 8));
        mma_bf16_16816(s[2 * np], a, b[0], b[1]);
        mma_bf16_16816(s[2 * np + 1], a, b[2], b[3]);
      }
    }
    // scale, mask (causal and past the keys), row max
    const int n0 = j * BN;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < NT_S; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = n0 + nt * 8 + 2 * tq + (e & 1);
        const int lim = e < 2 ? lim0 : lim1;
        float x = s[nt][e] * p.scale_log2;
        if (key > lim || key >= p.keys) x = -INFINITY;
        s[nt][e] = x;
        mx[e >> 1] = fmaxf(mx[e >> 1], x);
      }
    }
    float alpha[2], m_use[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m_run[r], mx[r]);
      m_use[r] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet stays empty
      alpha[r] = exp2f(m_run[r] - m_use[r]);
      m_run[r] = m_new;
    }
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int nt = 0; nt < NT_S; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pe = exp2f(s[nt][e] - m_use[e >> 1]);
        s[nt][e] = pe;
        rs[e >> 1] += pe;
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) l_run[r] = l_run[r] * alpha[r] + rs[r];
#pragma unroll
    for (int nt = 0; nt < NT_O; ++nt) {
      o[nt][0] *= alpha[0];
      o[nt][1] *= alpha[0];
      o[nt][2] *= alpha[1];
      o[nt][3] *= alpha[1];
    }
    // O += P V: the S accumulators of key tiles 2kk, 2kk+1 are the A fragment of k-step kk.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[4];
      a[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int np = 0; np < NT_O / 2; ++np) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, smem_u32(vv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * SV + np * 16 + (lane >> 4) * 8));
        mma_bf16_16816(o[2 * np], a, b[0], b[1]);
        mma_bf16_16816(o[2 * np + 1], a, b[2], b[3]);
      }
    }
  }
  cp_async_wait<0>();

  // normalize and store
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = m0 + row0 + r * 8;
    if (t >= p.tokens) continue;
    const float inv = l_run[r] > 0.0f ? 1.0f / l_run[r] : 0.0f;
    bf16* dst = p.o + int64_t(t) * p.o_t + int64_t(h) * p.o_h;
#pragma unroll
    for (int nt = 0; nt < NT_O; ++nt) {
      const int c = nt * 8 + 2 * tq;
      if (c < p.dv) dst[c] = bf16(o[nt][2 * r] * inv);
      if (c + 1 < p.dv) dst[c + 1] = bf16(o[nt][2 * r + 1] * inv);
    }
  }
}

/// Any head dims: one warp per (query, head), keys one at a time with an online softmax; q and the
/// output accumulator in fp32 shared memory. Correct for every shape, slow (fallback only).
__global__ void __launch_bounds__(128) mla_prefill_generic_kernel(const PrefillParams p) {
  extern __shared__ __align__(16) float fsm[];
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t row = int64_t(blockIdx.x) * 4 + warp;  // (t, h) flattened
  if (row >= int64_t(p.tokens) * p.heads) return;
  const int t = int(row / p.heads), h = int(row % p.heads);
  const int dq = p.dn + p.dr;
  float* q = fsm + warp * (dq + p.dv);  // [dn + dr]
  float* acc = q + dq;                  // [dv]
  for (int c = lane; c < dq; c += 32)
    q[c] = c < p.dn ? float(p.qn[int64_t(t) * p.qn_t + int64_t(h) * p.qn_h + c])
                    : float(p.qp[int64_t(t) * p.qp_t + int64_t(h) * p.qp_h + c - p.dn]);
  for (int c = lane; c < p.dv; c += 32) acc[c] = 0.0f;
  __syncwarp();
  float m = -INFINITY, l = 0.0f;
  const int visible = p.q_start + t + 1;
  for (int s = 0; s < visible; ++s) {
    const bf16* kn = p.kn + int64_t(s) * p.kn_s + int64_t(h) * p.kn_h;
    const bf16* kp = p.kp + int64_t(s) * p.kp_s;
    float d = 0.0f;
    for (int c = lane; c < dq; c += 32) d += q[c] * float(c < p.dn ? kn[c] : kp[c - p.dn]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
    const float x = d * p.scale_log2;
    const float m_new = fmaxf(m, x);
    const float alpha = exp2f(m - m_new), pe = exp2f(x - m_new);
    l = l * alpha + pe;
    m = m_new;
    const bf16* vv = p.v + int64_t(s) * p.v_s + int64_t(h) * p.v_h;
    for (int c = lane; c < p.dv; c += 32) acc[c] = acc[c] * alpha + pe * float(vv[c]);
  }
  bf16* dst = p.o + int64_t(t) * p.o_t + int64_t(h) * p.o_h;
  for (int c = lane; c < p.dv; c += 32) dst[c] = bf16(l > 0.0f ? acc[c] / l : 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Decode

struct DecodeParams {
  const bf16 *ql, *qp;
  int64_t ql_b, ql_t, ql_h, qp_b, qp_t, qp_h;  // strides (elements)
  const bf16* pages;
  int64_t pg_p, pg_r;  // page, row strides
  const int32_t* table;
  int64_t bt_b, bt_s;
  const int32_t* lens;  // [batch] device lengths, or nullptr: host_len for every sequence
  int host_len;
  int q_start;  // single-sequence form: position of query 0 (lens == nullptr)
  bf16* o;
  int64_t o_b, o_t, o_h;
  float* part_o;   // [batch, splits, rows, L] unnormalized partial outputs, or nullptr
  float* part_ml;  // [batch, splits, rows, 2] (max in log2 units, sum)
  int batch, tokens, heads, lat, dr, page, num_pages, max_blocks, splits;
  float scale_log2;
  bool vec;
};

/// Keys of sequence b as the device sees them: clamped into what its block table can address.
__device__ __forceinline__ int seq_len(const DecodeParams& p, int b) {
  if (!p.lens) return p.host_len;
  return min(max(p.lens[b], 0), p.max_blocks * p.page);
}
/// Position of query 0 of sequence b.
__device__ __forceinline__ int first_pos(const DecodeParams& p, int len) { return p.lens ? len - p.tokens : p.q_start; }

template <int LP, int DRP>
struct DecodeCfg {
  static constexpr int BM = 64, BN = 32, THREADS = 256;
  static constexpr int DQ = LP + DRP, SQ = DQ + 8, SP = BN + 8;
  static constexpr int Q_ELEMS = BM * SQ, K_ELEMS = BN * SQ;
  static constexpr int SMEM_BF16 = int(sizeof(bf16)) * (Q_ELEMS + 2 * K_ELEMS + BM * SP);
  static constexpr int SMEM = SMEM_BF16 + 4 * (2 * BM + BM + BM) + 4 * 2 * BN;  // red[2][BM], alpha, m, bad[2][BN]
  static_assert(LP % 64 == 0 && DRP % 16 == 0, "latent dims tile by 64, rope dims by 16");
};

template <int LP, int DRP>
__global__ void __launch_bounds__(256, 1) mla_decode_kernel(const DecodeParams p) {
  using Cfg = DecodeCfg<LP, DRP>;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, SQ = Cfg::SQ, SP = Cfg::SP, DQ = Cfg::DQ;
  constexpr int WN2 = LP / 4, NT2 = WN2 / 8;  // phase 2: columns per warp, n8 tiles per warp
  extern __shared__ __align__(128) char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [BM, SQ]
  bf16* sK = sQ + Cfg::Q_ELEMS;                  // [2][BN, SQ]
  bf16* sP = sK + 2 * Cfg::K_ELEMS;              // [BM, SP]
  float* red = reinterpret_cast<float*>(smem_raw + Cfg::SMEM_BF16);  // [2][BM] per-warp-column row max / sum
  float* s_alpha = red + 2 * BM;                                     // [BM]
  float* s_m = s_alpha + BM;                                         // [BM]
  int* s_bad = reinterpret_cast<int*>(s_m + BM);                     // [2][BN] key on a bad page

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;
  const int rb = int(blockIdx.x), split = int(blockIdx.y), b = int(blockIdx.z);
  const int rows_total = p.tokens * p.heads;
  const int len = seq_len(p, b), pos0 = first_pos(p, len);
  const int chunk = ((len + p.splits - 1) / p.splits + BN - 1) / BN * BN;
  const int k0 = split * chunk, k_end = min(len, k0 + chunk);
  const int64_t part_row0 = (int64_t(b) * p.splits + split) * rows_total;

  if (k0 >= k_end) {  // nothing in this split: an empty partial (or zeros when unsplit)
    for (int r = tid; r < BM; r += Cfg::THREADS) {
      const int gr = rb * BM + r;
      if (gr >= rows_total) continue;
      if (p.part_o) {
        p.part_ml[(part_row0 + gr) * 2] = -INFINITY;
        p.part_ml[(part_row0 + gr) * 2 + 1] = 0.0f;
      }
    }
    if (!p.part_o) {
      for (int i = tid; i < BM * p.lat; i += Cfg::THREADS) {
        const int gr = rb * BM + i / p.lat, c = i % p.lat;
        if (gr >= rows_total) continue;
        const int t = gr / p.heads, h = gr % p.heads;
        p.o[int64_t(b) * p.o_b + int64_t(t) * p.o_t + int64_t(h) * p.o_h + c] = bf16(0.0f);
      }
    }
    return;
  }

  // Q: [q_lat || 0 || q_pe || 0] per row (t, h)
  for (int c = tid; c < BM * (DQ / 8); c += Cfg::THREADS) {
    const int r = c / (DQ / 8), col = (c % (DQ / 8)) * 8;
    const int gr = rb * BM + r;
    int n = 0;
    const bf16* src = nullptr;
    if (gr < rows_total) {
      const int t = gr / p.heads, h = gr % p.heads;
      src = two_part(p.ql + int64_t(b) * p.ql_b + int64_t(t) * p.ql_t + int64_t(h) * p.ql_h, p.lat,
                     p.qp + int64_t(b) * p.qp_b + int64_t(t) * p.qp_t + int64_t(h) * p.qp_h, LP, p.dr, col, &n);
    }
    load_chunk(sQ + r * SQ + col, src, n, p.vec);
  }
  const auto load_k = [&](int j, int buf) {
    bf16* k = sK + buf * Cfg::K_ELEMS;
    const int n0 = k0 + j * BN;
    for (int c = tid; c < BN * (DQ / 8); c += Cfg::THREADS) {
      const int r = c / (DQ / 8), col = (c % (DQ / 8)) * 8;
      const int s = n0 + r;
      int n = 0;
      const bf16* src = nullptr;
      if (s < k_end) {
        const int pg = p.table[int64_t(b) * p.bt_b + int64_t(s / p.page) * p.bt_s];
        const bool bad = pg < 0 || pg >= p.num_pages;
        if (col == 0) s_bad[buf * BN + r] = bad;
        if (!bad) {
          const bf16* row = p.pages + int64_t(pg) * p.pg_p + int64_t(s % p.page) * p.pg_r;
          src = two_part(row, p.lat, row + p.lat, LP, p.dr, col, &n);
        }
      } else if (col == 0) {
        s_bad[buf * BN + r] = 0;
      }
      load_chunk(k + r * SQ + col, src, n, p.vec);
    }
  };
  const int nj = (k_end - k0 + BN - 1) / BN;
  load_k(0, 0);
  cp_async_commit();

  // phase 1 layout: 4 warps down the rows x 2 across the keys; phase 2: 2 down x 4 across columns
  const int wm1 = warp & 3, wn1 = warp >> 2;
  const int wm2 = warp & 1, wn2 = warp >> 1;
  const int prow0 = wm1 * 16 + g;  // phase-1 rows of this thread: prow0, prow0 + 8
  int lim[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int gr = rb * BM + prow0 + r * 8;
    lim[r] = gr < rows_total ? pos0 + gr / p.heads : -1;  // last visible key; padding rows see none
  }
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  float o[2][NT2][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int i = 0; i < NT2; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;

  for (int j = 0; j < nj; ++j) {
    cp_async_wait<0>();
    __syncthreads();
    if (j + 1 < nj) load_k(j + 1, (j + 1) & 1);
    cp_async_commit();
    const bf16* k = sK + (j & 1) * Cfg::K_ELEMS;
    const int* bad = s_bad + (j & 1) * BN;

    // S [16 rows x 16 keys] of this warp
    float s[2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll 4
    for (int kk = 0; kk < DQ / 16; ++kk) {
      uint32_t a[4], bq[4];
      ldmatrix_x4(a, smem_u32(sQ + (wm1 * 16 + (lane & 15)) * SQ + kk * 16 + (lane >> 4) * 8));
      ldmatrix_x4(bq, smem_u32(k + (wn1 * 16 + (lane & 7) + ((lane >> 4) << 3)) * SQ + kk * 16 + ((lane >> 3) & 1) * 8));
      mma_bf16_16816(s[0], a, bq[0], bq[1]);
      mma_bf16_16816(s[1], a, bq[2], bq[3]);
    }
    const int n0 = k0 + j * BN;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int kl = wn1 * 16 + nt * 8 + 2 * tq + (e & 1), key = n0 + kl;
        float x = s[nt][e] * p.scale_log2;
        if (key >= k_end || key > lim[e >> 1]) x = -INFINITY;
        else if (bad[kl]) x = __int_as_float(0x7fffffff);
        s[nt][e] = x;
        mx[e >> 1] = fmaxf(mx[e >> 1], x);  // fmaxf drops NaN: the NaN reaches the output through P
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      if (tq == 0) red[wn1 * BM + prow0 + r * 8] = mx[r];
    }
    __syncthreads();
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = prow0 + r * 8;
      const float m_new = fmaxf(m_run[r], fmaxf(red[row], red[BM + row]));
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m_run[r] - m_use);
      m_run[r] = m_new;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const float p0 = exp2f(s[nt][2 * r] - m_use), p1 = exp2f(s[nt][2 * r + 1] - m_use);
        rs[r] += p0 + p1;
        *reinterpret_cast<uint32_t*>(sP + row * SP + wn1 * 16 + nt * 8 + 2 * tq) = pack_bf16(p0, p1);
      }
      l_run[r] = l_run[r] * alpha + rs[r];
      if (wn1 == 0 && tq == 0) s_alpha[row] = alpha;
    }
    __syncthreads();

    // O [32 rows x LP/4 columns] of this warp += P . c_kv
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      const float a0 = s_alpha[wm2 * 32 + mt * 16 + g], a1 = s_alpha[wm2 * 32 + mt * 16 + g + 8];
#pragma unroll
      for (int nt = 0; nt < NT2; ++nt) {
        o[mt][nt][0] *= a0;
        o[mt][nt][1] *= a0;
        o[mt][nt][2] *= a1;
        o[mt][nt][3] *= a1;
      }
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
        ldmatrix_x4(a[mt], smem_u32(sP + (wm2 * 32 + mt * 16 + (lane & 15)) * SP + kk * 16 + (lane >> 4) * 8));
#pragma unroll
      for (int np = 0; np < NT2 / 2; ++np) {
        uint32_t bv[4];
        ldmatrix_x4_trans(bv, smem_u32(k + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * SQ + wn2 * WN2 + np * 16 +
                                       (lane >> 4) * 8));
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          mma_bf16_16816(o[mt][2 * np], a[mt], bv[0], bv[1]);
          mma_bf16_16816(o[mt][2 * np + 1], a[mt], bv[2], bv[3]);
        }
      }
    }
  }
  cp_async_wait<0>();

  // row sums: 4 lanes of a quad, then the two key-column warps, through shared memory
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
  }
  __syncthreads();  // everyone is done reading red / s_alpha of the last tile
  if (tq == 0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      red[wn1 * BM + prow0 + r * 8] = l_run[r];
      if (wn1 == 0) s_m[prow0 + r * 8] = m_run[r];
    }
  }
  __syncthreads();
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int row = wm2 * 32 + mt * 16 + g + hf * 8, gr = rb * BM + row;
      if (gr >= rows_total) continue;
      const float l = red[row] + red[BM + row];
      if (p.part_o) {
        float* dst = p.part_o + (part_row0 + gr) * p.lat;
#pragma unroll
        for (int nt = 0; nt < NT2; ++nt) {
          const int c = wn2 * WN2 + nt * 8 + 2 * tq;
          if (c < p.lat) dst[c] = o[mt][nt][2 * hf];
          if (c + 1 < p.lat) dst[c + 1] = o[mt][nt][2 * hf + 1];
        }
        if (wn2 == 0 && tq == 0) {
          // a NaN sum (bad page) gets a finite max so that the combine cannot skip it
          p.part_ml[(part_row0 + gr) * 2] = l != l ? 0.0f : s_m[row];
          p.part_ml[(part_row0 + gr) * 2 + 1] = l;
        }
      } else {
        const int t = gr / p.heads, h = gr % p.heads;
        bf16* dst = p.o + int64_t(b) * p.o_b + int64_t(t) * p.o_t + int64_t(h) * p.o_h;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT2; ++nt) {
          const int c = wn2 * WN2 + nt * 8 + 2 * tq;
          if (c < p.lat) dst[c] = bf16(o[mt][nt][2 * hf] * inv);
          if (c + 1 < p.lat) dst[c + 1] = bf16(o[mt][nt][2 * hf + 1] * inv);
        }
      }
    }
  }
}

/// Merges the splits of one row (b, t, h): o = sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s.
__global__ void __launch_bounds__(128) mla_decode_combine_kernel(const DecodeParams p) {
  const int gr = int(blockIdx.x), b = int(blockIdx.y);
  const int rows_total = p.tokens * p.heads;
  const float* ml = p.part_ml + (int64_t(b) * p.splits * rows_total + gr) * 2;
  const int64_t ml_step = int64_t(rows_total) * 2;
  float mmax = -INFINITY;
  for (int s = 0; s < p.splits; ++s) mmax = fmaxf(mmax, ml[s * ml_step]);
  float den = 0.0f;
  for (int s = 0; s < p.splits; ++s) {
    const float m = ml[s * ml_step];
    if (m != -INFINITY) den += exp2f(m - mmax) * ml[s * ml_step + 1];
  }
  const float inv = den > 0.0f ? 1.0f / den : 0.0f;  // NaN sums stay NaN
  const int t = gr / p.heads, h = gr % p.heads;
  bf16* dst = p.o + int64_t(b) * p.o_b + int64_t(t) * p.o_t + int64_t(h) * p.o_h;
  const float* po = p.part_o + (int64_t(b) * p.splits * rows_total + gr) * p.lat;
  const int64_t po_step = int64_t(rows_total) * p.lat;
  for (int c = int(threadIdx.x); c < p.lat; c += int(blockDim.x)) {
    float acc = 0.0f;
    for (int s = 0; s < p.splits; ++s) {
      const float m = ml[s * ml_step];
      if (m != -INFINITY) acc += exp2f(m - mmax) * po[s * po_step + c];
    }
    dst[c] = bf16(den != den ? den : acc * inv);
  }
}

/// Any latent / rope dims: one warp per (b, t, h) row, keys one at a time (fallback only).
__global__ void __launch_bounds__(128) mla_decode_generic_kernel(const DecodeParams p) {
  extern __shared__ __align__(16) float fsm[];
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int rows_total = p.tokens * p.heads;
  const int64_t row = int64_t(blockIdx.x) * 4 + warp;
  if (row >= int64_t(p.batch) * rows_total) return;
  const int b = int(row / rows_total), gr = int(row % rows_total), t = gr / p.heads, h = gr % p.heads;
  const int dq = p.lat + p.dr;
  float* q = fsm + warp * (dq + p.lat);  // [lat + dr]
  float* acc = q + dq;                   // [lat]
  for (int c = lane; c < dq; c += 32)
    q[c] = c < p.lat ? float(p.ql[int64_t(b) * p.ql_b + int64_t(t) * p.ql_t + int64_t(h) * p.ql_h + c])
                     : float(p.qp[int64_t(b) * p.qp_b + int64_t(t) * p.qp_t + int64_t(h) * p.qp_h + c - p.lat]);
  for (int c = lane; c < p.lat; c += 32) acc[c] = 0.0f;
  __syncwarp();
  const int len = seq_len(p, b);
  const int visible = min(len, first_pos(p, len) + t + 1);
  float m = -INFINITY, l = 0.0f;
  for (int s = 0; s < visible; ++s) {
    const int pg = p.table[int64_t(b) * p.bt_b + int64_t(s / p.page) * p.bt_s];
    float x;
    const bf16* kr = nullptr;
    if (pg < 0 || pg >= p.num_pages) {
      x = __int_as_float(0x7fffffff);
    } else {
      kr = p.pages + int64_t(pg) * p.pg_p + int64_t(s % p.page) * p.pg_r;
      float d = 0.0f;
      for (int c = lane; c < dq; c += 32) d += q[c] * float(kr[c]);
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
      x = d * p.scale_log2;
    }
    const float m_new = fmaxf(m, x);
    const float alpha = exp2f(m - m_new), pe = exp2f(x - m_new);
    l = l * alpha + pe;
    m = m_new;
    for (int c = lane; c < p.lat; c += 32) acc[c] = acc[c] * alpha + pe * (kr ? float(kr[c]) : x);
  }
  bf16* dst = p.o + int64_t(b) * p.o_b + int64_t(t) * p.o_t + int64_t(h) * p.o_h;
  for (int c = lane; c < p.lat; c += 32) dst[c] = bf16(l > 0.0f || l != l ? acc[c] / l : 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Per-head GEMMs

/// Fallback of the per-head GEMMs: C[h][t][n] = sum_k A(t, h, k) * B(h, k, n), one thread per output.
struct HeadGemm {
  const bf16* a;
  int64_t a_t, a_h;  // A(t, h, k) = a[t * a_t + h * a_h + k]
  const bf16* w;
  int64_t w_h, w_k, w_n;  // B(h, k, n) = w[h * w_h + k * w_k + n * w_n]
  bf16* c;
  int64_t c_t, c_h;  // C(t, h, n) = c[t * c_t + h * c_h + n]
  int tokens, heads, n, k;
};
__global__ void __launch_bounds__(256) head_gemm_kernel(const HeadGemm g) {
  const int64_t total = int64_t(g.tokens) * g.heads * g.n;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int n = int(i % g.n);
    const int64_t th = i / g.n;
    const int h = int(th % g.heads), t = int(th / g.heads);
    const bf16* a = g.a + int64_t(t) * g.a_t + int64_t(h) * g.a_h;
    const bf16* w = g.w + int64_t(h) * g.w_h + int64_t(n) * g.w_n;
    float acc = 0.0f;
    for (int k = 0; k < g.k; ++k) acc += float(a[k]) * float(w[int64_t(k) * g.w_k]);
    g.c[int64_t(t) * g.c_t + int64_t(h) * g.c_h + n] = bf16(acc);
  }
}

/// The strided-batched cuBLASLt GEMM of one call, column-major: D[m, n] (batch h) = op(A) . B with
/// A [m x k] (trans_a: stored k x m), B [k x n], D [m x n]; batch strides in elements.
struct BatchedGemm {
  bool trans_a;
  int64_t m, n, k, lda, ldb, ldd, sa, sb, sd;
  int batch;
  const void *a, *b;
  void* d;
};

inline bool try_cublaslt_batched(const BatchedGemm& g, stream_t stream) {
  namespace lt = r1::cuda::cublaslt::detail;
  using Key = std::tuple<int, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int, int, int, int>;
  static std::mutex mu;
  static std::map<Key, std::optional<lt::Plan>> cache;
  const Key key{current_device().device, g.trans_a, g.m, g.n, g.k, g.lda, g.ldb, g.ldd, g.sa, g.sb, g.sd, g.batch,
                alignment_of(g.a), alignment_of(g.b), alignment_of(g.d)};
  lt::MatmulDesc desc(CUBLAS_COMPUTE_32F, CUDA_R_32F);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
  const lt::Layout la(CUDA_R_16BF, uint64_t(g.trans_a ? g.k : g.m), uint64_t(g.trans_a ? g.m : g.k), g.lda);
  const lt::Layout lb(CUDA_R_16BF, uint64_t(g.k), uint64_t(g.n), g.ldb);
  const lt::Layout ld(CUDA_R_16BF, uint64_t(g.m), uint64_t(g.n), g.ldd);
  const auto batched = [&](const lt::Layout& l, int64_t stride) {
    const int32_t count = g.batch;
    R1_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l.l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    R1_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l.l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  };
  batched(la, g.sa);
  batched(lb, g.sb);
  batched(ld, g.sd);
  const cublasLtHandle_t h = lt::handle();
  std::optional<lt::Plan> plan;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) {
      plan = it->second;
      known = true;
    }
  }
  if (!known) {
    lt::Preference pref;
    pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, lt::kMaxWorkspace);
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, uint32_t(std::get<12>(key)));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, uint32_t(std::get<13>(key)));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, uint32_t(std::get<14>(key)));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, uint32_t(std::get<14>(key)));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h, desc.d, la.l, lb.l, ld.l, ld.l, pref.p, 1, &result, &found);
    if (st != CUBLAS_STATUS_NOT_SUPPORTED) R1_CUBLAS_CHECK(st);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
      plan = lt::Plan{result.algo, result.workspaceSize};
    }
    std::lock_guard<std::mutex> lock(mu);
    cache.emplace(key, plan);
  }
  if (!plan) return false;
  lt::run(h, desc, *plan, g.a, la, g.b, lb, g.d, ld, stream);
  return true;
}

inline void launch_head_gemm(const HeadGemm& g, stream_t stream) {
  const int64_t total = int64_t(g.tokens) * g.heads * g.n;
  if (total == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>(ceil_div(total, 256), int64_t(current_device().sms) * 16));
  head_gemm_kernel<<<blocks, 256, 0, stream>>>(g);
  R1_CUDA_CHECK_LAUNCH();
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

}  // namespace detail::mla

// ---------------------------------------------------------------------------------------------
// Host launchers

template <class T>
void mla_attention_expanded(View<const T, 3> q_nope, View<const T, 3> q_pe, View<const T, 3> k_nope,
                            View<const T, 2> k_pe, View<const T, 3> v, double scale, int64_t q_start,
                            View<T, 3> out, stream_t stream) {
  static_assert(std::is_same_v<T, bf16>, "mla_attention_expanded: bf16 activations");
  namespace M = detail::mla;
  const char* op = "cuda.mla_attention_expanded";
  const int64_t tokens = q_nope.shape[0], heads = q_nope.shape[1], dn = q_nope.shape[2];
  const int64_t keys = k_nope.shape[0], dr = q_pe.shape[2], dv = v.shape[2];
  detail::require_device(q_nope, op, "q_nope");
  detail::require_device(q_pe, op, "q_pe");
  detail::require_device(k_nope, op, "k_nope");
  detail::require_device(k_pe, op, "k_pe");
  detail::require_device(v, op, "v");
  detail::require_device(out, op, "out");
  detail::require_dim(q_pe, 0, tokens, op, "q_pe", "tokens");
  detail::require_dim(q_pe, 1, heads, op, "q_pe", "heads");
  detail::require_dim(k_nope, 1, heads, op, "k_nope", "heads");
  detail::require_dim(k_nope, 2, dn, op, "k_nope", "nope dims");
  detail::require_dim(k_pe, 0, keys, op, "k_pe", "keys");
  detail::require_dim(k_pe, 1, dr, op, "k_pe", "rope dims");
  detail::require_dim(v, 0, keys, op, "v", "keys");
  detail::require_dim(v, 1, heads, op, "v", "heads");
  detail::require_dim(out, 0, tokens, op, "out", "tokens");
  detail::require_dim(out, 1, heads, op, "out", "heads");
  detail::require_dim(out, 2, dv, op, "out", "v dims");
  R1_CHECK(q_start >= 0 && q_start + tokens <= keys, op, tokens, " queries starting at position ", q_start,
           " need at least ", q_start + tokens, " keys, got ", keys);
  M::require_last_unit(q_nope, op, "q_nope");
  M::require_last_unit(q_pe, op, "q_pe");
  M::require_last_unit(k_nope, op, "k_nope");
  M::require_last_unit(k_pe, op, "k_pe");
  M::require_last_unit(v, op, "v");
  M::require_last_unit(out, op, "out");
  R1_CHECK(dn > 0 && dv > 0 && dr >= 0, op, "head dims nope ", dn, ", rope ", dr, ", v ", dv, " must be positive");
  detail::require_int32(keys, op, "keys");
  detail::require_int32(tokens * heads, op, "tokens x heads");
  detail::require_int32(heads, op, "heads");
  if (tokens == 0 || heads == 0) return;
  R1_CHECK(heads <= 65535, op, heads, " heads exceed the grid's 65535");

  M::PrefillParams p{};
  p.qn = q_nope.data;
  p.qp = q_pe.data;
  p.kn = k_nope.data;
  p.kp = k_pe.data;
  p.v = v.data;
  p.o = out.data;
  p.qn_t = q_nope.stride[0];
  p.qn_h = q_nope.stride[1];
  p.qp_t = q_pe.stride[0];
  p.qp_h = q_pe.stride[1];
  p.kn_s = k_nope.stride[0];
  p.kn_h = k_nope.stride[1];
  p.kp_s = k_pe.stride[0];
  p.v_s = v.stride[0];
  p.v_h = v.stride[1];
  p.o_t = out.stride[0];
  p.o_h = out.stride[1];
  p.tokens = int(tokens);
  p.keys = int(keys);
  p.heads = int(heads);
  p.dn = int(dn);
  p.dr = int(dr);
  p.dv = int(dv);
  p.q_start = int(q_start);
  p.scale_log2 = float(scale) * M::kLog2e;
  p.vec = dn % 8 == 0 && dr % 8 == 0 && dv % 8 == 0 && M::vec_ok(q_nope) && M::vec_ok(k_nope) && M::vec_ok(v) &&
          (dr == 0 || (M::vec_ok(q_pe) && M::vec_ok(k_pe)));

  const auto run = [&]<int DQK, int DV>() {
    using Cfg = M::PrefillCfg<DQK, DV>;
    constexpr auto kernel = M::mla_prefill_kernel<DQK, DV>;
    detail::prepare_kernel<kernel>(Cfg::THREADS, Cfg::SMEM, op);
    const dim3 grid(unsigned(detail::ceil_div(tokens, Cfg::BM)), unsigned(heads));
    kernel<<<grid, Cfg::THREADS, Cfg::SMEM, stream>>>(p);
    R1_CUDA_CHECK_LAUNCH();
  };
  if (dn + dr <= 96 && dv <= 64) {
    run.template operator()<96, 64>();
  } else if (dn + dr <= 192 && dv <= 128) {
    run.template operator()<192, 128>();
  } else {
    const int64_t smem = 4 * 4 * (dn + dr + dv);
    R1_CHECK(smem <= 48 * 1024, op, "head dims nope ", dn, " + rope ", dr, " + v ", dv, " exceed the fallback kernel's ",
             48 * 1024 / 16, " values");
    const int64_t blocks = detail::ceil_div(tokens * heads, 4);
    M::mla_prefill_generic_kernel<<<unsigned(blocks), 128, size_t(smem), stream>>>(p);
    R1_CUDA_CHECK_LAUNCH();
  }
}

namespace detail::mla {

/// Shared by the batched and single-sequence decode entry points once p is filled: picks the
/// kernel, the split of the keys (from max_keys, a host bound), and launches.
inline void launch_decode(DecodeParams p, int64_t max_keys, stream_t stream, const char* op) {
  const int64_t rows = int64_t(p.tokens) * p.heads;
  if (p.batch == 0 || rows == 0) return;
  const auto run = [&]<int LP, int DRP>() {
    using Cfg = DecodeCfg<LP, DRP>;
    constexpr auto kernel = mla_decode_kernel<LP, DRP>;
    const KernelInfo& ki = prepare_kernel<kernel>(Cfg::THREADS, Cfg::SMEM, op);
    const int64_t row_blocks = ceil_div(rows, Cfg::BM);
    R1_CHECK(row_blocks < (int64_t(1) << 31) && p.batch <= 65535, op, "batch ", p.batch, " x ", rows,
             " rows is too large a grid");
    // Splits: minimise (waves) x (key tiles per split + Q load + partial round trip), a simple
    // model in units of one key tile; a split costs its partial sums' write and read.
    const int64_t ctas = row_blocks * p.batch;
    const int64_t slots = int64_t(current_device().sms) * ki.blocks_per_sm;
    const int64_t tiles = std::max<int64_t>(1, ceil_div(max_keys, Cfg::BN));
    const int64_t max_splits = std::clamp<int64_t>(ceil_div(max_keys, 256), 1, 128);
    int best = 1;
    double best_cost = 1e300;
    for (int64_t s = 1; s <= max_splits; ++s) {
      const double waves = double(ceil_div(ctas * s, slots));
      const double cost = waves * (double(ceil_div(tiles, s)) + 2.0 + (s > 1 ? 4.0 : 0.0));
      if (cost < best_cost * 0.98) {
        best_cost = cost;
        best = int(s);
      }
    }
    p.splits = best;
    Tensor part_o, part_ml;
    if (best > 1) {
      part_o = Tensor::empty(DType::f32, {int64_t(p.batch), int64_t(best), rows, int64_t(p.lat)}, Space::cuda, stream);
      part_ml = Tensor::empty(DType::f32, {int64_t(p.batch), int64_t(best), rows, 2}, Space::cuda, stream);
      p.part_o = part_o.data_as<float>();
      p.part_ml = part_ml.data_as<float>();
    } else {
      p.part_o = nullptr;
      p.part_ml = nullptr;
    }
    const dim3 grid(unsigned(row_blocks), unsigned(best), unsigned(p.batch));
    kernel<<<grid, Cfg::THREADS, Cfg::SMEM, stream>>>(p);
    R1_CUDA_CHECK_LAUNCH();
    if (best > 1) {
      mla_decode_combine_kernel<<<dim3(unsigned(rows), unsigned(p.batch)), 128, 0, stream>>>(p);
      R1_CUDA_CHECK_LAUNCH();
    }
  };
  if (p.lat <= 128 && p.dr <= 32) {
    run.template operator()<128, 32>();
  } else if (p.lat <= 512 && p.dr <= 64) {
    run.template operator()<512, 64>();
  } else {
    const int64_t smem = 4 * 4 * (2 * int64_t(p.lat) + p.dr);
    R1_CHECK(smem <= 48 * 1024, op, "kv_lora_rank ", p.lat, " and rope dims ", p.dr, " exceed the fallback kernel's limit");
    p.splits = 1;
    const int64_t blocks = ceil_div(int64_t(p.batch) * rows, 4);
    R1_CHECK(blocks < (int64_t(1) << 31), op, "too many rows");
    mla_decode_generic_kernel<<<unsigned(blocks), 128, size_t(smem), stream>>>(p);
    R1_CUDA_CHECK_LAUNCH();
  }
}

/// Checks of the query / output / cache arguments common to both decode forms (rank-free part).
template <class VQ, class VP, class VO>
void check_decode_common(const VQ& q_lat, const VP& q_pe, const View<const bf16, 3>& pages, const VO& o_lat,
                         const char* op) {
  require_device(q_lat, op, "q_lat");
  require_device(q_pe, op, "q_pe");
  require_device(pages, op, "pages");
  require_device(o_lat, op, "o_lat");
  require_last_unit(q_lat, op, "q_lat");
  require_last_unit(q_pe, op, "q_pe");
  require_last_unit(pages, op, "pages");
  require_last_unit(o_lat, op, "o_lat");
  R1_CHECK(pages.shape[1] > 0, op, "page size must be positive");
  require_int32(pages.shape[0], op, "pages");
  require_int32(pages.shape[1], op, "page size");
  require_sizes(q_lat, op, "q_lat dims");
}

template <class VQ, class VP>
void fill_decode_common(DecodeParams& p, const VQ& q_lat, const VP& q_pe, const View<const bf16, 3>& pages,
                        double scale) {
  constexpr int R = VQ::rank;
  p.ql = q_lat.data;
  p.qp = q_pe.data;
  p.pages = pages.data;
  p.pg_p = pages.stride[0];
  p.pg_r = pages.stride[1];
  p.lat = int(q_lat.shape[R - 1]);
  p.dr = int(q_pe.shape[R - 1]);
  p.heads = int(q_lat.shape[R - 2]);
  p.tokens = int(q_lat.shape[R - 3]);
  p.page = int(pages.shape[1]);
  p.num_pages = int(pages.shape[0]);
  p.scale_log2 = float(scale) * kLog2e;
  p.vec = p.lat % 8 == 0 && p.dr % 8 == 0 && vec_ok(q_lat) && (p.dr == 0 || vec_ok(q_pe)) && vec_ok(pages);
}

}  // namespace detail::mla

template <class T>
void mla_attention_absorbed(View<const T, 4> q_lat, View<const T, 4> q_pe, View<const T, 3> pages,
                            View<const int32_t, 2> block_tables, View<const int32_t, 1> seq_lens, double scale,
                            View<T, 4> o_lat, stream_t stream) {
  static_assert(std::is_same_v<T, bf16>, "mla_attention_absorbed: bf16 activations and cache");
  namespace M = detail::mla;
  const char* op = "cuda.mla_attention_absorbed";
  const int64_t batch = q_lat.shape[0], tokens = q_lat.shape[1], heads = q_lat.shape[2], lat = q_lat.shape[3];
  const int64_t dr = q_pe.shape[3];
  M::check_decode_common(q_lat, q_pe, pages, o_lat, op);
  detail::require_device(block_tables, op, "block_tables");
  detail::require_device(seq_lens, op, "seq_lens");
  for (int d = 0; d < 3; ++d) detail::require_dim(q_pe, d, q_lat.shape[d], op, "q_pe", "leading dims (batch, tokens, heads)");
  for (int d = 0; d < 4; ++d) detail::require_dim(o_lat, d, q_lat.shape[d], op, "o_lat", "dims (like q_lat)");
  detail::require_dim(pages, 2, lat + dr, op, "pages", "row width (kv_lora_rank + rope_dim)");
  detail::require_dim(block_tables, 0, batch, op, "block_tables", "sequences");
  detail::require_dim(seq_lens, 0, batch, op, "seq_lens", "sequences");
  R1_CHECK(lat > 0, op, "kv_lora_rank must be positive");
  detail::require_int32(block_tables.shape[1], op, "block table width");
  const int64_t max_keys = block_tables.shape[1] * pages.shape[1];
  detail::require_int32(max_keys, op, "keys a block table can address");
  detail::require_int32(tokens * heads, op, "tokens x heads");
  M::DecodeParams p{};
  M::fill_decode_common(p, q_lat, q_pe, pages, scale);
  p.batch = int(batch);
  p.ql_b = q_lat.stride[0];
  p.ql_t = q_lat.stride[1];
  p.ql_h = q_lat.stride[2];
  p.qp_b = q_pe.stride[0];
  p.qp_t = q_pe.stride[1];
  p.qp_h = q_pe.stride[2];
  p.o = o_lat.data;
  p.o_b = o_lat.stride[0];
  p.o_t = o_lat.stride[1];
  p.o_h = o_lat.stride[2];
  p.table = block_tables.data;
  p.bt_b = block_tables.stride[0];
  p.bt_s = block_tables.stride[1];
  p.max_blocks = int(block_tables.shape[1]);
  p.lens = seq_lens.data;
  R1_CHECK(seq_lens.shape[0] <= 1 || seq_lens.stride[0] == 1, op, "seq_lens must be contiguous");
  if (max_keys == 0) {  // no sequence can hold a key: every row sees none
    p.max_blocks = 0;
  }
  M::launch_decode(p, std::max<int64_t>(max_keys, 1), stream, op);
}

template <class T>
void mla_attention_absorbed(View<const T, 3> q_lat, View<const T, 3> q_pe, View<const T, 3> pages,
                            View<const int32_t, 1> block_table, int64_t keys, double scale, int64_t q_start,
                            View<T, 3> o_lat, stream_t stream) {
  static_assert(std::is_same_v<T, bf16>, "mla_attention_absorbed: bf16 activations and cache");
  namespace M = detail::mla;
  const char* op = "cuda.mla_attention_absorbed";
  const int64_t tokens = q_lat.shape[0], heads = q_lat.shape[1], lat = q_lat.shape[2], dr = q_pe.shape[2];
  M::check_decode_common(q_lat, q_pe, pages, o_lat, op);
  detail::require_device(block_table, op, "block_table");
  detail::require_dim(q_pe, 0, tokens, op, "q_pe", "tokens");
  detail::require_dim(q_pe, 1, heads, op, "q_pe", "heads");
  detail::require_dim(pages, 2, lat + dr, op, "pages", "row width (kv_lora_rank + rope_dim)");
  detail::require_dim(o_lat, 0, tokens, op, "o_lat", "tokens");
  detail::require_dim(o_lat, 1, heads, op, "o_lat", "heads");
  detail::require_dim(o_lat, 2, lat, op, "o_lat", "latent dims");
  R1_CHECK(lat > 0, op, "kv_lora_rank must be positive");
  R1_CHECK(q_start >= 0 && q_start + tokens <= keys, op, tokens, " queries starting at position ", q_start,
           " need at least ", q_start + tokens, " keys, got ", keys);
  const int64_t page = pages.shape[1];
  R1_CHECK(detail::ceil_div(keys, page) <= block_table.shape[0], op, keys, " tokens need ", detail::ceil_div(keys, page),
           " pages, the block table has ", block_table.shape[0]);
  detail::require_int32(keys, op, "keys");
  detail::require_int32(block_table.shape[0], op, "block table entries");
  detail::require_int32(tokens * heads, op, "tokens x heads");
  M::DecodeParams p{};
  M::fill_decode_common(p, q_lat, q_pe, pages, scale);
  p.batch = 1;
  p.ql_t = q_lat.stride[0];
  p.ql_h = q_lat.stride[1];
  p.qp_t = q_pe.stride[0];
  p.qp_h = q_pe.stride[1];
  p.o = o_lat.data;
  p.o_t = o_lat.stride[0];
  p.o_h = o_lat.stride[1];
  p.table = block_table.data;
  p.bt_s = block_table.stride[0];
  p.max_blocks = int(block_table.shape[0]);
  p.lens = nullptr;
  // Keys past q_start + tokens are never visible: the kernels only walk the keys the last query sees.
  p.host_len = int(q_start + tokens);
  p.q_start = int(q_start);
  M::launch_decode(p, std::max<int64_t>(q_start + tokens, 1), stream, op);
}

namespace detail::mla {
template <class TW>
void check_kv_b(const View<TW, 2>& w, int64_t heads, int64_t nope_dim, int64_t v_dim, int64_t rank, const char* op) {
  require_device(w, op, "kv_b weight");
  require_last_unit(w, op, "kv_b weight");
  R1_CHECK(nope_dim > 0 && v_dim > 0, op, "qk_nope_head_dim ", nope_dim, " and v_head_dim ", v_dim, " must be positive");
  R1_CHECK(w.shape[0] == heads * (nope_dim + v_dim) && w.shape[1] == rank, op, "kv_b weight has shape [", w.shape[0],
           ", ", w.shape[1], "], expected [", heads * (nope_dim + v_dim), ", ", rank, "] (heads ", heads, " x (",
           nope_dim, " + ", v_dim, "), kv_lora_rank ", rank, ")");
}
}  // namespace detail::mla

template <class T>
void mla_absorb_q(View<const T, 3> q_nope, View<const T, 2> w_kvb, int v_dim, View<T, 3> q_lat, stream_t stream) {
  static_assert(std::is_same_v<T, bf16>, "mla_absorb_q: bf16 activations and weight");
  namespace M = detail::mla;
  const char* op = "cuda.mla_absorb_q";
  const int64_t tokens = q_nope.shape[0], heads = q_nope.shape[1], dn = q_nope.shape[2], rank = q_lat.shape[2];
  detail::require_device(q_nope, op, "q_nope");
  detail::require_device(q_lat, op, "q_lat");
  M::require_last_unit(q_nope, op, "q_nope");
  M::require_last_unit(q_lat, op, "q_lat");
  M::check_kv_b(w_kvb, heads, dn, v_dim, rank, op);
  detail::require_dim(q_lat, 0, tokens, op, "q_lat", "tokens");
  detail::require_dim(q_lat, 1, heads, op, "q_lat", "heads");
  M::require_sizes(q_lat, op, "q_lat dims");
  detail::require_int32(tokens * heads * rank, op, "q_lat elements");
  if (tokens == 0 || heads == 0 || rank == 0) return;
  const int64_t ldw = w_kvb.shape[0] <= 1 ? rank : w_kvb.stride[0];
  // column-major: q_lat^T [L x T] (batch h) = W_UK[h]^T-as-stored [L x dn] . q_nope^T [dn x T]
  M::BatchedGemm g{};
  g.trans_a = false;
  g.m = rank;
  g.n = tokens;
  g.k = dn;
  g.a = w_kvb.data;
  g.lda = ldw;
  g.sa = (dn + v_dim) * ldw;
  g.b = q_nope.data;
  g.ldb = tokens <= 1 ? std::max<int64_t>(dn, 1) : q_nope.stride[0];
  g.sb = q_nope.stride[1];
  g.d = q_lat.data;
  g.ldd = tokens <= 1 ? rank : q_lat.stride[0];
  g.sd = q_lat.stride[1];
  g.batch = int(heads);
  const bool lt_ok = g.ldb >= dn && g.ldd >= rank && g.lda >= rank && M::try_cublaslt_batched(g, stream);
  if (lt_ok) return;
  M::HeadGemm f{q_nope.data, q_nope.stride[0], q_nope.stride[1], w_kvb.data, (dn + v_dim) * ldw, ldw, 1,
                q_lat.data,  q_lat.stride[0],  q_lat.stride[1],  int(tokens), int(heads), int(rank), int(dn)};
  M::launch_head_gemm(f, stream);
}

template <class T>
void mla_v_up(View<const T, 3> o_lat, View<const T, 2> w_kvb, int nope_dim, View<T, 3> out, stream_t stream) {
  static_assert(std::is_same_v<T, bf16>, "mla_v_up: bf16 activations and weight");
  namespace M = detail::mla;
  const char* op = "cuda.mla_v_up";
  const int64_t tokens = o_lat.shape[0], heads = o_lat.shape[1], rank = o_lat.shape[2], dv = out.shape[2];
  detail::require_device(o_lat, op, "o_lat");
  detail::require_device(out, op, "out");
  M::require_last_unit(o_lat, op, "o_lat");
  M::require_last_unit(out, op, "out");
  M::check_kv_b(w_kvb, heads, nope_dim, dv, rank, op);
  detail::require_dim(out, 0, tokens, op, "out", "tokens");
  detail::require_dim(out, 1, heads, op, "out", "heads");
  M::require_sizes(o_lat, op, "o_lat dims");
  detail::require_int32(tokens * heads * dv, op, "out elements");
  if (tokens == 0 || heads == 0 || dv == 0) return;
  const int64_t ldw = w_kvb.shape[0] <= 1 ? rank : w_kvb.stride[0];
  // column-major: out^T [dv x T] (batch h) = op(W_UV[h]) [dv x L] . o_lat^T [L x T]; W_UV[h] as
  // stored is column-major L x dv, hence TRANSA.
  M::BatchedGemm g{};
  g.trans_a = true;
  g.m = dv;
  g.n = tokens;
  g.k = rank;
  g.a = w_kvb.data + int64_t(nope_dim) * ldw;
  g.lda = ldw;
  g.sa = (nope_dim + dv) * ldw;
  g.b = o_lat.data;
  g.ldb = tokens <= 1 ? rank : o_lat.stride[0];
  g.sb = o_lat.stride[1];
  g.d = out.data;
  g.ldd = tokens <= 1 ? dv : out.stride[0];
  g.sd = out.stride[1];
  g.batch = int(heads);
  const bool lt_ok = rank > 0 && g.ldb >= rank && g.ldd >= dv && g.lda >= rank && M::try_cublaslt_batched(g, stream);
  if (lt_ok) return;
  M::HeadGemm f{o_lat.data, o_lat.stride[0], o_lat.stride[1], w_kvb.data + int64_t(nope_dim) * ldw, (nope_dim + dv) * ldw,
                1,          ldw,             out.data,        out.stride[0],                         out.stride[1],
                int(tokens), int(heads),     int(dv),         int(rank)};
  M::launch_head_gemm(f, stream);
}

}  // namespace r1::cuda
