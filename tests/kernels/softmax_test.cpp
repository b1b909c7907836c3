// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/softmax.hpp"

using namespace r1;

TEST_CASE("softmax matches fp64, masked entries get 0, large logits do not overflow") {
  Tensor x = testing::randn({4, 33}, 1, 10.0f);  // [rows, n]
  const float inf = std::numeric_limits<float>::infinity();
  x.data_as<float>()[3] = -inf;
  x.data_as<float>()[33 + 1] = 1000.0f;
  Tensor orig = x.contiguous().to(Space::host);
  ref::softmax(x.view<float, 2>());
  for (int64_t r = 0; r < 4; ++r) {
    double mx = -1e300, sum = 0;
    for (int64_t i = 0; i < 33; ++i) mx = std::max(mx, testing::at(orig, r * 33 + i));
    for (int64_t i = 0; i < 33; ++i) sum += std::exp(testing::at(orig, r * 33 + i) - mx);
    for (int64_t i = 0; i < 33; ++i) {
      const double e = std::exp(testing::at(orig, r * 33 + i) - mx) / sum;
      CHECK(std::fabs(x.data_as<float>()[r * 33 + i] - e) <= 1e-6);
    }
  }
  CHECK(x.data_as<float>()[3] == 0.0f);
  CHECK(x.data_as<float>()[33 + 1] == doctest::Approx(1.0));
}

TEST_CASE("softmax: a row with nothing finite is an error") {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::from_vector(std::vector<float>{0, 1, -inf, -inf}, {2, 2});
  CHECK_THROWS_WITH(ref::softmax(x.view<float, 2>()), "softmax: row 1 has no finite entry (all masked or NaN)");
}
