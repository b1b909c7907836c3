// SPDX-License-Identifier: MIT
// Small helpers shared by r1's host tests: seeded random tensors, fp64 comparisons.
#pragma once

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "r1/kernels/ref/rope.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1::testing {

/// DeepSeek-R1's YaRN parameters (config.json rope_scaling: factor 40, original 4096 positions,
/// beta 32 / 1, mscale and mscale_all_dim 1, so the cos/sin multiplier is 1).
inline ref::YarnParams r1_yarn() {
  ref::YarnParams y;
  y.factor = 40;
  y.original_max_position = 4096;
  y.beta_fast = 32;
  y.beta_slow = 1;
  y.mscale = 1;
  y.mscale_all_dim = 1;
  return y;
}

/// Host f32 tensor with N(0, stddev) entries from a seeded generator.
inline Tensor randn(const Shape& shape, uint64_t seed, float stddev = 1.0f) {
  Tensor t = Tensor::empty(DType::f32, shape);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  float* p = t.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

/// Host bf16 tensor with N(0, stddev) entries (rounded from f32).
inline Tensor randn_bf16(const Shape& shape, uint64_t seed, float stddev = 1.0f) {
  Tensor f = randn(shape, seed, stddev);
  Tensor t = Tensor::empty(DType::bf16, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<bf16>()[i] = bf16(f.data_as<float>()[i]);
  return t;
}

/// Element i (row-major, contiguous tensor) as double, for any floating storage type.
inline double at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::f32: return t.data_as<float>()[i];
    case DType::f64: return t.data_as<double>()[i];
    case DType::bf16: return double(float(t.data_as<bf16>()[i]));
    case DType::f8_e4m3: return double(float(t.data_as<fp8_e4m3>()[i]));
    case DType::i32: return double(t.data_as<int32_t>()[i]);
    case DType::i64: return double(t.data_as<int64_t>()[i]);
    default: fail("testing.at", "unsupported dtype ", dtype_name(t.dtype()));
  }
}

/// Largest |a - b| over all elements (shapes must have equal element counts).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  R1_CHECK(a.numel() == b.numel(), "testing", "element counts differ: ", a.shape().str(), " vs ",
           b.shape().str());
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(at(ac, i) - at(bc, i)));
  return m;
}

/// Largest |x| over all elements.
inline double max_abs(const Tensor& a) {
  const Tensor ac = a.contiguous();
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(at(ac, i)));
  return m;
}

/// Cosine similarity of rows r of two [rows, n] tensors, in double.
inline double row_cosine(const Tensor& a, const Tensor& b, int64_t r) {
  const int64_t n = a.size(1);
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = at(a, r * n + i), y = at(b, r * n + i);
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / std::sqrt(aa * bb);
}

/// Block-quantizes an f32 weight [n, k] to e4m3 codes + f32 weight_scale_inv (128 x 128 blocks,
/// ragged edges allowed; scale = amax / 448 of each block, as DeepSeek's converter).
inline std::pair<Tensor, Tensor> quantize_fp8_block(const Tensor& w, int64_t block = 128) {
  const int64_t n = w.size(0), k = w.size(1), bn = (n + block - 1) / block, bk = (k + block - 1) / block;
  Tensor q = Tensor::empty(DType::f8_e4m3, {n, k});  // [n, k]
  Tensor s = Tensor::empty(DType::f32, {bn, bk});    // [ceil(n/128), ceil(k/128)]
  auto wv = w.view<const float, 2>();
  for (int64_t bi = 0; bi < bn; ++bi)
    for (int64_t bj = 0; bj < bk; ++bj) {
      float amax = 1e-12f;
      for (int64_t i = bi * block; i < std::min(n, (bi + 1) * block); ++i)
        for (int64_t j = bj * block; j < std::min(k, (bj + 1) * block); ++j) amax = std::max(amax, std::fabs(wv(i, j)));
      const float sc = amax / 448.0f;
      s.view<float, 2>()(bi, bj) = sc;
      for (int64_t i = bi * block; i < std::min(n, (bi + 1) * block); ++i)
        for (int64_t j = bj * block; j < std::min(k, (bj + 1) * block); ++j)
          q.view<fp8_e4m3, 2>()(i, j) = fp8_e4m3(wv(i, j) / sc);
    }
  return {q, s};
}

/// A host F64 activation tensor from f32 random values.
inline Tensor randn_f64(const Shape& shape, uint64_t seed, float stddev = 1.0f) {
  Tensor f = randn(shape, seed, stddev);
  Tensor d = Tensor::empty(DType::f64, shape);
  for (int64_t i = 0; i < d.numel(); ++i) d.data_as<double>()[i] = f.data_as<float>()[i];
  return d;
}

}  // namespace r1::testing
