// SPDX-License-Identifier: MIT
// r1::cuda::grouped_linear (bf16) and grouped_linear_fp8_native<128, 128>: MoE expert GEMMs.
#include "r1/kernels/cuda/grouped_gemm.cuh"

namespace r1::cuda {
void grouped_linear(View<const bf16, 2> x, View<const int32_t, 1> offsets, const ExpertWeights<bf16>& w,
                    View<bf16, 2> y, stream_t stream, GemmBackend backend) {
  detail::grouped_linear_impl(x, offsets, w, y, stream, backend);
}
namespace detail {
void grouped_linear_fp8_native_128(View<const fp8_e4m3, 2> xq, View<const float, 2> xs,
                                   View<const int32_t, 1> offsets, const ExpertWeights<fp8_e4m3>& wq,
                                   const ExpertWeights<float>& ws, View<bf16, 2> y, stream_t stream,
                                   GemmBackend backend) {
  grouped_linear_fp8_native_impl(xq, xs, offsets, wq, ws, y, stream, backend);
}
bool dense_wgmma_bf16(View<const bf16, 2> x, View<const bf16, 2> w, View<bf16, 2> y, stream_t stream) {
  return dense_wgmma_bf16_impl(x, w, y, stream);
}
bool dense_wgmma_fp8(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                     View<const float, 2> ws, View<bf16, 2> y, stream_t stream) {
  return dense_wgmma_fp8_impl(xq, xs, wq, ws, y, stream);
}
}  // namespace detail
}  // namespace r1::cuda
