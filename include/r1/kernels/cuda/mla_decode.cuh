// SPDX-License-Identifier: MIT
// MLA decode attention over the paged latent cache (mla_attention_absorbed, declared in mla.hpp;
// instantiated in src/cuda/mla_decode.cu).
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
//
// f32 activations and cache (the precise policy) never use tensor cores: every dims run the
// warp-per-row kernel (mla_decode_generic_kernel<float>, unsplit, fp32 math, nothing rounded below
// f32), which is also bf16's fallback for latent dims beyond the tensor-core kernels.
#pragma once

#include "r1/kernels/cuda/mla_common.cuh"

namespace r1::cuda {

namespace detail::mla {

// ---------------------------------------------------------------------------------------------
// Decode

/// Arguments of the decode kernels; T is the activation and cache dtype (bf16, or f32 for the
/// fallback only).
template <class T>
struct DecodeParamsT {
  const T *ql, *qp;
  int64_t ql_b, ql_t, ql_h, qp_b, qp_t, qp_h;  // strides (elements)
  const T* pages;
  int64_t pg_p, pg_r;  // page, row strides
  const int32_t* table;
  int64_t bt_b, bt_s;
  const int32_t* lens;  // [batch] device lengths, or nullptr: host_len for every sequence
  int host_len;
  int q_start;  // single-sequence form: position of query 0 (lens == nullptr)
  T* o;
  int64_t o_b, o_t, o_h;
  float* part_o;   // [batch, splits, rows, L] unnormalized partial outputs, or nullptr
  float* part_ml;  // [batch, splits, rows, 2] (max in log2 units, sum)
  int batch, tokens, heads, lat, dr, page, num_pages, max_blocks, splits;
  float scale_log2;
  bool vec;
  bool vec_o;  // o_lat rows 4-byte aligned with unit last stride (the sm_90a kernel stores bf16 pairs)
};
/// The tensor-core kernels' and the combine's (bf16 only).
using DecodeParams = DecodeParamsT<bf16>;

/// Keys of sequence b as the device sees them: clamped into what its block table can address.
template <class T>
__device__ __forceinline__ int seq_len(const DecodeParamsT<T>& p, int b) {
  if (!p.lens) return p.host_len;
  return min(max(p.lens[b], 0), p.max_blocks * p.page);
}
/// Position of query 0 of sequence b.
template <class T>
__device__ __forceinline__ int first_pos(const DecodeParamsT<T>& p, int len) {
  return p.lens ? len - p.tokens : p.q_start;
}

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

}  // namespace detail::mla
}  // namespace r1::cuda

#include "r1/kernels/cuda/mla_decode_sm90.cuh"

namespace r1::cuda {
namespace detail::mla {

/// Any latent / rope dims: one warp per (b, t, h) row, keys one at a time, unsplit; q and the
/// accumulator in fp32 shared memory, fp32 math, the output stored as T. bf16's fallback, and f32's
/// only kernel (nothing rounded below f32). Same semantics as the tensor-core kernels: device
/// lengths, zeros for rows that see no key, NaN for rows that see a key on a bad page.
template <class T>
__global__ void __launch_bounds__(128) mla_decode_generic_kernel(const DecodeParamsT<T> p) {
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
    const T* kr = nullptr;
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
  T* dst = p.o + int64_t(b) * p.o_b + int64_t(t) * p.o_t + int64_t(h) * p.o_h;
  for (int c = lane; c < p.lat; c += 32) dst[c] = T(l > 0.0f || l != l ? acc[c] / l : 0.0f);
}

/// Launches the warp-per-row kernel over every (b, t, h) row, 4 per block, each warp's fp32 q and
/// accumulator in dynamic shared memory (past 48 KB only for latent dims far beyond R1's).
template <class T>
void launch_decode_generic(DecodeParamsT<T> p, stream_t stream, const char* op) {
  constexpr auto kernel = mla_decode_generic_kernel<T>;
  const int64_t smem = 4 * int64_t(sizeof(float)) * (2 * int64_t(p.lat) + p.dr);
  prepare_dynamic_smem<kernel>(smem, op, "kv_lora_rank ", p.lat, " and rope dims ", p.dr);
  p.splits = 1;
  const int64_t blocks = ceil_div(int64_t(p.batch) * p.tokens * p.heads, 4);
  R1_CHECK(blocks < (int64_t(1) << 31), op, "too many rows");
  kernel<<<unsigned(blocks), 128, size_t(smem), stream>>>(p);
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace detail::mla

namespace detail::mla {

/// Splits of the keys for a decode launch of `row_blocks` x batch CTAs, from a host bound on the
/// keys: minimises (waves) x (key tiles per split + `fixed` + `split_extra` when split), a cost in
/// key tiles (`fixed`: the Q load and epilogue; `split_extra`: the partials' write and re-read).
/// At most `max_splits`; the kernel's occupancy comes from `ki`.
inline int choose_decode_splits(int64_t row_blocks, int64_t batch, const KernelInfo& ki, int64_t tiles,
                                int64_t max_splits, double fixed, double split_extra) {
  const int64_t ctas = row_blocks * batch;
  const int64_t slots = int64_t(current_device().sms) * ki.blocks_per_sm;
  int best = 1;
  double best_cost = 1e300;
  for (int64_t s = 1; s <= max_splits; ++s) {
    const double waves = double(ceil_div(ctas * s, slots));
    const double cost = waves * (double(ceil_div(tiles, s)) + fixed + (s > 1 ? split_extra : 0.0));
    if (cost < best_cost * 0.98) {
      best_cost = cost;
      best = int(s);
    }
  }
  return best;
}

/// Launches `kernel` over (row blocks, splits, batch) with p.splits = splits, the fp32 partials of
/// a split launch from the pool, and the combine kernel after it.
template <class Kernel>
void launch_decode_split(Kernel kernel, DecodeParams p, int splits, int64_t row_blocks, int threads, int smem,
                         stream_t stream) {
  const int64_t rows = int64_t(p.tokens) * p.heads;
  p.splits = splits;
  Tensor part_o, part_ml;
  if (splits > 1) {
    part_o = Tensor::empty(DType::f32, {int64_t(p.batch), int64_t(splits), rows, int64_t(p.lat)}, Space::cuda, stream);
    part_ml = Tensor::empty(DType::f32, {int64_t(p.batch), int64_t(splits), rows, 2}, Space::cuda, stream);
    p.part_o = part_o.data_as<float>();    // [batch, splits, rows, lat]
    p.part_ml = part_ml.data_as<float>();  // [batch, splits, rows, 2]
  } else {
    p.part_o = nullptr;
    p.part_ml = nullptr;
  }
  kernel<<<dim3(unsigned(row_blocks), unsigned(splits), unsigned(p.batch)), threads, smem, stream>>>(p);
  R1_CUDA_CHECK_LAUNCH();
  if (splits > 1) {
    mla_decode_combine_kernel<<<dim3(unsigned(rows), unsigned(p.batch)), 128, 0, stream>>>(p);
    R1_CUDA_CHECK_LAUNCH();
  }
}

/// The Hopper kernel (mla_decode_sm90.cuh) for R1's dims: splits of the keys from max_keys (a
/// host bound), one wave of 1-block-per-SM CTAs where the batch allows.
inline void launch_decode_sm90(DecodeParams p, int64_t max_keys, stream_t stream, const char* op) {
  using C = Sm90DecodeCfg;
  constexpr auto kernel = mla_decode_sm90_kernel<0>;
  const KernelInfo& ki = prepare_kernel<kernel>(C::THREADS, C::SMEM, op);
  const int64_t rows = int64_t(p.tokens) * p.heads;
  const int64_t row_blocks = ceil_div(rows, C::BM);
  R1_CHECK(row_blocks < (int64_t(1) << 31) && p.batch <= 65535, op, "batch ", p.batch, " x ", rows,
           " rows is too large a grid");
  // Splits: key tiles per split + the Q load and epilogue (1.5 tiles) + the partials' round trip
  // (128 KB of fp32 per block written and read again, about two key tiles).
  const int64_t tiles = std::max<int64_t>(1, ceil_div(max_keys, C::BN));
  const int64_t max_splits = std::clamp<int64_t>(ceil_div(max_keys, 2 * C::BN), 1, 128);
  const int splits = choose_decode_splits(row_blocks, p.batch, ki, tiles, max_splits, 1.5, 2.0);
  launch_decode_split(kernel, p, splits, row_blocks, C::THREADS, C::SMEM, stream);
}

/// Shared by the batched and single-sequence decode entry points once p is filled: picks the
/// kernel, the split of the keys (from max_keys, a host bound), and launches. f32 runs the
/// warp-per-row kernel for every dims (no tensor cores, nothing rounded below f32).
template <class T>
void launch_decode(DecodeParamsT<T> p, int64_t max_keys, stream_t stream, const char* op) {
  const int64_t rows = int64_t(p.tokens) * p.heads;
  if (p.batch == 0 || rows == 0) return;
  if constexpr (std::is_same_v<T, bf16>) {
    const auto run = [&]<int LP, int DRP>() {
      using Cfg = DecodeCfg<LP, DRP>;
      constexpr auto kernel = mla_decode_kernel<LP, DRP>;
      const KernelInfo& ki = prepare_kernel<kernel>(Cfg::THREADS, Cfg::SMEM, op);
      const int64_t row_blocks = ceil_div(rows, Cfg::BM);
      R1_CHECK(row_blocks < (int64_t(1) << 31) && p.batch <= 65535, op, "batch ", p.batch, " x ", rows,
               " rows is too large a grid");
      // Splits: key tiles per split + the Q load (2 tiles) + the partials' round trip (4 tiles).
      const int64_t tiles = std::max<int64_t>(1, ceil_div(max_keys, Cfg::BN));
      const int64_t max_splits = std::clamp<int64_t>(ceil_div(max_keys, 256), 1, 128);
      const int splits = choose_decode_splits(row_blocks, p.batch, ki, tiles, max_splits, 2.0, 4.0);
      launch_decode_split(kernel, p, splits, row_blocks, Cfg::THREADS, Cfg::SMEM, stream);
    };
    if (p.lat == Sm90DecodeCfg::LAT && p.dr == Sm90DecodeCfg::DR && p.vec && p.vec_o && binary_arch() == 90) {
      launch_decode_sm90(p, max_keys, stream, op);
      return;
    }
    if (p.lat <= 128 && p.dr <= 32) {
      run.template operator()<128, 32>();
      return;
    }
    if (p.lat <= 512 && p.dr <= 64) {
      run.template operator()<512, 64>();
      return;
    }
  }
  launch_decode_generic(p, stream, op);
}

/// Checks of the query / output / cache arguments common to both decode forms (rank-free part).
template <class VQ, class VP, class VC, class VO>
void check_decode_common(const VQ& q_lat, const VP& q_pe, const VC& pages, const VO& o_lat, const char* op) {
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

template <class T, class VQ, class VP>
void fill_decode_common(DecodeParamsT<T>& p, const VQ& q_lat, const VP& q_pe, const View<const T, 3>& pages,
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
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>,
                "mla_attention_absorbed: bf16 or f32 activations and cache (the same dtype)");
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
  M::DecodeParamsT<T> p{};
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
  p.vec_o = M::vec_ok(o_lat);
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
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>,
                "mla_attention_absorbed: bf16 or f32 activations and cache (the same dtype)");
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
  M::DecodeParamsT<T> p{};
  M::fill_decode_common(p, q_lat, q_pe, pages, scale);
  p.batch = 1;
  p.ql_t = q_lat.stride[0];
  p.ql_h = q_lat.stride[1];
  p.qp_t = q_pe.stride[0];
  p.qp_h = q_pe.stride[1];
  p.o = o_lat.data;
  p.o_t = o_lat.stride[0];
  p.o_h = o_lat.stride[1];
  p.vec_o = M::vec_ok(o_lat);
  p.table = block_table.data;
  p.bt_s = block_table.stride[0];
  p.max_blocks = int(block_table.shape[0]);
  p.lens = nullptr;
  // Keys past q_start + tokens are never visible: the kernels only walk the keys the last query sees.
  p.host_len = int(q_start + tokens);
  p.q_start = int(q_start);
  M::launch_decode(p, std::max<int64_t>(q_start + tokens, 1), stream, op);
}

}  // namespace r1::cuda
