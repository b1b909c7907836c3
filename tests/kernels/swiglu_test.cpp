// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cmath>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/swiglu.hpp"

using namespace r1;

TEST_CASE("swiglu matches silu(g) * u in fp64, including extreme gates") {
  Tensor g = testing::randn({3, 67}, 1, 4.0f), u = testing::randn({3, 67}, 2);  // [rows, width]
  g.data_as<float>()[0] = -200.0f;  // exp overflow side: silu -> -0, not NaN
  g.data_as<float>()[1] = 200.0f;   // silu -> z
  Tensor y = Tensor::empty(DType::f32, {3, 67});
  ref::swiglu(g.view<const float, 2>(), u.view<const float, 2>(), y.view<float, 2>());
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double z = g.data_as<float>()[i];
    const double e = z / (1 + std::exp(-z)) * u.data_as<float>()[i];
    CHECK(std::isfinite(y.data_as<float>()[i]));
    CHECK(std::fabs(y.data_as<float>()[i] - e) <= 1e-6 * (1 + std::fabs(e)));
  }
  // In place on the gate buffer gives the same.
  ref::swiglu(g.view<const float, 2>(), u.view<const float, 2>(), g.view<float, 2>());
  CHECK(testing::max_abs_diff(g, y) == 0);
}

TEST_CASE("swiglu shape errors") {
  Tensor g = testing::randn({3, 5}, 1), u = testing::randn({3, 4}, 2), y = Tensor::empty(DType::f32, {3, 5});
  CHECK_THROWS_WITH(ref::swiglu(g.view<const float, 2>(), u.view<const float, 2>(), y.view<float, 2>()),
                    "swiglu: up has 4 columns (dimension 1), expected 5");
}
