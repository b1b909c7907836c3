// SPDX-License-Identifier: MIT
// Definitions of r1's MLA per-head GEMMs (mla_absorb_q, mla_v_up; declared in mla.hpp). The other
// MLA kernel definitions: prefill attention in mla_prefill.cuh, decode attention over the paged
// latent cache in mla_decode.cuh, shared helpers in mla_common.cuh; each .cuh is instantiated by
// its own src/cuda/*.cu (their non-template kernels must be compiled in exactly one of them).
#pragma once

#include "r1/kernels/cuda/gemm_policy.hpp"
#include "r1/kernels/cuda/mla_common.cuh"

namespace r1::cuda {

namespace detail::mla {

// ---------------------------------------------------------------------------------------------
// Per-head GEMMs

/// The per-head GEMMs without cuBLASLt: C[h][t][n] = sum_k A(t, h, k) * B(h, k, n), one thread per
/// output, fp32 products and sum, stored as T. bf16's fallback where cuBLASLt has no algorithm;
/// f32's only kernel (no rounding of operands or output).
template <class T>
struct HeadGemm {
  const T* a;
  int64_t a_t, a_h;  // A(t, h, k) = a[t * a_t + h * a_h + k]
  const T* w;
  int64_t w_h, w_k, w_n;  // B(h, k, n) = w[h * w_h + k * w_k + n * w_n]
  T* c;
  int64_t c_t, c_h;  // C(t, h, n) = c[t * c_t + h * c_h + n]
  int tokens, heads, n, k;
};
template <class T>
__global__ void __launch_bounds__(256) head_gemm_kernel(const HeadGemm<T> g) {
  const int64_t total = int64_t(g.tokens) * g.heads * g.n;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int n = int(i % g.n);
    const int64_t th = i / g.n;
    const int h = int(th % g.heads), t = int(th / g.heads);
    const T* a = g.a + int64_t(t) * g.a_t + int64_t(h) * g.a_h;
    const T* w = g.w + int64_t(h) * g.w_h + int64_t(n) * g.w_n;
    float acc = 0.0f;
    for (int k = 0; k < g.k; ++k) acc += float(a[k]) * float(w[int64_t(k) * g.w_k]);
    g.c[int64_t(t) * g.c_t + int64_t(h) * g.c_h + n] = T(acc);
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

/// cuBLASLt's strided-batched GEMM when it has an algorithm for these strides; false (nothing
/// enqueued) when it has none, or when R1_GEMM_BACKEND names one of r1's own backends: then the
/// whole program runs r1's kernels only (racecheck runs that way: it cannot instrument cuBLASLt's
/// Hopper kernels).
inline bool try_cublaslt_batched(const BatchedGemm& g, stream_t stream) {
  namespace lt = r1::cuda::cublaslt::detail;
  const r1::cuda::GemmBackend env = r1::cuda::detail::env_backend();
  if (env != r1::cuda::GemmBackend::automatic && env != r1::cuda::GemmBackend::cublaslt) return false;
  using Key = std::tuple<int, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int, int, int, int>;
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
  const std::optional<lt::Plan> plan =
      lt::plan_for(key, std::get<12>(key), std::get<13>(key), std::get<14>(key), h, desc, la, lb, ld);
  if (!plan) return false;
  lt::run(h, desc, *plan, g.a, la, g.b, lb, g.d, ld, stream);
  return true;
}

template <class T>
void launch_head_gemm(const HeadGemm<T>& g, stream_t stream) {
  const int64_t total = int64_t(g.tokens) * g.heads * g.n;
  if (total == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>(ceil_div(total, 256), int64_t(current_device().sms) * 16));
  head_gemm_kernel<T><<<blocks, 256, 0, stream>>>(g);
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace detail::mla

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
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>,
                "mla_absorb_q: bf16 or f32 activations and weight (the same dtype)");
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
  if constexpr (std::is_same_v<T, bf16>) {  // f32 never goes through cuBLASLt (no TF32, no reordering)
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
  }
  M::HeadGemm<T> f{q_nope.data, q_nope.stride[0], q_nope.stride[1], w_kvb.data, (dn + v_dim) * ldw, ldw, 1,
                   q_lat.data,  q_lat.stride[0],  q_lat.stride[1],  int(tokens), int(heads), int(rank), int(dn)};
  M::launch_head_gemm(f, stream);
}

template <class T>
void mla_v_up(View<const T, 3> o_lat, View<const T, 2> w_kvb, int nope_dim, View<T, 3> out, stream_t stream) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>,
                "mla_v_up: bf16 or f32 activations and weight (the same dtype)");
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
  if constexpr (std::is_same_v<T, bf16>) {  // f32 never goes through cuBLASLt (no TF32, no reordering)
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
    const bool lt_ok =
        rank > 0 && g.ldb >= rank && g.ldd >= dv && g.lda >= rank && M::try_cublaslt_batched(g, stream);
    if (lt_ok) return;
  }
  M::HeadGemm<T> f{o_lat.data,           o_lat.stride[0], o_lat.stride[1], w_kvb.data + int64_t(nope_dim) * ldw,
                   (nope_dim + dv) * ldw, 1,               ldw,             out.data,
                   out.stride[0],         out.stride[1],   int(tokens),     int(heads),
                   int(dv),               int(rank)};
  M::launch_head_gemm(f, stream);
}

}  // namespace r1::cuda
