// SPDX-License-Identifier: MIT
// Definitions of r1::cuda::argmax and sample (declared in sampling.hpp).
//
// Order key: a token's d = z - max (fp32, <= 0) mapped to a uint32 that grows with d (-0 taken
// as +0, since both have probability 1); the ref's order (probability descending, id ascending) is
// the order (key descending, id ascending). Every set the sampler works with is a prefix of that
// order, Cut{key, n}: the tokens with key > cut.key, and the n lowest-id tokens with key == cut.key.
//
// Masses: a token's mass is its fp32 exp(d) in fixed point, round(exp(d) * 2^S) with S = 62 -
// ceil(log2(vocab)), so a row's total stays below 2^62 and every sum of masses is an exact uint64
// whatever the order of its additions. Blocks add their partial sums in any order and the draw is
// still one function of the logits (bit-reproducible), and masses combine by arithmetic: the
// tokens tied at a key all have the same mass q, so n of them weigh exactly n * q.
//
// Radix descent: the key at which a running count or mass (in sampling order) crosses a target is
// found digit by digit (11, 11 and 10 bits of the key), each digit from a histogram of the counts
// and masses of the tokens that share the digits above it. The tokens tied at the crossing key all
// have the same probability, so how many of them the target needs is arithmetic. Sums are exact
// and every target lies inside the current candidate prefix (the top-k count <= vocab, the top-p
// mass <= the top-k set's, the draw's < the nucleus's), so running sums over the whole row and over
// the candidates agree up to the crossing: each descent runs over all tokens, one level-0
// histogram serves all three, and a cut never needs the id where it splits a tie group, only how
// many tied tokens it keeps. Only the draw's tie group is searched by id, for its n-th token.
//
// Work split: a row is cut into `chunks` ranges of tokens, one block each (256 for one row, fewer
// as the batch grows), and a draw is a fixed sequence of kernels on the stream:
//   max       each block: its range's max z and NaN flag; zeroes the row's histograms
//   level 0   each block: the level-0 histogram of its range, added into the row's (global atomics)
//   level 1/2 for each descent that applies (top-k, top-p, draw): the next digit's histogram
//   tie       each block: how many tokens of its range have the drawn key
// The last block of a pass to finish (a per-row counter; no grid-wide sync) reads the row's
// histogram and picks the digit; when a descent ends it works out the cut and the next descent's
// target and first digit (from the kept level-0 histogram). The tie pass's last block finds the
// range holding the n-th tied token and scans that range. A draw is 5 to 9 launches, each one pass
// over the row (L2-resident after the first). Argmax is one pass, plus a one-warp combine per row
// when rows are split.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "r1/kernels/cuda/common.cuh"
#include "r1/kernels/cuda/sampling.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1::cuda::detail {

inline constexpr int kSampleThreads = 256;
inline constexpr int kSampleMaxBins = 2048;  // 11-bit digits
// Sampling: about 1024 blocks per pass (enough loads in flight to stream rows from HBM at large
// batch), at most 256 ranges per row (one row: 256 blocks, two per SM on an H100) of at least 32
// tokens; rows go in groups of at most 256 (their histograms take 48 KB of scratch per row).
inline constexpr int kSampleTargetBlocks = 1024;
inline constexpr int kSampleMaxChunks = 256;
inline constexpr int kSampleMinChunk = 32;
inline constexpr int kSampleMaxRows = 256;
// Argmax is one light pass: ranges of at least 1024 tokens, as many blocks as are resident at once
// (launch_argmax).
inline constexpr int kArgmaxMinChunk = 1024;
static_assert(kSampleMaxChunks <= kSampleThreads, "a row's ranges are reduced one per thread");
static_assert(kSampleMaxBins % kSampleThreads == 0 && kSampleMaxBins / kSampleThreads <= 8, "bins per thread");

using u64 = unsigned long long;  // what CUDA's 64-bit atomics and cache-hinted loads take

/// How the rows are cut: `chunks` ranges of `len` tokens per row (the last may be shorter; none is
/// empty, since chunks = ceil(vocab / len)).
struct RowSplit {
  int chunks, len;
};

/// About `target_blocks` blocks over `rows` rows, at most `max_chunks` ranges per row of at least
/// `min_len` tokens (one range for a shorter row).
inline RowSplit split_rows(int64_t rows, int64_t vocab, int64_t target_blocks, int64_t max_chunks,
                           int64_t min_len) {
  const int64_t most = std::min(max_chunks, ceil_div(vocab, min_len));
  const int64_t want = std::clamp<int64_t>(ceil_div(target_blocks, rows), 1, most);
  const int64_t len = ceil_div(vocab, want);
  return RowSplit{int(ceil_div(vocab, len)), int(len)};
}

/// At most `resident` blocks (one wave) over `rows` rows when rows < resident: floor(resident /
/// rows) ranges per row of at least `min_len` tokens, one range per row otherwise. A second,
/// partly filled wave would leave most SMs idle for a whole block's time: 1024 blocks with 792
/// resident (argmax, 6 blocks per SM on an H100) took 69.7 us at batch 256, 62% of copy bandwidth.
inline RowSplit split_rows_one_wave(int64_t rows, int64_t vocab, int64_t resident, int64_t min_len) {
  const int64_t most = std::max<int64_t>(1, ceil_div(vocab, min_len));
  const int64_t want = std::clamp<int64_t>(resident / std::max<int64_t>(rows, 1), 1, most);
  const int64_t len = ceil_div(vocab, want);
  return RowSplit{int(ceil_div(vocab, len)), int(len)};
}

__device__ __forceinline__ int range_lo(const RowSplit& s, int c) { return c * s.len; }  // < vocab
__device__ __forceinline__ int range_hi(const RowSplit& s, int c, int vocab) {
  return int(min(int64_t(vocab), int64_t(c) * s.len + s.len));
}

/// Calls f(i, x) with x = float(p[i]) for the ids i of [lo, hi) this thread owns (lo + threadIdx.x
/// + k * blockDim.x, in increasing order), loading kUnroll before using any so that several loads
/// are in flight per thread (argmax, a single pass from HBM, keeps eight in flight).
template <int kUnroll = 4, class T, class F>
__device__ __forceinline__ void for_range(const T* p, int lo, int hi, F&& f) {
  const int64_t nt = blockDim.x;
  for (int64_t i0 = int64_t(lo) + threadIdx.x; i0 < hi; i0 += kUnroll * nt) {
    float x[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * nt;
      x[u] = i < hi ? float(p[i]) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * nt;
      if (i < hi) f(int(i), x[u]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Block reductions

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

/// The block's sum, in every thread; `tot` is 32 values of shared memory.
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

/// The block's fmaxf, in every thread; `tot` is 32 floats of shared memory.
__device__ __forceinline__ float block_max_all(float v, float* tot) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5), nwarps = int(blockDim.x >> 5);
  if (lane == 0) tot[warp] = v;
  __syncthreads();
  for (int w = 0; w < nwarps; ++w) v = fmaxf(v, tot[w]);
  __syncthreads();
  return v;
}

// ---------------------------------------------------------------------------------------------
// Argmax

/// (v, i) beats (bv, bi): a larger value, or an equal one (-0 == +0) at a lower id; NaN never wins.
/// A total order on (value, id), so any grouping of the comparisons finds the same winner.
__device__ __forceinline__ bool beats(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

/// The warp's best (v, idx) under `beats`, in every lane (a butterfly of 5 shuffle pairs).
__device__ __forceinline__ void warp_best(float& v, int& idx) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, off);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, off);
    if (beats(ov, oi, v, idx)) {
      v = ov;
      idx = oi;
    }
  }
}

/// One range's winner; idx -1 when the range holds a NaN.
struct ArgmaxPart {
  float v;
  int idx;
};

template <class T>
struct ArgmaxArgs {
  const T* logits;  // [batch, vocab] (ld)
  int64_t ld;
  int vocab;
  int32_t* out;     // [batch] (out_stride)
  int64_t out_stride;
  RowSplit split;
  ArgmaxPart* part;  // [batch, chunks] scratch, when chunks > 1
};

/// Block (row, range): the range's largest value at its lowest id, into out (one range per row)
/// or into part.
template <class T>
__global__ void __launch_bounds__(kSampleThreads) argmax_kernel(ArgmaxArgs<T> a) {
  __shared__ float bv[32];
  __shared__ int bi[32];
  const int64_t r = blockIdx.x;
  const int c = int(blockIdx.y);
  float v = -__int_as_float(0x7f800000);
  int idx = INT_MAX;
  bool nan = false;
  for_range<8>(a.logits + r * a.ld, range_lo(a.split, c), range_hi(a.split, c, a.vocab), [&](int i, float x) {
    nan |= x != x;
    if (beats(x, i, v, idx)) {
      v = x;
      idx = i;
    }
  });
  warp_best(v, idx);
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  if (lane == 0) {
    bv[warp] = v;
    bi[warp] = idx;
  }
  const bool any_nan = __syncthreads_or(nan) != 0;  // also orders the bv / bi writes before the reads
  if (threadIdx.x == 0) {
    for (int w = 1; w < int(blockDim.x >> 5); ++w) {
      if (beats(bv[w], bi[w], v, idx)) {
        v = bv[w];
        idx = bi[w];
      }
    }
    if (a.split.chunks == 1) {
      a.out[r * a.out_stride] = any_nan ? -1 : idx;
    } else {
      a.part[r * a.split.chunks + c] = ArgmaxPart{v, any_nan ? -1 : idx};
    }
  }
}

/// One warp per row: the winner of the row's ranges; -1 if one held a NaN.
template <class T>
__global__ void __launch_bounds__(32) argmax_combine_kernel(ArgmaxArgs<T> a) {
  const int64_t r = blockIdx.x;
  float v = -__int_as_float(0x7f800000);
  int idx = INT_MAX;
  bool nan = false;
  for (int c = int(threadIdx.x); c < a.split.chunks; c += 32) {
    const ArgmaxPart p = a.part[r * a.split.chunks + c];
    nan |= p.idx < 0;
    if (p.idx >= 0 && beats(p.v, p.idx, v, idx)) {
      v = p.v;
      idx = p.idx;
    }
  }
  warp_best(v, idx);
  nan = __any_sync(0xffffffffu, nan);
  if (threadIdx.x == 0) a.out[r * a.out_stride] = nan ? -1 : idx;
}

// ---------------------------------------------------------------------------------------------
// Sampling: keys and masses

__device__ __forceinline__ uint32_t order_key(float d) {
  const uint32_t b = d == 0.0f ? 0u : __float_as_uint(d);  // -0 and +0: the same probability
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/// A token's mass, round(exp(d) * 2^S); `scale` = 2^S, so the product is exact in fp32.
__device__ __forceinline__ u64 fixed_mass(float d, float scale) { return __float2ull_rn(expf(d) * scale); }

/// lo:hi += v in shared memory with native 32-bit atomics: a 64-bit atomic add on shared memory is
/// a compare-and-swap loop (ATOMS.CAST.SPIN.64 on sm_90), slow when many threads hit one bin.
/// Exact: the carry out of the low half is read off the value its atomic returns.
__device__ __forceinline__ void shared_add_u64(uint32_t* lo, uint32_t* hi, u64 v) {
  const uint32_t vlo = uint32_t(v), vhi = uint32_t(v >> 32);
  const uint32_t old = atomicAdd(lo, vlo);
  const uint32_t up = vhi + (old > 0xffffffffu - vlo ? 1u : 0u);
  if (up != 0) atomicAdd(hi, up);
}

/// The descents, in the order a draw runs those that apply.
enum SampleDescent : int { kTopK = 0, kTopP = 1, kDraw = 2 };

/// A row's state in the scratch, carried from pass to pass; between passes only the last block of
/// a pass writes it (`done` aside).
struct SampleRow {
  float mx;         // max z
  int bad;          // 1: a NaN logit, or no finite one: token -1 (where the ref throws)
  uint32_t done;    // blocks of the current pass that finished (the last resets it)
  uint32_t prefix;  // the descent in progress: its digits so far (after level 2, the crossing key)
  u64 cnt_above;    // its count of the tokens whose key is above those digits
  u64 mass_above;   // their mass
  u64 target;       // its target: a count (top-k) or a mass (top-p, draw)
  int64_t tie_n;    // the draw: which (from 0, by id) of the tokens at the crossing key
};

template <class T>
struct SampleArgs {
  const T* logits;  // [rows, vocab] (ld)
  int64_t ld;
  int vocab;
  int32_t* out;     // [rows] (out_stride)
  int64_t out_stride;
  int64_t row0;     // the batch row of row 0 (the uniform's row index)
  float temperature;
  int top_k;        // 1 .. vocab - 1, or 0: no top-k cut
  float top_p;      // < 1: a top-p cut
  uint64_t seed, step;
  const int64_t* seed_step;  // [2] or null
  float scale;      // 2^S: a mass is round(exp(d) * scale)
  RowSplit split;
  SampleRow* rows;  // [rows] scratch
  float* part_max;  // [rows, chunks] the max pass's max z per range
  int* part_cnt;    // [rows, chunks] the max pass's NaN flags, then the tie pass's counts
  uint32_t* hcnt;   // [rows, 2, 2048] tokens per digit: the level-0 histogram (kept), levels 1 and 2
  u64* hmass;       // [rows, 2, 2048] their masses, same layout
};

struct PassShared {
  uint32_t cnt[kSampleMaxBins];      // the block's histogram: counts,
  uint32_t mass_lo[kSampleMaxBins];  // and masses as 32-bit halves (see shared_add_u64)
  uint32_t mass_hi[kSampleMaxBins];
  SampleRow st;                      // the last block: the row's state
  u64 red[32];
  float red_f[32];
  int found, last, ticket, next;
  uint32_t cnt_eq;
};

// ---------------------------------------------------------------------------------------------
// Sampling: the last block's steps

/// One digit of the descent in progress (sm.st), whole block: over the histogram (cnt, mass) of
/// `bits`-bit digits in descending digit order, the first bin at which the running count reaches
/// the target (top-k), or the running mass reaches it (top-p) or passes it (draw); if none does
/// (not expected: every target lies inside the row), the last non-empty bin. Appends the digit to
/// sm.st.prefix, adds the bins above it to sm.st's sums, and leaves the bin's count in sm.cnt_eq.
/// The histogram holds other blocks' atomics: read from L2.
__device__ void select_digit(const uint32_t* cnt, const u64* mass, int bits, int desc, PassShared& sm) {
  constexpr int kPerMax = kSampleMaxBins / kSampleThreads;
  const int nb = 1 << bits, per = nb / kSampleThreads, t = int(threadIdx.x);
  // thread t owns positions [t * per, (t + 1) * per) of the descending order: bins nb - 1 - pos
  uint32_t c[kPerMax];
  u64 m[kPerMax];
  u64 c_loc = 0, m_loc = 0;
#pragma unroll
  for (int j = 0; j < kPerMax; ++j) {
    const int b = nb - 1 - (t * per + j);
    c[j] = j < per ? __ldcg(cnt + b) : 0u;
    m[j] = j < per ? __ldcg(mass + b) : 0ull;
    c_loc += c[j];
    m_loc += m[j];
  }
  const SampleRow st = sm.st;
  if (t == 0) {
    sm.found = INT_MAX;
    sm.last = -1;
  }
  const u64 c_ex = block_exclusive_scan(c_loc, sm.red);
  const u64 m_ex = block_exclusive_scan(m_loc, sm.red);
  u64 c_run = st.cnt_above + c_ex, m_run = st.mass_above + m_ex;
  int first = INT_MAX, last = -1;
#pragma unroll
  for (int j = 0; j < kPerMax; ++j) {
    if (j >= per || c[j] == 0) continue;  // the chosen bin holds a token
    c_run += c[j];
    m_run += m[j];
    const bool hit = desc == kTopK ? c_run >= st.target : desc == kTopP ? m_run >= st.target : m_run > st.target;
    if (hit && first == INT_MAX) first = t * per + j;
    last = t * per + j;
  }
  if (first != INT_MAX) atomicMin(&sm.found, first);
  if (last >= 0) atomicMax(&sm.last, last);
  __syncthreads();
  const int pos = sm.found != INT_MAX ? sm.found : max(sm.last, 0);
  if (t == pos / per) {  // the owner of the chosen position: the sums above it
    u64 ca = st.cnt_above + c_ex, ma = st.mass_above + m_ex;
    uint32_t eq = 0;
#pragma unroll
    for (int j = 0; j < kPerMax; ++j) {
      if (j >= per) continue;
      if (t * per + j < pos) {
        ca += c[j];
        ma += m[j];
      }
      if (t * per + j == pos) eq = c[j];
    }
    sm.st.cnt_above = ca;
    sm.st.mass_above = ma;
    sm.st.prefix = (st.prefix << bits) | uint32_t(nb - 1 - pos);
    sm.cnt_eq = eq;
  }
  __syncthreads();
}

/// Starts descent `desc` over the candidates of mass `total` (thread 0): its target.
template <class T>
__device__ void begin_descent(int desc, u64 total, const SampleArgs<T>& a, int64_t r, SampleRow& st) {
  st.prefix = 0;
  st.cnt_above = 0;
  st.mass_above = 0;
  if (desc == kTopK) {
    st.target = u64(a.top_k);
  } else if (desc == kTopP) {
    // the shortest prefix whose mass reaches top_p * total: mass >= ceil(top_p * total), >= 1
    const u64 t = u64(fmax(ceil(double(a.top_p) * double(total)), 1.0));
    st.target = t < total ? t : total;
  } else {
    // the first token whose running mass exceeds u * total: for integer masses, exceeds floor(u * total)
    const uint64_t seed = a.seed_step ? uint64_t(a.seed_step[0]) : a.seed;
    const uint64_t step = a.seed_step ? uint64_t(a.seed_step[1]) : a.step;
    const double u = sampling_uniform(seed, uint64_t(a.row0 + r), step);
    const u64 t = u64(floor(u * double(total)));
    st.target = total == 0 ? 0 : t < total ? t : total - 1;  // u < 1, but u * total rounds
  }
}

/// Ends descent `desc` (thread 0); sm.st.prefix is the crossing key, sm.cnt_eq the number of tokens
/// at it. Top-k and top-p settle how many of those tokens the cut keeps and start the next descent
/// over the cut's mass; the draw records which of them it picked. Returns the next descent, or -1.
template <class T>
__device__ int finish_descent(int desc, const SampleArgs<T>& a, int64_t r, PassShared& sm) {
  SampleRow& st = sm.st;
  const u64 q = fixed_mass(key_value(st.prefix), a.scale);  // the mass of each token at the key
  const int64_t eq = int64_t(sm.cnt_eq);
  const u64 rem = st.target > st.mass_above ? st.target - st.mass_above : 0;  // target beyond the keys above
  if (desc == kDraw) {
    const int64_t n = q > 0 ? int64_t(rem / q) : 0;  // tokens [0, n] reach past the target: the n-th
    st.tie_n = max(min(n, eq - 1), int64_t(0));
    return -1;
  }
  int64_t n = desc == kTopK ? int64_t(st.target) - int64_t(st.cnt_above)  // the first top_k tokens
                            : (q > 0 ? int64_t((rem + q - 1) / q) : eq);   // the mass reaches top_p
  n = max(min(n, eq), int64_t(1));
  const int next = desc == kTopK && a.top_p < 1.0f ? kTopP : kDraw;
  begin_descent(next, st.mass_above + u64(n) * q, a, r, st);
  return next;
}

// ---------------------------------------------------------------------------------------------
// Sampling: the passes (grid [rows, chunks]: block (r, c) takes range c of row r)

/// The max of z over each range and whether it holds a NaN; zeroes the row's histograms and pass
/// counter, which the level passes only add to.
template <class T>
__global__ void __launch_bounds__(kSampleThreads) sample_max_kernel(SampleArgs<T> a) {
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const int c = int(blockIdx.y), C = a.split.chunks;
  float mx = -__int_as_float(0x7f800000);
  bool nan = false;
  for_range(a.logits + r * a.ld, range_lo(a.split, c), range_hi(a.split, c, a.vocab), [&](int, float x) {
    const float z = __fdiv_rn(x, a.temperature);
    nan |= z != z;
    mx = fmaxf(mx, z);
  });
  nan = __syncthreads_or(nan) != 0;
  mx = block_max_all(mx, red);
  if (threadIdx.x == 0) {
    a.part_max[r * C + c] = mx;
    a.part_cnt[r * C + c] = nan ? 1 : 0;
    if (c == 0) a.rows[r].done = 0;
  }
  constexpr int kWords = 2 * kSampleMaxBins;
  uint32_t* hc = a.hcnt + r * kWords;
  u64* hm = a.hmass + r * kWords;
  for (int w = c * kSampleThreads + int(threadIdx.x); w < kWords; w += C * kSampleThreads) {
    hc[w] = 0;
    hm[w] = 0;
  }
}

/// One digit of descent `desc` (level 0, 1 or 2). Each block adds the histogram of its range's
/// tokens (level > 0: those whose key starts with the row's prefix) into the row's; the last block
/// to finish picks the digit (and at level 2 ends the descent, and when another follows, picks its
/// level-0 digit too). Level 0 also settles the row's max and rejects NaN / non-finite rows.
template <class T>
__global__ void __launch_bounds__(kSampleThreads) sample_pass_kernel(SampleArgs<T> a, int level, int desc) {
  __shared__ PassShared sm;
  const int64_t r = blockIdx.x;
  const int c = int(blockIdx.y), C = a.split.chunks, t = int(threadIdx.x);
  SampleRow* row = a.rows + r;
  float mx;
  if (level == 0) {  // every block reduces the ranges' results (one per thread): the same max everywhere
    const bool nan = __syncthreads_or(t < C && a.part_cnt[r * C + t] != 0) != 0;
    mx = block_max_all(t < C ? a.part_max[r * C + t] : -__int_as_float(0x7f800000), sm.red_f);
    if (nan || !(fabsf(mx) <= 3.402823466e38f)) {  // the ref throws: NaN logit, no finite logit
      if (c == 0 && t == 0) row->bad = 1;
      return;
    }
  } else {
    if (row->bad) return;
    mx = row->mx;
  }
  const int bits = level < 2 ? 11 : 10, shift = level == 0 ? 21 : level == 1 ? 10 : 0, nb = 1 << bits;
  const uint32_t prefix = level > 0 ? row->prefix : 0u;
  for (int b = t; b < nb; b += kSampleThreads) {
    sm.cnt[b] = 0;
    sm.mass_lo[b] = 0;
    sm.mass_hi[b] = 0;
  }
  __syncthreads();
  // Runs of equal digits are summed in registers first: the leading digits of many tokens agree.
  int run_bin = -1;
  uint32_t run_c = 0;
  u64 run_m = 0;
  for_range(a.logits + r * a.ld, range_lo(a.split, c), range_hi(a.split, c, a.vocab), [&](int, float x) {
    const float d = __fsub_rn(__fdiv_rn(x, a.temperature), mx);
    const uint32_t key = order_key(d);
    if (level > 0 && (key >> (shift + bits)) != prefix) return;
    const int bin = int((key >> shift) & uint32_t(nb - 1));
    if (bin != run_bin) {
      if (run_c > 0) {
        atomicAdd(&sm.cnt[run_bin], run_c);
        shared_add_u64(&sm.mass_lo[run_bin], &sm.mass_hi[run_bin], run_m);
      }
      run_bin = bin;
      run_c = 0;
      run_m = 0;
    }
    ++run_c;
    run_m += fixed_mass(d, a.scale);
  });
  if (run_c > 0) {
    atomicAdd(&sm.cnt[run_bin], run_c);
    shared_add_u64(&sm.mass_lo[run_bin], &sm.mass_hi[run_bin], run_m);
  }
  __syncthreads();
  uint32_t* const h0c = a.hcnt + r * 2 * kSampleMaxBins;  // [2048] level 0
  u64* const h0m = a.hmass + r * 2 * kSampleMaxBins;
  uint32_t* const h1c = h0c + kSampleMaxBins;              // [2048] levels 1 and 2
  u64* const h1m = h0m + kSampleMaxBins;
  for (int b = t; b < nb; b += kSampleThreads) {
    const uint32_t n = sm.cnt[b];
    if (n == 0) continue;
    atomicAdd(level == 0 ? h0c + b : h1c + b, n);
    atomicAdd(level == 0 ? h0m + b : h1m + b, (u64(sm.mass_hi[b]) << 32) | sm.mass_lo[b]);
  }
  // The row's last block to get here goes on (the threadFenceReduction pattern): its fence pairs
  // with every block's fence between its histogram atomics and its ticket.
  __threadfence();
  __syncthreads();
  if (t == 0) sm.ticket = int(atomicAdd(&row->done, 1u));
  __syncthreads();
  if (sm.ticket != C - 1) return;
  __threadfence();
  if (t == 0) sm.st = *row;
  __syncthreads();
  if (level == 0) {
    u64 total = 0;  // the row's mass: the candidates of a first top-p or draw descent
    if (desc != kTopK) {
      for (int b = t; b < kSampleMaxBins; b += kSampleThreads) total += __ldcg(h0m + b);
      total = block_sum_all(total, sm.red);
    }
    if (t == 0) {
      sm.st.mx = mx;
      sm.st.bad = 0;
      begin_descent(desc, total, a, r, sm.st);
    }
    __syncthreads();
  }
  for (int lv = level, ds = desc;;) {
    select_digit(lv == 0 ? h0c : h1c, lv == 0 ? h0m : h1m, lv < 2 ? 11 : 10, ds, sm);
    if (lv > 0) {  // read by everyone (select_digit ends in a barrier): clear for the next descent
      for (int b = t; b < kSampleMaxBins; b += kSampleThreads) {
        h1c[b] = 0;
        h1m[b] = 0;
      }
    }
    if (lv < 2) break;
    if (t == 0) sm.next = finish_descent(ds, a, r, sm);
    __syncthreads();
    if (sm.next < 0) break;
    ds = sm.next;  // its level-0 digit, from the kept level-0 histogram
    lv = 0;
  }
  if (t == 0) {
    sm.st.done = 0;
    *row = sm.st;
  }
}

struct TieShared {
  int red_i[32];
  long long red[32];
  int ticket, pick, found_idx;
  long long base;
};

/// Id of the n-th (from 0) token of [lo, hi) with key `key`, in increasing id order; -1 if none.
template <class T>
__device__ int nth_in_range(const T* p, int lo, int hi, float temp, float mx, uint32_t key, long long n,
                            TieShared& sm) {
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5), nwarps = int(blockDim.x >> 5);
  if (threadIdx.x == 0) sm.found_idx = -1;
  long long base = 0;
  __syncthreads();
  for (int64_t start = lo; start < hi; start += blockDim.x) {
    const int64_t i = start + threadIdx.x;
    const bool match = i < hi && order_key(__fsub_rn(__fdiv_rn(float(p[i]), temp), mx)) == key;
    const unsigned ballot = __ballot_sync(0xffffffffu, match);
    if (lane == 0) sm.red_i[warp] = __popc(ballot);
    __syncthreads();
    int off = 0, total = 0;
    for (int w = 0; w < nwarps; ++w) {
      off += w < warp ? sm.red_i[w] : 0;
      total += sm.red_i[w];
    }
    const long long rank = base + off + __popc(ballot & ((1u << lane) - 1u));
    if (match && rank == n) sm.found_idx = int(i);
    base += total;
    __syncthreads();
    if (sm.found_idx >= 0 || base > n) break;
  }
  return sm.found_idx;
}

/// The drawn token: each block counts its range's tokens at the drawn key; the last block finds
/// the range holding the tie_n-th of them and scans it. Writes out (-1 for a rejected row).
template <class T>
__global__ void __launch_bounds__(kSampleThreads) sample_tie_kernel(SampleArgs<T> a) {
  __shared__ TieShared sm;
  const int64_t r = blockIdx.x;
  const int c = int(blockIdx.y), C = a.split.chunks, t = int(threadIdx.x);
  SampleRow* row = a.rows + r;
  int32_t* out = a.out + r * a.out_stride;
  if (row->bad) {
    if (c == 0 && t == 0) *out = -1;
    return;
  }
  const T* p = a.logits + r * a.ld;
  const float mx = row->mx;
  const uint32_t key = row->prefix;
  const long long n = row->tie_n;
  int cnt = 0;
  for_range(p, range_lo(a.split, c), range_hi(a.split, c, a.vocab), [&](int, float x) {
    cnt += order_key(__fsub_rn(__fdiv_rn(x, a.temperature), mx)) == key ? 1 : 0;
  });
  cnt = block_sum_all(cnt, sm.red_i);
  if (t == 0) a.part_cnt[r * C + c] = cnt;
  __threadfence();
  __syncthreads();
  if (t == 0) sm.ticket = int(atomicAdd(&row->done, 1u));
  __syncthreads();
  if (sm.ticket != C - 1) return;
  __threadfence();
  // ranges in id order, one per thread (C <= kSampleMaxChunks): the one where the running count passes n
  const long long k = t < C ? __ldcg(a.part_cnt + r * C + t) : 0;
  if (t == 0) sm.pick = -1;
  const long long before = block_exclusive_scan(k, sm.red);
  if (k > 0 && before <= n && n < before + k) {
    sm.pick = t;
    sm.base = before;
  }
  __syncthreads();
  int id = -1;
  if (sm.pick >= 0) {
    id = nth_in_range(p, range_lo(a.split, sm.pick), range_hi(a.split, sm.pick, a.vocab), a.temperature, mx, key,
                      n - sm.base, sm);
  }
  if (t == 0) {
    *out = id;
    row->done = 0;
  }
}

__global__ void advance_step_kernel(int64_t* seed_step, int64_t stride) {
  seed_step[stride] = int64_t(uint64_t(seed_step[stride]) + 1u);
}

// ---------------------------------------------------------------------------------------------
// Host

template <class T>
void launch_argmax(View<const T, 2> logits, View<int32_t, 1> out, stream_t stream) {
  const int64_t batch = logits.shape[0], vocab = logits.shape[1];
  ArgmaxArgs<T> a{};
  a.logits = logits.data;
  a.ld = row_stride(logits);
  a.vocab = int(vocab);
  a.out = out.data;
  a.out_stride = out.stride[0];
  const KernelInfo& k = prepare_kernel<argmax_kernel<T>>(kSampleThreads, 0, "cuda.argmax");
  a.split = split_rows_one_wave(batch, vocab, int64_t(k.blocks_per_sm) * current_device().sms, kArgmaxMinChunk);
  Tensor part;  // [batch, chunks] ArgmaxPart (8 bytes each, as i64), when rows are split
  if (a.split.chunks > 1) {
    part = Tensor::empty(DType::i64, {batch, int64_t(a.split.chunks)}, Space::cuda, stream);
    a.part = static_cast<ArgmaxPart*>(part.data());
  }
  argmax_kernel<T><<<dim3(unsigned(batch), unsigned(a.split.chunks)), kSampleThreads, 0, stream>>>(a);
  R1_CUDA_CHECK_LAUNCH();
  if (a.split.chunks > 1) {
    argmax_combine_kernel<T><<<unsigned(batch), 32, 0, stream>>>(a);
    R1_CUDA_CHECK_LAUNCH();
  }
}

/// The fixed-point exponent S = 62 - ceil(log2(vocab)): a row's total mass, at most vocab * 2^S,
/// stays below 2^62 (2^-45 resolution at R1's vocabulary, where the largest token weighs 1).
inline int mass_shift(int64_t vocab) {
  int l = 0;
  while ((int64_t(1) << l) < vocab) ++l;
  return 62 - l;
}

template <class T>
void launch_draw(View<const T, 2> logits, const ref::SamplingParams& params, uint64_t seed, uint64_t step,
                 const int64_t* seed_step, View<int32_t, 1> out, stream_t stream) {
  const int64_t batch = logits.shape[0], vocab = logits.shape[1];
  const int64_t group = std::min<int64_t>(batch, kSampleMaxRows);
  SampleArgs<T> a{};
  a.ld = row_stride(logits);
  a.vocab = int(vocab);
  a.out_stride = out.stride[0];
  a.temperature = params.temperature;
  a.top_k = params.top_k > 0 && params.top_k < vocab ? params.top_k : 0;
  a.top_p = params.top_p;
  a.seed = seed;
  a.step = step;
  a.seed_step = seed_step;
  a.scale = std::ldexp(1.0f, mass_shift(vocab));
  // Scratch for one group of rows; the groups run one after another on the stream and share it.
  int64_t parts = 0;
  for (int64_t r0 = 0; r0 < batch; r0 += group) {
    const int64_t n = std::min(group, batch - r0);
    parts = std::max(parts, n * split_rows(n, vocab, kSampleTargetBlocks, kSampleMaxChunks, kSampleMinChunk).chunks);
  }
  const int64_t words = group * 2 * kSampleMaxBins;
  const int64_t off_hcnt = round_up(words * 8, 256), off_rows = off_hcnt + round_up(words * 4, 256);
  const int64_t off_max = off_rows + round_up(group * int64_t(sizeof(SampleRow)), 256);
  const int64_t off_cnt = off_max + round_up(parts * 4, 256), bytes = off_cnt + parts * 4;
  // [bytes] u8: hmass [group, 2, 2048] u64 | hcnt [group, 2, 2048] u32 | rows [group] SampleRow |
  // part_max [parts] f32 | part_cnt [parts] i32 (parts = rows x chunks of the largest group)
  Tensor scratch = Tensor::empty(DType::u8, {bytes}, Space::cuda, stream);
  char* base = static_cast<char*>(scratch.data());
  a.hmass = reinterpret_cast<u64*>(base);
  a.hcnt = reinterpret_cast<uint32_t*>(base + off_hcnt);
  a.rows = reinterpret_cast<SampleRow*>(base + off_rows);
  a.part_max = reinterpret_cast<float*>(base + off_max);
  a.part_cnt = reinterpret_cast<int*>(base + off_cnt);
  const int first = a.top_k > 0 ? kTopK : a.top_p < 1.0f ? kTopP : kDraw;
  for (int64_t r0 = 0; r0 < batch; r0 += group) {
    const int64_t n = std::min(group, batch - r0);
    a.split = split_rows(n, vocab, kSampleTargetBlocks, kSampleMaxChunks, kSampleMinChunk);
    a.logits = logits.data + r0 * a.ld;
    a.out = out.data + r0 * a.out_stride;
    a.row0 = r0;
    const dim3 grid(unsigned(n), unsigned(a.split.chunks));
    sample_max_kernel<T><<<grid, kSampleThreads, 0, stream>>>(a);
    R1_CUDA_CHECK_LAUNCH();
    sample_pass_kernel<T><<<grid, kSampleThreads, 0, stream>>>(a, 0, first);
    R1_CUDA_CHECK_LAUNCH();
    for (int d = first; d <= kDraw; ++d) {
      if (d == kTopP && !(a.top_p < 1.0f)) continue;
      for (int level = 1; level <= 2; ++level) {
        sample_pass_kernel<T><<<grid, kSampleThreads, 0, stream>>>(a, level, d);
        R1_CUDA_CHECK_LAUNCH();
      }
    }
    sample_tie_kernel<T><<<grid, kSampleThreads, 0, stream>>>(a);
    R1_CUDA_CHECK_LAUNCH();
  }
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
  if (params.temperature <= 0) {
    launch_argmax(logits, out, stream);
  } else {
    launch_draw(logits, params, seed, step, seed_step, out, stream);
  }
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
