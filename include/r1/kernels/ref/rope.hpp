// SPDX-License-Identifier: MIT
// Rotary position embedding with YaRN (r1-spec §4), on adjacent pairs (2i, 2i+1) as the checkpoint
// weights expect, and the YaRN-corrected softmax scale of MLA (r1-spec §3.4).
//
// Frequencies (Hugging Face `_compute_yarn_parameters` = DeepSeek `precompute_freqs_cis`):
//   f_i   = theta^(-2i/dim)                                     i = 0 .. dim/2-1
//   corr(r) = dim * ln(L0 / (2 pi r)) / (2 ln theta)            L0 = original_max_position_embeddings
//   low  = max(floor(corr(beta_fast)), 0),  high = min(ceil(corr(beta_slow)), dim-1)
//   ramp_i = clamp((i - low) / (high - low), 0, 1)              (high += 0.001 when equal)
//   f'_i = f_i / factor * ramp_i + f_i * (1 - ramp_i)
// The table is computed in double (it is tested to 1e-9 against the spec's values) and stored as
// fp32. The rotation angle pos * f'_i is an fp32 product and cos/sin are fp32 values, as in both
// reference implementations (Hugging Face computes them in fp32 even for a float64 model), so
// long-context angles round the way theirs do; cos/sin are evaluated in double and rounded (a CUDA
// twin using sincosf agrees to about 1 ulp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "r1/kernels/ref/common.hpp"

namespace r1::ref {

/// YaRN parameters as config.json spells them (`rope_scaling` / `rope_parameters`). A value of 0
/// for mscale / mscale_all_dim means "absent", following Hugging Face's truthiness tests.
struct YarnParams {
  double factor = 1;                      ///< s, context extension factor
  double original_max_position = 4096;    ///< L0, original_max_position_embeddings
  double beta_fast = 32;                  ///< fast rotation boundary (0 -> 32)
  double beta_slow = 1;                   ///< slow rotation boundary (0 -> 1)
  double mscale = 1;                      ///< numerator of the cos/sin multiplier
  double mscale_all_dim = 0;              ///< softmax-scale correction; denominator of the multiplier
  bool truncate = true;                   ///< floor/ceil the correction range (HF default)
};

/// mscale(s, m) = s <= 1 ? 1 : 0.1 * m * ln(s) + 1
inline double yarn_mscale(double scale, double m = 1.0) {
  return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
}

/// Plain RoPE frequencies theta^(-2i/dim), i < dim/2.
inline std::vector<double> rope_inv_freq(int dim, double theta) {
  R1_CHECK(dim > 0 && dim % 2 == 0, "rope", "rotary dimension ", dim, " must be positive and even");
  R1_CHECK(theta > 1, "rope", "rope_theta ", theta, " must be > 1");
  std::vector<double> f(static_cast<size_t>(dim / 2));
  for (int i = 0; i < dim / 2; ++i) f[size_t(i)] = std::pow(theta, -2.0 * i / dim);
  return f;
}

/// The YaRN correction range [low, high] over frequency indices (before the equal-bounds nudge).
inline void yarn_correction_range(int dim, double theta, const YarnParams& y, double& low,
                                  double& high) {
  const double bf = y.beta_fast != 0 ? y.beta_fast : 32.0;
  const double bs = y.beta_slow != 0 ? y.beta_slow : 1.0;
  const double pi = 3.14159265358979323846;
  auto corr = [&](double rotations) {
    return dim * std::log(y.original_max_position / (rotations * 2 * pi)) / (2 * std::log(theta));
  };
  low = corr(bf);
  high = corr(bs);
  if (y.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
}

/// YaRN frequencies f'_i (see the file comment), in double.
inline std::vector<double> yarn_inv_freq(int dim, double theta, const YarnParams& y) {
  R1_CHECK(y.factor > 0, "rope", "yarn factor ", y.factor, " must be positive");
  R1_CHECK(y.original_max_position > 0, "rope", "original_max_position_embeddings ",
           y.original_max_position, " must be positive");
  std::vector<double> f = rope_inv_freq(dim, theta);
  double low = 0, high = 0;
  yarn_correction_range(dim, theta, y, low, high);
  if (low == high) high += 0.001;  // avoids a division by zero, as both references do
  for (int i = 0; i < dim / 2; ++i) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    f[size_t(i)] = f[size_t(i)] / y.factor * ramp + f[size_t(i)] * (1 - ramp);
  }
  return f;
}

/// The multiplier Hugging Face applies to cos and sin: mscale(s, mscale) / mscale(s, mscale_all_dim)
/// when both are given (1 for every DeepSeek release), else mscale(s, 1).
inline double yarn_attention_factor(const YarnParams& y) {
  if (y.mscale != 0 && y.mscale_all_dim != 0) {
    return yarn_mscale(y.factor, y.mscale) / yarn_mscale(y.factor, y.mscale_all_dim);
  }
  return yarn_mscale(y.factor, 1.0);
}

/// MLA softmax scale: qk_head_dim^-1/2, times mscale(s, mscale_all_dim)^2 when YaRN is configured
/// with a nonzero mscale_all_dim (R1: 192^-1/2 * 1.3688879454^2 = 0.1352337789).
inline double mla_softmax_scale(int qk_head_dim, const YarnParams* yarn) {
  R1_CHECK(qk_head_dim > 0, "rope", "qk_head_dim ", qk_head_dim, " must be positive");
  double s = 1.0 / std::sqrt(double(qk_head_dim));
  if (yarn && yarn->mscale_all_dim != 0) {
    const double m = yarn_mscale(yarn->factor, yarn->mscale_all_dim);
    s *= m * m;
  }
  return s;
}

/// What the rotation kernel needs: fp32 frequencies and the cos/sin multiplier.
struct RopeTable {
  std::vector<float> inv_freq;  // [dim / 2]
  float attention_factor = 1;   // multiplies cos and sin
  int dim() const { return int(inv_freq.size()) * 2; }
};

/// Plain RoPE when `yarn` is null, YaRN otherwise.
inline RopeTable make_rope_table(int dim, double theta, const YarnParams* yarn) {
  RopeTable t;
  const std::vector<double> f = yarn ? yarn_inv_freq(dim, theta, *yarn) : rope_inv_freq(dim, theta);
  t.inv_freq.assign(f.begin(), f.end());
  t.attention_factor = yarn ? float(yarn_attention_factor(*yarn)) : 1.0f;
  return t;
}

/// Rotates adjacent pairs in place, for each token t, head h and pair i:
///   (x[2i], x[2i+1]) <- (x[2i] c - x[2i+1] s, x[2i] s + x[2i+1] c),
///   angle = float(positions[t]) * inv_freq[i]   (fp32 product, as both references compute it)
///   c, s  = fp32(cos angle) * a, fp32(sin angle) * a   (fp32 values, a = attention_factor)
/// The rotation itself runs in the compute type (fp32, or fp64 for double x).
/// @param x         [tokens, heads, dim] rotary parts (e.g. q_pe, or k_pe with heads = 1); in-out
/// @param positions [tokens] absolute positions
/// @param inv_freq  [dim / 2] frequencies (RopeTable::inv_freq)
template <class T, class TP, class TF>
void rope_interleaved(View<T, 3> x, View<TP, 1> positions, View<TF, 1> inv_freq,
                      float attention_factor) {
  static_assert(!std::is_const_v<T>, "rope_interleaved: x is rotated in place");
  using C = compute_t<T>;
  const char* op = "rope_interleaved";
  detail::require_host(x, op, "x");
  detail::require_host(positions, op, "positions");
  detail::require_host(inv_freq, op, "inv_freq");
  detail::require_dim(positions, 0, x.shape[0], op, "positions", "entries");
  R1_CHECK(x.shape[2] == 2 * inv_freq.shape[0], op, "rotary dimension ", x.shape[2],
           " does not match ", inv_freq.shape[0], " frequencies (needs 2 per pair)");
  const int64_t pairs = inv_freq.shape[0];
  for (int64_t t = 0; t < x.shape[0]; ++t) {
    const float pos = float(positions(t));
    for (int64_t i = 0; i < pairs; ++i) {
      const float angle = pos * float(inv_freq(i));
      const C c = C(float(std::cos(double(angle))) * attention_factor);
      const C s = C(float(std::sin(double(angle))) * attention_factor);
      for (int64_t h = 0; h < x.shape[1]; ++h) {
        const C a = to_compute<C>(x(t, h, 2 * i)), b = to_compute<C>(x(t, h, 2 * i + 1));
        x(t, h, 2 * i) = from_compute<T>(a * c - b * s);
        x(t, h, 2 * i + 1) = from_compute<T>(a * s + b * c);
      }
    }
  }
}

}  // namespace r1::ref
