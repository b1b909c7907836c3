// SPDX-License-Identifier: MIT
// r1::cuda::linear_f32 and grouped_linear_f32: the fp32 GEMMs of the precise (f32-activation)
// policy, dense and grouped, over bf16 and FP8 block-scaled weights (linear_f32.hpp: which kernels).
#include "r1/kernels/cuda/linear_f32.cuh"

namespace r1::cuda {

void linear_f32(View<const float, 2> x, View<const bf16, 2> w, View<float, 2> y, stream_t stream) {
  detail::f32gemm::dense_bf16(x, w, y, stream);
}

void linear_f32(View<const float, 2> x, View<const fp8_e4m3, 2> wq, View<const float, 2> ws, View<float, 2> y,
                stream_t stream) {
  detail::f32gemm::dense_fp8_dequant(x, wq, ws, y, stream);
}

void linear_f32(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                View<const float, 2> ws, View<float, 2> y, stream_t stream) {
  detail::f32gemm::dense_fp8_native(xq, xs, wq, ws, y, stream);
}

void grouped_linear_f32(View<const float, 2> x, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& w,
                        View<float, 2> y, stream_t stream) {
  detail::f32gemm::grouped_bf16(x, offsets, w, y, stream);
}

void grouped_linear_f32(View<const float, 2> x, View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& wq,
                        const ExpertWeights<float>& ws, View<float, 2> y, stream_t stream) {
  detail::f32gemm::grouped_fp8_dequant(x, offsets, wq, ws, y, stream);
}

void grouped_linear_f32(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const int32_t, 1> offsets,
                        const ExpertWeights<fp8_e4m3>& wq, const ExpertWeights<float>& ws, View<float, 2> y,
                        stream_t stream) {
  detail::f32gemm::grouped_fp8_native(xq, xs, offsets, wq, ws, y, stream);
}

}  // namespace r1::cuda
