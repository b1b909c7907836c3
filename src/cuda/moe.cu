// SPDX-License-Identifier: MIT
// r1::cuda MoE data movement (permute, gather, combine) and the SwiGLU expert FFN over grouped GEMMs.
#include "r1/kernels/cuda/moe.cuh"

namespace r1::cuda {

void moe_permute(View<const int32_t, 2> ids, int n_experts, View<int32_t, 1> offsets, View<int32_t, 1> pairs,
                 stream_t stream) {
  detail::moe_permute_impl(ids, n_experts, offsets, pairs, View<int32_t, 1>{}, stream);
}

template <class T>
void moe_gather(View<const T, 2> x, View<const int32_t, 1> pairs, int top_k, View<T, 2> xe, stream_t stream) {
  detail::moe_gather_impl<T>(x, pairs, top_k, xe, stream);
}
template void moe_gather<bf16>(View<const bf16, 2>, View<const int32_t, 1>, int, View<bf16, 2>, stream_t);
template void moe_gather<float>(View<const float, 2>, View<const int32_t, 1>, int, View<float, 2>, stream_t);

template <class T, class TO>
void moe_combine(View<const T, 2> ye, View<const int32_t, 1> pairs, View<const float, 2> weights,
                 View<const T, 2> shared, View<TO, 2> out, stream_t stream) {
  detail::moe_combine_impl<T, TO>(ye, pairs, weights, shared, out, stream);
}
#define R1_MOE_COMBINE(T, TO)                                                                                    \
  template void moe_combine<T, TO>(View<const T, 2>, View<const int32_t, 1>, View<const float, 2>,               \
                                   View<const T, 2>, View<TO, 2>, stream_t);                                     \
  template void detail::moe_combine_rows<T, TO>(View<const T, 2>, View<const int32_t, 1>, const int32_t*,        \
                                                View<const float, 2>, View<const T, 2>, View<TO, 2>, stream_t);
namespace detail {
template <class T, class TO>
void moe_combine_rows(View<const T, 2> ye, View<const int32_t, 1> rows, const int32_t* valid_rows,
                      View<const float, 2> weights, View<const T, 2> shared, View<TO, 2> out, stream_t stream) {
  moe_combine_rows_impl<T, TO>(ye, rows, valid_rows, weights, shared, out, stream, "cuda.moe_combine");
}
void moe_permute_rows(View<const int32_t, 2> ids, int n_experts, View<int32_t, 1> offsets, View<int32_t, 1> pairs,
                      View<int32_t, 1> rows, stream_t stream) {
  moe_permute_impl(ids, n_experts, offsets, pairs, rows, stream);
}
void moe_swiglu(View<const bf16, 2> gate, View<const bf16, 2> up, View<bf16, 2> out, stream_t stream) {
  moe_swiglu_impl(gate, up, out, stream);
}
}  // namespace detail
R1_MOE_COMBINE(bf16, bf16)
R1_MOE_COMBINE(bf16, float)
R1_MOE_COMBINE(float, float)
#undef R1_MOE_COMBINE

void moe_experts_swiglu(View<const bf16, 2> xe, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& gate,
                        const ExpertWeights<bf16>& up, const ExpertWeights<bf16>& down, View<bf16, 2> ye,
                        stream_t stream, GemmBackend backend) {
  detail::moe_experts_swiglu_bf16_impl(xe, offsets, gate, up, down, ye, stream, backend);
}

void moe_experts_swiglu(View<const bf16, 2> xe, View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& gate,
                        const ExpertWeights<float>& gate_s, const ExpertWeights<fp8_e4m3>& up,
                        const ExpertWeights<float>& up_s, const ExpertWeights<fp8_e4m3>& down,
                        const ExpertWeights<float>& down_s, View<bf16, 2> ye, stream_t stream,
                        GemmBackend backend) {
  detail::moe_experts_swiglu_fp8_impl(xe, offsets, gate, gate_s, up, up_s, down, down_s, ye, stream, backend);
}

void moe_experts_swiglu(View<const float, 2> xe, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& gate,
                        const ExpertWeights<bf16>& up, const ExpertWeights<bf16>& down, View<float, 2> ye,
                        stream_t stream) {
  detail::moe_experts_swiglu_f32_impl<bf16>(xe, offsets, gate, nullptr, up, nullptr, down, nullptr, ye, stream, false);
}

void moe_experts_swiglu(View<const float, 2> xe, View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& gate,
                        const ExpertWeights<float>& gate_s, const ExpertWeights<fp8_e4m3>& up,
                        const ExpertWeights<float>& up_s, const ExpertWeights<fp8_e4m3>& down,
                        const ExpertWeights<float>& down_s, View<float, 2> ye, stream_t stream,
                        bool quantize_activations) {
  detail::moe_experts_swiglu_f32_impl<fp8_e4m3>(xe, offsets, gate, &gate_s, up, &up_s, down, &down_s, ye, stream,
                                                quantize_activations);
}

}  // namespace r1::cuda
