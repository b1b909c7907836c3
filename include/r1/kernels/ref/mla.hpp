// SPDX-License-Identifier: MIT
// Multi-head latent attention cores (r1-spec §3). Projections, norms and RoPE happen outside;
// these are the parts between them, in two mathematically equal forms:
//
// expanded (prefill; Hugging Face's form): per-head keys and values expanded from the latent,
//   l[t,h,s] = scale * (<q_nope[t,h], k_nope[s,h]> + <q_pe[t,h], k_pe[s]>),  s <= q_start + t
//   o[t,h]   = sum_s softmax_s(l)[s] * v[s,h]
//
// absorbed (decode; DeepSeek's and FlashMLA's form) over the cached latent rows [c_kv || k_pe]:
//   q_lat[t,h] = W_UK[h]^T q_nope[t,h]                                     (mla_absorb_q)
//   l[t,h,s]   = scale * (<q_lat[t,h], c_kv[s]> + <q_pe[t,h], k_pe[s]>)    (mla_attention_absorbed)
//   o_lat[t,h] = sum_s softmax_s(l)[s] * c_kv[s]
//   o[t,h]     = W_UV[h] o_lat[t,h]                                         (mla_v_up)
// with kv_b_proj viewed as [heads, nope_dim + v_dim, kv_lora_rank]: W_UK[h] = rows [0, nope_dim),
// W_UV[h] = rows [nope_dim, nope_dim + v_dim) of head h (r1-spec §13 item 4).
//
// Masking is the general causal rule: query t sits at absolute position q_start + t and sees keys
// 0 .. q_start + t. Scores, softmax and sums run in the compute type (fp32, or fp64 for doubles).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/common.hpp"
#include "r1/kernels/ref/kv_cache.hpp"
#include "r1/kernels/ref/softmax.hpp"

namespace r1::ref {

namespace detail {
inline void check_causal(int64_t q_start, int64_t queries, int64_t keys, const char* op) {
  R1_CHECK(q_start >= 0 && q_start + queries <= keys, op, queries, " queries starting at position ",
           q_start, " need at least ", q_start + queries, " keys, got ", keys);
}
template <class TW>
void check_kv_b(const View<TW, 2>& w, int64_t heads, int nope_dim, int v_dim, int64_t rank,
                const char* op) {
  require_host(w, op, "kv_b weight");
  R1_CHECK(nope_dim > 0 && v_dim > 0, op, "qk_nope_head_dim ", nope_dim, " and v_head_dim ", v_dim,
           " must be positive");
  R1_CHECK(w.shape[0] == heads * (nope_dim + v_dim) && w.shape[1] == rank, op,
           "kv_b weight has shape [", w.shape[0], ", ", w.shape[1], "], expected [",
           heads * (nope_dim + v_dim), ", ", rank, "] (heads ", heads, " x (", nope_dim, " + ",
           v_dim, "), kv_lora_rank ", rank, ")");
}
}  // namespace detail

/// Expanded causal MLA attention.
/// @param q_nope  [tokens, heads, nope_dim]
/// @param q_pe    [tokens, heads, rope_dim] after RoPE
/// @param k_nope  [keys, heads, nope_dim]   W_UK . c_kv per key
/// @param k_pe    [keys, rope_dim]           after RoPE, shared by all heads
/// @param v       [keys, heads, v_dim]      W_UV . c_kv per key
/// @param scale   softmax scale (mla_softmax_scale in rope.hpp)
/// @param q_start absolute position of query 0 (keys are positions 0 .. keys-1)
/// @param out     [tokens, heads, v_dim]
template <class TQ, class TQP, class TK, class TKP, class TV, class TO>
void mla_attention_expanded(View<TQ, 3> q_nope, View<TQP, 3> q_pe, View<TK, 3> k_nope,
                            View<TKP, 2> k_pe, View<TV, 3> v, double scale, int64_t q_start,
                            View<TO, 3> out) {
  static_assert(!std::is_const_v<TO>, "mla_attention_expanded: out must be writable");
  const char* op = "mla_attention_expanded";
  const int64_t tokens = q_nope.shape[0], heads = q_nope.shape[1], dn = q_nope.shape[2];
  const int64_t keys = k_nope.shape[0], dr = q_pe.shape[2], dv = v.shape[2];
  detail::require_host(q_nope, op, "q_nope");
  detail::require_host(q_pe, op, "q_pe");
  detail::require_host(k_nope, op, "k_nope");
  detail::require_host(k_pe, op, "k_pe");
  detail::require_host(v, op, "v");
  detail::require_host(out, op, "out");
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
  detail::check_causal(q_start, tokens, keys, op);

  using C = compute_t<TQ, TQP, TK, TKP, TV, TO>;
  std::vector<C> p(static_cast<size_t>(keys)), acc(static_cast<size_t>(dv));  // [keys] scores, [v_dim] output
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t visible = q_start + t + 1;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t s = 0; s < visible; ++s) {
        C dot = 0;
        for (int64_t d = 0; d < dn; ++d) dot += to_compute<C>(q_nope(t, h, d)) * to_compute<C>(k_nope(s, h, d));
        for (int64_t d = 0; d < dr; ++d) dot += to_compute<C>(q_pe(t, h, d)) * to_compute<C>(k_pe(s, d));
        p[size_t(s)] = C(scale) * dot;
      }
      detail::softmax_row(p.data(), visible);
      std::fill(acc.begin(), acc.end(), C(0));
      for (int64_t s = 0; s < visible; ++s)
        for (int64_t d = 0; d < dv; ++d) acc[size_t(d)] += p[size_t(s)] * to_compute<C>(v(s, h, d));
      for (int64_t d = 0; d < dv; ++d) out(t, h, d) = from_compute<TO>(acc[size_t(d)]);
    }
  }
}

/// q_lat[t, h, c] = sum_{d < nope_dim} q_nope[t, h, d] * W_kvb[h * (nope_dim + v_dim) + d, c]
/// @param q_nope [tokens, heads, nope_dim]
/// @param w_kvb  [heads * (nope_dim + v_dim), kv_lora_rank] kv_b_proj weight (dequantized)
/// @param q_lat  [tokens, heads, kv_lora_rank]
template <class TQ, class TW, class TO>
void mla_absorb_q(View<TQ, 3> q_nope, View<TW, 2> w_kvb, int v_dim, View<TO, 3> q_lat) {
  static_assert(!std::is_const_v<TO>, "mla_absorb_q: q_lat must be writable");
  const char* op = "mla_absorb_q";
  const int64_t tokens = q_nope.shape[0], heads = q_nope.shape[1], dn = q_nope.shape[2];
  const int64_t rank = q_lat.shape[2];
  detail::require_host(q_nope, op, "q_nope");
  detail::require_host(q_lat, op, "q_lat");
  detail::check_kv_b(w_kvb, heads, int(dn), v_dim, rank, op);
  detail::require_dim(q_lat, 0, tokens, op, "q_lat", "tokens");
  detail::require_dim(q_lat, 1, heads, op, "q_lat", "heads");
  using C = compute_t<TQ, TW, TO>;
  std::vector<C> acc(static_cast<size_t>(rank));  // [kv_lora_rank]
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      std::fill(acc.begin(), acc.end(), C(0));
      for (int64_t d = 0; d < dn; ++d) {
        const C q = to_compute<C>(q_nope(t, h, d));
        const int64_t row = h * (dn + v_dim) + d;
        for (int64_t c = 0; c < rank; ++c) acc[size_t(c)] += q * to_compute<C>(w_kvb(row, c));
      }
      for (int64_t c = 0; c < rank; ++c) q_lat(t, h, c) = from_compute<TO>(acc[size_t(c)]);
    }
  }
}

/// Absorbed causal MLA attention over a paged latent cache.
/// @param q_lat       [tokens, heads, kv_lora_rank] from mla_absorb_q
/// @param q_pe        [tokens, heads, rope_dim] after RoPE
/// @param pages       [num_pages, page_size, kv_lora_rank + rope_dim] rows [c_kv || k_pe]
/// @param block_table [max_blocks] pages of this sequence
/// @param keys        number of cached tokens to attend over (positions 0 .. keys-1)
/// @param scale       softmax scale
/// @param q_start     absolute position of query 0 (FlashMLA: keys - tokens)
/// @param o_lat       [tokens, heads, kv_lora_rank]
template <class TQ, class TQP, class TC, class TB, class TO>
void mla_attention_absorbed(View<TQ, 3> q_lat, View<TQP, 3> q_pe, View<TC, 3> pages,
                            View<TB, 1> block_table, int64_t keys, double scale, int64_t q_start,
                            View<TO, 3> o_lat) {
  static_assert(!std::is_const_v<TO>, "mla_attention_absorbed: o_lat must be writable");
  const char* op = "mla_attention_absorbed";
  const int64_t tokens = q_lat.shape[0], heads = q_lat.shape[1], rank = q_lat.shape[2];
  const int64_t dr = q_pe.shape[2], page = pages.shape[1];
  detail::require_host(q_lat, op, "q_lat");
  detail::require_host(q_pe, op, "q_pe");
  detail::require_host(o_lat, op, "o_lat");
  detail::require_dim(q_pe, 0, tokens, op, "q_pe", "tokens");
  detail::require_dim(q_pe, 1, heads, op, "q_pe", "heads");
  detail::require_dim(pages, 2, rank + dr, op, "pages", "row width (kv_lora_rank + rope_dim)");
  detail::require_dim(o_lat, 0, tokens, op, "o_lat", "tokens");
  detail::require_dim(o_lat, 1, heads, op, "o_lat", "heads");
  detail::require_dim(o_lat, 2, rank, op, "o_lat", "latent dims");
  detail::check_paged(pages, block_table, keys, op);
  detail::check_causal(q_start, tokens, keys, op);

  using C = compute_t<TQ, TQP, TC, TO>;
  std::vector<C> p(static_cast<size_t>(keys)), acc(static_cast<size_t>(rank));  // [keys] scores, [kv_lora_rank]
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t visible = q_start + t + 1;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t s = 0; s < visible; ++s) {
        const int64_t pg = int64_t(block_table(s / page)), r = s % page;
        C dot = 0;
        for (int64_t c = 0; c < rank; ++c) dot += to_compute<C>(q_lat(t, h, c)) * to_compute<C>(pages(pg, r, c));
        for (int64_t d = 0; d < dr; ++d) dot += to_compute<C>(q_pe(t, h, d)) * to_compute<C>(pages(pg, r, rank + d));
        p[size_t(s)] = C(scale) * dot;
      }
      detail::softmax_row(p.data(), visible);
      std::fill(acc.begin(), acc.end(), C(0));
      for (int64_t s = 0; s < visible; ++s) {
        const int64_t pg = int64_t(block_table(s / page)), r = s % page;
        for (int64_t c = 0; c < rank; ++c) acc[size_t(c)] += p[size_t(s)] * to_compute<C>(pages(pg, r, c));
      }
      for (int64_t c = 0; c < rank; ++c) o_lat(t, h, c) = from_compute<TO>(acc[size_t(c)]);
    }
  }
}

/// out[t, h, d] = sum_c W_kvb[h * (nope_dim + v_dim) + nope_dim + d, c] * o_lat[t, h, c]
/// @param o_lat [tokens, heads, kv_lora_rank]
/// @param w_kvb [heads * (nope_dim + v_dim), kv_lora_rank]
/// @param out   [tokens, heads, v_dim]
template <class TL, class TW, class TO>
void mla_v_up(View<TL, 3> o_lat, View<TW, 2> w_kvb, int nope_dim, View<TO, 3> out) {
  static_assert(!std::is_const_v<TO>, "mla_v_up: out must be writable");
  const char* op = "mla_v_up";
  const int64_t tokens = o_lat.shape[0], heads = o_lat.shape[1], rank = o_lat.shape[2];
  const int64_t dv = out.shape[2];
  detail::require_host(o_lat, op, "o_lat");
  detail::require_host(out, op, "out");
  detail::check_kv_b(w_kvb, heads, nope_dim, int(dv), rank, op);
  detail::require_dim(out, 0, tokens, op, "out", "tokens");
  detail::require_dim(out, 1, heads, op, "out", "heads");
  using C = compute_t<TL, TW, TO>;
  std::vector<C> lat(static_cast<size_t>(rank)), wrow(static_cast<size_t>(rank));  // [kv_lora_rank]
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t c = 0; c < rank; ++c) lat[size_t(c)] = to_compute<C>(o_lat(t, h, c));
      for (int64_t d = 0; d < dv; ++d) {
        const int64_t row = h * (nope_dim + dv) + nope_dim + d;
        for (int64_t c = 0; c < rank; ++c) wrow[size_t(c)] = to_compute<C>(w_kvb(row, c));
        out(t, h, d) = from_compute<TO>(detail::dot(lat.data(), wrow.data(), rank));
      }
    }
  }
}

}  // namespace r1::ref
