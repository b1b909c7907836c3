// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/moe.hpp"

using namespace r1;

TEST_CASE("moe_permute groups pairs by expert, stably") {
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{2, 0, 0, 3, 2, 2}, {3, 2});  // [tokens, top_k]
  std::vector<int32_t> off(5), pairs(6);
  ref::moe_permute(ids.view<const int32_t, 2>(), 4, make_view<1>(off.data(), {5}), make_view<1>(pairs.data(), {6}));
  CHECK(off == std::vector<int32_t>{0, 2, 2, 5, 6});
  // expert 0: pairs 1 (t0 j1), 2 (t1 j0); expert 2: 0, 4, 5; expert 3: 3
  CHECK(pairs == std::vector<int32_t>{1, 2, 0, 4, 5, 3});
  Tensor bad = Tensor::from_vector(std::vector<int32_t>{0, 4}, {1, 2});
  CHECK_THROWS_WITH(ref::moe_permute(bad.view<const int32_t, 2>(), 4, make_view<1>(off.data(), {5}), make_view<1>(pairs.data(), {2})),
                    "moe_permute: expert id 4 of token 0, slot 1 is out of range [0, 4)");
}

TEST_CASE("moe_routed: permute -> experts -> weighted combine + shared equals the per-token formula") {
  const int64_t tokens = 7, dim = 5, k = 3;
  const int n_experts = 6;
  Tensor x = testing::randn({tokens, dim}, 1);        // [tokens, dim]
  Tensor w = testing::randn({tokens, k}, 2);          // [tokens, top_k]
  Tensor shared = testing::randn({tokens, dim}, 3);   // [tokens, dim]
  std::vector<int32_t> idv;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < k; ++j) idv.push_back(int32_t((t * 5 + j * 2) % n_experts));
  Tensor ids = Tensor::from_vector(idv, {tokens, k});
  // Expert e: y = tanh((e + 1) * x + e), distinct and nonlinear per expert.
  auto expert_fn = [](int e, double v) { return std::tanh((e + 1) * v + e); };
  int calls = 0;
  auto expert = [&](int e, View<const float, 2> xe, View<float, 2> ye) {
    ++calls;
    for (int64_t r = 0; r < xe.shape[0]; ++r)
      for (int64_t i = 0; i < xe.shape[1]; ++i) ye(r, i) = float(expert_fn(e, xe(r, i)));
  };
  Tensor out = Tensor::empty(DType::f32, {tokens, dim});
  ref::moe_routed(x.view<const float, 2>(), ids.view<const int32_t, 2>(), w.view<const float, 2>(), n_experts,
                  expert, shared.view<const float, 2>(), out.view<float, 2>());
  int used = 0;
  for (int e = 0; e < n_experts; ++e) used += std::count(idv.begin(), idv.end(), e) > 0;
  CHECK(calls == used);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < dim; ++i) {
      double e = testing::at(shared, t * dim + i);
      for (int64_t j = 0; j < k; ++j)
        e += testing::at(w, t * k + j) * expert_fn(idv[size_t(t * k + j)], testing::at(x, t * dim + i));
      CHECK(std::fabs(out.data_as<float>()[t * dim + i] - e) < 1e-5);
    }
  // Without shared experts.
  Tensor none = Tensor::empty(DType::f32, {0, 0});
  Tensor out2 = Tensor::empty(DType::f32, {tokens, dim});
  ref::moe_routed(x.view<const float, 2>(), ids.view<const int32_t, 2>(), w.view<const float, 2>(), n_experts,
                  expert, none.view<const float, 2>(), out2.view<float, 2>());
  CHECK(std::fabs(out.data_as<float>()[0] - out2.data_as<float>()[0] - shared.data_as<float>()[0]) < 1e-6);
}

TEST_CASE("moe_combine rejects a non-permutation") {
  Tensor ye = testing::randn({4, 2}, 1), w = testing::randn({2, 2}, 2), out = Tensor::empty(DType::f32, {2, 2});
  Tensor pairs = Tensor::from_vector(std::vector<int32_t>{0, 1, 1, 3}, {4});
  Tensor none = Tensor::empty(DType::f32, {0, 0});
  CHECK_THROWS_WITH(ref::moe_combine(ye.view<const float, 2>(), pairs.view<const int32_t, 1>(), w.view<const float, 2>(),
                                     none.view<const float, 2>(), out.view<float, 2>()),
                    "moe_combine: pairs is not a permutation (entry 2 = 1)");
}
