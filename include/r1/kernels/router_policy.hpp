// SPDX-License-Identifier: MIT
// Router policies (compile time) and the router's run-time sizes, shared by the reference router
// and its CUDA twin. A router is Scoring x Selection:
//   DeepSeek-V3/R1 (topk_method "noaux_tc"):  Sigmoid, GroupLimited<Top2Sum>, with correction bias
//   DeepSeek-V2     ("group_limited_greedy"): Softmax, GroupLimited<GroupMax>
//   DeepSeek-V2-Lite ("greedy"):              Softmax, Greedy
#pragma once

#include <concepts>
#include <type_traits>

#include "r1/core/error.hpp"

namespace r1::route {

/// s = sigmoid(z) per expert (fp32).
struct Sigmoid {
  static constexpr const char* name = "sigmoid";
};
/// s = softmax(z) over the experts (fp32).
struct Softmax {
  static constexpr const char* name = "softmax";
};

/// Group score = sum of the two largest selection scores in the group (V3).
struct Top2Sum {
  static constexpr const char* name = "top2_sum";
  static constexpr int min_group_size = 2;
};
/// Group score = the largest selection score in the group (V2).
struct GroupMax {
  static constexpr const char* name = "group_max";
  static constexpr int min_group_size = 1;
};

/// Keep the topk_group best groups of experts (contiguous, n_experts / n_group each), treat the
/// experts of the other groups as -inf, then take the top_k experts.
template <class GroupScore>
struct GroupLimited {
  static_assert(std::is_same_v<GroupScore, Top2Sum> || std::is_same_v<GroupScore, GroupMax>,
                "GroupLimited<G>: G must be Top2Sum or GroupMax");
  using group_score = GroupScore;
  static constexpr bool grouped = true;
};
/// Plain top_k over all experts.
struct Greedy {
  static constexpr bool grouped = false;
};

template <class S>
concept Scoring = std::is_same_v<S, Sigmoid> || std::is_same_v<S, Softmax>;
template <class S>
concept Selection = requires { { S::grouped } -> std::convertible_to<bool>; };

/// Run-time router sizes (config.json names in the comments).
struct RouterConfig {
  int n_experts = 0;                   ///< n_routed_experts
  int n_group = 1;                     ///< n_group
  int topk_group = 1;                  ///< topk_group
  int top_k = 0;                       ///< num_experts_per_tok
  bool norm_topk_prob = true;          ///< renormalize the selected weights to sum to 1
  float routed_scaling_factor = 1.0f;  ///< multiplies the (renormalized) weights
};

/// Checks the sizes against what Selection needs; errors name the config field.
template <Selection Sel>
void validate(const RouterConfig& c) {
  const char* op = "router";
  R1_CHECK(c.n_experts > 0, op, "n_routed_experts = ", c.n_experts, " must be positive");
  R1_CHECK(c.top_k > 0 && c.top_k <= c.n_experts, op, "num_experts_per_tok = ", c.top_k,
           " must be in [1, n_routed_experts = ", c.n_experts, "]");
  R1_CHECK(c.routed_scaling_factor > 0, op, "routed_scaling_factor = ", c.routed_scaling_factor,
           " must be positive");
  if constexpr (Sel::grouped) {
    R1_CHECK(c.n_group > 0 && c.n_experts % c.n_group == 0, op, "n_group = ", c.n_group,
             " must divide n_routed_experts = ", c.n_experts);
    const int per_group = c.n_experts / c.n_group;
    R1_CHECK(per_group >= Sel::group_score::min_group_size, op, "groups of ", per_group,
             " experts are too small for the ", Sel::group_score::name, " group score (n_group = ",
             c.n_group, ", n_routed_experts = ", c.n_experts, ")");
    R1_CHECK(c.topk_group > 0 && c.topk_group <= c.n_group, op, "topk_group = ", c.topk_group,
             " must be in [1, n_group = ", c.n_group, "]");
    R1_CHECK(c.top_k <= c.topk_group * per_group, op, "num_experts_per_tok = ", c.top_k,
             " exceeds the ", c.topk_group * per_group, " experts in the topk_group = ",
             c.topk_group, " kept groups");
  }
}

}  // namespace r1::route
