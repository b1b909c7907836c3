// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"

using namespace r1;

namespace {
// Random e4m3 codes (finite, both signs) and positive block scales.
Tensor random_fp8(int64_t n, int64_t k, uint64_t seed) {
  Tensor f = testing::randn({n, k}, seed, 100.0f);
  Tensor q = Tensor::empty(DType::f8_e4m3, {n, k});  // [n, k]
  for (int64_t i = 0; i < q.numel(); ++i) q.data_as<fp8_e4m3>()[i] = fp8_e4m3(f.data_as<float>()[i]);
  return q;
}
Tensor random_scales(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor s = testing::randn({rows, cols}, seed);
  for (int64_t i = 0; i < s.numel(); ++i) s.data_as<float>()[i] = 1e-3f * (1.5f + std::fabs(s.data_as<float>()[i]));
  return s;
}
// |y - sum_k x w| <= tol * sum_k |x w| elementwise, in double.
template <class WAt>
void check_against_fp64(const Tensor& x, const Tensor& y, int64_t n_out, WAt w_at, double tol) {
  const int64_t m = x.size(0), k = x.size(1);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t n = 0; n < n_out; ++n) {
      double e = 0, mag = 0;
      for (int64_t j = 0; j < k; ++j) {
        e += testing::at(x, i * k + j) * w_at(n, j);
        mag += std::fabs(testing::at(x, i * k + j) * w_at(n, j));
      }
      CHECK(std::fabs(testing::at(y, i * n_out + n) - e) <= tol * mag + 1e-30);
    }
}
}  // namespace

TEST_CASE("dense linear matches fp64 at odd sizes, f32 and bf16 weights") {
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {5, 37, 131}, {3, 129, 7}}) {
    Tensor x = testing::randn({m, k}, 100 + k);      // [M, K]
    Tensor w = testing::randn({n, k}, 200 + n);      // [N, K]
    Tensor wb = testing::randn_bf16({n, k}, 300 + n);  // [N, K]
    Tensor y = Tensor::empty(DType::f32, {m, n});     // [M, N]
    ref::linear(x.view<const float, 2>(), w.view<const float, 2>(), y.view<float, 2>());
    check_against_fp64(x, y, n, [&](int64_t r, int64_t c) { return testing::at(w, r * k + c); }, 1e-6);
    ref::linear(x.view<const float, 2>(), wb.view<const bf16, 2>(), y.view<float, 2>());
    check_against_fp64(x, y, n, [&](int64_t r, int64_t c) { return testing::at(wb, r * k + c); }, 1e-6);
  }
}

TEST_CASE("a row of y does not depend on the other rows") {
  Tensor x = testing::randn({9, 77}, 1), w = testing::randn({13, 77}, 2);
  Tensor y = Tensor::empty(DType::f32, {9, 13}), y1 = Tensor::empty(DType::f32, {1, 13});
  ref::linear(x.view<const float, 2>(), w.view<const float, 2>(), y.view<float, 2>());
  ref::linear(x.view<const float, 2>().slice(0, 4, 5), w.view<const float, 2>(), y1.view<float, 2>());
  CHECK(std::memcmp(y.view<float, 2>().ptr(4, 0), y1.data(), 13 * sizeof(float)) == 0);
}

TEST_CASE("fp8 block dequantization with ragged N and K") {
  // R1-style ragged edges: N = 144 (kv_a of the tiny fixture), K = 192 (its q_b input).
  const int64_t n = 144, k = 192;
  Tensor wq = random_fp8(n, k, 5);           // [N, K]
  Tensor ws = random_scales(2, 2, 6);        // [ceil(N/128), ceil(K/128)]
  Tensor w = Tensor::empty(DType::f32, {n, k});  // [N, K]
  ref::dequant_fp8_block<128, 128>(wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(), w.view<float, 2>());
  auto qv = wq.view<const fp8_e4m3, 2>();
  auto sv = ws.view<const float, 2>();
  auto wv = w.view<const float, 2>();
  // Each corner of each block uses that block's scale.
  for (auto [r, c] : {std::pair<int64_t, int64_t>{0, 0}, {127, 127}, {128, 0}, {0, 128}, {143, 191}, {130, 129}})
    CHECK(wv(r, c) == float(qv(r, c)) * sv(r / 128, c / 128));

  Tensor bad = random_scales(2, 1, 7);
  CHECK_THROWS_WITH((ref::dequant_fp8_block<128, 128>(wq.view<const fp8_e4m3, 2>(), bad.view<const float, 2>(), w.view<float, 2>())),
                    "dequant_fp8_block: weight_scale_inv has shape [2, 1], expected [2, 2] for a [144, 192] weight in 128x128 blocks");
}

TEST_CASE("linear_fp8_dequant equals linear on the dequantized weight, bit for bit") {
  const int64_t m = 6, n = 144, k = 192;
  Tensor x = testing::randn({m, k}, 8);
  Tensor wq = random_fp8(n, k, 9), ws = random_scales(2, 2, 10);
  Tensor w = Tensor::empty(DType::f32, {n, k});
  ref::dequant_fp8_block<128, 128>(wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(), w.view<float, 2>());
  Tensor y1 = Tensor::empty(DType::f32, {m, n}), y2 = Tensor::empty(DType::f32, {m, n});
  ref::linear_fp8_dequant<128, 128>(x.view<const float, 2>(), wq.view<const fp8_e4m3, 2>(),
                                    ws.view<const float, 2>(), y1.view<float, 2>());
  ref::linear(x.view<const float, 2>(), w.view<const float, 2>(), y2.view<float, 2>());
  CHECK(testing::max_abs_diff(y1, y2) == 0);
  check_against_fp64(x, y1, n, [&](int64_t r, int64_t c) { return testing::at(w, r * k + c); }, 1e-6);
}

TEST_CASE("linear_fp8_native: act_quant + block-scaled GEMM matches the fp64 block formula") {
  const int64_t m = 5, n = 200, k = 384;  // ragged N
  Tensor x = testing::randn({m, k}, 11, 3.0f);
  Tensor wq = random_fp8(n, k, 12), ws = random_scales(2, 3, 13);
  Tensor xq = Tensor::empty(DType::f8_e4m3, {m, k}), xs = Tensor::empty(DType::f32, {m, 3});
  ref::act_quant<128>(x.view<const float, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
  Tensor y = Tensor::empty(DType::f32, {m, n});
  ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xs.view<const float, 2>(),
                                   wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(), y.view<float, 2>());
  // Independent: dequantize both operands in double, one plain dot product.
  Tensor xd = Tensor::empty(DType::f32, {m, k});
  ref::act_dequant<128>(xq.view<const fp8_e4m3, 2>(), xs.view<const float, 2>(), xd.view<float, 2>());
  auto qv = wq.view<const fp8_e4m3, 2>();
  auto sv = ws.view<const float, 2>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < n; ++c) {
      double e = 0, mag = 0;
      for (int64_t j = 0; j < k; ++j) {
        const double xv = double(float(xq.view<const fp8_e4m3, 2>()(i, j))) * xs.view<const float, 2>()(i, j / 128);
        const double wv = double(float(qv(c, j))) * sv(c / 128, j / 128);
        e += xv * wv;
        mag += std::fabs(xv * wv);
      }
      CHECK(std::fabs(y.view<const float, 2>()(i, c) - e) <= 2e-6 * mag);
    }
  // And the quantization error against unquantized activations is small but nonzero.
  Tensor yd = Tensor::empty(DType::f32, {m, n});
  ref::linear_fp8_dequant<128, 128>(x.view<const float, 2>(), wq.view<const fp8_e4m3, 2>(),
                                    ws.view<const float, 2>(), yd.view<float, 2>());
  const double err = testing::max_abs_diff(y, yd);
  CHECK(err > 0);
  CHECK(err < 0.1 * testing::max_abs(yd));
}

TEST_CASE("linear errors name the mismatch") {
  Tensor x = testing::randn({2, 192}, 1), y = Tensor::empty(DType::f32, {2, 128});
  Tensor w = testing::randn({128, 190}, 2);
  CHECK_THROWS_WITH(ref::linear(x.view<const float, 2>(), w.view<const float, 2>(), y.view<float, 2>()),
                    "linear: x has 192 input features, weight has 190 (weight shape [128, 190])");
  Tensor xq = Tensor::empty(DType::f8_e4m3, {2, 192}), xs = Tensor::empty(DType::f32, {2, 1});
  Tensor wq = random_fp8(128, 192, 3), ws = random_scales(1, 2, 4);
  CHECK_THROWS_WITH((ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xs.view<const float, 2>(),
                                                      wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(), y.view<float, 2>())),
                    doctest::Contains("K = 192 is not a multiple of the 128-channel block"));
}

TEST_CASE("double activations compute in fp64 (the host model's precision)") {
  const int64_t m = 3, n = 17, k = 300;
  Tensor xf = testing::randn({m, k}, 21), w = testing::randn({n, k}, 22);
  Tensor x = Tensor::empty(DType::f64, {m, k});  // [M, K]
  for (int64_t i = 0; i < x.numel(); ++i) x.data_as<double>()[i] = double(xf.data_as<float>()[i]) * (1 + 1e-9 * double(i));
  Tensor y = Tensor::empty(DType::f64, {m, n});  // [M, N]
  ref::linear(x.view<const double, 2>(), w.view<const float, 2>(), y.view<double, 2>());
  check_against_fp64(x, y, n, [&](int64_t r, int64_t c) { return testing::at(w, r * k + c); }, 1e-14);
  static_assert(std::is_same_v<ref::compute_t<const double, float>, double>);
  static_assert(std::is_same_v<ref::compute_t<const bf16, float, fp8_e4m3>, float>);
}
