// SPDX-License-Identifier: MIT
// Definition of r1::cuda::route_experts (declared in router.hpp). One warp per token, its scores
// in shared memory: [n_experts] f32 scores s, [n_experts] u32 selection keys, [n_group] u32 group
// keys. A key is the selection score mapped to an unsigned integer with the same order (-0 first
// folded into +0, as `==` does); packed with the complement of the index into 64 bits, the maximum
// of a warp is the best score with the lowest index among equals, which is the ref's tie rule.
// A taken entry gets key 0, below every float's key.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/router.hpp"

namespace r1::cuda {

namespace detail {

/// The router kernel's arguments (POD).
struct RouterParams {
  const float* logits = nullptr;  // [tokens, experts], row stride ld_logits
  int64_t ld_logits = 0;
  const float* bias = nullptr;    // [experts], stride bias_stride, or null
  int64_t bias_stride = 0;
  int32_t* ids = nullptr;         // [tokens, top_k], row stride ld_ids
  int64_t ld_ids = 0;
  float* weights = nullptr;       // [tokens, top_k], row stride ld_w
  int64_t ld_w = 0;
  int32_t* error_flag = nullptr;
  int64_t tokens = 0;
  int experts = 0, groups = 0, topk_group = 0, top_k = 0;
  bool norm = true;
  float scale = 1.0f;
};

inline constexpr int kRouterWarps = 4;  // tokens per block

/// Order-preserving map of a float to u32 (for non-NaN values; -0 and +0 map to the same key).
__device__ __forceinline__ uint32_t router_key(float v) {
  const uint32_t u = __float_as_uint(__fadd_rn(v, 0.0f));  // -0 + 0 = +0
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float router_key_value(uint32_t k) {
  return (k & 0x80000000u) ? __uint_as_float(k & 0x7fffffffu) : __uint_as_float(~k);
}
__device__ __forceinline__ uint64_t router_pack(uint32_t key, int idx) {
  return (uint64_t(key) << 32) | uint64_t(0xffffffffu - uint32_t(idx));
}
__device__ __forceinline__ int router_unpack(uint64_t p) { return int(0xffffffffu - uint32_t(p & 0xffffffffu)); }
__device__ __forceinline__ uint64_t warp_max_u64(uint64_t v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const uint64_t o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o > v ? o : v;
  }
  return v;
}
__device__ __forceinline__ float warp_max_f32(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
/// This lane's best packed key among entries lane, lane + 32, ... of key[n].
__device__ __forceinline__ uint64_t lane_best(const uint32_t* key, int n, int lane) {
  uint64_t best = 0;
  for (int i = lane; i < n; i += 32) {
    const uint64_t p = router_pack(key[i], i);
    best = p > best ? p : best;
  }
  return best;
}

/// Top-`k` of key[n] (k <= n, k <= 32), best first, lowest index first among equals: every lane
/// returns the index of slot `lane` (lanes >= k: -1). Taken entries are set to 0.
__device__ __forceinline__ int warp_top_k(uint32_t* key, int n, int k, int lane) {
  int mine = -1;
  uint64_t local = lane_best(key, n, lane);
  for (int it = 0; it < k; ++it) {
    const int idx = router_unpack(warp_max_u64(local));
    if (lane == it) mine = idx;
    if ((idx & 31) == lane) {  // the owner takes it out and rescans its own entries
      key[idx] = 0;
      local = lane_best(key, n, lane);
    }
  }
  __syncwarp();
  return mine;
}

template <class Scoring, class Sel>
__global__ void __launch_bounds__(kRouterWarps * 32) route_experts_kernel(RouterParams p) {
  extern __shared__ float router_smem[];
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  const int64_t t = int64_t(blockIdx.x) * kRouterWarps + warp;
  if (t >= p.tokens) return;  // whole warps exit together
  const int e = p.experts, g = Sel::grouped ? p.groups : 0;
  float* s = router_smem + int64_t(warp) * (2 * e + g);      // [experts] scores
  uint32_t* key = reinterpret_cast<uint32_t*>(s + e);        // [experts] selection keys
  uint32_t* gkey = key + e;                                  // [groups] group keys
  const float* z = p.logits + t * p.ld_logits;               // [experts]

  bool bad = false;
  float mx = -INFINITY;
  for (int i = lane; i < e; i += 32) {
    const float v = z[i];
    bad |= !isfinite(v);
    if constexpr (std::is_same_v<Scoring, route::Sigmoid>) {
      // exp in double rounded once to float: glibc's expf (the ref's std::exp) is correctly
      // rounded but for rare cases; CUDA's expf may be 2 ulp off.
      s[i] = __fdiv_rn(1.0f, __fadd_rn(1.0f, float(exp(-double(v)))));
    } else {
      s[i] = v;
      mx = fmaxf(mx, v);
    }
  }
  bad = __any_sync(0xffffffffu, bad);
  if constexpr (std::is_same_v<Scoring, route::Softmax>) {
    if (!bad) {
      mx = warp_max_f32(mx);
      for (int i = lane; i < e; i += 32) s[i] = float(exp(double(__fsub_rn(s[i], mx))));
      __syncwarp();
      float sum = 0.0f;  // in expert order, like the ref: the same float sum on every lane
      for (int i = 0; i < e; ++i) sum = __fadd_rn(sum, s[i]);
      const float inv = __fdiv_rn(1.0f, sum);
      __syncwarp();
      for (int i = lane; i < e; i += 32) s[i] = __fmul_rn(s[i], inv);
    }
  }
  if (!bad) {
    for (int i = lane; i < e; i += 32) {
      const float sel = __fadd_rn(s[i], p.bias ? p.bias[i * p.bias_stride] : 0.0f);
      bad |= !isfinite(sel);  // a non-finite bias
      key[i] = router_key(sel);
    }
    bad = __any_sync(0xffffffffu, bad);
  }
  if (bad) {
    if (lane < p.top_k) {
      p.ids[t * p.ld_ids + lane] = -1;
      p.weights[t * p.ld_w + lane] = 0.0f;
    }
    if (lane == 0 && p.error_flag) *p.error_flag = 1;
    return;
  }
  __syncwarp();

  if constexpr (Sel::grouped) {
    const int per = e / g;
    for (int gi = lane; gi < g; gi += 32) {
      // Rotated start: lanes of consecutive groups read different banks.
      const uint32_t* v = key + gi * per;
      int j = gi % per;
      float a1 = -INFINITY, a2 = -INFINITY;
      for (int i = 0; i < per; ++i) {
        const float x = router_key_value(v[j]);
        if (++j == per) j = 0;
        if constexpr (std::is_same_v<typename Sel::group_score, route::Top2Sum>) {
          if (x > a1) {
            a2 = a1;
            a1 = x;
          } else if (x > a2) {
            a2 = x;
          }
        } else {
          a1 = fmaxf(a1, x);
        }
      }
      float score = a1;
      if constexpr (std::is_same_v<typename Sel::group_score, route::Top2Sum>) score = __fadd_rn(a1, a2);
      gkey[gi] = router_key(score);
    }
    __syncwarp();
    warp_top_k(gkey, g, p.topk_group, lane);  // kept groups now have key 0
    constexpr uint32_t kMinusInf = 0x007fffffu;  // router_key(-inf)
    for (int i = lane; i < e; i += 32)
      if (gkey[i / per] != 0) key[i] = kMinusInf;
    __syncwarp();
  }

  const int id = warp_top_k(key, e, p.top_k, lane);
  const float mine = lane < p.top_k ? s[id] : 0.0f;
  float sum = 0.0f;  // in slot order, like the ref
  for (int j = 0; j < p.top_k; ++j) sum = __fadd_rn(sum, __shfl_sync(0xffffffffu, mine, j));
  const float denom = p.norm ? __fadd_rn(sum, 1e-20f) : 1.0f;
  if (lane < p.top_k) {
    p.ids[t * p.ld_ids + lane] = id;
    p.weights[t * p.ld_w + lane] = __fmul_rn(__fdiv_rn(mine, denom), p.scale);
  }
}

}  // namespace detail

template <route::Scoring Scoring, route::Selection Sel>
void route_experts(View<const float, 2> logits, View<const float, 1> bias, const route::RouterConfig& cfg,
                   View<int32_t, 2> ids, View<float, 2> weights, stream_t stream, int32_t* error_flag) {
  const char* op = "cuda.router";
  route::validate<Sel>(cfg);
  const int e = cfg.n_experts, k = cfg.top_k;
  R1_CHECK(e <= kRouterMaxExperts, op, "n_routed_experts = ", e, " exceeds the kernel's limit of ",
           kRouterMaxExperts);
  R1_CHECK(k <= kRouterMaxTopK, op, "num_experts_per_tok = ", k, " exceeds the kernel's limit of ",
           kRouterMaxTopK);
  detail::require_device(logits, op, "logits");
  detail::require_device(ids, op, "ids");
  detail::require_device(weights, op, "weights");
  detail::require_matrix(logits, op, "logits");
  detail::require_matrix(ids, op, "ids");
  detail::require_matrix(weights, op, "weights");
  const int64_t tokens = logits.shape[0];
  detail::require_dim(logits, 1, e, op, "logits", "experts");
  R1_CHECK(bias.shape[0] == 0 || bias.shape[0] == e, op, "bias has ", bias.shape[0], " entries, expected ", e,
           " (or none)");
  if (bias.shape[0] != 0) detail::require_device(bias, op, "bias");
  detail::require_dim(ids, 0, tokens, op, "ids", "rows");
  detail::require_dim(ids, 1, k, op, "ids", "columns");
  detail::require_dim(weights, 0, tokens, op, "weights", "rows");
  detail::require_dim(weights, 1, k, op, "weights", "columns");
  detail::require_int32(tokens, op, "tokens");
  if (tokens == 0) return;
  detail::RouterParams p;
  p.logits = logits.data;
  p.ld_logits = detail::row_stride(logits);
  p.bias = bias.shape[0] != 0 ? bias.data : nullptr;
  p.bias_stride = bias.stride[0];
  p.ids = ids.data;
  p.ld_ids = detail::row_stride(ids);
  p.weights = weights.data;
  p.ld_w = detail::row_stride(weights);
  p.error_flag = error_flag;
  p.tokens = tokens;
  p.experts = e;
  p.groups = Sel::grouped ? cfg.n_group : 0;
  p.topk_group = Sel::grouped ? cfg.topk_group : 0;
  p.top_k = k;
  p.norm = cfg.norm_topk_prob;
  p.scale = cfg.routed_scaling_factor;
  // At most 4 x (2 x 1024 + 1024) x 4 B = 48 KiB: within the default dynamic shared memory limit.
  const int smem = detail::kRouterWarps * (2 * e + p.groups) * int(sizeof(float));
  const int64_t blocks = detail::ceil_div(tokens, detail::kRouterWarps);
  detail::route_experts_kernel<Scoring, Sel><<<unsigned(blocks), detail::kRouterWarps * 32, smem, stream>>>(p);
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda
