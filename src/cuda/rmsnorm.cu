// SPDX-License-Identifier: MIT
// Instantiations of r1::cuda::rmsnorm, add_rmsnorm and rmsnorm_quant_fp8: bf16 norm weights; bf16
// or f32 activations, residual stream and output (an f32 residual stream keeps the 61 layers' sums
// from drifting by bf16 roundings); DeepSeek's 1 x 128 FP8 groups. The f64 residual of the f32
// activation policy (f32 sub-layer outputs added in fp64, norms computed in fp64, f32 outputs)
// keeps FP8 native's quantizer inputs on the oracle's e4m3 rounding ties (rmsnorm.hpp); so does the
// fp64 quantization of that policy's f32 q_a / kv_a outputs (rmsnorm_quant_fp8 with C = double).
#include "r1/kernels/cuda/rmsnorm.cuh"

namespace r1::cuda {
template void rmsnorm<bf16, bf16, bf16>(View<const bf16, 2>, View<const bf16, 1>, float, View<bf16, 2>, stream_t);
template void rmsnorm<bf16, bf16, float>(View<const bf16, 2>, View<const bf16, 1>, float, View<float, 2>, stream_t);
template void rmsnorm<float, bf16, bf16>(View<const float, 2>, View<const bf16, 1>, float, View<bf16, 2>, stream_t);
template void rmsnorm<float, bf16, float>(View<const float, 2>, View<const bf16, 1>, float, View<float, 2>, stream_t);
template void rmsnorm<double, bf16, float>(View<const double, 2>, View<const bf16, 1>, float, View<float, 2>,
                                           stream_t);

template void add_rmsnorm<bf16, bf16, bf16, bf16>(View<bf16, 2>, View<const bf16, 2>, View<const bf16, 1>, float,
                                                  View<bf16, 2>, stream_t);
template void add_rmsnorm<float, bf16, bf16, bf16>(View<float, 2>, View<const bf16, 2>, View<const bf16, 1>, float,
                                                   View<bf16, 2>, stream_t);
template void add_rmsnorm<float, float, bf16, bf16>(View<float, 2>, View<const float, 2>, View<const bf16, 1>,
                                                    float, View<bf16, 2>, stream_t);
template void add_rmsnorm<float, float, bf16, float>(View<float, 2>, View<const float, 2>, View<const bf16, 1>,
                                                     float, View<float, 2>, stream_t);
template void add_rmsnorm<double, float, bf16, float>(View<double, 2>, View<const float, 2>, View<const bf16, 1>,
                                                      float, View<float, 2>, stream_t);

template void rmsnorm_quant_fp8<128, bf16, bf16>(View<const bf16, 2>, View<const bf16, 1>, float,
                                                 View<fp8_e4m3, 2>, View<float, 2>, stream_t);
template void rmsnorm_quant_fp8<128, float, bf16>(View<const float, 2>, View<const bf16, 1>, float,
                                                  View<fp8_e4m3, 2>, View<float, 2>, stream_t);
template void rmsnorm_quant_fp8<128, double, bf16>(View<const double, 2>, View<const bf16, 1>, float,
                                                   View<fp8_e4m3, 2>, View<float, 2>, stream_t);
template void rmsnorm_quant_fp8<128, float, bf16, double>(View<const float, 2>, View<const bf16, 1>, float,
                                                          View<fp8_e4m3, 2>, View<float, 2>, stream_t);
}  // namespace r1::cuda
