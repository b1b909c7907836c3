// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/embedding.hpp"

using namespace r1;

TEST_CASE("embedding copies rows, int32 and int64 ids, bf16 table") {
  Tensor table = testing::randn_bf16({11, 9}, 1);  // [vocab, dim]
  Tensor out = Tensor::empty(DType::f32, {4, 9});  // [tokens, dim]
  Tensor ids32 = Tensor::from_vector(std::vector<int32_t>{3, 0, 10, 3}, {4});
  Tensor ids64 = Tensor::from_vector(std::vector<int64_t>{3, 0, 10, 3}, {4});
  ref::embedding(ids32.view<const int32_t, 1>(), table.view<const bf16, 2>(), out.view<float, 2>());
  auto tv = table.view<const bf16, 2>();
  auto ov = out.view<const float, 2>();
  const int rows[4] = {3, 0, 10, 3};
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 9; ++i) CHECK(ov(t, i) == float(tv(rows[t], i)));
  Tensor out2 = Tensor::empty(DType::f32, {4, 9});
  ref::embedding(ids64.view<const int64_t, 1>(), table.view<const bf16, 2>(), out2.view<float, 2>());
  CHECK(testing::max_abs_diff(out, out2) == 0);
}

TEST_CASE("embedding: an id outside the vocabulary is an error naming it") {
  Tensor table = testing::randn({11, 2}, 1);
  Tensor out = Tensor::empty(DType::f32, {2, 2});
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{1, 11}, {2});
  CHECK_THROWS_WITH(ref::embedding(ids.view<const int32_t, 1>(), table.view<const float, 2>(), out.view<float, 2>()),
                    "embedding: token id 11 at position 1 is out of range [0, 11)");
  Tensor neg = Tensor::from_vector(std::vector<int64_t>{-1, 0}, {2});
  CHECK_THROWS_WITH(ref::embedding(neg.view<const int64_t, 1>(), table.view<const float, 2>(), out.view<float, 2>()),
                    "embedding: token id -1 at position 0 is out of range [0, 11)");
}
