// SPDX-License-Identifier: MIT
// Instantiations of the paged latent KV cache ops for bf16 caches (r1's GPU activations) and f32
// ones (the precise policy's).
#include "r1/kernels/cuda/kv_cache.cuh"

namespace r1::cuda {
template void kv_cache_write<bf16>(View<const bf16, 2>, View<bf16, 3>, View<const int32_t, 1>, stream_t);
template void kv_cache_write<bf16>(View<const bf16, 2>, View<bf16, 3>, View<const int32_t, 1>, int64_t, stream_t);
template void kv_cache_gather<bf16>(View<const bf16, 3>, View<const int32_t, 1>, View<bf16, 2>, stream_t);
template void kv_cache_write<float>(View<const float, 2>, View<float, 3>, View<const int32_t, 1>, stream_t);
template void kv_cache_write<float>(View<const float, 2>, View<float, 3>, View<const int32_t, 1>, int64_t, stream_t);
template void kv_cache_gather<float>(View<const float, 3>, View<const int32_t, 1>, View<float, 2>, stream_t);
}  // namespace r1::cuda
