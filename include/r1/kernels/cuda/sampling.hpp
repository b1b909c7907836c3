// SPDX-License-Identifier: MIT
// Token selection on the GPU over batched rows of logits, the CUDA twins of ref::argmax and
// ref::sample (host-callable declarations; definitions in sampling.cuh, instantiated for f32 and
// bf16 logits in src/cuda/sampling.cu).
//
// Same semantics as the ref (ref/sampling.hpp): z = logit / temperature (fp32), tokens ordered by
// probability (descending, lower id first on ties), the first top_k kept, then the shortest prefix
// whose mass reaches top_p, and an inverse-CDF draw in that order. No sort: the kernels find the
// cut points by radix descent over a 32-bit order key (histograms of counts and masses), so every
// cut is exact in order and ties. Masses are fp32 exp(z - max) in fixed point (multiples of 2^-S,
// S = 62 - ceil(log2(vocab)): 2^-45 at R1's vocabulary, where the likeliest token weighs 1) summed
// exactly in 64-bit integers, so a draw does not depend on how the GPU splits the work or orders
// the additions; against the ref's double exp, a cut can differ from the ref's only where a
// cumulative mass lies within ~1e-6 of top_p or of the drawn u (fp32 exp rounding). Probabilities
// are ordered through z - max in fp32; the ref orders by double exp(z - max), which ties distinct
// values only within 2^-29 of the maximum or below e^-745 (prob. ~0): there the GPU still orders
// by z. A row is split over many blocks when the batch is small (sampling.cuh says how); scratch
// comes from the stream-ordered device pool, in the same pattern on every call.
//
// Reproducible draws: the uniform of row r at step s is sampling_uniform(seed, r, s), a
// counter-based hash also callable on the host, so a host can recompute every GPU draw exactly.
// Rows the ref rejects (a NaN logit; no finite logit when sampling) get token -1: device code
// cannot throw, and callers check for it. Everything is stream-ordered and capturable in a CUDA
// graph; the overload taking seed and step from device memory lets a replayed graph advance its
// draws (sampling_advance_step increments the step on the device).
#pragma once

#include <cstdint>

#include "r1/core/config.hpp"
#include "r1/core/cuda.hpp"
#include "r1/core/error.hpp"
#include "r1/kernels/ref/sampling.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// splitmix64's finalizer: a bijective 64-bit mix.
R1_HD uint64_t sampling_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// The uniform in [0, 1) (53 bits, as ref::Rng::uniform) that row `row` draws at step `step`.
R1_HD double sampling_uniform(uint64_t seed, uint64_t row, uint64_t step) {
  const uint64_t h = sampling_mix(sampling_mix(sampling_mix(seed) ^ row) + step);
  return double(h >> 11) * 0x1.0p-53;
}

/// Greedy decoding: out[b] = the index of the largest logit of row b, the lowest on ties; -1 for
/// a row with a NaN logit (where ref::argmax throws).
/// @param logits [batch, vocab] f32 or bf16, unit-stride rows
/// @param out    [batch] int32, any stride
template <class T>
void argmax(View<const T, 2> logits, View<int32_t, 1> out, stream_t stream);

/// ref::sample for each row: argmax when params.temperature <= 0, else a draw from
/// ref::sampling_distribution(row, params) with u = sampling_uniform(seed, b, step).
/// @param logits [batch, vocab] f32 or bf16, unit-stride rows
/// @param out    [batch] int32 token ids (-1 for rejected rows)
template <class T>
void sample(View<const T, 2> logits, const ref::SamplingParams& params, uint64_t seed, uint64_t step,
            View<int32_t, 1> out, stream_t stream);

/// As above, with seed and step read on the device when the kernel runs, for CUDA graphs.
/// @param seed_step [2] int64 on the device: {seed, step} (bit patterns of the uint64 values)
template <class T>
void sample(View<const T, 2> logits, const ref::SamplingParams& params, View<const int64_t, 1> seed_step,
            View<int32_t, 1> out, stream_t stream);

/// seed_step[1] += 1 on the device (stream-ordered, capturable), after a graph's sample.
/// @param seed_step [2] int64 on the device
void sampling_advance_step(View<int64_t, 1> seed_step, stream_t stream);

}  // namespace r1::cuda
