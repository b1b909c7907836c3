// SPDX-License-Identifier: MIT
// Token selection from one row of logits: greedy, or sampling with temperature, top-k and top-p
// from a seeded generator. Everything is deterministic: the same logits, parameters and seed give
// the same token on every platform (own generator and float->uniform mapping, no std::
// distributions), and equal probabilities order by lower token id.
//
// Sampling distribution (what `sampling_distribution` returns):
//   p = softmax(logits / temperature)                     fp32 logits, double probabilities
//   order tokens by p (descending, lower id first on ties)
//   keep the first top_k (top_k <= 0: all)
//   renormalize; keep the shortest prefix whose mass reaches top_p (at least one token)
//   renormalize
// temperature <= 0 means greedy: argmax, lowest id on ties.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

/// Sampling settings; the defaults are greedy decoding.
struct SamplingParams {
  float temperature = 0;  ///< <= 0: greedy
  int top_k = 0;          ///< <= 0: no top-k cut
  float top_p = 1;        ///< in (0, 1]; 1: no nucleus cut
};

inline void validate(const SamplingParams& p) {
  R1_CHECK(std::isfinite(p.temperature) && p.temperature >= 0, "sampling", "temperature ",
           p.temperature, " must be finite and >= 0");
  R1_CHECK(p.top_p > 0 && p.top_p <= 1, "sampling", "top_p ", p.top_p, " must be in (0, 1]");
}

/// xoshiro256** seeded through splitmix64: small, fast, and the same stream everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) {
    for (uint64_t& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform double in [0, 1) from the top 53 bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

/// Index of the largest logit; the lowest index among equal maxima. NaN logits are an error.
/// @param logits [vocab]
template <class T>
int32_t argmax(View<T, 1> logits) {
  detail::require_host(logits, "argmax", "logits");
  R1_CHECK(logits.shape[0] > 0, "argmax", "empty logits");
  using C = compute_t<T>;  // doubles compare as doubles: no ties invented by rounding
  int64_t best = 0;
  C bv = 0;
  for (int64_t i = 0; i < logits.shape[0]; ++i) {
    const C v = to_compute<C>(logits(i));
    R1_CHECK(!std::isnan(v), "argmax", "logit ", i, " is NaN");
    if (i == 0 || v > bv) {  // strict: an equal later value never replaces the first
      best = i;
      bv = v;
    }
  }
  return int32_t(best);
}

/// A sampling distribution: candidate tokens with probabilities summing to 1, most likely first.
using TokenDistribution = std::vector<std::pair<int32_t, double>>;

/// The distribution `sample` draws from (see the file comment); temperature must be > 0.
/// @param logits [vocab]
template <class T>
TokenDistribution sampling_distribution(View<T, 1> logits, const SamplingParams& params) {
  validate(params);
  R1_CHECK(params.temperature > 0, "sampling", "a sampling distribution needs temperature > 0");
  detail::require_host(logits, "sampling", "logits");
  const int64_t n = logits.shape[0];
  R1_CHECK(n > 0, "sampling", "empty logits");
  std::vector<float> z(static_cast<size_t>(n));  // [vocab]
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    z[size_t(i)] = to_compute<float>(logits(i)) / params.temperature;
    R1_CHECK(!std::isnan(z[size_t(i)]), "sampling", "logit ", i, " is NaN");
    mx = std::max(mx, z[size_t(i)]);
  }
  R1_CHECK(std::isfinite(mx), "sampling", "no finite logit");
  std::vector<double> p(static_cast<size_t>(n));  // [vocab]
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = std::exp(double(z[size_t(i)] - mx));
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return p[size_t(a)] > p[size_t(b)]; });
  size_t keep = params.top_k > 0 ? std::min(size_t(params.top_k), size_t(n)) : size_t(n);
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += p[size_t(order[i])];
  if (params.top_p < 1) {
    double cum = 0;
    size_t j = 0;
    while (j < keep) {
      cum += p[size_t(order[j++])] / kept;
      if (cum >= params.top_p) break;
    }
    keep = j;
  }
  TokenDistribution dist(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += p[size_t(order[i])];
  for (size_t i = 0; i < keep; ++i) dist[i] = {order[i], p[size_t(order[i])] / total};
  return dist;
}

/// Draws from a distribution by inverse CDF in its (most likely first) order.
inline int32_t sample_from(const TokenDistribution& dist, Rng& rng) {
  R1_CHECK(!dist.empty(), "sampling", "empty distribution");
  const double u = rng.uniform();
  double cum = 0;
  for (const auto& [id, prob] : dist) {
    cum += prob;
    if (u < cum) return id;
  }
  return dist.back().first;  // u within rounding of 1
}

/// Greedy when temperature <= 0, else a draw from sampling_distribution.
/// @param logits [vocab]
template <class T>
int32_t sample(View<T, 1> logits, const SamplingParams& params, Rng& rng) {
  validate(params);
  if (params.temperature <= 0) return argmax(logits);
  return sample_from(sampling_distribution(logits, params), rng);
}

}  // namespace r1::ref
