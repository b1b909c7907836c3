// SPDX-License-Identifier: MIT
// MLA prefill attention on the GPU (mla_attention_expanded, declared in mla.hpp; instantiated in
// src/cuda/mla_prefill.cu).
//
// Prefill (mla_attention_expanded), sm_80 path and small or odd dims (R1's dims on sm_90a go to
// mla_prefill_sm90.cuh): one block of 4 warps per (64-query tile, head). Q [64, DQK]
// stays in shared memory; K [64, DQK] and V [64, DV] tiles are double-buffered with cp.async. Each
// warp owns 16 query rows: S = Q K^T (m16n8k16, fp32), causal mask, online softmax in the log2
// domain, P re-packed from the S accumulators into A fragments (no shared-memory round trip), and
// O += P V with V fragments from ldmatrix.trans. Query tiles run heaviest first (causal).
//
// Dimensions smaller than the compiled tile dims are zero-padded in shared memory (zeros add
// nothing to a dot product and produce zero columns that are never stored). Shared-memory rows are
// padded by 16 bytes so ldmatrix's eight row addresses fall in distinct banks.
//
// f32 activations (the precise policy) never use tensor cores: every dims run the warp-per-row
// kernel (mla_prefill_generic_kernel<float>, fp32 math, nothing rounded below f32), which is also
// bf16's fallback for head dims beyond the tensor-core kernels.
#pragma once

#include "r1/kernels/cuda/mla_common.cuh"
#include "r1/kernels/cuda/mla_prefill_sm90.cuh"

namespace r1::cuda {

namespace detail::mla {

// ---------------------------------------------------------------------------------------------
// Prefill

/// Arguments of the prefill kernels; T is the activation dtype (bf16, or f32 for the fallback only).
template <class T>
struct PrefillParamsT {
  const T *qn, *qp, *kn, *kp, *v;
  T* o;
  int64_t qn_t, qn_h, qp_t, qp_h;  // strides (elements)
  int64_t kn_s, kn_h, kp_s, v_s, v_h;
  int64_t o_t, o_h;
  int tokens, keys, heads, dn, dr, dv;
  int q_start;
  float scale_log2;  // scale * log2(e)
  bool vec;          // 16-byte aligned rows and dims: cp.async loads
};
/// The tensor-core kernels' (bf16 only).
using PrefillParams = PrefillParamsT<bf16>;

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
    const bool in = t < p.tokens;
    load_chunk_two_part(sQ + r * SQ + col, in ? p.qn + int64_t(t) * p.qn_t + int64_t(h) * p.qn_h : nullptr, p.dn,
                        in ? p.qp + int64_t(t) * p.qp_t + int64_t(h) * p.qp_h : nullptr, p.dn, p.dr, col, p.vec);
  }
  const auto load_kv = [&](int j, int buf) {
    bf16* k = sK + buf * Cfg::K_ELEMS;
    bf16* vv = sV + buf * Cfg::V_ELEMS;
    const int n0 = j * BN;
    for (int c = tid; c < BN * (DQK / 8); c += Cfg::THREADS) {
      const int r = c / (DQK / 8), col = (c % (DQK / 8)) * 8;
      const int s = n0 + r;
      const bool in = s < p.keys;
      load_chunk_two_part(k + r * SQ + col, in ? p.kn + int64_t(s) * p.kn_s + int64_t(h) * p.kn_h : nullptr, p.dn,
                          in ? p.kp + int64_t(s) * p.kp_s : nullptr, p.dn, p.dr, col, p.vec);
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
/// output accumulator in fp32 shared memory, fp32 math, the output stored as T. Correct for every
/// shape, slow: bf16's fallback, and f32's only kernel (nothing rounded below f32).
template <class T>
__global__ void __launch_bounds__(128) mla_prefill_generic_kernel(const PrefillParamsT<T> p) {
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
    const T* kn = p.kn + int64_t(s) * p.kn_s + int64_t(h) * p.kn_h;
    const T* kp = p.kp + int64_t(s) * p.kp_s;
    float d = 0.0f;
    for (int c = lane; c < dq; c += 32) d += q[c] * float(c < p.dn ? kn[c] : kp[c - p.dn]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
    const float x = d * p.scale_log2;
    const float m_new = fmaxf(m, x);
    const float alpha = exp2f(m - m_new), pe = exp2f(x - m_new);
    l = l * alpha + pe;
    m = m_new;
    const T* vv = p.v + int64_t(s) * p.v_s + int64_t(h) * p.v_h;
    for (int c = lane; c < p.dv; c += 32) acc[c] = acc[c] * alpha + pe * float(vv[c]);
  }
  T* dst = p.o + int64_t(t) * p.o_t + int64_t(h) * p.o_h;
  for (int c = lane; c < p.dv; c += 32) dst[c] = T(l > 0.0f ? acc[c] / l : 0.0f);
}

/// Launches the warp-per-row kernel: 4 rows per block, each warp's fp32 q and accumulator in
/// dynamic shared memory (past 48 KB only for head dims far beyond R1's).
template <class T>
void launch_prefill_generic(const PrefillParamsT<T>& p, stream_t stream, const char* op) {
  constexpr auto kernel = mla_prefill_generic_kernel<T>;
  const int64_t smem = 4 * int64_t(sizeof(float)) * (int64_t(p.dn) + p.dr + p.dv);
  prepare_dynamic_smem<kernel>(smem, op, "head dims nope ", p.dn, " + rope ", p.dr, " + v ", p.dv);
  const int64_t blocks = ceil_div(int64_t(p.tokens) * p.heads, 4);
  kernel<<<unsigned(blocks), 128, size_t(smem), stream>>>(p);
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace detail::mla

// ---------------------------------------------------------------------------------------------
// Host launchers

template <class T>
void mla_attention_expanded(View<const T, 3> q_nope, View<const T, 3> q_pe, View<const T, 3> k_nope,
                            View<const T, 2> k_pe, View<const T, 3> v, double scale, int64_t q_start,
                            View<T, 3> out, stream_t stream) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>,
                "mla_attention_expanded: bf16 or f32 activations");
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

  M::PrefillParamsT<T> p{};
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

  if constexpr (std::is_same_v<T, bf16>) {
    // Hopper: TMA + wgmma kernel on R1's dims (mla_prefill_sm90.cuh); everything else below.
    if (detail::mla_sm90::usable(q_nope, q_pe, k_nope, k_pe, v, out)) {
      detail::mla_sm90::launch(q_nope, q_pe, k_nope, k_pe, v, p.scale_log2, q_start, out, stream, op);
      return;
    }
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
      return;
    }
    if (dn + dr <= 192 && dv <= 128) {
      run.template operator()<192, 128>();
      return;
    }
  }
  // f32 activations (every dims: no tensor cores, nothing rounded below f32), and bf16 head dims
  // beyond the tensor-core kernels: the warp-per-row kernel.
  M::launch_prefill_generic(p, stream, op);
}

}  // namespace r1::cuda
