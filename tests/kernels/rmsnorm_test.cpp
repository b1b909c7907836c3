// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cmath>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/rmsnorm.hpp"

using namespace r1;

namespace {
// y = w * x / sqrt(mean(x^2) + eps) in double.
double rms_expected(const Tensor& x, const Tensor& w, float eps, int64_t t, int64_t i) {
  const int64_t n = x.size(1);
  double ss = 0;
  for (int64_t j = 0; j < n; ++j) ss += testing::at(x, t * n + j) * testing::at(x, t * n + j);
  return testing::at(w, i) * testing::at(x, t * n + i) / std::sqrt(ss / double(n) + eps);
}
}  // namespace

TEST_CASE("rmsnorm matches the fp64 formula at odd sizes") {
  for (int64_t dim : {1, 7, 129, 300}) {
    Tensor x = testing::randn({5, dim}, 1 + dim, 3.0f);   // [tokens, dim]
    Tensor w = testing::randn_bf16({dim}, 2 + dim);       // [dim]
    Tensor y = Tensor::empty(DType::f32, {5, dim});       // [tokens, dim]
    ref::rmsnorm(x.view<const float, 2>(), w.view<const bf16, 1>(), 1e-6f, y.view<float, 2>());
    for (int64_t t = 0; t < 5; ++t)
      for (int64_t i = 0; i < dim; ++i) {
        const double e = rms_expected(x, w, 1e-6f, t, i);
        CHECK(std::fabs(y.view<float, 2>()(t, i) - e) <= 2e-6 * (1 + std::fabs(e)));
      }
  }
}

TEST_CASE("rmsnorm: eps matters for tiny rows; bf16 output is rounded once") {
  Tensor x = Tensor::from_vector(std::vector<float>{1e-4f, -1e-4f}, {1, 2});  // [1, 2]
  Tensor w = Tensor::from_vector(std::vector<float>{1.0f, 1.0f}, {2});        // [2]
  Tensor y = Tensor::empty(DType::f32, {1, 2});                                // [1, 2]
  ref::rmsnorm(x.view<const float, 2>(), w.view<const float, 1>(), 1e-6f, y.view<float, 2>());
  // mean square 1e-8 plus eps 1e-6: 1e-4 / sqrt(1.01e-6)
  CHECK(y.view<float, 2>()(0, 0) == doctest::Approx(1e-4 / std::sqrt(1.01e-6)).epsilon(1e-6));

  Tensor xb = testing::randn({3, 65}, 7);  // [tokens, dim]
  Tensor wb = testing::randn({65}, 8);     // [dim]
  Tensor yf = Tensor::empty(DType::f32, {3, 65}), yb = Tensor::empty(DType::bf16, {3, 65});
  ref::rmsnorm(xb.view<const float, 2>(), wb.view<const float, 1>(), 1e-6f, yf.view<float, 2>());
  ref::rmsnorm(xb.view<const float, 2>(), wb.view<const float, 1>(), 1e-6f, yb.view<bf16, 2>());
  for (int64_t i = 0; i < yf.numel(); ++i)
    CHECK(yb.data_as<bf16>()[i].bits == bf16(yf.data_as<float>()[i]).bits);
}

TEST_CASE("add_rmsnorm updates the residual and normalizes the sum") {
  Tensor r = testing::randn({4, 131}, 11);          // [tokens, dim]
  Tensor x = testing::randn({4, 131}, 12);          // [tokens, dim]
  Tensor w = testing::randn_bf16({131}, 13);        // [dim]
  Tensor sum = Tensor::empty(DType::f32, {4, 131});  // [tokens, dim]
  for (int64_t i = 0; i < sum.numel(); ++i)
    sum.data_as<float>()[i] = r.data_as<float>()[i] + x.data_as<float>()[i];
  Tensor y = Tensor::empty(DType::f32, {4, 131}), y2 = Tensor::empty(DType::f32, {4, 131});
  ref::add_rmsnorm(r.view<float, 2>(), x.view<const float, 2>(), w.view<const bf16, 1>(), 1e-6f,
                   y.view<float, 2>());
  ref::rmsnorm(sum.view<const float, 2>(), w.view<const bf16, 1>(), 1e-6f, y2.view<float, 2>());
  CHECK(testing::max_abs_diff(r, sum) == 0);
  CHECK(testing::max_abs_diff(y, y2) == 0);
}

TEST_CASE("rmsnorm_quant_fp8 equals rmsnorm then act_quant, bit for bit") {
  Tensor x = testing::randn({3, 384}, 21, 2.0f);  // [tokens, dim]
  x.data_as<float>()[5] = 40.0f;                  // one outlier group
  Tensor w = testing::randn_bf16({384}, 22);      // [dim]
  Tensor y = Tensor::empty(DType::f32, {3, 384});  // [tokens, dim]
  ref::rmsnorm(x.view<const float, 2>(), w.view<const bf16, 1>(), 1e-6f, y.view<float, 2>());
  Tensor q1 = Tensor::empty(DType::f8_e4m3, {3, 384}), s1 = Tensor::empty(DType::f32, {3, 3});
  Tensor q2 = Tensor::empty(DType::f8_e4m3, {3, 384}), s2 = Tensor::empty(DType::f32, {3, 3});
  ref::act_quant<128>(y.view<const float, 2>(), q1.view<fp8_e4m3, 2>(), s1.view<float, 2>());
  ref::rmsnorm_quant_fp8<128>(x.view<const float, 2>(), w.view<const bf16, 1>(), 1e-6f,
                              q2.view<fp8_e4m3, 2>(), s2.view<float, 2>());
  CHECK(std::memcmp(q1.data(), q2.data(), q1.nbytes()) == 0);
  CHECK(testing::max_abs_diff(s1, s2) == 0);

  Tensor xr = testing::randn({2, 192}, 23), wr = testing::randn({192}, 24);
  Tensor qr = Tensor::empty(DType::f8_e4m3, {2, 192}), sr = Tensor::empty(DType::f32, {2, 1});
  CHECK_THROWS_WITH(ref::rmsnorm_quant_fp8<128>(xr.view<const float, 2>(), wr.view<const float, 1>(),
                                                1e-6f, qr.view<fp8_e4m3, 2>(), sr.view<float, 2>()),
                    doctest::Contains("K = 192 is not a multiple of the 128-channel"));
}

TEST_CASE("rmsnorm errors name the argument") {
  Tensor x = testing::randn({2, 8}, 1), w = testing::randn({7}, 2), y = Tensor::empty(DType::f32, {2, 8});
  CHECK_THROWS_WITH(ref::rmsnorm(x.view<const float, 2>(), w.view<const float, 1>(), 1e-6f, y.view<float, 2>()),
                    "rmsnorm: weight has 7 elements (dimension 0), expected 8");
}

TEST_CASE("rmsnorm on doubles is fp64 throughout") {
  Tensor x = Tensor::empty(DType::f64, {2, 97});  // [tokens, dim]
  for (int64_t i = 0; i < x.numel(); ++i) x.data_as<double>()[i] = std::sin(0.37 * double(i)) * 1e3;
  Tensor w = testing::randn_bf16({97}, 3);         // [dim]
  Tensor y = Tensor::empty(DType::f64, {2, 97});   // [tokens, dim]
  ref::rmsnorm(x.view<const double, 2>(), w.view<const bf16, 1>(), 1e-6f, y.view<double, 2>());
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t i = 0; i < 97; ++i) {
      const double e = rms_expected(x, w, 1e-6f, t, i);
      CHECK(std::fabs(y.view<const double, 2>()(t, i) - e) <= 1e-13 * (1 + std::fabs(e)));
    }
}
