// SPDX-License-Identifier: MIT
// Instantiations of r1::cuda::argmax and sample for f32 and bf16 logits, and the step counter.
#include "r1/kernels/cuda/sampling.cuh"

namespace r1::cuda {
template void argmax<float>(View<const float, 2>, View<int32_t, 1>, stream_t);
template void argmax<bf16>(View<const bf16, 2>, View<int32_t, 1>, stream_t);
template void sample<float>(View<const float, 2>, const ref::SamplingParams&, uint64_t, uint64_t, View<int32_t, 1>,
                            stream_t);
template void sample<bf16>(View<const bf16, 2>, const ref::SamplingParams&, uint64_t, uint64_t, View<int32_t, 1>,
                           stream_t);
template void sample<float>(View<const float, 2>, const ref::SamplingParams&, View<const int64_t, 1>,
                            View<int32_t, 1>, stream_t);
template void sample<bf16>(View<const bf16, 2>, const ref::SamplingParams&, View<const int64_t, 1>, View<int32_t, 1>,
                           stream_t);

void sampling_advance_step(View<int64_t, 1> seed_step, stream_t stream) {
  const char* op = "cuda.sampling_advance_step";
  detail::require_device(seed_step, op, "seed_step");
  R1_CHECK(seed_step.shape[0] == 2, op, "seed_step must hold {seed, step}, got ", seed_step.shape[0], " values");
  detail::advance_step_kernel<<<1, 1, 0, stream>>>(seed_step.data, seed_step.stride[0]);
  R1_CUDA_CHECK_LAUNCH();
}
}  // namespace r1::cuda
