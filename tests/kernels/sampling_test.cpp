// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/sampling.hpp"

using namespace r1;

namespace {
View<const float, 1> row(const std::vector<float>& v) { return make_view<1>(v.data(), {int64_t(v.size())}); }
}  // namespace

TEST_CASE("argmax: lowest index among equal maxima; NaN is an error") {
  CHECK(ref::argmax(row({1, 3, 3, 2})) == 1);
  CHECK(ref::argmax(row({-INFINITY, -INFINITY})) == 0);
  CHECK(ref::argmax(row({5})) == 0);
  CHECK_THROWS_WITH(ref::argmax(row({1, NAN})), "argmax: logit 1 is NaN");
}

TEST_CASE("sampling distribution: temperature, top-k, top-p by hand") {
  // p = [0.4, 0.3, 0.2, 0.1] at temperature 1.
  const std::vector<float> logits = {std::log(0.2f), std::log(0.4f), std::log(0.1f), std::log(0.3f)};
  auto d = ref::sampling_distribution(row(logits), {1.0f, 0, 1.0f});
  REQUIRE(d.size() == 4);
  CHECK(d[0].first == 1);
  CHECK(d[0].second == doctest::Approx(0.4));
  CHECK(d[3].first == 2);
  d = ref::sampling_distribution(row(logits), {1.0f, 3, 1.0f});  // top-k 3
  REQUIRE(d.size() == 3);
  CHECK(d[0].second == doctest::Approx(4.0 / 9));
  CHECK(d[2].second == doctest::Approx(2.0 / 9));
  d = ref::sampling_distribution(row(logits), {1.0f, 0, 0.5f});  // 0.4 < 0.5 <= 0.7: two tokens
  REQUIRE(d.size() == 2);
  CHECK(d[1].first == 3);
  CHECK(d[1].second == doctest::Approx(3.0 / 7));
  d = ref::sampling_distribution(row(logits), {1.0f, 0, 0.35f});  // the top token alone
  REQUIRE(d.size() == 1);
  CHECK(d[0].second == 1.0);
  d = ref::sampling_distribution(row(logits), {1.0f, 2, 0.6f});  // top-p on the top-k renormalized mass
  REQUIRE(d.size() == 2);                                        // 4/7 < 0.6
  d = ref::sampling_distribution(row(logits), {2.0f, 0, 1.0f});  // temperature 2: p ~ sqrt(p)
  const double z = std::sqrt(0.4) + std::sqrt(0.3) + std::sqrt(0.2) + std::sqrt(0.1);
  CHECK(d[0].second == doctest::Approx(std::sqrt(0.4) / z));
  // Equal probabilities order by lower id.
  d = ref::sampling_distribution(row({0, 0, 0}), {1.0f, 2, 1.0f});
  CHECK(d[0].first == 0);
  CHECK(d[1].first == 1);
}

TEST_CASE("sample: greedy at temperature 0, top_k 1 is greedy, seeded and reproducible") {
  const std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f, 2.0f};
  ref::Rng rng(7);
  CHECK(ref::sample(row(logits), {0.0f, 0, 1.0f}, rng) == 1);
  for (int i = 0; i < 50; ++i) CHECK(ref::sample(row(logits), {1.5f, 1, 1.0f}, rng) == 1);

  auto draw = [&](uint64_t seed) {
    ref::Rng r(seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(ref::sample(row(logits), {1.0f, 0, 1.0f}, r));
    return out;
  };
  CHECK(draw(42) == draw(42));
  CHECK(draw(42) != draw(43));
}

TEST_CASE("sample: empirical frequencies follow the distribution") {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.25f), std::log(0.15f), std::log(0.1f)};
  ref::Rng rng(123);
  std::map<int32_t, int> count;
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++count[ref::sample(row(logits), {1.0f, 0, 0.8f}, rng)];
  // top-p 0.8 keeps {0, 1, 2} (0.5, 0.75, 0.9): renormalized 0.5/0.9, 0.25/0.9, 0.15/0.9.
  CHECK(count[3] == 0);
  CHECK(std::fabs(count[0] / double(n) - 0.5 / 0.9) < 0.01);
  CHECK(std::fabs(count[1] / double(n) - 0.25 / 0.9) < 0.01);
  CHECK(std::fabs(count[2] / double(n) - 0.15 / 0.9) < 0.01);
  // The generator's uniforms cover [0, 1) evenly.
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += rng.uniform();
  CHECK(std::fabs(sum / n - 0.5) < 0.01);
}

TEST_CASE("sampling parameter errors") {
  ref::Rng rng(0);
  CHECK_THROWS_WITH(ref::sample(row({1, 2}), {-1.0f, 0, 1.0f}, rng), "sampling: temperature -1 must be finite and >= 0");
  CHECK_THROWS_WITH(ref::sample(row({1, 2}), {1.0f, 0, 0.0f}, rng), "sampling: top_p 0 must be in (0, 1]");
  CHECK_THROWS_WITH(ref::sample(row({1, 2}), {1.0f, 0, 1.5f}, rng), "sampling: top_p 1.5 must be in (0, 1]");
}
