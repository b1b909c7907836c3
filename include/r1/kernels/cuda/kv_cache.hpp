// SPDX-License-Identifier: MIT
// The paged latent KV cache on the GPU, twin of ref::kv_cache_write / ref::kv_cache_gather
// (host-callable declarations; definitions in kv_cache.cuh, instantiated in src/cuda/kv_cache.cu
// for bf16 rows and pages, r1's GPU activations, and for f32 ones, the precise policy's; the same
// kernels, which copy values bit for bit). Layout as in the ref twin (FlashMLA's): pages
// [P, page, W], logical token s of a sequence in page block_table[s / page], row s % page.
//
// Positions and page indices live in device memory, so the calls need no host read of device data
// and can be captured in a CUDA graph and replayed with new positions. Values the host cannot see
// are handled on the device: a negative slot is skipped (padding, the vLLM convention); a slot or
// page index past the cache is skipped by the write and read back as NaN by the gather, so a bad
// table shows in the results instead of corrupting memory.
#pragma once

#include <cstdint>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/tensor/view.hpp"

namespace r1::cuda {

/// Batched write, vLLM's slot mapping: row i goes to page slot_mapping[i] / page, row
/// slot_mapping[i] % page; a negative slot skips the row.
/// @param rows         [N, W] new [c_kv || k_pe] rows, unit-stride rows
/// @param pages        [P, page, W] cache storage, unit-stride rows
/// @param slot_mapping [N] int32 on the device (page_index * page + offset, or < 0)
template <class T>
void kv_cache_write(View<const T, 2> rows, View<T, 3> pages, View<const int32_t, 1> slot_mapping, stream_t stream);

/// The ref twin's single-sequence write: rows are logical tokens [start, start + N) of the
/// sequence whose pages are block_table (on the device; its first ceil((start + N) / page) entries
/// are used).
/// @param rows        [N, W]
/// @param pages       [P, page, W]
/// @param block_table [max_blocks] int32 on the device
template <class T>
void kv_cache_write(View<const T, 2> rows, View<T, 3> pages, View<const int32_t, 1> block_table, int64_t start,
                    stream_t stream);

/// Reads logical tokens [0, tokens) of one sequence into a contiguous block (tests, prefill).
/// @param pages       [P, page, W]
/// @param block_table [max_blocks] int32 on the device, at least ceil(tokens / page) entries
/// @param out         [tokens, W], unit-stride rows
template <class T>
void kv_cache_gather(View<const T, 3> pages, View<const int32_t, 1> block_table, View<T, 2> out, stream_t stream);

}  // namespace r1::cuda
