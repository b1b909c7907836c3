// SPDX-License-Identifier: MIT
// Definitions of the paged latent KV cache ops (declared in kv_cache.hpp), generic in the element
// type (bf16 or f32: they only move values). One warp per cache row: a row is W = kv_lora_rank +
// rope_dim values (576 for R1: 1152 bytes = 72 16-byte vectors in bf16, 144 in f32), so a warp
// moves it in a few vector steps; rows whose addresses allow it use 16-byte accesses.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/kv_cache.hpp"

namespace r1::cuda {

namespace detail {

/// Where the rows go or come from. Either slot_mapping (write) or block_table + start.
struct KvParams {
  const void* src = nullptr;  // write: rows [n, w]; gather: pages
  void* dst = nullptr;        // write: pages; gather: out [n, w]
  int64_t ld_rows = 0;        // row stride of rows / out (elements)
  int64_t ld_page = 0, ld_slot = 0;  // pages strides: per page, per row (elements)
  const int32_t* slots = nullptr;     // [n] slot mapping, or nullptr
  const int32_t* table = nullptr;     // [blocks] block table (when slots == nullptr)
  int blocks = 0;                     // block table entries
  int64_t start = 0;                  // logical position of row 0 (block-table mode)
  int64_t n = 0;                      // rows
  int w = 0;                          // values per row
  int page = 0, num_pages = 0;
  int64_t table_stride = 1;
};

/// Page and row of cache row i; false when the row is padding (negative slot) or points past the
/// cache (a bad device-side table: skipped rather than written out of bounds).
__device__ __forceinline__ bool kv_locate(const KvParams& p, int64_t i, int64_t& pg, int64_t& r) {
  if (p.slots) {
    const int64_t s = p.slots[i];
    if (s < 0) return false;
    pg = s / p.page;
    r = s % p.page;
  } else {
    const int64_t s = p.start + i;
    const int64_t b = s / p.page;
    if (b >= p.blocks) return false;
    pg = p.table[b * p.table_stride];
    r = s % p.page;
  }
  return pg >= 0 && pg < p.num_pages;
}

/// WRITE: rows -> pages; otherwise pages -> out. VEC: 16-byte accesses (16 / sizeof(T) values).
template <class T, bool WRITE, bool VEC>
__global__ void __launch_bounds__(256) kv_copy_kernel(const KvParams p) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = int(threadIdx.x & 31);
  if (i >= p.n) return;
  int64_t pg = 0, r = 0;
  const bool ok = kv_locate(p, i, pg, r);
  if (WRITE && !ok) return;
  const int64_t cache_off = pg * p.ld_page + r * p.ld_slot, row_off = i * p.ld_rows;
  const T* src = static_cast<const T*>(p.src) + (WRITE ? row_off : cache_off);
  T* dst = static_cast<T*>(p.dst) + (WRITE ? cache_off : row_off);
  if (!ok) {  // gather from a bad page: NaN makes the bad table visible in every consumer
    for (int c = lane; c < p.w; c += 32) dst[c] = T(__int_as_float(0x7fffffff));
    return;
  }
  if constexpr (VEC) {
    constexpr int E = 16 / int(sizeof(T));
    const int nv = p.w / E;
    for (int c = lane; c < nv; c += 32) reinterpret_cast<uint4*>(dst)[c] = reinterpret_cast<const uint4*>(src)[c];
  } else {
    for (int c = lane; c < p.w; c += 32) dst[c] = src[c];
  }
}

template <class T>
void kv_launch(KvParams p, bool write, bool vec, stream_t stream) {
  if (p.n == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = ceil_div(p.n * 32, kThreads);
  R1_CHECK(blocks < (int64_t(1) << 31), "cuda.kv_cache", p.n, " rows are too many");
  const dim3 grid{unsigned(blocks)};
  if (write) {
    if (vec) kv_copy_kernel<T, true, true><<<grid, kThreads, 0, stream>>>(p);
    else kv_copy_kernel<T, true, false><<<grid, kThreads, 0, stream>>>(p);
  } else {
    if (vec) kv_copy_kernel<T, false, true><<<grid, kThreads, 0, stream>>>(p);
    else kv_copy_kernel<T, false, false><<<grid, kThreads, 0, stream>>>(p);
  }
  R1_CUDA_CHECK_LAUNCH();
}

/// Checks shared by the three entry points; fills the cache fields of p.
template <class TP, class TR>
void kv_check_pages(const View<TP, 3>& pages, const View<TR, 2>& rows, const char* op, const char* rows_name,
                    KvParams& p) {
  require_device(pages, op, "pages");
  require_device(rows, op, rows_name);
  require_matrix(rows, op, rows_name);
  R1_CHECK(pages.rows_contiguous(), op, "pages must have unit-stride rows (stride ", pages.stride[2], ")");
  require_dim(pages, 2, rows.shape[1], op, "pages", "row width (the rows' columns)");
  R1_CHECK(pages.shape[1] > 0, op, "page size must be positive");
  require_int32(pages.shape[0], op, "pages");
  require_int32(pages.shape[1], op, "page size");
  require_int32(rows.shape[1], op, "row width");
  p.ld_rows = row_stride(rows);
  p.ld_page = pages.stride[0];
  p.ld_slot = pages.stride[1];
  p.n = rows.shape[0];
  p.w = int(rows.shape[1]);
  p.page = int(pages.shape[1]);
  p.num_pages = int(pages.shape[0]);
}

template <class TP, class TR>
bool kv_vec_ok(const View<TP, 3>& pages, const View<TR, 2>& rows) {
  const int64_t es = int64_t(sizeof(std::remove_const_t<TP>));
  return aligned_to(pages.data, 16) && (pages.stride[0] * es) % 16 == 0 && (pages.stride[1] * es) % 16 == 0 &&
         rows_vector_aligned(rows, 16);
}

}  // namespace detail

template <class T>
void kv_cache_write(View<const T, 2> rows, View<T, 3> pages, View<const int32_t, 1> slot_mapping, stream_t stream) {
  const char* op = "cuda.kv_cache_write";
  detail::KvParams p;
  detail::kv_check_pages(pages, rows, op, "rows", p);
  detail::require_device(slot_mapping, op, "slot_mapping");
  detail::require_dim(slot_mapping, 0, rows.shape[0], op, "slot_mapping", "entries (one per row)");
  R1_CHECK(slot_mapping.shape[0] <= 1 || slot_mapping.stride[0] == 1, op, "slot_mapping must be contiguous");
  R1_CHECK(pages.shape[0] * pages.shape[1] < (int64_t(1) << 31), op, "cache of ", pages.shape[0], " pages x ",
           pages.shape[1], " rows exceeds the int32 slot range");
  p.src = rows.data;
  p.dst = pages.data;
  p.slots = slot_mapping.data;
  detail::kv_launch<T>(p, true, detail::kv_vec_ok(pages, rows), stream);
}

template <class T>
void kv_cache_write(View<const T, 2> rows, View<T, 3> pages, View<const int32_t, 1> block_table, int64_t start,
                    stream_t stream) {
  const char* op = "cuda.kv_cache_write";
  detail::KvParams p;
  detail::kv_check_pages(pages, rows, op, "rows", p);
  detail::require_device(block_table, op, "block_table");
  R1_CHECK(start >= 0, op, "start position ", start, " is negative");
  const int64_t need = detail::ceil_div(start + rows.shape[0], pages.shape[1]);
  R1_CHECK(need <= block_table.shape[0], op, start + rows.shape[0], " tokens need ", need,
           " pages, the block table has ", block_table.shape[0]);
  detail::require_int32(block_table.shape[0], op, "block table entries");
  p.src = rows.data;
  p.dst = pages.data;
  p.table = block_table.data;
  p.table_stride = block_table.stride[0];
  p.blocks = int(block_table.shape[0]);
  p.start = start;
  detail::kv_launch<T>(p, true, detail::kv_vec_ok(pages, rows), stream);
}

template <class T>
void kv_cache_gather(View<const T, 3> pages, View<const int32_t, 1> block_table, View<T, 2> out, stream_t stream) {
  const char* op = "cuda.kv_cache_gather";
  detail::KvParams p;
  detail::kv_check_pages(pages, out, op, "out", p);
  detail::require_device(block_table, op, "block_table");
  const int64_t need = detail::ceil_div(out.shape[0], pages.shape[1]);
  R1_CHECK(need <= block_table.shape[0], op, out.shape[0], " tokens need ", need, " pages, the block table has ",
           block_table.shape[0]);
  detail::require_int32(block_table.shape[0], op, "block table entries");
  p.src = pages.data;
  p.dst = out.data;
  p.table = block_table.data;
  p.table_stride = block_table.stride[0];
  p.blocks = int(block_table.shape[0]);
  detail::kv_launch<T>(p, false, detail::kv_vec_ok(pages, out), stream);
}

}  // namespace r1::cuda
