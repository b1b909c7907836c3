// SPDX-License-Identifier: MIT
// The cuBLASLt policy (vendor baseline): bf16 GEMM with bf16 / f32 output, FP8 block-scaled GEMM.
#include "r1/kernels/cuda/cublaslt.cuh"

namespace r1::cuda::cublaslt {
template void linear<bf16>(View<const bf16, 2>, View<const bf16, 2>, View<bf16, 2>, stream_t);
template void linear<float>(View<const bf16, 2>, View<const bf16, 2>, View<float, 2>, stream_t);
template bool try_linear<bf16>(View<const bf16, 2>, View<const bf16, 2>, View<bf16, 2>, stream_t);
template bool try_linear<float>(View<const bf16, 2>, View<const bf16, 2>, View<float, 2>, stream_t);

void linear_fp8_block(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                      View<const float, 2> ws, View<bf16, 2> y, stream_t stream) {
  std::string why;
  R1_CHECK(linear_fp8_block_impl(xq, xs, wq, ws, y, stream, &why), "cublaslt.linear_fp8", why);
}

bool try_linear_fp8_block(View<const fp8_e4m3, 2> xq, View<const float, 2> xs, View<const fp8_e4m3, 2> wq,
                          View<const float, 2> ws, View<bf16, 2> y, stream_t stream) {
  return linear_fp8_block_impl(xq, xs, wq, ws, y, stream, nullptr);
}

std::string fp8_block_unsupported(View<const float, 2> xs, View<const float, 2> ws, int64_t m) {
  return fp8_block_unsupported_impl(xs, ws, m);
}
}  // namespace r1::cuda::cublaslt
