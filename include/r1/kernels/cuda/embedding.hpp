// SPDX-License-Identifier: MIT
// Token embedding lookup on the GPU, the CUDA twin of ref::embedding (host-callable declaration;
// definition in embedding.cuh, instantiated in src/cuda/embedding.cu for int32/int64 ids, a bf16
// table and bf16, f32 or f64 output): out[t, :] = table[ids[t], :], converted exactly (bf16 -> f32
// and bf16 -> f64 are exact, bf16 -> bf16 a copy).
//
// Ids live on the device, so the launcher cannot check them without a synchronization. An id
// outside [0, vocab) never reads out of bounds: its output row is filled with NaN, which shows up
// in every later result. Callers validate ids on the host before uploading them (the tokenizer's
// and the sampler's ids are in range by construction; ref::embedding throws for a bad one).
#pragma once

#include <cstdint>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// @param ids   [tokens] token ids (int32 or int64), device, any stride
/// @param table [vocab, dim] embedding rows, unit-stride rows
/// @param out   [tokens, dim] unit-stride rows; rows of out-of-range ids become NaN
template <class TI, class TW, class TY>
void embedding(View<const TI, 1> ids, View<const TW, 2> table, View<TY, 2> out, stream_t stream);

}  // namespace r1::cuda
