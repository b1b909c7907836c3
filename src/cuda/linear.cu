// SPDX-License-Identifier: MIT
// Instantiations of r1::cuda::linear (bf16 GEMM): y in bf16 and in f32 (logits).
#include "r1/kernels/cuda/linear.cuh"

namespace r1::cuda {
template void linear<bf16>(View<const bf16, 2>, View<const bf16, 2>, View<bf16, 2>, stream_t, GemmBackend);
template void linear<float>(View<const bf16, 2>, View<const bf16, 2>, View<float, 2>, stream_t, GemmBackend);
}  // namespace r1::cuda
