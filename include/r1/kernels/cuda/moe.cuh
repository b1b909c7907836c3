// SPDX-License-Identifier: MIT
// Definitions of the MoE data movement declared in moe.hpp.
//  - moe_permute: ONE block, a counting sort in shared memory. Each warp owns a contiguous segment
//    of pairs and walks it 32 at a time; __match_any_sync groups the lanes with equal experts, so a
//    lane's rank among them is a popcount and the warp's counters advance in pair order: stable
//    without atomics. Counts -> per-warp prefixes -> one exclusive scan over the experts -> the same
//    walk again writes each pair to its row. Sorting R1's prefill (4096 tokens x 8) is 32 steps per
//    warp, a few microseconds; decode is one launch and no scratch.
//  - moe_gather / moe_combine: one warp per row (token), 16-byte packs when rows allow, extra
//    warps per row along the columns when there are few rows (decode).
//  - moe_experts_swiglu: grouped GEMMs (grouped_gemm.hpp), act_quant<128> for FP8, and a private
//    SwiGLU kernel.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/kernels/cuda/linear_f32.hpp"
#include "r1/kernels/cuda/moe.hpp"
#include "r1/kernels/cuda/swiglu.hpp"

namespace r1::cuda {

namespace detail {

// ---------------------------------------------------------------------------------------------
// Permutation

/// The permute kernel's shared memory: (warps + 1) x (experts + 1) int32 within the default 48 KiB.
inline constexpr int kPermuteSmemBytes = 48 * 1024;

inline int permute_warps(int experts) {
  const int per_row = (experts + 1) * int(sizeof(int32_t));
  return std::clamp(kPermuteSmemBytes / per_row - 1, 1, 32);
}

__device__ __forceinline__ int permute_bucket(const int32_t* ids, int64_t ld_ids, int k, int experts, int64_t p) {
  const int32_t e = ids[(p / k) * ld_ids + p % k];
  return (e >= 0 && e < experts) ? int(e) : experts;  // bucket `experts`: dropped pairs, after all rows
}

template <int = 0>
__global__ void __launch_bounds__(1024) moe_permute_kernel(const int32_t* __restrict__ ids, int64_t ld_ids, int k,
                                                           int64_t n_pairs, int experts, int32_t* __restrict__ offsets,
                                                           int32_t* __restrict__ pairs, int32_t* __restrict__ row_of) {
  extern __shared__ int32_t permute_smem[];
  const int warps = int(blockDim.x >> 5), lane = int(threadIdx.x & 31), w = int(threadIdx.x >> 5);
  const int nb = experts + 1;                      // buckets
  int32_t* cnt = permute_smem + w * nb;            // [nb] this warp's counts, then its cursors
  int32_t* total = permute_smem + warps * nb;      // [nb] bucket totals, then bucket starts
  for (int i = int(threadIdx.x); i < warps * nb; i += int(blockDim.x)) permute_smem[i] = 0;
  __syncthreads();
  const int64_t seg = ((n_pairs + warps - 1) / warps + 31) / 32 * 32;
  const int64_t lo = min(n_pairs, int64_t(w) * seg), hi = min(n_pairs, lo + seg);
  const uint32_t below = (1u << lane) - 1u;  // lanes before this one

  for (int64_t base = lo; base < hi; base += 32) {
    const int64_t p = base + lane;
    const int b = p < hi ? permute_bucket(ids, ld_ids, k, experts, p) : -1;
    const uint32_t peers = __match_any_sync(0xffffffffu, b);
    if (b >= 0 && (peers & below) == 0) cnt[b] += __popc(peers);  // the group's first lane counts it
    __syncwarp();
  }
  __syncthreads();
  for (int b = int(threadIdx.x); b < nb; b += int(blockDim.x)) {  // exclusive prefix over the warps
    int32_t run = 0;
    for (int i = 0; i < warps; ++i) {
      const int32_t c = permute_smem[i * nb + b];
      permute_smem[i * nb + b] = run;
      run += c;
    }
    total[b] = run;
  }
  __syncthreads();
  if (w == 0) {  // exclusive scan over the buckets: offsets[e] for e <= experts
    int32_t carry = 0;
    for (int b0 = 0; b0 < nb; b0 += 32) {
      const int b = b0 + lane;
      const int32_t v = b < nb ? total[b] : 0;
      int32_t x = v;
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        const int32_t y = __shfl_up_sync(0xffffffffu, x, off);
        if (lane >= off) x += y;
      }
      if (b < nb) {
        total[b] = carry + x - v;
        offsets[b] = carry + x - v;
      }
      carry += __shfl_sync(0xffffffffu, x, 31);
    }
  }
  __syncthreads();
  for (int i = int(threadIdx.x); i < warps * nb; i += int(blockDim.x)) permute_smem[i] += total[i % nb];
  __syncthreads();

  for (int64_t base = lo; base < hi; base += 32) {
    const int64_t p = base + lane;
    const int b = p < hi ? permute_bucket(ids, ld_ids, k, experts, p) : -1;
    const uint32_t peers = __match_any_sync(0xffffffffu, b);
    const int32_t pos = b >= 0 ? cnt[b] + __popc(peers & below) : 0;
    __syncwarp();
    if (b >= 0) {
      if ((peers & below) == 0) cnt[b] += __popc(peers);
      pairs[pos] = int32_t(p);
      if (row_of) row_of[p] = pos;
    }
    __syncwarp();
  }
}

/// row_of[pairs[r]] = r for the entries of pairs inside [0, n) (row_of is pre-filled with -1).
template <int = 0>
__global__ void moe_inverse_kernel(const int32_t* __restrict__ pairs, int64_t n, int32_t* __restrict__ row_of) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n) return;
  const int32_t p = pairs[r];
  if (p >= 0 && p < n) row_of[p] = int32_t(r);
}

// ---------------------------------------------------------------------------------------------
// Gather and combine

/// V elements moved as one aligned load / store.
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

inline constexpr int kRowWarps = 8;  // rows (tokens) per 256-thread block

/// Column splits per row: enough warps in flight when there are few rows, at least 32 packs each.
inline int64_t column_splits(int64_t rows, int64_t packs) {
  const int64_t want = ceil_div(4096, std::max<int64_t>(rows, 1));
  return std::clamp<int64_t>(want, 1, std::max<int64_t>(1, ceil_div(packs, 32)));
}

template <class T, int V>
__global__ void __launch_bounds__(kRowWarps * 32) moe_gather_kernel(const T* __restrict__ x, int64_t ldx,
                                                                   const int32_t* __restrict__ pairs, int k,
                                                                   T* __restrict__ xe, int64_t ldxe, int64_t rows,
                                                                   int64_t packs, int64_t per_split) {
  const int lane = int(threadIdx.x & 31);
  const int64_t r = int64_t(blockIdx.x) * kRowWarps + (threadIdx.x >> 5);
  if (r >= rows) return;
  const int32_t p = pairs[r];
  const bool ok = p >= 0 && int64_t(p) < rows;  // rows == tokens * top_k
  const auto* src = reinterpret_cast<const Pack<T, V>*>(x + (ok ? int64_t(p / k) * ldx : 0));
  auto* dst = reinterpret_cast<Pack<T, V>*>(xe + r * ldxe);
  const int64_t c0 = int64_t(blockIdx.y) * per_split, c1 = min(packs, c0 + per_split);
#pragma unroll 4
  for (int64_t c = c0 + lane; c < c1; c += 32) {
    Pack<T, V> v;
    if (ok) {
      v = src[c];
    } else {
#pragma unroll
      for (int i = 0; i < V; ++i) v.v[i] = T(0.0f);
    }
    dst[c] = v;
  }
}

template <class T, class TO>
struct CombineParams {
  const T* ye = nullptr;  // [R, dim]
  int64_t ldye = 0, rows = 0;
  const int32_t* row_of = nullptr;      // [tokens * k]
  const int32_t* valid_rows = nullptr;  // device scalar or null
  const float* weights = nullptr;       // [tokens, k]
  int64_t ldw = 0;
  const T* shared = nullptr;  // [tokens, dim] or null
  int64_t ld_shared = 0;
  TO* out = nullptr;  // [tokens, dim]
  int64_t ldo = 0, tokens = 0;
  int k = 0;
  int64_t packs = 0, per_split = 0;
};

template <class T, class TO, int V>
__global__ void __launch_bounds__(kRowWarps * 32) moe_combine_kernel(CombineParams<T, TO> p) {
  const int lane = int(threadIdx.x & 31);
  const int64_t t = int64_t(blockIdx.x) * kRowWarps + (threadIdx.x >> 5);
  if (t >= p.tokens) return;
  const int64_t limit = p.valid_rows ? int64_t(*p.valid_rows) : p.rows;
  const int64_t c0 = int64_t(blockIdx.y) * p.per_split, c1 = min(p.packs, c0 + p.per_split);
  for (int64_t c = c0 + lane; c < c1; c += 32) {
    float acc[V];
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] = 0.0f;
    for (int j = 0; j < p.k; ++j) {  // slot order, like the ref; no FMA (the ref rounds the product)
      const int32_t r = p.row_of[t * p.k + j];
      if (r < 0 || int64_t(r) >= limit) continue;
      const float w = p.weights[t * p.ldw + j];
      const Pack<T, V> y = reinterpret_cast<const Pack<T, V>*>(p.ye + int64_t(r) * p.ldye)[c];
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] = __fadd_rn(acc[i], __fmul_rn(w, float(y.v[i])));
    }
    Pack<TO, V> o;
    if (p.shared) {
      const Pack<T, V> s = reinterpret_cast<const Pack<T, V>*>(p.shared + t * p.ld_shared)[c];
#pragma unroll
      for (int i = 0; i < V; ++i) o.v[i] = TO(__fadd_rn(acc[i], float(s.v[i])));
    } else {
#pragma unroll
      for (int i = 0; i < V; ++i) o.v[i] = TO(__fadd_rn(acc[i], 0.0f));  // the ref adds 0: -0 becomes +0
    }
    reinterpret_cast<Pack<TO, V>*>(p.out + t * p.ldo)[c] = o;
  }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU (private until cuda::swiglu exists)

template <int V>
__global__ void __launch_bounds__(256) moe_swiglu_kernel(const bf16* gate, int64_t ldg, const bf16* up, int64_t ldu,
                                                         bf16* out, int64_t ldo, int64_t rows, int64_t packs) {
  const int64_t n = rows * packs;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / packs, c = i % packs;
    const Pack<bf16, V> g = reinterpret_cast<const Pack<bf16, V>*>(gate + r * ldg)[c];
    const Pack<bf16, V> u = reinterpret_cast<const Pack<bf16, V>*>(up + r * ldu)[c];
    Pack<bf16, V> o;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float z = float(g.v[j]);
      const float silu = __fdiv_rn(z, __fadd_rn(1.0f, expf(-z)));  // ref::silu: z / (1 + e^-z)
      o.v[j] = bf16(__fmul_rn(silu, float(u.v[j])));
    }
    reinterpret_cast<Pack<bf16, V>*>(out + r * ldo)[c] = o;
  }
}

// ---------------------------------------------------------------------------------------------
// Host launchers

inline void require_vector(const View<int32_t, 1>& v, const char* op, const char* name) {
  require_device(v, op, name);
  R1_CHECK(v.shape[0] <= 1 || v.stride[0] == 1, op, name, " must be contiguous (stride ", v.stride[0], ")");
}
inline void require_vector(const View<const int32_t, 1>& v, const char* op, const char* name) {
  require_device(v, op, name);
  R1_CHECK(v.shape[0] <= 1 || v.stride[0] == 1, op, name, " must be contiguous (stride ", v.stride[0], ")");
}

inline void moe_permute_impl(View<const int32_t, 2> ids, int n_experts, View<int32_t, 1> offsets,
                             View<int32_t, 1> pairs, View<int32_t, 1> rows, stream_t stream) {
  const char* op = "cuda.moe_permute";
  require_device(ids, op, "ids");
  require_matrix(ids, op, "ids");
  require_vector(offsets, op, "offsets");
  require_vector(pairs, op, "pairs");
  R1_CHECK(n_experts > 0 && n_experts <= kMoeMaxExperts, op, "n_experts = ", n_experts, " must be in [1, ",
           kMoeMaxExperts, "]");
  const int64_t tokens = ids.shape[0], k = ids.shape[1], n = tokens * k;
  require_dim(offsets, 0, int64_t(n_experts) + 1, op, "offsets", "entries");
  require_dim(pairs, 0, n, op, "pairs", "entries");
  if (rows.shape[0] != 0) {
    require_vector(rows, op, "rows");
    require_dim(rows, 0, n, op, "rows", "entries");
  }
  require_int32(n, op, "tokens x top_k");
  // offsets are written even for no pairs (all zero), so a grouped GEMM can read them.
  const int warps = permute_warps(n_experts);
  const int smem = (warps + 1) * (n_experts + 1) * int(sizeof(int32_t));
  moe_permute_kernel<<<1, warps * 32, smem, stream>>>(ids.data, row_stride(ids), int(std::max<int64_t>(k, 1)), n,
                                                      n_experts, offsets.data, pairs.data,
                                                      rows.shape[0] != 0 ? rows.data : nullptr);
  R1_CUDA_CHECK_LAUNCH();
}

template <class T>
void moe_gather_impl(View<const T, 2> x, View<const int32_t, 1> pairs, int top_k, View<T, 2> xe, stream_t stream) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>, "moe_gather: bf16 or f32 rows");
  const char* op = "cuda.moe_gather";
  require_device(x, op, "x");
  require_device(xe, op, "xe");
  require_vector(pairs, op, "pairs");
  require_matrix(x, op, "x");
  require_matrix(xe, op, "xe");
  R1_CHECK(top_k > 0, op, "top_k = ", top_k, " must be positive");
  const int64_t rows = x.shape[0] * top_k, dim = x.shape[1];
  require_dim(pairs, 0, rows, op, "pairs", "entries");
  require_dim(xe, 0, rows, op, "xe", "rows");
  require_dim(xe, 1, dim, op, "xe", "columns");
  require_int32(rows, op, "tokens x top_k");
  if (rows == 0 || dim == 0) return;
  constexpr int V = 16 / int(sizeof(T));
  const bool vec = rows_vector_aligned(x, 16) && rows_vector_aligned(xe, 16);
  const int64_t packs = vec ? dim / V : dim;
  const int64_t splits = column_splits(rows, packs), per_split = ceil_div(packs, splits);
  const dim3 grid(unsigned(ceil_div(rows, kRowWarps)), unsigned(splits));
  if (vec) {
    moe_gather_kernel<T, V><<<grid, kRowWarps * 32, 0, stream>>>(x.data, row_stride(x), pairs.data, top_k, xe.data,
                                                                 row_stride(xe), rows, packs, per_split);
  } else {
    moe_gather_kernel<T, 1><<<grid, kRowWarps * 32, 0, stream>>>(x.data, row_stride(x), pairs.data, top_k, xe.data,
                                                                 row_stride(xe), rows, packs, per_split);
  }
  R1_CUDA_CHECK_LAUNCH();
}

template <class T, class TO>
void moe_combine_rows_impl(View<const T, 2> ye, View<const int32_t, 1> row_of, const int32_t* valid_rows,
                           View<const float, 2> weights, View<const T, 2> shared, View<TO, 2> out, stream_t stream,
                           const char* op) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>, "moe_combine: bf16 or f32 rows");
  static_assert(std::is_same_v<TO, T> || std::is_same_v<TO, float>, "moe_combine: out is T or f32");
  require_device(ye, op, "ye");
  require_device(weights, op, "weights");
  require_device(out, op, "out");
  require_vector(row_of, op, "pairs");
  require_matrix(ye, op, "ye");
  require_matrix(weights, op, "weights");
  require_matrix(out, op, "out");
  const int64_t tokens = weights.shape[0], k = weights.shape[1], dim = out.shape[1], rows = tokens * k;
  R1_CHECK(k > 0, op, "top_k = ", k, " must be positive");
  require_dim(row_of, 0, rows, op, "pairs", "entries");
  require_dim(ye, 0, rows, op, "ye", "rows");
  require_dim(ye, 1, dim, op, "ye", "columns");
  require_dim(out, 0, tokens, op, "out", "rows");
  const bool has_shared = shared.shape[0] != 0;
  if (has_shared) {
    require_device(shared, op, "shared");
    require_matrix(shared, op, "shared");
    require_dim(shared, 0, tokens, op, "shared", "rows");
    require_dim(shared, 1, dim, op, "shared", "columns");
  }
  require_int32(rows, op, "tokens x top_k");
  if (tokens == 0 || dim == 0) return;
  constexpr int V = 16 / int(sizeof(T));
  const bool vec = rows_vector_aligned(ye, 16) && rows_vector_aligned(out, V * int64_t(sizeof(TO))) &&
                   (!has_shared || rows_vector_aligned(shared, 16));
  CombineParams<T, TO> p;
  p.ye = ye.data;
  p.ldye = row_stride(ye);
  p.rows = rows;
  p.row_of = row_of.data;
  p.valid_rows = valid_rows;
  p.weights = weights.data;
  p.ldw = row_stride(weights);
  p.shared = has_shared ? shared.data : nullptr;
  p.ld_shared = has_shared ? row_stride(shared) : 0;
  p.out = out.data;
  p.ldo = row_stride(out);
  p.tokens = tokens;
  p.k = int(k);
  p.packs = vec ? dim / V : dim;
  const int64_t splits = column_splits(tokens, p.packs);
  p.per_split = ceil_div(p.packs, splits);
  const dim3 grid(unsigned(ceil_div(tokens, kRowWarps)), unsigned(splits));
  if (vec) {
    moe_combine_kernel<T, TO, V><<<grid, kRowWarps * 32, 0, stream>>>(p);
  } else {
    moe_combine_kernel<T, TO, 1><<<grid, kRowWarps * 32, 0, stream>>>(p);
  }
  R1_CUDA_CHECK_LAUNCH();
}

template <class T, class TO>
void moe_combine_impl(View<const T, 2> ye, View<const int32_t, 1> pairs, View<const float, 2> weights,
                      View<const T, 2> shared, View<TO, 2> out, stream_t stream) {
  const char* op = "cuda.moe_combine";
  require_vector(pairs, op, "pairs");
  const int64_t rows = weights.shape[0] * weights.shape[1];
  require_dim(pairs, 0, rows, op, "pairs", "entries");
  require_int32(rows, op, "tokens x top_k");
  Tensor row_of = Tensor::empty(DType::i32, {rows}, Space::cuda, stream);  // [tokens * top_k] inverse of pairs
  if (rows > 0) {
    row_of.fill_bytes(0xff, stream);  // -1: a pair missing from `pairs` contributes nothing
    moe_inverse_kernel<<<unsigned(ceil_div(rows, 256)), 256, 0, stream>>>(pairs.data, rows, row_of.data_as<int32_t>());
    R1_CUDA_CHECK_LAUNCH();
  }
  moe_combine_rows_impl<T, TO>(ye, row_of.view<const int32_t, 1>(), nullptr, weights, shared, out, stream, op);
}

inline void moe_swiglu_impl(View<const bf16, 2> gate, View<const bf16, 2> up, View<bf16, 2> out, stream_t stream) {
  const char* op = "cuda.moe_swiglu";
  require_device(gate, op, "gate");
  require_device(up, op, "up");
  require_device(out, op, "out");
  require_matrix(gate, op, "gate");
  require_matrix(up, op, "up");
  require_matrix(out, op, "out");
  const int64_t rows = gate.shape[0], width = gate.shape[1];
  for (int d = 0; d < 2; ++d) {
    require_dim(up, d, gate.shape[d], op, "up", d == 0 ? "rows" : "columns");
    require_dim(out, d, gate.shape[d], op, "out", d == 0 ? "rows" : "columns");
  }
  if (rows == 0 || width == 0) return;
  const bool vec = rows_vector_aligned(gate, 16) && rows_vector_aligned(up, 16) && rows_vector_aligned(out, 16);
  const int64_t packs = vec ? width / 8 : width;
  const int64_t blocks = std::min<int64_t>(ceil_div(rows * packs, 256), int64_t(current_device().sms) * 16);
  if (vec) {
    moe_swiglu_kernel<8><<<unsigned(blocks), 256, 0, stream>>>(gate.data, row_stride(gate), up.data, row_stride(up),
                                                               out.data, row_stride(out), rows, packs);
  } else {
    moe_swiglu_kernel<1><<<unsigned(blocks), 256, 0, stream>>>(gate.data, row_stride(gate), up.data, row_stride(up),
                                                               out.data, row_stride(out), rows, packs);
  }
  R1_CUDA_CHECK_LAUNCH();
}

inline void check_swiglu_experts(int64_t gate_rows, int64_t gate_cols, int64_t up_rows, int64_t up_cols,
                                 int64_t down_rows, int64_t down_cols, int64_t dim, const char* op) {
  R1_CHECK(gate_rows == up_rows && gate_cols == up_cols && gate_cols == dim, op, "gate [", gate_rows, ", ",
           gate_cols, "] and up [", up_rows, ", ", up_cols, "] must both be [inter, dim = ", dim, "]");
  R1_CHECK(down_rows == dim && down_cols == gate_rows, op, "down is [", down_rows, ", ", down_cols,
           "], expected [dim = ", dim, ", inter = ", gate_rows, "]");
}

inline void moe_experts_swiglu_bf16_impl(View<const bf16, 2> xe, View<const int32_t, 1> offsets,
                                         const ExpertWeights<bf16>& gate, const ExpertWeights<bf16>& up,
                                         const ExpertWeights<bf16>& down, View<bf16, 2> ye, stream_t stream,
                                         GemmBackend backend) {
  const char* op = "cuda.moe_experts_swiglu";
  const int64_t rows = xe.shape[0], dim = xe.shape[1], inter = gate.rows;
  check_swiglu_experts(gate.rows, gate.cols, up.rows, up.cols, down.rows, down.cols, dim, op);
  require_dim(ye, 0, rows, op, "ye", "rows");
  require_dim(ye, 1, dim, op, "ye", "columns");
  Tensor g = Tensor::empty(DType::bf16, {rows, inter}, Space::cuda, stream);  // [R, inter] gate, then h
  Tensor u = Tensor::empty(DType::bf16, {rows, inter}, Space::cuda, stream);  // [R, inter]
  grouped_linear(xe, offsets, gate, g.view<bf16, 2>(), stream, backend);
  grouped_linear(xe, offsets, up, u.view<bf16, 2>(), stream, backend);
  moe_swiglu_impl(g.view<const bf16, 2>(), u.view<const bf16, 2>(), g.view<bf16, 2>(), stream);
  grouped_linear(g.view<const bf16, 2>(), offsets, down, ye, stream, backend);
}

inline void moe_experts_swiglu_fp8_impl(View<const bf16, 2> xe, View<const int32_t, 1> offsets,
                                        const ExpertWeights<fp8_e4m3>& gate, const ExpertWeights<float>& gate_s,
                                        const ExpertWeights<fp8_e4m3>& up, const ExpertWeights<float>& up_s,
                                        const ExpertWeights<fp8_e4m3>& down, const ExpertWeights<float>& down_s,
                                        View<bf16, 2> ye, stream_t stream, GemmBackend backend) {
  const char* op = "cuda.moe_experts_swiglu";
  const int64_t rows = xe.shape[0], dim = xe.shape[1], inter = gate.rows;
  check_swiglu_experts(gate.rows, gate.cols, up.rows, up.cols, down.rows, down.cols, dim, op);
  R1_CHECK(dim % 128 == 0 && inter % 128 == 0, op, "dim = ", dim, " and inter = ", inter,
           " must be multiples of 128 for FP8 activations");
  require_dim(ye, 0, rows, op, "ye", "rows");
  require_dim(ye, 1, dim, op, "ye", "columns");
  Tensor xq = Tensor::empty(DType::f8_e4m3, {rows, dim}, Space::cuda, stream);     // [R, dim]
  Tensor xs = Tensor::empty(DType::f32, {dim / 128, rows}, Space::cuda, stream);   // [dim / 128, R] MN-major
  Tensor g = Tensor::empty(DType::bf16, {rows, inter}, Space::cuda, stream);       // [R, inter] gate, then h
  Tensor u = Tensor::empty(DType::bf16, {rows, inter}, Space::cuda, stream);       // [R, inter]
  Tensor hq = Tensor::empty(DType::f8_e4m3, {rows, inter}, Space::cuda, stream);   // [R, inter]
  Tensor hs = Tensor::empty(DType::f32, {inter / 128, rows}, Space::cuda, stream); // [inter / 128, R] MN-major
  const View<float, 2> xsv = mn_major_scales(xs.data_as<float>(), rows, dim / 128);
  const View<float, 2> hsv = mn_major_scales(hs.data_as<float>(), rows, inter / 128);
  act_quant<128, bf16>(xe, xq.view<fp8_e4m3, 2>(), xsv, stream);
  grouped_linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xsv.as_const(), offsets, gate, gate_s,
                                      g.view<bf16, 2>(), stream, backend);
  grouped_linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xsv.as_const(), offsets, up, up_s,
                                      u.view<bf16, 2>(), stream, backend);
  moe_swiglu_impl(g.view<const bf16, 2>(), u.view<const bf16, 2>(), g.view<bf16, 2>(), stream);
  act_quant<128, bf16>(g.view<const bf16, 2>(), hq.view<fp8_e4m3, 2>(), hsv, stream);
  grouped_linear_fp8_native<128, 128>(hq.view<const fp8_e4m3, 2>(), hsv.as_const(), offsets, down, down_s, ye,
                                      stream, backend);
}

/// f32 activations (the precise policy): fp32 grouped GEMMs, silu(gate) * up in fp32. With FP8
/// weights, `quantize` (native mode) runs the GEMMs on 1 x 128 e4m3 codes of xe and h.
template <class TW>
void moe_experts_swiglu_f32_impl(View<const float, 2> xe, View<const int32_t, 1> offsets,
                                 const ExpertWeights<TW>& gate, const ExpertWeights<float>* gate_s,
                                 const ExpertWeights<TW>& up, const ExpertWeights<float>* up_s,
                                 const ExpertWeights<TW>& down, const ExpertWeights<float>* down_s,
                                 View<float, 2> ye, stream_t stream, bool quantize) {
  const char* op = "cuda.moe_experts_swiglu";
  const int64_t rows = xe.shape[0], dim = xe.shape[1], inter = gate.rows;
  check_swiglu_experts(gate.rows, gate.cols, up.rows, up.cols, down.rows, down.cols, dim, op);
  require_dim(ye, 0, rows, op, "ye", "rows");
  require_dim(ye, 1, dim, op, "ye", "columns");
  if (quantize) {
    R1_CHECK(dim % 128 == 0 && inter % 128 == 0, op, "dim = ", dim, " and inter = ", inter,
             " must be multiples of 128 for FP8 activations");
  }
  Tensor g = Tensor::empty(DType::f32, {rows, inter}, Space::cuda, stream);  // [R, inter] gate, then h
  Tensor u = Tensor::empty(DType::f32, {rows, inter}, Space::cuda, stream);  // [R, inter]
  // A projection's input: the f32 activations and, when quantizing, their 1 x 128 e4m3 codes and
  // MN-major scales, made once per input (gate and up share xe's).
  struct Input {
    View<const float, 2> x;  // [R, K]
    Tensor q, s;             // [R, K] e4m3, [K / 128, R] f32 (quantize only)
    View<float, 2> sv;       // [R, K / 128] view of s
  };
  auto input = [&](View<const float, 2> a) {
    Input in{a, Tensor(), Tensor(), View<float, 2>{}};
    if (quantize) {
      const int64_t k = a.shape[1];
      in.q = Tensor::empty(DType::f8_e4m3, {rows, k}, Space::cuda, stream);
      in.s = Tensor::empty(DType::f32, {k / 128, rows}, Space::cuda, stream);
      in.sv = mn_major_scales(in.s.data_as<float>(), rows, k / 128);
      act_quant<128, float>(a, in.q.view<fp8_e4m3, 2>(), in.sv, stream);
    }
    return in;
  };
  // y = a . W_e^T: f32 a against bf16 / exactly dequantized FP8 weights, or a's codes against the
  // FP8 codes.
  auto gemm = [&](const Input& a, const ExpertWeights<TW>& w, const ExpertWeights<float>* ws, View<float, 2> y) {
    if constexpr (std::is_same_v<TW, bf16>) {
      grouped_linear_f32(a.x, offsets, w, y, stream);
    } else if (!quantize) {
      grouped_linear_f32(a.x, offsets, w, *ws, y, stream);
    } else {
      grouped_linear_f32(a.q.view<const fp8_e4m3, 2>(), a.sv.as_const(), offsets, w, *ws, y, stream);
    }
  };
  const Input x_in = input(xe);
  gemm(x_in, gate, gate_s, g.view<float, 2>());
  gemm(x_in, up, up_s, u.view<float, 2>());
  swiglu<float, float, float>(g.view<const float, 2>(), u.view<const float, 2>(), g.view<float, 2>(), stream);
  gemm(input(g.view<const float, 2>()), down, down_s, ye);
}

}  // namespace detail

}  // namespace r1::cuda
