// SPDX-License-Identifier: MIT
// Definitions of r1::cuda::argmax and sample (declared in sampling.hpp). One block per row.
//
// Order key: a token's d = z - max (fp32, <= 0) mapped to a uint32 that grows with d (-0 taken
// as +0, since both have probability 1); the ref's order (probability descending, id ascending) is
// the order (key descending, id ascending). Every set the sampler works with is a prefix of that
// order, written Cut{key, idcut}: the tokens with key > cut.key, and those with key == cut.key and
// id < idcut. A radix descent (digits of 11, 11 and 10 bits, one pass over the row each, with
// per-digit histograms of counts and masses in shared memory) finds the key at which a running
// count or mass crosses a target; the tokens tied at that key all have the same probability, so
// how many of them the target needs is arithmetic, and a scan in id order finds the n-th of them.
// A draw costs about 10 passes over the row (L2-resident after the first).
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <type_traits>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/sampling.hpp"

namespace r1::cuda::detail {

inline constexpr int kSampleThreads = 512;
inline constexpr int kSampleMaxBins = 2048;  // 11-bit digits

/// A prefix of the sampling order (see the file comment).
struct Cut {
  uint32_t key;
  int idcut;
};
inline constexpr Cut kAllTokens{0u, INT_MAX};  // key 0 is a NaN pattern: every real token is above it

__device__ __forceinline__ bool in_cut(uint32_t key, int id, Cut c) {
  return key > c.key || (key == c.key && id < c.idcut);
}

__device__ __forceinline__ uint32_t order_key(float d) {
  const uint32_t b = d == 0.0f ? 0u : __float_as_uint(d);  // -0 and +0: the same probability
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

struct SampleShared {
  int cnt[kSampleMaxBins];
  double mass[kSampleMaxBins];
  double red_d[32];
  int red_i[32];
  float red_f[32];
  int found, last;
  int found_idx;
  int cnt_above;
  double mass_above;
};

template <class V>
__device__ __forceinline__ V warp_inclusive_scan(V v) {
  const int lane = int(threadIdx.x & 31);
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const V n = __shfl_up_sync(0xffffffffu, v, off);
    if (lane >= off) v += n;
  }
  return v;
}

/// Exclusive prefix sum over the block in thread order; `tot` is 32 values of shared memory.
template <class V>
__device__ V block_exclusive_scan(V v, V* tot) {
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5), nwarps = int(blockDim.x >> 5);
  const V incl = warp_inclusive_scan(v);
  if (lane == 31) tot[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    const V w = warp_inclusive_scan(lane < nwarps ? tot[lane] : V(0));
    tot[lane] = w;
  }
  __syncthreads();
  const V r = (warp > 0 ? tot[warp - 1] : V(0)) + incl - v;
  __syncthreads();  // tot may be reused
  return r;
}

template <class V>
__device__ V block_sum_all(V v, V* tot) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5), nwarps = int(blockDim.x >> 5);
  if (lane == 0) tot[warp] = v;
  __syncthreads();
  V s = 0;
  for (int w = 0; w < nwarps; ++w) s += tot[w];
  __syncthreads();
  return s;
}

template <class T>
struct RowView {
  const T* p;
  int vocab;
  float temp, mx;
  __device__ __forceinline__ float z(int i) const { return __fdiv_rn(float(p[i]), temp); }
  __device__ __forceinline__ float d(int i) const { return __fsub_rn(z(i), mx); }
};

/// Where a descent ended: the key, and over the candidate set the count and mass of the tokens
/// above it and the count of those at it.
struct Found {
  uint32_t key;
  int cnt_above;
  double mass_above;
  int cnt_eq;
};

/// Radix descent over the candidate set `cand`: the key of the first token (in sampling order)
/// at which the running count reaches `kcount` (by_count), or the running mass reaches `target`
/// (>= target, or > target when `strict`). When rounding leaves the target unreached, the last
/// candidate key.
template <class T>
__device__ Found descend(const RowView<T>& row, Cut cand, bool by_count, int64_t kcount, double target, bool strict,
                         SampleShared& sm) {
  uint32_t prefix = 0;
  int hi = 32;  // bits above `hi` are decided
  int cnt_above = 0;
  double mass_above = 0;
  int cnt_eq = 0;
  for (int level = 0; level < 3; ++level) {
    const int bits = level < 2 ? 11 : 10;
    const int shift = hi - bits, nb = 1 << bits;
    for (int b = int(threadIdx.x); b < nb; b += int(blockDim.x)) {
      sm.cnt[b] = 0;
      sm.mass[b] = 0;
    }
    if (threadIdx.x == 0) {
      sm.found = INT_MAX;
      sm.last = -1;
    }
    __syncthreads();
    // Runs of equal digits are summed in registers first: the leading digits of many tokens agree.
    int run_bin = -1, run_c = 0;
    double run_m = 0;
    for (int i = int(threadIdx.x); i < row.vocab; i += int(blockDim.x)) {
      const float d = row.d(i);
      const uint32_t key = order_key(d);
      if (!in_cut(key, i, cand)) continue;
      if (level > 0 && (key >> hi) != prefix) continue;
      const int bin = int((key >> shift) & uint32_t(nb - 1));
      if (bin != run_bin) {
        if (run_c > 0) {
          atomicAdd(&sm.cnt[run_bin], run_c);
          if (!by_count) atomicAdd(&sm.mass[run_bin], run_m);
        }
        run_bin = bin;
        run_c = 0;
        run_m = 0;
      }
      ++run_c;
      if (!by_count) run_m += double(expf(d));
    }
    if (run_c > 0) {
      atomicAdd(&sm.cnt[run_bin], run_c);
      if (!by_count) atomicAdd(&sm.mass[run_bin], run_m);
    }
    __syncthreads();
    // Bins in descending digit order: thread t owns positions [per * t, per * (t + 1)).
    const int per = nb / int(blockDim.x);
    int c_loc = 0;
    double m_loc = 0;
    for (int j = 0; j < per; ++j) {
      const int b = nb - 1 - (int(threadIdx.x) * per + j);
      c_loc += sm.cnt[b];
      m_loc += sm.mass[b];
    }
    const int c_ex = block_exclusive_scan(c_loc, sm.red_i);
    const double m_ex = by_count ? 0.0 : block_exclusive_scan(m_loc, sm.red_d);
    int c_run = c_ex;
    double m_run = m_ex;
    for (int j = 0; j < per; ++j) {
      const int r = int(threadIdx.x) * per + j, b = nb - 1 - r;
      const int c = sm.cnt[b];
      if (c == 0) continue;  // the chosen bin always holds a candidate
      c_run += c;
      m_run += sm.mass[b];
      const bool hit = by_count ? int64_t(cnt_above) + c_run >= kcount
                                : (strict ? mass_above + m_run > target : mass_above + m_run >= target);
      if (hit) atomicMin(&sm.found, r);
      atomicMax(&sm.last, r);
    }
    __syncthreads();
    const int r_sel = sm.found != INT_MAX ? sm.found : sm.last;
    const int b_sel = nb - 1 - r_sel;
    if (int(threadIdx.x) == r_sel / per) {  // the owner of the chosen position: sums above it
      int c = c_ex;
      double mm = m_ex;
      for (int r = int(threadIdx.x) * per; r < r_sel; ++r) {
        c += sm.cnt[nb - 1 - r];
        mm += sm.mass[nb - 1 - r];
      }
      sm.cnt_above = c;
      sm.mass_above = mm;
    }
    __syncthreads();
    cnt_eq = sm.cnt[b_sel];
    cnt_above += sm.cnt_above;
    mass_above += sm.mass_above;
    prefix = (prefix << bits) | uint32_t(b_sel);
    hi = shift;
    __syncthreads();  // the bins are cleared by the next level
  }
  return Found{prefix, cnt_above, mass_above, cnt_eq};
}

/// Id of the n-th (from 0) token with key `key` in `cand`, in increasing id order; -1 if none.
template <class T>
__device__ int nth_tie(const RowView<T>& row, uint32_t key, int n, Cut cand, SampleShared& sm) {
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5), nwarps = int(blockDim.x >> 5);
  if (threadIdx.x == 0) sm.found_idx = -1;
  int base = 0;
  __syncthreads();
  for (int start = 0; start < row.vocab; start += int(blockDim.x)) {
    const int i = start + int(threadIdx.x);
    bool match = false;
    if (i < row.vocab) {
      const uint32_t k = order_key(row.d(i));
      match = k == key && in_cut(k, i, cand);
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, match);
    if (lane == 0) sm.red_i[warp] = __popc(ballot);
    __syncthreads();
    int off = 0, total = 0;
    for (int w = 0; w < nwarps; ++w) {
      off += w < warp ? sm.red_i[w] : 0;
      total += sm.red_i[w];
    }
    const int rank = base + off + __popc(ballot & ((1u << lane) - 1u));
    if (match && rank == n) sm.found_idx = i;
    base += total;
    __syncthreads();
    if (sm.found_idx >= 0 || base > n) break;
  }
  return sm.found_idx;
}

template <class T>
struct SampleArgs {
  const T* logits;  // [batch, vocab] (ld)
  int64_t ld;
  int vocab;
  int32_t* out;     // [batch] (out_stride)
  int64_t out_stride;
  float temperature;
  int top_k;
  float top_p;
  uint64_t seed, step;
  const int64_t* seed_step;  // [2] or null
};

/// Greedy: (value, index) reduction, lowest index on equal values; -1 for a NaN in the row.
template <class T>
__global__ void __launch_bounds__(kSampleThreads) argmax_kernel(SampleArgs<T> a) {
  __shared__ float bv[32];
  __shared__ int bi[32];
  __shared__ int any_nan;
  const int64_t r = blockIdx.x;
  const T* row = a.logits + r * a.ld;
  if (threadIdx.x == 0) any_nan = 0;
  __syncthreads();
  float v = -__int_as_float(0x7f800000);
  int idx = INT_MAX;
  bool nan = false;
  for (int i = int(threadIdx.x); i < a.vocab; i += int(blockDim.x)) {
    const float x = float(row[i]);
    nan |= x != x;
    if (x > v || (x == v && i < idx)) {
      v = x;
      idx = i;
    }
  }
  if (nan) any_nan = 1;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, off);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, off);
    if (ov > v || (ov == v && oi < idx)) {
      v = ov;
      idx = oi;
    }
  }
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  if (lane == 0) {
    bv[warp] = v;
    bi[warp] = idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < int(blockDim.x >> 5); ++w) {
      if (bv[w] > v || (bv[w] == v && bi[w] < idx)) {
        v = bv[w];
        idx = bi[w];
      }
    }
    a.out[r * a.out_stride] = any_nan ? -1 : idx;
  }
}

template <class T>
__global__ void __launch_bounds__(kSampleThreads) sample_kernel(SampleArgs<T> a) {
  __shared__ SampleShared sm;
  const int64_t r = blockIdx.x;
  RowView<T> row{a.logits + r * a.ld, a.vocab, a.temperature, 0.0f};
  // pass 1: the maximum of z, and whether the row has a NaN
  float mx = -__int_as_float(0x7f800000);
  int nan = 0;
  for (int i = int(threadIdx.x); i < a.vocab; i += int(blockDim.x)) {
    const float z = row.z(i);
    nan |= z != z;
    mx = fmaxf(mx, z);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
  if ((threadIdx.x & 31) == 0) sm.red_f[threadIdx.x >> 5] = mx;
  nan = block_sum_all(nan, sm.red_i);  // also orders the red_f writes before the reads below
  for (int w = 0; w < int(blockDim.x >> 5); ++w) mx = fmaxf(mx, sm.red_f[w]);
  if (nan > 0 || !(fabsf(mx) <= 3.402823466e38f)) {  // the ref throws: NaN logit, no finite logit
    if (threadIdx.x == 0) a.out[r * a.out_stride] = -1;
    return;
  }
  row.mx = mx;
  const uint64_t seed = a.seed_step ? uint64_t(a.seed_step[0]) : a.seed;
  const uint64_t step = a.seed_step ? uint64_t(a.seed_step[1]) : a.step;

  // top-k: the first k tokens
  Cut cand = kAllTokens;
  if (a.top_k > 0 && a.top_k < a.vocab) {
    const Found f = descend(row, kAllTokens, true, a.top_k, 0.0, false, sm);
    const int need = a.top_k - f.cnt_above;  // 1 .. cnt_eq tokens of the tied key
    cand = Cut{f.key, need >= f.cnt_eq ? INT_MAX : nth_tie(row, f.key, need, kAllTokens, sm)};
  }
  // mass of the candidates
  double m = 0;
  for (int i = int(threadIdx.x); i < a.vocab; i += int(blockDim.x)) {
    const float d = row.d(i);
    if (in_cut(order_key(d), i, cand)) m += double(expf(d));
  }
  double total = block_sum_all(m, sm.red_d);
  // top-p: the shortest prefix of the candidates reaching top_p of their mass
  if (a.top_p < 1.0f) {
    const double target = double(a.top_p) * total;
    const Found f = descend(row, cand, false, 0, target, false, sm);
    const double p = double(expf(key_value(f.key)));
    double n = p > 0 ? ceil((target - f.mass_above) / p) : double(f.cnt_eq);
    n = fmin(fmax(n, 1.0), double(f.cnt_eq));
    const int ni = int(n);
    const int limit = f.key == cand.key ? cand.idcut : INT_MAX;
    cand = Cut{f.key, ni >= f.cnt_eq ? limit : nth_tie(row, f.key, ni, cand, sm)};
    total = f.mass_above + double(ni) * p;
  }
  // the draw: the first candidate whose running mass exceeds u * total
  const double target = sampling_uniform(seed, uint64_t(r), step) * total;
  const Found f = descend(row, cand, false, 0, target, true, sm);
  const double p = double(expf(key_value(f.key)));
  double n = p > 0 ? floor((target - f.mass_above) / p) : 0.0;
  n = fmin(fmax(n, 0.0), double(f.cnt_eq - 1));
  const int id = nth_tie(row, f.key, int(n), cand, sm);
  if (threadIdx.x == 0) a.out[r * a.out_stride] = id;
}

__global__ void advance_step_kernel(int64_t* seed_step, int64_t stride) {
  seed_step[stride] = int64_t(uint64_t(seed_step[stride]) + 1u);
}

template <class T>
void launch_sample(View<const T, 2> logits, const ref::SamplingParams& params, uint64_t seed, uint64_t step,
                   const int64_t* seed_step, View<int32_t, 1> out, stream_t stream, const char* op) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<T, float>, "sample: logits are f32 or bf16");
  ref::validate(params);
  require_device(logits, op, "logits");
  require_device(out, op, "out");
  require_matrix(logits, op, "logits");
  require_dim(out, 0, logits.shape[0], op, "out", "entries");
  const int64_t batch = logits.shape[0], vocab = logits.shape[1];
  require_int32(batch, op, "batch");
  R1_CHECK(vocab < INT_MAX, op, "vocab ", vocab, " does not fit the kernel's 32-bit ids");
  if (batch == 0) return;
  R1_CHECK(vocab > 0, op, "empty logits (vocab 0)");
  SampleArgs<T> a{};
  a.logits = logits.data;
  a.ld = row_stride(logits);
  a.vocab = int(vocab);
  a.out = out.data;
  a.out_stride = out.stride[0];
  a.temperature = params.temperature;
  a.top_k = params.top_k;
  a.top_p = params.top_p;
  a.seed = seed;
  a.step = step;
  a.seed_step = seed_step;
  if (params.temperature <= 0) {
    argmax_kernel<<<unsigned(batch), kSampleThreads, 0, stream>>>(a);
  } else {
    sample_kernel<<<unsigned(batch), kSampleThreads, 0, stream>>>(a);
  }
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace r1::cuda::detail

namespace r1::cuda {

template <class T>
void argmax(View<const T, 2> logits, View<int32_t, 1> out, stream_t stream) {
  detail::launch_sample(logits, ref::SamplingParams{}, 0, 0, nullptr, out, stream, "cuda.argmax");
}

template <class T>
void sample(View<const T, 2> logits, const ref::SamplingParams& params, uint64_t seed, uint64_t step,
            View<int32_t, 1> out, stream_t stream) {
  detail::launch_sample(logits, params, seed, step, nullptr, out, stream, "cuda.sample");
}

template <class T>
void sample(View<const T, 2> logits, const ref::SamplingParams& params, View<const int64_t, 1> seed_step,
            View<int32_t, 1> out, stream_t stream) {
  const char* op = "cuda.sample";
  detail::require_device(seed_step, op, "seed_step");
  R1_CHECK(seed_step.shape[0] == 2 && seed_step.stride[0] == 1, op,
           "seed_step must be 2 contiguous int64 values {seed, step}, got ", seed_step.shape[0]);
  detail::launch_sample(logits, params, 0, 0, seed_step.data, out, stream, op);
}

}  // namespace r1::cuda
