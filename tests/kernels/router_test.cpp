// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/router.hpp"

using namespace r1;
using route::GroupLimited;
using route::Greedy;
using route::GroupMax;
using route::RouterConfig;
using route::Sigmoid;
using route::Softmax;
using route::Top2Sum;

namespace {
struct Routed {
  Tensor ids, weights;
};
template <class Scoring, class Sel>
Routed run(const Tensor& logits, const Tensor& bias, const RouterConfig& c) {
  Routed r{Tensor::empty(DType::i32, {logits.size(0), c.top_k}), Tensor::empty(DType::f32, {logits.size(0), c.top_k})};
  ref::route_experts<Scoring, Sel>(logits.view<const float, 2>(), bias.view<const float, 1>(), c,
                                   r.ids.view<int32_t, 2>(), r.weights.view<float, 2>());
  return r;
}
Tensor no_bias() { return Tensor::empty(DType::f32, {0}); }

// Independent fp64 V3 router (r1-spec §5.3) by sorting everything, for random (tie-free) inputs.
std::vector<std::pair<int, double>> v3_fp64(const std::vector<double>& z, const std::vector<double>& b,
                                            const RouterConfig& c) {
  const int e = c.n_experts, per = e / c.n_group;
  std::vector<double> s(static_cast<size_t>(e)), sel(static_cast<size_t>(e));
  for (int i = 0; i < e; ++i) s[size_t(i)] = 1 / (1 + std::exp(-z[size_t(i)])), sel[size_t(i)] = s[size_t(i)] + b[size_t(i)];
  std::vector<std::pair<double, int>> groups;
  for (int g = 0; g < c.n_group; ++g) {
    std::vector<double> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
    std::sort(v.rbegin(), v.rend());
    groups.push_back({v[0] + v[1], g});
  }
  std::sort(groups.rbegin(), groups.rend());
  std::vector<std::pair<double, int>> cand;
  for (int gi = 0; gi < c.topk_group; ++gi)
    for (int i = groups[size_t(gi)].second * per; i < (groups[size_t(gi)].second + 1) * per; ++i) cand.push_back({sel[size_t(i)], i});
  std::sort(cand.rbegin(), cand.rend());
  double sum = 0;
  for (int j = 0; j < c.top_k; ++j) sum += s[size_t(cand[size_t(j)].second)];
  std::vector<std::pair<int, double>> out;
  for (int j = 0; j < c.top_k; ++j)
    out.push_back({cand[size_t(j)].second, s[size_t(cand[size_t(j)].second)] / sum * c.routed_scaling_factor});
  return out;
}
}  // namespace

TEST_CASE("V3 router on random logits and biases matches an independent fp64 implementation") {
  for (auto [e, g, tg, k] : {std::tuple{16, 4, 2, 4}, std::tuple{256, 8, 4, 8}, std::tuple{12, 3, 1, 3}}) {
    const RouterConfig c{e, g, tg, k, true, 2.5f};
    Tensor z = testing::randn({7, e}, uint64_t(e), 2.0f), b = testing::randn({e}, uint64_t(e) + 1, 0.3f);
    Routed r = run<Sigmoid, GroupLimited<Top2Sum>>(z, b, c);
    for (int64_t t = 0; t < 7; ++t) {
      std::vector<double> zd(static_cast<size_t>(e)), bd(static_cast<size_t>(e));
      for (int i = 0; i < e; ++i) zd[size_t(i)] = z.data_as<float>()[t * e + i], bd[size_t(i)] = b.data_as<float>()[i];
      const auto want = v3_fp64(zd, bd, c);
      double wsum = 0;
      for (int j = 0; j < k; ++j) {
        CHECK(r.ids.data_as<int32_t>()[t * k + j] == want[size_t(j)].first);
        CHECK(std::fabs(r.weights.data_as<float>()[t * k + j] - want[size_t(j)].second) < 1e-6);
        wsum += r.weights.data_as<float>()[t * k + j];
      }
      CHECK(wsum == doctest::Approx(2.5).epsilon(1e-6));
    }
  }
}

TEST_CASE("the correction bias selects experts but does not weight them") {
  // Logits all 0: every unbiased score is 0.5, so whatever the bias picks gets weight 2.5 / k.
  const RouterConfig c{8, 2, 1, 2, true, 2.5f};
  Tensor z = Tensor::zeros(DType::f32, {1, 8});
  Tensor b = Tensor::from_vector(std::vector<float>{0, 0, 0, 0, 0, 0.9f, 0, 0.4f}, {8});
  Routed r = run<Sigmoid, GroupLimited<Top2Sum>>(z, b, c);
  CHECK(r.ids.data_as<int32_t>()[0] == 5);
  CHECK(r.ids.data_as<int32_t>()[1] == 7);
  CHECK(r.weights.data_as<float>()[0] == 1.25f);
  CHECK(r.weights.data_as<float>()[1] == 1.25f);
}

TEST_CASE("ties break to the lowest index, for groups and experts") {
  const RouterConfig c{8, 4, 2, 2, true, 1.0f};
  Tensor z = Tensor::zeros(DType::f32, {1, 8});  // all equal
  Routed r = run<Sigmoid, GroupLimited<Top2Sum>>(z, no_bias(), c);
  CHECK(r.ids.data_as<int32_t>()[0] == 0);
  CHECK(r.ids.data_as<int32_t>()[1] == 1);
  // Groups 1 and 3 tie for best; group 1 wins the single kept slot; inside it experts 2, 3 tie.
  const RouterConfig c1{8, 4, 1, 2, true, 1.0f};
  Tensor z2 = Tensor::from_vector(std::vector<float>{0, 0, 1, 1, 0, 0, 1, 1}, {1, 8});
  Routed r2 = run<Sigmoid, GroupLimited<Top2Sum>>(z2, no_bias(), c1);
  CHECK(r2.ids.data_as<int32_t>()[0] == 2);
  CHECK(r2.ids.data_as<int32_t>()[1] == 3);
}

TEST_CASE("negative biased scores of a kept group beat every expert of a dropped group (-inf fill)") {
  // 4 groups of 2, keep 2, top 4: the kept groups' four experts must all be chosen, even expert 1
  // whose biased score is -0.3 while dropped experts sit at +0.25 (a 0.0 fill would pick one of those).
  const RouterConfig c{8, 4, 2, 4, true, 2.5f};
  Tensor z = Tensor::zeros(DType::f32, {1, 8});  // unbiased scores 0.5
  Tensor b = Tensor::from_vector(std::vector<float>{0.4f, -0.8f, 0.3f, 0.2f, -0.25f, -0.25f, -0.3f, -0.3f}, {8});
  // biased: g0 {0.9, -0.3} sum 0.6; g1 {0.8, 0.7} 1.5; g2 {0.25, 0.25} 0.5; g3 {0.2, 0.2} 0.4
  Routed r = run<Sigmoid, GroupLimited<Top2Sum>>(z, b, c);
  const int32_t* ids = r.ids.data_as<int32_t>();
  CHECK(ids[0] == 0);
  CHECK(ids[1] == 2);
  CHECK(ids[2] == 3);
  CHECK(ids[3] == 1);
  for (int j = 0; j < 4; ++j) CHECK(r.weights.data_as<float>()[j] == doctest::Approx(0.625));
}

TEST_CASE("n_group 1 is a plain top-k on biased scores") {
  const RouterConfig c{10, 1, 1, 3, true, 1.5f};
  Tensor z = testing::randn({5, 10}, 3), b = testing::randn({10}, 4, 0.2f);
  Routed r = run<Sigmoid, GroupLimited<Top2Sum>>(z, b, c);
  Routed g = run<Sigmoid, Greedy>(z, b, c);
  CHECK(testing::max_abs_diff(r.ids.to(Space::host), g.ids) == 0);
  CHECK(testing::max_abs_diff(r.weights, g.weights) == 0);
  for (int64_t t = 0; t < 5; ++t) {
    std::vector<std::pair<float, int>> v;
    for (int i = 0; i < 10; ++i) v.push_back({1 / (1 + std::exp(-z.data_as<float>()[t * 10 + i])) + b.data_as<float>()[i], i});
    std::sort(v.rbegin(), v.rend());
    std::set<int> want{v[0].second, v[1].second, v[2].second}, got;
    for (int j = 0; j < 3; ++j) got.insert(r.ids.data_as<int32_t>()[t * 3 + j]);
    CHECK(want == got);
  }
}

TEST_CASE("V2-Lite (softmax, greedy, no renormalization) and V2 (softmax, group max)") {
  Tensor z = testing::randn({3, 12}, 5, 2.0f);
  const RouterConfig lite{12, 1, 1, 3, false, 1.0f};
  Routed r = run<Softmax, Greedy>(z, no_bias(), lite);
  for (int64_t t = 0; t < 3; ++t) {
    std::vector<double> p(12);
    double sum = 0;
    for (int i = 0; i < 12; ++i) sum += (p[size_t(i)] = std::exp(double(z.data_as<float>()[t * 12 + i])));
    for (double& v : p) v /= sum;
    std::vector<int> order(12);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return p[size_t(a)] > p[size_t(b)]; });
    for (int j = 0; j < 3; ++j) {
      CHECK(r.ids.data_as<int32_t>()[t * 3 + j] == order[size_t(j)]);
      CHECK(std::fabs(r.weights.data_as<float>()[t * 3 + j] - p[size_t(order[size_t(j)])]) < 1e-6);
    }
  }
  // Group 0 = {0.1, 5} has the larger maximum, group 1 = {4.5, 4.5} the larger top-2 sum
  // (e^4.5 * 2 = 180 > e^5 + e^0.1 = 149.5). Keep 1 group.
  const RouterConfig v2{4, 2, 1, 1, false, 16.0f};
  Tensor zz = Tensor::from_vector(std::vector<float>{0.1f, 5, 4.5f, 4.5f}, {1, 4});
  CHECK(run<Softmax, GroupLimited<GroupMax>>(zz, no_bias(), v2).ids.data_as<int32_t>()[0] == 1);
  // The same logits under the V3 group score keep group 1 instead.
  CHECK(run<Softmax, GroupLimited<Top2Sum>>(zz, no_bias(), v2).ids.data_as<int32_t>()[0] == 2);
}

TEST_CASE("router configuration and input errors name the field") {
  Tensor z = Tensor::zeros(DType::f32, {1, 8});
  CHECK_THROWS_WITH((run<Sigmoid, GroupLimited<Top2Sum>>(z, no_bias(), RouterConfig{8, 3, 1, 2, true, 1})),
                    "router: n_group = 3 must divide n_routed_experts = 8");
  CHECK_THROWS_WITH((run<Sigmoid, GroupLimited<Top2Sum>>(z, no_bias(), RouterConfig{8, 8, 2, 2, true, 1})),
                    doctest::Contains("groups of 1 experts are too small for the top2_sum group score"));
  CHECK_THROWS_WITH((run<Sigmoid, GroupLimited<Top2Sum>>(z, no_bias(), RouterConfig{8, 4, 1, 3, true, 1})),
                    "router: num_experts_per_tok = 3 exceeds the 2 experts in the topk_group = 1 kept groups");
  CHECK_THROWS_WITH((run<Sigmoid, GroupLimited<Top2Sum>>(z, no_bias(), RouterConfig{8, 4, 5, 3, true, 1})),
                    "router: topk_group = 5 must be in [1, n_group = 4]");
  Tensor nan = Tensor::from_vector(std::vector<float>{0, 0, NAN, 0, 0, 0, 0, 0}, {1, 8});
  CHECK_THROWS_WITH((run<Sigmoid, Greedy>(nan, no_bias(), RouterConfig{8, 1, 1, 2, true, 1})),
                    doctest::Contains("router logit of token 0, expert 2 is not finite"));
  Tensor short_bias = Tensor::zeros(DType::f32, {7});
  CHECK_THROWS_WITH((run<Sigmoid, Greedy>(z, short_bias, RouterConfig{8, 1, 1, 2, true, 1})),
                    "router: bias has 7 entries, expected 8 (or none)");
}
