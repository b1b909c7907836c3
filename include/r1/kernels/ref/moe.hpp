// SPDX-License-Identifier: MIT
// Mixture-of-experts data movement (r1-spec §5.4): route -> permute tokens by expert -> run each
// expert on its contiguous rows -> weighted combine (+ shared experts, unweighted):
//   out[t] = sum_j weights[t, j] * Expert_{ids[t, j]}(x[t]) + Shared(x[t])
// The permutation is the layout grouped GEMMs want (one contiguous block of rows per expert).
// The combine sums in the compute type in slot order j = 0..top_k-1 and adds the shared output last, so the
// result does not depend on how experts were scheduled.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

/// Groups the (token, slot) pairs by expert, stably (ascending pair index within an expert).
/// @param ids       [tokens, top_k] expert of each slot
/// @param n_experts number of experts
/// @param offsets   [n_experts + 1] rows of expert e are [offsets[e], offsets[e + 1])
/// @param pairs     [tokens * top_k] pair index t * top_k + j of each permuted row
template <class TI>
void moe_permute(View<TI, 2> ids, int n_experts, View<int32_t, 1> offsets, View<int32_t, 1> pairs) {
  const char* op = "moe_permute";
  detail::require_host(ids, op, "ids");
  detail::require_host(offsets, op, "offsets");
  detail::require_host(pairs, op, "pairs");
  const int64_t tokens = ids.shape[0], k = ids.shape[1];
  detail::require_dim(offsets, 0, int64_t(n_experts) + 1, op, "offsets", "entries");
  detail::require_dim(pairs, 0, tokens * k, op, "pairs", "entries");
  std::vector<int32_t> count(static_cast<size_t>(n_experts) + 1, 0);  // [n_experts + 1]
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = int64_t(ids(t, j));
      R1_CHECK(e >= 0 && e < n_experts, op, "expert id ", e, " of token ", t, ", slot ", j,
               " is out of range [0, ", n_experts, ")");
      ++count[size_t(e) + 1];
    }
  }
  for (int e = 0; e < n_experts; ++e) count[size_t(e) + 1] += count[size_t(e)];
  for (int e = 0; e <= n_experts; ++e) offsets(e) = count[size_t(e)];
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < k; ++j) pairs(count[size_t(ids(t, j))]++) = int32_t(t * k + j);
}

/// xe[r, :] = x[pairs[r] / top_k, :] (the rows each expert reads, in permuted order).
/// @param x     [tokens, dim]
/// @param pairs [tokens * top_k] from moe_permute
/// @param xe    [tokens * top_k, dim]
template <class TX, class TP, class TY>
void moe_gather(View<TX, 2> x, View<TP, 1> pairs, int top_k, View<TY, 2> xe) {
  static_assert(!std::is_const_v<TY>, "moe_gather: xe must be writable");
  const char* op = "moe_gather";
  detail::require_host(x, op, "x");
  detail::require_host(pairs, op, "pairs");
  detail::require_host(xe, op, "xe");
  R1_CHECK(top_k > 0, op, "top_k = ", top_k, " must be positive");
  detail::require_dim(pairs, 0, x.shape[0] * top_k, op, "pairs", "entries");
  detail::require_dim(xe, 0, pairs.shape[0], op, "xe", "rows");
  detail::require_dim(xe, 1, x.shape[1], op, "xe", "columns");
  for (int64_t r = 0; r < pairs.shape[0]; ++r) {
    const int64_t t = int64_t(pairs(r)) / top_k;
    R1_CHECK(t >= 0 && t < x.shape[0], op, "pair ", pairs(r), " at row ", r, " is out of range");
    for (int64_t i = 0; i < x.shape[1]; ++i)
      xe(r, i) = from_compute<TY>(to_compute<compute_t<TX, TY>>(x(t, i)));
  }
}

/// out[t, :] = sum_j weights[t, j] * ye[row of pair (t, j), :] + shared[t, :]
/// @param ye      [tokens * top_k, dim] expert outputs in permuted order
/// @param pairs   [tokens * top_k] from moe_permute
/// @param weights [tokens, top_k] combine weights (router output)
/// @param shared  [tokens, dim] shared-expert output, or an empty view ([0, 0]) for none
/// @param out     [tokens, dim]
template <class TY, class TP, class TW, class TS, class TO>
void moe_combine(View<TY, 2> ye, View<TP, 1> pairs, View<TW, 2> weights, View<TS, 2> shared,
                 View<TO, 2> out) {
  static_assert(!std::is_const_v<TO>, "moe_combine: out must be writable");
  const char* op = "moe_combine";
  detail::require_host(ye, op, "ye");
  detail::require_host(pairs, op, "pairs");
  detail::require_host(weights, op, "weights");
  detail::require_host(shared, op, "shared");
  detail::require_host(out, op, "out");
  const int64_t tokens = weights.shape[0], k = weights.shape[1], dim = out.shape[1];
  detail::require_dim(pairs, 0, tokens * k, op, "pairs", "entries");
  detail::require_dim(ye, 0, tokens * k, op, "ye", "rows");
  detail::require_dim(ye, 1, dim, op, "ye", "columns");
  detail::require_dim(out, 0, tokens, op, "out", "rows");
  const bool has_shared = shared.shape[0] != 0;
  if (has_shared) {
    detail::require_dim(shared, 0, tokens, op, "shared", "rows");
    detail::require_dim(shared, 1, dim, op, "shared", "columns");
  }
  std::vector<int64_t> row_of(static_cast<size_t>(tokens * k), -1);  // [tokens * top_k] inverse permutation
  for (int64_t r = 0; r < tokens * k; ++r) {
    const int64_t p = int64_t(pairs(r));
    R1_CHECK(p >= 0 && p < tokens * k && row_of[size_t(p)] < 0, op, "pairs is not a permutation (",
             "entry ", r, " = ", p, ")");
    row_of[size_t(p)] = r;
  }
  using C = compute_t<TY, TS, TO>;
  std::vector<C> acc(static_cast<size_t>(dim));  // [dim]
  for (int64_t t = 0; t < tokens; ++t) {
    std::fill(acc.begin(), acc.end(), C(0));
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = row_of[size_t(t * k + j)];
      const C w = to_compute<C>(weights(t, j));
      for (int64_t i = 0; i < dim; ++i) acc[size_t(i)] += w * to_compute<C>(ye(r, i));
    }
    for (int64_t i = 0; i < dim; ++i)
      out(t, i) = from_compute<TO>(acc[size_t(i)] + (has_shared ? to_compute<C>(shared(t, i)) : C(0)));
  }
}

/// The whole routed path with an expert callback, for layers and tests:
///   expert(e, xe, ye) computes ye = Expert_e(xe) for the rows routed to expert e
///   (xe: View<const C, 2> [rows, dim], ye: View<C, 2> [rows, dim], C the compute type of x);
///   experts with no rows are not called.
/// @param x       [tokens, dim]
/// @param ids     [tokens, top_k]
/// @param weights [tokens, top_k]
/// @param shared  [tokens, dim] or empty
/// @param out     [tokens, dim]
template <class TX, class TI, class TW, class TS, class TO, class ExpertFn>
void moe_routed(View<TX, 2> x, View<TI, 2> ids, View<TW, 2> weights, int n_experts,
                ExpertFn&& expert, View<TS, 2> shared, View<TO, 2> out) {
  using C = compute_t<TX>;
  const int64_t tokens = x.shape[0], k = ids.shape[1], dim = x.shape[1];
  detail::require_dim(ids, 0, tokens, "moe", "ids", "rows");
  detail::require_dim(weights, 0, tokens, "moe", "weights", "rows");
  detail::require_dim(weights, 1, k, "moe", "weights", "columns");
  std::vector<int32_t> offsets(size_t(n_experts) + 1), pairs(static_cast<size_t>(tokens * k));
  auto off_v = make_view<1>(offsets.data(), {int64_t(offsets.size())});  // [n_experts + 1]
  auto pair_v = make_view<1>(pairs.data(), {tokens * k});                 // [tokens * top_k]
  moe_permute(ids, n_experts, off_v, pair_v);
  std::vector<C> xe(static_cast<size_t>(tokens * k * dim)), ye(static_cast<size_t>(tokens * k * dim));
  auto xe_v = make_view<2>(xe.data(), {tokens * k, dim});  // [tokens * top_k, dim]
  auto ye_v = make_view<2>(ye.data(), {tokens * k, dim});  // [tokens * top_k, dim]
  moe_gather(x, pair_v, int(k), xe_v);
  for (int e = 0; e < n_experts; ++e) {
    if (offsets[size_t(e) + 1] == offsets[size_t(e)]) continue;
    expert(e, xe_v.slice(0, offsets[size_t(e)], offsets[size_t(e) + 1]).as_const(),
           ye_v.slice(0, offsets[size_t(e)], offsets[size_t(e) + 1]));
  }
  moe_combine(ye_v.as_const(), pair_v.as_const(), weights, shared, out);
}

}  // namespace r1::ref
