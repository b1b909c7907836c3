// SPDX-License-Identifier: MIT
// Instantiations of r1::cuda::embedding: int32 or int64 ids, the bf16 table of the checkpoint, the
// first hidden state in bf16, in f32 (an f32 residual stream) or in f64 (the f64 residual stream of
// the f32 activation policy).
#include "r1/kernels/cuda/embedding.cuh"

namespace r1::cuda {
template void embedding<int32_t, bf16, bf16>(View<const int32_t, 1>, View<const bf16, 2>, View<bf16, 2>, stream_t);
template void embedding<int64_t, bf16, bf16>(View<const int64_t, 1>, View<const bf16, 2>, View<bf16, 2>, stream_t);
template void embedding<int32_t, bf16, float>(View<const int32_t, 1>, View<const bf16, 2>, View<float, 2>, stream_t);
template void embedding<int64_t, bf16, float>(View<const int64_t, 1>, View<const bf16, 2>, View<float, 2>, stream_t);
template void embedding<int32_t, bf16, double>(View<const int32_t, 1>, View<const bf16, 2>, View<double, 2>, stream_t);
template void embedding<int64_t, bf16, double>(View<const int64_t, 1>, View<const bf16, 2>, View<double, 2>, stream_t);
}  // namespace r1::cuda
