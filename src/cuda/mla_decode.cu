// SPDX-License-Identifier: MIT
// Instantiations of r1's MLA decode attention over the paged latent cache (mla_attention_absorbed,
// batched and single-sequence) for bf16 activations and cache, and for f32 ones (the warp-per-row
// kernel only).
#include "r1/kernels/cuda/mla_decode.cuh"

namespace r1::cuda {
template void mla_attention_absorbed<bf16>(View<const bf16, 4>, View<const bf16, 4>, View<const bf16, 3>,
                                           View<const int32_t, 2>, View<const int32_t, 1>, double, View<bf16, 4>,
                                           stream_t);
template void mla_attention_absorbed<bf16>(View<const bf16, 3>, View<const bf16, 3>, View<const bf16, 3>,
                                           View<const int32_t, 1>, int64_t, double, int64_t, View<bf16, 3>, stream_t);
template void mla_attention_absorbed<float>(View<const float, 4>, View<const float, 4>, View<const float, 3>,
                                            View<const int32_t, 2>, View<const int32_t, 1>, double, View<float, 4>,
                                            stream_t);
template void mla_attention_absorbed<float>(View<const float, 3>, View<const float, 3>, View<const float, 3>,
                                            View<const int32_t, 1>, int64_t, double, int64_t, View<float, 3>,
                                            stream_t);
}  // namespace r1::cuda
