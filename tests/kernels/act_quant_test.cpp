// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cmath>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/act_quant.hpp"

using namespace r1;

TEST_CASE("act_quant: scale = max(amax, 1e-4) / 448 and the group maximum maps to +-448") {
  Tensor x = testing::randn({5, 384}, 3, 5.0f);  // [tokens, K]
  for (int64_t k = 128; k < 256; ++k) x.view<float, 2>()(2, k) = 0.0f;  // an all-zero group
  Tensor q = Tensor::empty(DType::f8_e4m3, {5, 384}), s = Tensor::empty(DType::f32, {5, 3});
  ref::act_quant<128>(x.view<const float, 2>(), q.view<fp8_e4m3, 2>(), s.view<float, 2>());
  auto xv = x.view<const float, 2>();
  auto qv = q.view<const fp8_e4m3, 2>();
  auto sv = s.view<const float, 2>();
  for (int64_t t = 0; t < 5; ++t) {
    for (int64_t g = 0; g < 3; ++g) {
      float amax = 0;
      int64_t arg = g * 128;
      for (int64_t k = g * 128; k < (g + 1) * 128; ++k)
        if (std::fabs(xv(t, k)) > amax) amax = std::fabs(xv(t, k)), arg = k;
      CHECK(sv(t, g) == std::max(amax, 1e-4f) / 448.0f);
      if (amax > 0) CHECK(std::fabs(float(qv(t, arg))) == 448.0f);
      for (int64_t k = g * 128; k < (g + 1) * 128; ++k) {
        // e4m3 keeps 3 mantissa bits: relative error <= 2^-4 for normals, absolute <= 2^-10 * s
        // (half the subnormal step 2^-9) below the normal range.
        const double back = double(float(qv(t, k))) * sv(t, g);
        const double bound = std::max(std::fabs(xv(t, k)) * 0.0625, sv(t, g) * 0x1p-10) * (1 + 1e-6);
        CHECK(std::fabs(back - xv(t, k)) <= bound);
      }
    }
  }
  // The all-zero group: floor scale, zero codes (DeepSeek's 1e-4 clamp instead of 0/0).
  CHECK(sv(2, 1) == 1e-4f / 448.0f);
  for (int64_t k = 128; k < 256; ++k) CHECK(float(qv(2, k)) == 0.0f);
}

TEST_CASE("act_quant: a hand-computed group") {
  // amax 448 gives scale 1: the codes are e4m3 rounding of the values themselves.
  std::vector<float> v(128, 0.0f);
  v[0] = 448.0f;
  v[1] = 1.0625f;   // between 1 and 1.125: a tie, rounds to even (1.0)
  v[2] = 1.1875f;   // tie between 1.125 and 1.25: rounds to even (1.25)
  v[3] = -0.3f;     // -> -0.3125 (nearest e4m3)
  Tensor x = Tensor::from_vector(v, {1, 128});
  Tensor q = Tensor::empty(DType::f8_e4m3, {1, 128}), s = Tensor::empty(DType::f32, {1, 1});
  ref::act_quant<128>(x.view<const float, 2>(), q.view<fp8_e4m3, 2>(), s.view<float, 2>());
  auto qv = q.view<const fp8_e4m3, 2>();
  CHECK(s.data_as<float>()[0] == 1.0f);
  CHECK(float(qv(0, 0)) == 448.0f);
  CHECK(float(qv(0, 1)) == 1.0f);
  CHECK(float(qv(0, 2)) == 1.25f);
  CHECK(float(qv(0, 3)) == -0.3125f);

  Tensor back = Tensor::empty(DType::f32, {1, 128});
  ref::act_dequant<128>(q.view<const fp8_e4m3, 2>(), s.view<const float, 2>(), back.view<float, 2>());
  CHECK(back.data_as<float>()[3] == -0.3125f);
}

TEST_CASE("act_quant: K must be a multiple of the group") {
  Tensor x = testing::randn({2, 192}, 1);
  Tensor q = Tensor::empty(DType::f8_e4m3, {2, 192}), s = Tensor::empty(DType::f32, {2, 1});
  CHECK_THROWS_WITH(ref::act_quant<128>(x.view<const float, 2>(), q.view<fp8_e4m3, 2>(), s.view<float, 2>()),
                    "act_quant: K = 192 is not a multiple of the 128-channel activation quantization group");
  Tensor s3 = Tensor::empty(DType::f32, {2, 3});
  Tensor x2 = testing::randn({2, 256}, 1);
  Tensor q2 = Tensor::empty(DType::f8_e4m3, {2, 256});
  CHECK_THROWS_WITH(ref::act_quant<128>(x2.view<const float, 2>(), q2.view<fp8_e4m3, 2>(), s3.view<float, 2>()),
                    "act_quant: scale has 3 groups (dimension 1), expected 2");
}

TEST_CASE("act_quant with double scales: fp64 scale, quotient rounded to fp32, then to e4m3") {
  Tensor xf = testing::randn({2, 256}, 9, 3.0f);
  Tensor x = Tensor::empty(DType::f64, {2, 256});  // [tokens, K]
  for (int64_t i = 0; i < x.numel(); ++i) x.data_as<double>()[i] = double(xf.data_as<float>()[i]) / 3.0;
  Tensor q = Tensor::empty(DType::f8_e4m3, {2, 256}), s = Tensor::empty(DType::f64, {2, 2});
  ref::act_quant<128>(x.view<const double, 2>(), q.view<fp8_e4m3, 2>(), s.view<double, 2>());
  auto xv = x.view<const double, 2>();
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t g = 0; g < 2; ++g) {
      double amax = 0;
      for (int64_t k = g * 128; k < (g + 1) * 128; ++k) amax = std::max(amax, std::fabs(xv(t, k)));
      const double scale = amax / 448.0;
      CHECK(s.view<const double, 2>()(t, g) == scale);  // no fp32 rounding of the scale
      for (int64_t k = g * 128; k < (g + 1) * 128; ++k)
        CHECK(q.view<const fp8_e4m3, 2>()(t, k).bits == fp8_e4m3(float(xv(t, k) / scale)).bits);
    }
  Tensor back = Tensor::empty(DType::f64, {2, 256});
  ref::act_dequant<128>(q.view<const fp8_e4m3, 2>(), s.view<const double, 2>(), back.view<double, 2>());
  CHECK(back.data_as<double>()[7] == double(float(q.data_as<fp8_e4m3>()[7])) * s.data_as<double>()[0]);
}
