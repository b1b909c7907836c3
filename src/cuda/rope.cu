// SPDX-License-Identifier: MIT
// Instantiations of r1::cuda::rope_interleaved: q_pe / k_pe in bf16 (or f32 for checks and tiny
// models), positions in int32 or int64.
#include "r1/kernels/cuda/rope.cuh"

namespace r1::cuda {
template void rope_interleaved<bf16, int32_t>(View<bf16, 3>, View<const int32_t, 1>, View<const float, 1>, float,
                                              stream_t);
template void rope_interleaved<bf16, int64_t>(View<bf16, 3>, View<const int64_t, 1>, View<const float, 1>, float,
                                              stream_t);
template void rope_interleaved<float, int32_t>(View<float, 3>, View<const int32_t, 1>, View<const float, 1>, float,
                                               stream_t);
template void rope_interleaved<float, int64_t>(View<float, 3>, View<const int64_t, 1>, View<const float, 1>, float,
                                               stream_t);
}  // namespace r1::cuda
