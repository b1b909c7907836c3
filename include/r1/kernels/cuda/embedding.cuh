// SPDX-License-Identifier: MIT
// Definition of r1::cuda::embedding (declared in embedding.hpp): one block per token copies the
// table row in 16-byte vectors when rows allow (element by element otherwise). Memory-bound: the
// cost is reading the rows and writing the output once. Values pass through fp32, which holds a
// bf16 or f32 table entry exactly, so an f64 output (an f64 residual stream) is exact too.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/embedding.hpp"
#include "r1/kernels/cuda/rmsnorm.cuh"

namespace r1::cuda::detail {

template <int U, bool VEC, class TI, class TW, class TY>
__global__ void __launch_bounds__(kNormMaxThreads)
    embedding_kernel(const TI* __restrict__ ids, int64_t ids_stride, const TW* __restrict__ table, int64_t ldt,
                     int64_t vocab, TY* __restrict__ out, int64_t ldo, int dim) {
  const int64_t t = blockIdx.x;
  const int64_t id = int64_t(ids[t * ids_stride]);
  const bool valid = id >= 0 && id < vocab;  // an invalid id reads nothing and writes a NaN row
  const TW* src = table + (valid ? id : 0) * ldt;
  TY* dst = out + t * ldo;
  const int units = dim / U;
  for (int u = int(threadIdx.x); u < units; u += int(blockDim.x)) {
    float v[U];
    if (valid) {
      load_f32<U, VEC>(src + int64_t(u) * U, v);
    } else {
#pragma unroll
      for (int i = 0; i < U; ++i) v[i] = __uint_as_float(0x7fffffffu);
    }
    store_f32<U, VEC>(dst + int64_t(u) * U, v);
  }
}

}  // namespace r1::cuda::detail

namespace r1::cuda {

template <class TI, class TW, class TY>
void embedding(View<const TI, 1> ids, View<const TW, 2> table, View<TY, 2> out, stream_t stream) {
  static_assert(std::is_same_v<TI, int32_t> || std::is_same_v<TI, int64_t>, "embedding: ids are int32 or int64");
  static_assert(std::is_same_v<TW, bf16> || std::is_same_v<TW, float>, "embedding: table is bf16 or f32");
  static_assert(std::is_same_v<TY, bf16> || std::is_same_v<TY, float> || std::is_same_v<TY, double>,
                "embedding: out is bf16, f32 or f64");
  const char* op = "cuda.embedding";
  detail::require_device(ids, op, "ids");
  detail::require_device(table, op, "table");
  detail::require_device(out, op, "out");
  detail::require_matrix(table, op, "table");
  detail::require_matrix(out, op, "out");
  detail::require_dim(out, 0, ids.shape[0], op, "out", "rows");
  detail::require_dim(out, 1, table.shape[1], op, "out", "columns");
  const int64_t tokens = ids.shape[0], dim = table.shape[1];
  detail::require_int32(tokens, op, "tokens");
  detail::require_int32(dim, op, "dim");
  if (tokens == 0 || dim == 0) return;
  const int64_t ldt = detail::row_stride(table), ldo = detail::row_stride(out);
  const bool vec = detail::norm_vec_ok(out) && dim % 8 == 0 && detail::aligned_to(table.data, 16) &&
                   (ldt * int64_t(sizeof(TW))) % 16 == 0;
  if (vec) {
    detail::embedding_kernel<8, true><<<unsigned(tokens), detail::norm_threads(dim / 8), 0, stream>>>(
        ids.data, ids.stride[0], table.data, ldt, table.shape[0], out.data, ldo, int(dim));
  } else {
    detail::embedding_kernel<1, false><<<unsigned(tokens), detail::norm_threads(dim), 0, stream>>>(
        ids.data, ids.stride[0], table.data, ldt, table.shape[0], out.data, ldo, int(dim));
  }
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda
