// SPDX-License-Identifier: MIT
// Instantiations of r1's MLA per-head GEMMs (absorb_q, v_up) for bf16 activations (cuBLASLt, or
// the per-head kernel where it has no algorithm) and f32 ones (the per-head kernel only). The
// attention kernels are instantiated in mla_prefill.cu and mla_decode.cu (separate translation
// units, so each compiles on its own).
#include "r1/kernels/cuda/mla.cuh"

namespace r1::cuda {
template void mla_absorb_q<bf16>(View<const bf16, 3>, View<const bf16, 2>, int, View<bf16, 3>, stream_t);
template void mla_v_up<bf16>(View<const bf16, 3>, View<const bf16, 2>, int, View<bf16, 3>, stream_t);
template void mla_absorb_q<float>(View<const float, 3>, View<const float, 2>, int, View<float, 3>, stream_t);
template void mla_v_up<float>(View<const float, 3>, View<const float, 2>, int, View<float, 3>, stream_t);
}  // namespace r1::cuda
