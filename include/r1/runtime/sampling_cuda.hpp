// SPDX-License-Identifier: MIT
// DeviceSampler: token choice for the CUDA generation loop (runtime/generate_cuda.hpp) on the
// device, over cuda::argmax / cuda::sample (kernels/cuda/sampling.hpp), so a captured decode step
// chooses its tokens inside the graph. Greedy is the argmax (lowest id on ties, as the host).
// Sampling draws u = cuda::sampling_uniform(seed', row, step): a sequence's first token (chosen
// after its prefill) uses seed' = seed + b, row 0, step 0; decode step s (1, 2, ...) uses seed'
// = seed, row b, with {seed, step} in device memory, advanced on the device after each draw so
// replays of one graph draw new numbers. Draws are reproducible for a seed on the GPU; they are
// not the host's ref::Rng stream (r1-generate documents that --seed picks a different sample on
// --device cuda).
#pragma once

#include "r1/core/config.hpp"

#if R1_WITH_CUDA

#include <vector>

#include "r1/kernels/cuda/sampling.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1 {

class DeviceSampler {
 public:
  DeviceSampler() = default;
  DeviceSampler(const ref::SamplingParams& params, uint64_t seed, stream_t stream)
      : params_(params), seed_(seed), stream_(stream) {
    ref::validate(params);
    const std::vector<int64_t> ss = {int64_t(seed), 1};
    seed_step_ = Tensor::from_vector(ss, {2}).to(Space::cuda, stream);  // [2] {seed, step}
  }

  bool greedy() const { return params_.temperature <= 0; }

  /// Sequence b's first token from its prompt's last logits row.
  /// @param logits [1, vocab] f32 device;  @param out [1] int32 device
  void choose_first(View<const float, 2> logits, View<int32_t, 1> out, int64_t b) const {
    if (greedy()) {
      cuda::argmax<float>(logits, out, stream_);
    } else {
      cuda::sample<float>(logits, params_, seed_ + uint64_t(b), 0, out, stream_);
    }
  }

  /// One decode step's tokens, row b for sequence b (capturable: seed and step on the device).
  /// @param logits [batch, vocab] f32 device;  @param out [batch] int32 device
  void choose_step(View<const float, 2> logits, View<int32_t, 1> out) const {
    if (greedy()) {
      cuda::argmax<float>(logits, out, stream_);
      return;
    }
    cuda::sample<float>(logits, params_, seed_step_.view<const int64_t, 1>(), out, stream_);
    cuda::sampling_advance_step(seed_step_.view<int64_t, 1>(), stream_);
  }

 private:
  ref::SamplingParams params_;
  uint64_t seed_ = 0;
  stream_t stream_ = nullptr;
  Tensor seed_step_;  // [2] int64 device: {seed, step}
};

}  // namespace r1

#endif  // R1_WITH_CUDA
