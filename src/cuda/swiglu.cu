// SPDX-License-Identifier: MIT
// Instantiations of r1::cuda::swiglu (bf16 GEMM outputs to bf16, f32 for checks and tiny models)
// and swiglu_quant_fp8 (DeepSeek's 1 x 128 groups, feeding the FP8 down projection).
#include "r1/kernels/cuda/swiglu.cuh"

namespace r1::cuda {
template void swiglu<bf16, bf16, bf16>(View<const bf16, 2>, View<const bf16, 2>, View<bf16, 2>, stream_t);
template void swiglu<float, float, bf16>(View<const float, 2>, View<const float, 2>, View<bf16, 2>, stream_t);
template void swiglu<float, float, float>(View<const float, 2>, View<const float, 2>, View<float, 2>, stream_t);
template void swiglu_quant_fp8<128, bf16, bf16>(View<const bf16, 2>, View<const bf16, 2>, View<fp8_e4m3, 2>,
                                                View<float, 2>, stream_t);
}  // namespace r1::cuda
