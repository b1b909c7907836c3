// SPDX-License-Identifier: MIT
// Mixture-of-experts data movement on the GPU, the CUDA twins of ref::moe_permute, moe_gather,
// moe_combine and moe_routed (host-callable declarations; kernels in moe.cuh, instantiated in
// src/cuda/moe.cu), plus moe_experts_swiglu: DeepSeek's expert FFN over all experts at once with
// the grouped GEMMs. Nothing here reads device data on the host: the routing stays on the GPU,
// every call is stream-ordered, allocates scratch only from the stream-ordered pool, and can be
// captured in a CUDA graph (scratch sizes depend only on tokens x top_k, dim and n_experts).
//
// Results equal the ref twins': permute, gather and combine bit for bit (combine sums in fp32 in
// slot order j = 0..top_k-1, then adds the shared output, with no fused multiply-add and no atomics).
// Bad routing data cannot be thrown on from the device, so it has a defined result instead:
//  - moe_permute: an id outside [0, n_experts) (the router writes -1 for a token with non-finite
//    logits) is dropped: its pair goes after all experts' rows, into [offsets[E], T * top_k), in
//    ascending pair order. offsets[E] is the number of valid pairs.
//  - moe_gather: a pair index outside [0, T * top_k) gives a zero row.
//  - moe_combine: a slot whose pair does not appear in `pairs` contributes nothing; moe_routed
//    also skips the dropped slots, so their token gets only the shared output (never a read out
//    of bounds). If `pairs` repeats an entry, which of its rows is used is unspecified.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/kernels/cuda/common.hpp"
#include "r1/kernels/cuda/gemm_policy.hpp"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/tensor/tensor.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// Largest number of experts moe_permute supports (the grouped GEMMs' limit).
inline constexpr int kMoeMaxExperts = int(kGroupedMaxExperts);

/// Groups the (token, slot) pairs by expert, stably (ascending pair index within an expert).
/// One kernel launch, no scratch.
/// @param ids       [tokens, top_k] int32 expert of each slot, unit-stride rows
/// @param n_experts number of experts, 1..1024
/// @param offsets   [n_experts + 1] int32: rows of expert e are [offsets[e], offsets[e + 1])
/// @param pairs     [tokens * top_k] int32 pair index t * top_k + j of each permuted row
void moe_permute(View<const int32_t, 2> ids, int n_experts, View<int32_t, 1> offsets, View<int32_t, 1> pairs,
                 stream_t stream);

/// xe[r, :] = x[pairs[r] / top_k, :]. T is bf16 or float.
/// @param x     [tokens, dim] unit-stride rows
/// @param pairs [tokens * top_k] from moe_permute
/// @param xe    [tokens * top_k, dim] unit-stride rows
template <class T>
void moe_gather(View<const T, 2> x, View<const int32_t, 1> pairs, int top_k, View<T, 2> xe, stream_t stream);

/// out[t, :] = sum_j weights[t, j] * ye[row of pair (t, j), :] + shared[t, :]   (fp32 sums)
/// T (ye, shared) is bf16 or float; TO (out) is T or float. Computes the inverse permutation into
/// pool scratch first (moe_routed gets it from the permutation instead).
/// @param ye      [tokens * top_k, dim] expert outputs in permuted order
/// @param pairs   [tokens * top_k] from moe_permute
/// @param weights [tokens, top_k] f32 combine weights
/// @param shared  [tokens, dim] shared-expert output, or an empty view ([0, 0]) for none
/// @param out     [tokens, dim]
template <class T, class TO>
void moe_combine(View<const T, 2> ye, View<const int32_t, 1> pairs, View<const float, 2> weights,
                 View<const T, 2> shared, View<TO, 2> out, stream_t stream);

namespace detail {
/// moe_permute that also writes rows[p], the permuted row of pair p (the inverse of `pairs`);
/// `rows` may be an empty view.
void moe_permute_rows(View<const int32_t, 2> ids, int n_experts, View<int32_t, 1> offsets, View<int32_t, 1> pairs,
                      View<int32_t, 1> rows, stream_t stream);
/// moe_combine from the inverse permutation: slot (t, j) reads row rows[t * top_k + j] when it lies
/// in [0, *valid_rows) (valid_rows: a device int32, e.g. &offsets[E]; null: all rows are valid).
template <class T, class TO>
void moe_combine_rows(View<const T, 2> ye, View<const int32_t, 1> rows, const int32_t* valid_rows,
                      View<const float, 2> weights, View<const T, 2> shared, View<TO, 2> out, stream_t stream);
/// out = silu(gate) * up elementwise in fp32 (ref::swiglu's arithmetic), bf16 [rows, width]
/// unit-stride; out may alias gate or up. (Private until cuda::swiglu exists.)
void moe_swiglu(View<const bf16, 2> gate, View<const bf16, 2> up, View<bf16, 2> out, stream_t stream);
}  // namespace detail

/// The whole routed path: permute, gather, ONE call
///   expert_fn(View<const T, 2> xe /*[R, dim]*/, View<const int32_t, 1> offsets /*[E + 1] device*/,
///             View<T, 2> ye /*[R, dim]*/)
/// that must write ye's rows [offsets[e], offsets[e + 1]) for every expert e (e.g. grouped GEMMs
/// over all experts; it must enqueue on `stream`; R = tokens * top_k), then combine. T is the
/// activation type, bf16 or float. The workspace (2 R x dim T + 2 R + E + 1 int32) comes from the
/// pool on `stream`.
/// @param x       [tokens, dim] T
/// @param ids     [tokens, top_k] int32 (ids outside [0, n_experts) are dropped)
/// @param weights [tokens, top_k] f32
/// @param shared  [tokens, dim] T, or an empty view ([0, 0])
/// @param out     [tokens, dim] T or f32
template <class T, class TO, class ExpertFn>
void moe_routed(View<const T, 2> x, View<const int32_t, 2> ids, View<const float, 2> weights, int n_experts,
                ExpertFn&& expert_fn, View<const T, 2> shared, View<TO, 2> out, stream_t stream) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>, "moe_routed: bf16 or f32 activations");
  const char* op = "cuda.moe_routed";
  const int64_t tokens = x.shape[0], dim = x.shape[1], k = ids.shape[1];
  detail::require_dim(ids, 0, tokens, op, "ids", "rows");
  detail::require_dim(weights, 0, tokens, op, "weights", "rows");
  detail::require_dim(weights, 1, k, op, "weights", "columns");
  detail::require_dim(out, 0, tokens, op, "out", "rows");
  detail::require_dim(out, 1, dim, op, "out", "columns");
  R1_CHECK(k > 0, op, "top_k = ", k, " must be positive");
  R1_CHECK(n_experts > 0 && n_experts <= kMoeMaxExperts, op, "n_experts = ", n_experts, " must be in [1, ",
           kMoeMaxExperts, "]");
  const int64_t rows = tokens * k;
  detail::require_int32(rows, op, "tokens x top_k");
  if (tokens == 0) return;
  Tensor offsets = Tensor::empty(DType::i32, {int64_t(n_experts) + 1}, Space::cuda, stream);  // [E + 1]
  Tensor pairs = Tensor::empty(DType::i32, {rows}, Space::cuda, stream);                     // [R]
  Tensor row_of = Tensor::empty(DType::i32, {rows}, Space::cuda, stream);                    // [R] inverse
  Tensor xe = Tensor::empty(dtype_v<T>, {rows, dim}, Space::cuda, stream);                          // [R, dim]
  Tensor ye = Tensor::empty(dtype_v<T>, {rows, dim}, Space::cuda, stream);                          // [R, dim]
  detail::moe_permute_rows(ids, n_experts, offsets.view<int32_t, 1>(), pairs.view<int32_t, 1>(),
                           row_of.view<int32_t, 1>(), stream);
  moe_gather<T>(x, pairs.view<const int32_t, 1>(), int(k), xe.view<T, 2>(), stream);
  std::forward<ExpertFn>(expert_fn)(xe.view<const T, 2>(), offsets.view<const int32_t, 1>(), ye.view<T, 2>());
  // Rows past offsets[E] hold dropped pairs; expert_fn never wrote them.
  detail::moe_combine_rows<T, TO>(ye.view<const T, 2>(), row_of.view<const int32_t, 1>(),
                                  offsets.data_as<int32_t>() + n_experts, weights, shared, out, stream);
}

/// DeepSeek's expert FFN on rows grouped by expert, all experts in one grouped GEMM per projection:
///   gate = xe . W1_e^T,  up = xe . W3_e^T,  h = silu(gate) * up (bf16),  ye = h . W2_e^T
/// @param xe      [R, dim] bf16, grouped by expert (moe_permute's layout)
/// @param offsets [E + 1] device int32
/// @param gate    E x [inter, dim] (W1), up: E x [inter, dim] (W3), down: E x [dim, inter] (W2)
/// @param ye      [R, dim] bf16
/// Scratch: 2 R x inter bf16 from the pool.
void moe_experts_swiglu(View<const bf16, 2> xe, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& gate,
                        const ExpertWeights<bf16>& up, const ExpertWeights<bf16>& down, View<bf16, 2> ye,
                        stream_t stream, GemmBackend backend = GemmBackend::automatic);

/// The same with FP8 weights and DeepSeek's 128 x 128 block scales: xe and h are quantized with
/// act_quant<128> (1 x 128 groups) before their grouped GEMMs. dim and inter are multiples of 128.
/// @param gate_s, up_s  E x [ceil(inter / 128), dim / 128] f32 weight scales; down_s: E x [dim / 128, inter / 128]
/// Scratch: 2 R x inter bf16 + R x (dim + inter) e4m3 + their scales from the pool.
void moe_experts_swiglu(View<const bf16, 2> xe, View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& gate,
                        const ExpertWeights<float>& gate_s, const ExpertWeights<fp8_e4m3>& up,
                        const ExpertWeights<float>& up_s, const ExpertWeights<fp8_e4m3>& down,
                        const ExpertWeights<float>& down_s, View<bf16, 2> ye, stream_t stream,
                        GemmBackend backend = GemmBackend::automatic);

/// The expert FFN with f32 activations (the model's precise policy): the grouped GEMMs of
/// cuda::grouped_linear_f32 (fp32 FMA), silu(gate) * up in fp32 (cuda::swiglu), ye in f32. bf16
/// weights; nothing is rounded below fp32 between the GEMMs.
/// @param xe [R, dim] f32, grouped by expert; @param ye [R, dim] f32
/// Scratch: 2 R x inter f32 from the pool.
void moe_experts_swiglu(View<const float, 2> xe, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& gate,
                        const ExpertWeights<bf16>& up, const ExpertWeights<bf16>& down, View<float, 2> ye,
                        stream_t stream);

/// The same with FP8 weights and 128 x 128 block scales. quantize_activations = false: the f32
/// activations meet the exactly dequantized weights (fp8 dequant mode); true: xe and h are quantized
/// 1 x 128 to e4m3 first (cuda::act_quant<128>) and the GEMMs multiply codes (fp8 native mode; dim
/// and inter multiples of 128). Scratch: 2 R x inter f32 (+ the e4m3 codes and scales) from the pool.
void moe_experts_swiglu(View<const float, 2> xe, View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& gate,
                        const ExpertWeights<float>& gate_s, const ExpertWeights<fp8_e4m3>& up,
                        const ExpertWeights<float>& up_s, const ExpertWeights<fp8_e4m3>& down,
                        const ExpertWeights<float>& down_s, View<float, 2> ye, stream_t stream,
                        bool quantize_activations);

}  // namespace r1::cuda
