// SPDX-License-Identifier: MIT
// Token embedding lookup: out[t, :] = table[ids[t], :]. No scaling, no position embedding
// (DeepSeek-V3). An id outside the table is an r1::Error naming the position and the id.
#pragma once

#include <cstdint>
#include <type_traits>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

/// @param ids   [tokens] token ids (int32 or int64)
/// @param table [vocab, dim] embedding rows
/// @param out   [tokens, dim]
template <class TI, class TW, class TY>
void embedding(View<TI, 1> ids, View<TW, 2> table, View<TY, 2> out) {
  static_assert(std::is_integral_v<std::remove_const_t<TI>>, "embedding: ids must be integers");
  static_assert(!std::is_const_v<TY>, "embedding: out must be writable");
  const char* op = "embedding";
  detail::require_host(ids, op, "ids");
  detail::require_host(table, op, "table");
  detail::require_host(out, op, "out");
  detail::require_dim(out, 0, ids.shape[0], op, "out", "rows");
  detail::require_dim(out, 1, table.shape[1], op, "out", "columns");
  const int64_t vocab = table.shape[0];
  for (int64_t t = 0; t < ids.shape[0]; ++t) {
    const int64_t id = int64_t(ids(t));
    R1_CHECK(id >= 0 && id < vocab, op, "token id ", id, " at position ", t,
             " is out of range [0, ", vocab, ")");
    for (int64_t i = 0; i < table.shape[1]; ++i)
      out(t, i) = from_compute<TY>(to_compute<compute_t<TW, TY>>(table(id, i)));
  }
}

}  // namespace r1::ref
