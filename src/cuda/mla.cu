// SPDX-License-Identifier: MIT
// Instantiations of r1's MLA attention kernels and per-head GEMMs for bf16 activations.
#include "r1/kernels/cuda/mla.cuh"

namespace r1::cuda {
template void mla_attention_expanded<bf16>(View<const bf16, 3>, View<const bf16, 3>, View<const bf16, 3>,
                                           View<const bf16, 2>, View<const bf16, 3>, double, int64_t, View<bf16, 3>,
                                           stream_t);
template void mla_absorb_q<bf16>(View<const bf16, 3>, View<const bf16, 2>, int, View<bf16, 3>, stream_t);
template void mla_attention_absorbed<bf16>(View<const bf16, 4>, View<const bf16, 4>, View<const bf16, 3>,
                                           View<const int32_t, 2>, View<const int32_t, 1>, double, View<bf16, 4>,
                                           stream_t);
template void mla_attention_absorbed<bf16>(View<const bf16, 3>, View<const bf16, 3>, View<const bf16, 3>,
                                           View<const int32_t, 1>, int64_t, double, int64_t, View<bf16, 3>, stream_t);
template void mla_v_up<bf16>(View<const bf16, 3>, View<const bf16, 2>, int, View<bf16, 3>, stream_t);
}  // namespace r1::cuda
