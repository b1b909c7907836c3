// SPDX-License-Identifier: MIT
// Instantiations of r1's MLA prefill attention (mla_attention_expanded) for bf16 activations and
// for f32 ones (the warp-per-row kernel only).
#include "r1/kernels/cuda/mla_prefill.cuh"

namespace r1::cuda {
template void mla_attention_expanded<bf16>(View<const bf16, 3>, View<const bf16, 3>, View<const bf16, 3>,
                                           View<const bf16, 2>, View<const bf16, 3>, double, int64_t, View<bf16, 3>,
                                           stream_t);
template void mla_attention_expanded<float>(View<const float, 3>, View<const float, 3>, View<const float, 3>,
                                            View<const float, 2>, View<const float, 3>, double, int64_t,
                                            View<float, 3>, stream_t);
}  // namespace r1::cuda
