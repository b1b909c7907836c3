// SPDX-License-Identifier: MIT
// Definition of r1::cuda::rope_interleaved (declared in rope.hpp). A block takes one token and a
// range of heads: it first evaluates the token's dim / 2 (cos, sin) pairs into shared memory, then
// its threads rotate 4 pairs each (one 16-byte load and store of bf16 when the innermost dimension
// is unit-stride and aligned, else pair by pair through the strides). Decode batches split the
// heads over several blocks so that a few tokens still fill the GPU.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/rmsnorm.cuh"
#include "r1/kernels/cuda/rope.hpp"

namespace r1::cuda::detail {

template <class T, class TP>
struct RopeArgs {
  T* x;                    // [tokens, heads, dim] (sx0, sx1, sx2)
  int64_t sx0, sx1, sx2;
  const TP* pos;           // [tokens] (ps)
  int64_t ps;
  const float* freq;       // [pairs] (fs)
  int64_t fs;
  int heads, heads_per_block, pairs;
  float af;
};

inline constexpr int kRopeThreads = 128;

template <bool VEC, class T, class TP>
__global__ void __launch_bounds__(kRopeThreads) rope_kernel(RopeArgs<T, TP> a) {
  extern __shared__ float cs[];  // [2, pairs]: cos * a, then sin * a
  const int64_t t = blockIdx.x;
  const float p = float(a.pos[t * a.ps]);
  for (int i = int(threadIdx.x); i < a.pairs; i += int(blockDim.x)) {
    const float angle = __fmul_rn(p, a.freq[int64_t(i) * a.fs]);
    double s = 0, c = 0;
    sincos(double(angle), &s, &c);
    cs[i] = __fmul_rn(float(c), a.af);
    cs[a.pairs + i] = __fmul_rn(float(s), a.af);
  }
  __syncthreads();
  constexpr int P = VEC ? 4 : 1;  // pairs per thread and step
  const int h0 = int(blockIdx.y) * a.heads_per_block;
  const int h1 = min(h0 + a.heads_per_block, a.heads);
  const int units = a.pairs / P;
  const int total = (h1 - h0) * units;
  for (int k = int(threadIdx.x); k < total; k += int(blockDim.x)) {
    const int h = h0 + k / units, j = k % units;
    T* px = a.x + t * a.sx0 + int64_t(h) * a.sx1 + int64_t(j) * (2 * P) * a.sx2;
    float v[2 * P];
    if constexpr (VEC) {
      load_f32<8, true>(px, v);
    } else {
      v[0] = float(px[0]);
      v[1] = float(px[a.sx2]);
    }
#pragma unroll
    for (int q = 0; q < P; ++q) {
      const float c = cs[j * P + q], s = cs[a.pairs + j * P + q];
      const float x0 = v[2 * q], x1 = v[2 * q + 1];
      // the ref's a c - b s and a s + b c, each product rounded (no fused multiply-add)
      v[2 * q] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
      v[2 * q + 1] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
    }
    if constexpr (VEC) {
      store_f32<8, true>(px, v);
    } else {
      px[0] = T(v[0]);
      px[a.sx2] = T(v[1]);
    }
  }
}

}  // namespace r1::cuda::detail

namespace r1::cuda {

template <class T, class TP>
void rope_interleaved(View<T, 3> x, View<const TP, 1> positions, View<const float, 1> inv_freq,
                      float attention_factor, stream_t stream) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>, "rope_interleaved: x is bf16 or f32");
  static_assert(std::is_same_v<TP, int32_t> || std::is_same_v<TP, int64_t>,
                "rope_interleaved: positions are int32 or int64");
  const char* op = "cuda.rope_interleaved";
  detail::require_device(x, op, "x");
  detail::require_device(positions, op, "positions");
  detail::require_device(inv_freq, op, "inv_freq");
  detail::require_dim(positions, 0, x.shape[0], op, "positions", "entries");
  R1_CHECK(x.shape[2] == 2 * inv_freq.shape[0], op, "rotary dimension ", x.shape[2], " does not match ",
           inv_freq.shape[0], " frequencies (needs 2 per pair)");
  const int64_t tokens = x.shape[0], heads = x.shape[1], pairs = inv_freq.shape[0];
  R1_CHECK(pairs <= 4096, op, "rotary dimension ", x.shape[2], " exceeds the kernel's 8192");
  R1_CHECK(heads < 65536 * int64_t(1024), op, heads, " heads is too many");
  detail::require_int32(tokens, op, "tokens");
  detail::require_int32(heads * pairs, op, "heads x pairs");
  if (tokens == 0 || heads == 0 || pairs == 0) return;
  // Enough blocks for ~2 per SM of an H100 even at one token, at least 4 heads per block.
  const int64_t want_split = std::max<int64_t>(1, detail::ceil_div(264, tokens));
  const int64_t hpb = std::max<int64_t>(std::min<int64_t>(heads, 4), detail::ceil_div(heads, want_split));
  const int64_t split = detail::ceil_div(heads, hpb);
  detail::RopeArgs<T, TP> a{};
  a.x = x.data;
  a.sx0 = x.stride[0];
  a.sx1 = x.stride[1];
  a.sx2 = x.stride[2];
  a.pos = positions.data;
  a.ps = positions.stride[0];
  a.freq = inv_freq.data;
  a.fs = inv_freq.stride[0];
  a.heads = int(heads);
  a.heads_per_block = int(hpb);
  a.pairs = int(pairs);
  a.af = attention_factor;
  const int64_t es = int64_t(sizeof(T));
  const bool vec = x.stride[2] == 1 && pairs % 4 == 0 && detail::aligned_to(x.data, 16) &&
                   (tokens <= 1 || (x.stride[0] * es) % 16 == 0) && (heads <= 1 || (x.stride[1] * es) % 16 == 0);
  const dim3 grid{unsigned(tokens), unsigned(split), 1u};
  const size_t smem = size_t(2 * pairs) * sizeof(float);
  if (vec) {
    detail::rope_kernel<true><<<grid, detail::kRopeThreads, smem, stream>>>(a);
  } else {
    detail::rope_kernel<false><<<grid, detail::kRopeThreads, smem, stream>>>(a);
  }
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda
