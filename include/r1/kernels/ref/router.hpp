// SPDX-License-Identifier: MIT
// MoE router (r1-spec §5.3), from fp32 router logits z = W_gate . x to (expert ids, weights):
//   s      = scoring(z)                   sigmoid (V3) or softmax (V2), fp32 (fp64 for double logits)
//   s_sel  = s + bias                     correction bias: selection only, never the weights
//   groups = keep the topk_group best groups by group score (GroupLimited), others -inf
//   ids    = the top_k experts by s_sel   (ties: lowest index wins, everywhere)
//   w      = s[ids]; if norm_topk_prob: w /= (sum w + 1e-20); w *= routed_scaling_factor
// The -inf fill is DeepSeek's current code (r1-spec §11.2 item 4): an expert of a kept group whose
// biased score is negative still beats every expert of a dropped group.
// ids are written in selection order (best first).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/common.hpp"
#include "r1/kernels/ref/softmax.hpp"
#include "r1/kernels/router_policy.hpp"

namespace r1::ref {

namespace detail {
/// Indices of the k largest values, best first; equal values order by lower index.
template <class C>
void top_k_indices(const C* v, int n, int k, int* out) {
  std::vector<int> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  std::copy(idx.begin(), idx.begin() + k, out);
}
}  // namespace detail

/// @param logits  [tokens, n_experts] router logits (fp32 recommended: r1-spec §11.1)
/// @param bias    [n_experts] e_score_correction_bias, or an empty view ([0]) for none
/// @param cfg     sizes and weight rules
/// @param ids     [tokens, top_k] selected experts, best first
/// @param weights [tokens, top_k] their combine weights
template <route::Scoring Scoring, route::Selection Sel, class TL, class TB>
void route_experts(View<TL, 2> logits, View<TB, 1> bias, const route::RouterConfig& cfg,
                   View<int32_t, 2> ids, View<float, 2> weights) {
  const char* op = "router";
  route::validate<Sel>(cfg);
  detail::require_host(logits, op, "logits");
  detail::require_host(bias, op, "bias");
  detail::require_host(ids, op, "ids");
  detail::require_host(weights, op, "weights");
  const int64_t tokens = logits.shape[0];
  const int e = cfg.n_experts, k = cfg.top_k;
  detail::require_dim(logits, 1, e, op, "logits", "experts");
  R1_CHECK(bias.shape[0] == 0 || bias.shape[0] == e, op, "bias has ", bias.shape[0],
           " entries, expected ", e, " (or none)");
  detail::require_dim(ids, 0, tokens, op, "ids", "rows");
  detail::require_dim(ids, 1, k, op, "ids", "columns");
  detail::require_dim(weights, 0, tokens, op, "weights", "rows");
  detail::require_dim(weights, 1, k, op, "weights", "columns");

  using C = compute_t<TL, TB>;
  std::vector<C> s(static_cast<size_t>(e)), sel(static_cast<size_t>(e));  // [n_experts] scores, selection scores
  std::vector<int> chosen(static_cast<size_t>(k));                 // [top_k]
  for (int64_t t = 0; t < tokens; ++t) {
    for (int i = 0; i < e; ++i) {
      s[size_t(i)] = to_compute<C>(logits(t, i));
      R1_CHECK(std::isfinite(s[size_t(i)]), op, "router logit of token ", t, ", expert ", i,
               " is not finite (", s[size_t(i)], ")");
    }
    if constexpr (std::is_same_v<Scoring, route::Sigmoid>) {
      for (C& v : s) v = C(1) / (C(1) + std::exp(-v));
    } else {
      detail::softmax_row(s.data(), e);
    }
    for (int i = 0; i < e; ++i)
      sel[size_t(i)] = s[size_t(i)] + (bias.shape[0] ? to_compute<C>(bias(i)) : C(0));

    if constexpr (Sel::grouped) {
      const int g = cfg.n_group, per = e / g;
      std::vector<C> gs(static_cast<size_t>(g));  // [n_group] group scores
      for (int gi = 0; gi < g; ++gi) {
        const C* v = sel.data() + gi * per;
        if constexpr (std::is_same_v<typename Sel::group_score, route::Top2Sum>) {
          int top2[2];
          detail::top_k_indices(v, per, 2, top2);
          gs[size_t(gi)] = v[top2[0]] + v[top2[1]];
        } else {
          gs[size_t(gi)] = *std::max_element(v, v + per);
        }
      }
      std::vector<int> kept(static_cast<size_t>(cfg.topk_group));
      detail::top_k_indices(gs.data(), g, cfg.topk_group, kept.data());
      std::vector<char> keep(static_cast<size_t>(g), 0);
      for (int gi : kept) keep[size_t(gi)] = 1;
      for (int i = 0; i < e; ++i)
        if (!keep[size_t(i / per)]) sel[size_t(i)] = -std::numeric_limits<C>::infinity();
    }
    detail::top_k_indices(sel.data(), e, k, chosen.data());

    C sum = 0;
    for (int j = 0; j < k; ++j) sum += s[size_t(chosen[size_t(j)])];
    // Hugging Face's 1e-20 keeps an all-underflowed softmax selection finite; irrelevant otherwise.
    const C denom = cfg.norm_topk_prob ? sum + C(1e-20f) : C(1);
    for (int j = 0; j < k; ++j) {
      ids(t, j) = chosen[size_t(j)];
      weights(t, j) = float(s[size_t(chosen[size_t(j)])] / denom * C(cfg.routed_scaling_factor));
    }
  }
}

}  // namespace r1::ref
