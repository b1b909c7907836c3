// SPDX-License-Identifier: MIT
// r1::cuda::linear_fp8_native<128, 128> (DeepSeek's FP8 block-scaled GEMM, bf16 out).
#include "r1/kernels/cuda/linear_fp8.cuh"

namespace r1::cuda::detail {
void linear_fp8_native_128(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                           View<const float, 2> ws, View<bf16, 2> y, stream_t stream, GemmBackend backend) {
  linear_fp8_native_impl(xq, xs, wq, ws, y, stream, backend);
}
}  // namespace r1::cuda::detail
