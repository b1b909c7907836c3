// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cmath>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/rope.hpp"

using namespace r1;

using testing::r1_yarn;

TEST_CASE("YaRN frequency table of R1 matches r1-spec §4.2 to 1e-9") {
  // The spec's table (dim 64, theta 1e4, factor 40, L0 4096, beta 32/1), 10 significant digits.
  const double spec[32] = {
      1.000000000e+00, 7.498942093e-01, 5.623413252e-01, 4.216965034e-01, 3.162277660e-01,
      2.371373706e-01, 1.778279410e-01, 1.333521432e-01, 1.000000000e-01, 7.498942093e-02,
      5.623413252e-02, 3.900692657e-02, 2.687936011e-02, 1.837814622e-02, 1.244795587e-02,
      8.334508951e-03, 5.500000000e-03, 3.561997494e-03, 2.249365301e-03, 1.370513636e-03,
      7.905694150e-04, 4.149903985e-04, 1.778279410e-04, 3.333803580e-05, 2.500000000e-05,
      1.874735523e-05, 1.405853313e-05, 1.054241259e-05, 7.905694150e-06, 5.928434264e-06,
      4.445698525e-06, 3.333803580e-06};
  const ref::YarnParams y = r1_yarn();
  const std::vector<double> f = ref::yarn_inv_freq(64, 10000, y);
  REQUIRE(f.size() == 32);
  for (int i = 0; i < 32; ++i) CHECK(std::fabs(f[size_t(i)] - spec[i]) <= 1e-9 * spec[i]);
  double low = 0, high = 0;
  ref::yarn_correction_range(64, 10000, y, low, high);
  CHECK(low == 10);
  CHECK(high == 23);
}

TEST_CASE("YaRN correction ranges and softmax scales of the fixtures and R1 (r1-spec §1.2, §12)") {
  double low = 0, high = 0;
  ref::YarnParams tiny = r1_yarn();  // tiny-r1-bf16/fp8: rope dim 16, same YaRN as R1
  ref::yarn_correction_range(16, 10000, tiny, low, high);
  CHECK(low == 2);
  CHECK(high == 6);
  ref::YarnParams mtp = r1_yarn();  // tiny-r1-mtp: factor 8, L0 512, rope dim 64
  mtp.factor = 8;
  mtp.original_max_position = 512;
  ref::yarn_correction_range(64, 10000, mtp, low, high);
  CHECK(low == 3);
  CHECK(high == 16);

  const ref::YarnParams r1 = r1_yarn();
  CHECK(std::fabs(ref::yarn_mscale(40, 1) - 1.3688879454) < 1e-9);
  CHECK(std::fabs(ref::mla_softmax_scale(192, &r1) - 0.1352337789) < 1e-9);
  // r1-spec §12.1 prints 0.2704705 for the tiny fixtures; 48^-1/2 * 1.8738542071 is 0.2704675577
  // (the spec's product is off in the 6th digit; its factors are right).
  CHECK(std::fabs(ref::mla_softmax_scale(48, &tiny) - 0.2704675577) < 1e-9);
  CHECK(std::fabs(ref::mla_softmax_scale(192, &mtp) - 0.1053035709) < 1e-9);
  ref::YarnParams lite = r1_yarn();  // DeepSeek-V2-Lite: mscale = mscale_all_dim = 0.707
  lite.mscale = lite.mscale_all_dim = 0.707;
  CHECK(std::fabs(ref::mla_softmax_scale(192, &lite) - 0.1147214) < 1e-7);
  CHECK(ref::mla_softmax_scale(192, nullptr) == doctest::Approx(1 / std::sqrt(192.0)).epsilon(1e-15));

  // cos/sin multiplier: 1 when mscale == mscale_all_dim; 0.1 ln(s) + 1 when mscale_all_dim is absent.
  CHECK(ref::yarn_attention_factor(r1) == 1.0);
  CHECK(ref::yarn_attention_factor(lite) == doctest::Approx(1.0).epsilon(1e-15));
  ref::YarnParams no_all = r1_yarn();
  no_all.mscale_all_dim = 0;
  CHECK(ref::yarn_attention_factor(no_all) == doctest::Approx(0.1 * std::log(40.0) + 1).epsilon(1e-15));
  CHECK(ref::mla_softmax_scale(192, &no_all) == doctest::Approx(1 / std::sqrt(192.0)).epsilon(1e-15));
  ref::YarnParams bad = r1_yarn();
  bad.factor = 0;
  CHECK_THROWS_WITH(ref::yarn_inv_freq(64, 10000, bad), "rope: yarn factor 0 must be positive");
}

TEST_CASE("interleaved rotation matches the fp64 formula on adjacent pairs") {
  const ref::YarnParams y = r1_yarn();
  const ref::RopeTable table = ref::make_rope_table(16, 10000, &y);
  Tensor x = testing::randn({5, 3, 16}, 4);  // [tokens, heads, dim]
  Tensor orig = x.to(Space::host);
  Tensor pos = Tensor::from_vector(std::vector<int64_t>{0, 1, 7, 40, 99}, {5});
  auto inv = make_view<1>(table.inv_freq.data(), {8});
  ref::rope_interleaved(x.view<float, 3>(), pos.view<const int64_t, 1>(), inv.as_const(), table.attention_factor);
  const std::vector<double> f = ref::yarn_inv_freq(16, 10000, y);
  auto xv = x.view<const float, 3>();
  auto ov = orig.view<const float, 3>();
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t i = 0; i < 8; ++i) {
        const double a = double(pos.data_as<int64_t>()[t]) * f[size_t(i)];
        const double x0 = ov(t, h, 2 * i), x1 = ov(t, h, 2 * i + 1);
        CHECK(std::fabs(xv(t, h, 2 * i) - (x0 * std::cos(a) - x1 * std::sin(a))) < 2e-5);
        CHECK(std::fabs(xv(t, h, 2 * i + 1) - (x0 * std::sin(a) + x1 * std::cos(a))) < 2e-5);
      }
  // Position 0 is the identity.
  for (int64_t i = 0; i < 16; ++i) CHECK(xv(0, 1, i) == ov(0, 1, i));
}

TEST_CASE("interleaved pairs give the same scores as Hugging Face's de-interleave + rotate_half") {
  const int dim = 64;
  const ref::YarnParams y = r1_yarn();
  const ref::RopeTable table = ref::make_rope_table(dim, 10000, &y);
  Tensor q = testing::randn({1, 1, dim}, 5), k = testing::randn({1, 1, dim}, 6);
  const int64_t pq = 37, pk = 11;
  // HF: x' = [x0, x2, ..., x1, x3, ...], then y'[i] = x'[i] c - x'[i+32] s, y'[i+32] = x'[i+32] c + x'[i] s.
  auto hf_rotate = [&](const Tensor& x, int64_t p) {
    std::vector<double> xp(dim), out(dim);
    for (int i = 0; i < dim / 2; ++i) {
      xp[size_t(i)] = x.data_as<float>()[2 * i];
      xp[size_t(i + dim / 2)] = x.data_as<float>()[2 * i + 1];
    }
    for (int i = 0; i < dim / 2; ++i) {
      const double a = double(float(p) * table.inv_freq[size_t(i)]);
      out[size_t(i)] = xp[size_t(i)] * std::cos(a) - xp[size_t(i + dim / 2)] * std::sin(a);
      out[size_t(i + dim / 2)] = xp[size_t(i + dim / 2)] * std::cos(a) + xp[size_t(i)] * std::sin(a);
    }
    return out;
  };
  const std::vector<double> hq = hf_rotate(q, pq), hk = hf_rotate(k, pk);
  double hf_score = 0;
  for (int i = 0; i < dim; ++i) hf_score += hq[size_t(i)] * hk[size_t(i)];

  auto inv = make_view<1>(table.inv_freq.data(), {dim / 2});
  Tensor posq = Tensor::from_vector(std::vector<int64_t>{pq}, {1}), posk = Tensor::from_vector(std::vector<int64_t>{pk}, {1});
  ref::rope_interleaved(q.view<float, 3>(), posq.view<const int64_t, 1>(), inv.as_const(), 1.0f);
  ref::rope_interleaved(k.view<float, 3>(), posk.view<const int64_t, 1>(), inv.as_const(), 1.0f);
  double score = 0;
  for (int i = 0; i < dim; ++i) score += double(q.data_as<float>()[i]) * k.data_as<float>()[i];
  CHECK(std::fabs(score - hf_score) < 1e-5);
}

TEST_CASE("scores depend only on the position difference (plain RoPE)") {
  const ref::RopeTable table = ref::make_rope_table(32, 10000, nullptr);
  auto inv = make_view<1>(table.inv_freq.data(), {16});
  auto score = [&](int64_t pq, int64_t pk) {
    Tensor q = testing::randn({1, 1, 32}, 8), k = testing::randn({1, 1, 32}, 9);
    Tensor a = Tensor::from_vector(std::vector<int64_t>{pq}, {1}), b = Tensor::from_vector(std::vector<int64_t>{pk}, {1});
    ref::rope_interleaved(q.view<float, 3>(), a.view<const int64_t, 1>(), inv.as_const(), 1.0f);
    ref::rope_interleaved(k.view<float, 3>(), b.view<const int64_t, 1>(), inv.as_const(), 1.0f);
    double s = 0;
    for (int i = 0; i < 32; ++i) s += double(q.data_as<float>()[i]) * k.data_as<float>()[i];
    return s;
  };
  CHECK(std::fabs(score(10, 3) - score(25, 18)) < 1e-4);
  CHECK(std::fabs(score(10, 3) - score(10, 4)) > 1e-3);  // and it does depend on the difference
}

TEST_CASE("rope errors") {
  CHECK_THROWS_WITH(ref::rope_inv_freq(15, 10000), "rope: rotary dimension 15 must be positive and even");
  const ref::RopeTable table = ref::make_rope_table(16, 10000, nullptr);
  Tensor x = testing::randn({2, 1, 12}, 1);
  Tensor pos = Tensor::from_vector(std::vector<int64_t>{0, 1}, {2});
  auto inv = make_view<1>(table.inv_freq.data(), {8});
  CHECK_THROWS_WITH(ref::rope_interleaved(x.view<float, 3>(), pos.view<const int64_t, 1>(), inv.as_const(), 1.0f),
                    "rope_interleaved: rotary dimension 12 does not match 8 frequencies (needs 2 per pair)");
}
