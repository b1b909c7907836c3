// SPDX-License-Identifier: MIT
// Instantiations of r1::cuda::act_quant (DeepSeek's 1 x 128 groups, from bf16 or f32 activations)
// and act_dequant.
#include "r1/kernels/cuda/act_quant.cuh"

namespace r1::cuda {
template void act_quant<128, bf16>(View<const bf16, 2>, View<fp8_e4m3, 2>, View<float, 2>, stream_t);
template void act_quant<128, float>(View<const float, 2>, View<fp8_e4m3, 2>, View<float, 2>, stream_t);
template void act_dequant<128>(View<const fp8_e4m3, 2>, View<const float, 2>, View<float, 2>, stream_t);
}  // namespace r1::cuda
