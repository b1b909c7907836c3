// SPDX-License-Identifier: MIT
// The MoE router on the GPU, the CUDA twin of ref::route_experts (host-callable declaration;
// definition in router.cuh, instantiated in src/cuda/router.cu for Sigmoid x GroupLimited<Top2Sum>
// (DeepSeek-V3/R1), Softmax x GroupLimited<GroupMax> (V2) and Softmax x Greedy (V2-Lite)).
// One fused kernel, one warp per token: scoring, + bias for selection only, group scores, the
// topk_group kept groups, top_k with the lowest index winning every tie, renormalization (+1e-20
// like the ref) and routed_scaling_factor.
//
// Same fp32 arithmetic as the ref, so ids match exactly and weights to the last bit, except:
//  - sigmoid / softmax use exp(double) rounded to float where the host uses glibc's expf (correctly
//    rounded in all but rare cases, 0.502 ulp): a score may differ by 1 ulp in those rare cases,
//    and then only an exact tie (or a 1-ulp near tie) of selection scores can order differently;
//  - softmax sums its exponentials in expert order like the ref (one lane), so it is exact too.
// Non-finite input (the ref throws; device code cannot): a token whose logits (or biased selection
// scores) are not all finite gets ids = -1 and weights = 0 in every slot, and the kernel stores 1
// into *error_flag when the caller passes one (a device int32 it zeroes itself and reads whenever
// it likes, e.g. after a step). moe_permute drops id -1 slots, so such a token receives only the
// shared-expert output: never an out-of-range expert, never a crash.
#pragma once

#include <cstdint>

#include "r1/core/cuda.hpp"
#include "r1/core/error.hpp"
#include "r1/kernels/router_policy.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// Largest n_routed_experts and num_experts_per_tok the router kernel supports.
inline constexpr int kRouterMaxExperts = 1024;
inline constexpr int kRouterMaxTopK = 32;

/// @param logits     [tokens, n_experts] f32 router logits, unit-stride rows
/// @param bias       [n_experts] f32 e_score_correction_bias, or an empty view ([0]) for none
/// @param cfg        sizes and weight rules (route::validate<Sel> plus n_experts <= 1024, top_k <= 32)
/// @param ids        [tokens, top_k] int32 selected experts, best first
/// @param weights    [tokens, top_k] f32 combine weights
/// @param error_flag optional device int32: set to 1 when a token had non-finite logits
template <route::Scoring Scoring, route::Selection Sel>
void route_experts(View<const float, 2> logits, View<const float, 1> bias, const route::RouterConfig& cfg,
                   View<int32_t, 2> ids, View<float, 2> weights, stream_t stream, int32_t* error_flag = nullptr);

}  // namespace r1::cuda
