// SPDX-License-Identifier: MIT
// Paged latent KV cache rows (FlashMLA's layout, r1-spec §3.3): one row per token per layer,
// [c_kv (kv_lora_rank) || k_pe (qk_rope_head_dim)], stored in pages of `page_size` tokens.
// Logical token s of a sequence lives in page block_table[s / page_size], row s % page_size.
#pragma once

#include <cstdint>
#include <type_traits>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

namespace detail {
template <class TC, class TB>
void check_paged(const View<TC, 3>& pages, const View<TB, 1>& block_table, int64_t tokens,
                 const char* op) {
  require_host(pages, op, "pages");
  require_host(block_table, op, "block_table");
  const int64_t page = pages.shape[1];
  R1_CHECK(page > 0, op, "page size must be positive");
  R1_CHECK(ceil_div(tokens, page) <= block_table.shape[0], op, tokens, " tokens need ",
           ceil_div(tokens, page), " pages, the block table has ", block_table.shape[0]);
  for (int64_t b = 0; b < ceil_div(tokens, page); ++b) {
    R1_CHECK(block_table(b) >= 0 && int64_t(block_table(b)) < pages.shape[0], op, "block_table[", b,
             "] = ", block_table(b), " is not a page in [0, ", pages.shape[0], ")");
  }
}
}  // namespace detail

/// Writes rows for logical tokens [start, start + rows) of a sequence.
/// @param rows        [tokens, width] new [c_kv || k_pe] rows
/// @param pages       [num_pages, page_size, width] cache storage
/// @param block_table [max_blocks] the sequence's pages
template <class TR, class TC, class TB>
void kv_cache_write(View<TR, 2> rows, View<TC, 3> pages, View<TB, 1> block_table, int64_t start) {
  static_assert(!std::is_const_v<TC>, "kv_cache_write: pages must be writable");
  const char* op = "kv_cache_write";
  detail::require_host(rows, op, "rows");
  R1_CHECK(start >= 0, op, "start position ", start, " is negative");
  detail::check_paged(pages, block_table, start + rows.shape[0], op);
  detail::require_dim(rows, 1, pages.shape[2], op, "rows", "columns");
  const int64_t page = pages.shape[1];
  for (int64_t t = 0; t < rows.shape[0]; ++t) {
    const int64_t s = start + t;
    const int64_t p = int64_t(block_table(s / page));
    for (int64_t i = 0; i < rows.shape[1]; ++i) pages(p, s % page, i) = from_compute<TC>(to_compute<compute_t<TR, TC>>(rows(t, i)));
  }
}

/// Reads logical tokens [0, tokens) into a contiguous block.
/// @param pages       [num_pages, page_size, width]
/// @param block_table [max_blocks]
/// @param out         [tokens, width]
template <class TC, class TB, class TO>
void kv_cache_gather(View<TC, 3> pages, View<TB, 1> block_table, View<TO, 2> out) {
  static_assert(!std::is_const_v<TO>, "kv_cache_gather: out must be writable");
  const char* op = "kv_cache_gather";
  detail::require_host(out, op, "out");
  detail::check_paged(pages, block_table, out.shape[0], op);
  detail::require_dim(out, 1, pages.shape[2], op, "out", "columns");
  const int64_t page = pages.shape[1];
  for (int64_t s = 0; s < out.shape[0]; ++s) {
    const int64_t p = int64_t(block_table(s / page));
    for (int64_t i = 0; i < out.shape[1]; ++i) out(s, i) = from_compute<TO>(to_compute<compute_t<TC, TO>>(pages(p, s % page, i)));
  }
}

}  // namespace r1::ref
