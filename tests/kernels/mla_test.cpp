// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cmath>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/mla.hpp"

using namespace r1;

namespace {
// Odd sizes on purpose: 3 heads, nope 5, rope 4, v 6, latent 7.
constexpr int64_t H = 3, DN = 5, DR = 4, DV = 6, RK = 7;

// fp64 expanded attention for query t at absolute position q_start + t (r1-spec §3.2).
std::vector<double> attention_fp64(const Tensor& qn, const Tensor& qp, const Tensor& kn, const Tensor& kp,
                                   const Tensor& v, double scale, int64_t q_start, int64_t t, int64_t h) {
  const int64_t visible = q_start + t + 1;
  std::vector<double> l(static_cast<size_t>(visible));
  double mx = -1e300;
  for (int64_t s = 0; s < visible; ++s) {
    double d = 0;
    for (int64_t i = 0; i < DN; ++i) d += testing::at(qn, (t * H + h) * DN + i) * testing::at(kn, (s * H + h) * DN + i);
    for (int64_t i = 0; i < DR; ++i) d += testing::at(qp, (t * H + h) * DR + i) * testing::at(kp, s * DR + i);
    l[size_t(s)] = scale * d;
    mx = std::max(mx, l[size_t(s)]);
  }
  double sum = 0;
  for (double& x : l) sum += (x = std::exp(x - mx));
  std::vector<double> o(DV, 0.0);
  for (int64_t s = 0; s < visible; ++s)
    for (int64_t i = 0; i < DV; ++i) o[size_t(i)] += l[size_t(s)] / sum * testing::at(v, (s * H + h) * DV + i);
  return o;
}
}  // namespace

TEST_CASE("expanded MLA attention matches fp64, causal from any start position") {
  const int64_t tokens = 4, keys = 9, q_start = 5;  // a chunk after 5 cached tokens
  Tensor qn = testing::randn({tokens, H, DN}, 1), qp = testing::randn({tokens, H, DR}, 2);
  Tensor kn = testing::randn({keys, H, DN}, 3), kp = testing::randn({keys, DR}, 4), v = testing::randn({keys, H, DV}, 5);
  Tensor out = Tensor::empty(DType::f32, {tokens, H, DV});
  ref::mla_attention_expanded(qn.view<const float, 3>(), qp.view<const float, 3>(), kn.view<const float, 3>(),
                              kp.view<const float, 2>(), v.view<const float, 3>(), 0.7f, q_start, out.view<float, 3>());
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const auto e = attention_fp64(qn, qp, kn, kp, v, 0.7f, q_start, t, h);
      for (int64_t i = 0; i < DV; ++i) CHECK(std::fabs(out.view<const float, 3>()(t, h, i) - e[size_t(i)]) < 1e-5);
    }
  // The first query sees exactly the keys 0..5: changing key 6 must not change it.
  kp.data_as<float>()[6 * DR] += 100.0f;
  Tensor out2 = Tensor::empty(DType::f32, {tokens, H, DV});
  ref::mla_attention_expanded(qn.view<const float, 3>(), qp.view<const float, 3>(), kn.view<const float, 3>(),
                              kp.view<const float, 2>(), v.view<const float, 3>(), 0.7f, q_start, out2.view<float, 3>());
  for (int64_t i = 0; i < H * DV; ++i) CHECK(out.data_as<float>()[i] == out2.data_as<float>()[i]);
  CHECK(out.data_as<float>()[H * DV] != out2.data_as<float>()[H * DV]);

  CHECK_THROWS_WITH(ref::mla_attention_expanded(qn.view<const float, 3>(), qp.view<const float, 3>(), kn.view<const float, 3>(),
                                                kp.view<const float, 2>(), v.view<const float, 3>(), 0.7f, 6, out.view<float, 3>()),
                    "mla_attention_expanded: 4 queries starting at position 6 need at least 10 keys, got 9");
}

TEST_CASE("absorbed MLA over a paged latent cache equals the expanded form") {
  const int64_t keys = 11, tokens = 3, q_start = keys - tokens, page = 4;
  Tensor latent = testing::randn({keys, RK}, 10);             // [keys, kv_lora_rank] c_kv
  Tensor kp = testing::randn({keys, DR}, 11);                 // [keys, rope_dim] k_pe
  Tensor wkvb = testing::randn({H * (DN + DV), RK}, 12, 0.5f);  // [heads * (nope + v), kv_lora_rank]
  Tensor qn = testing::randn({tokens, H, DN}, 13), qp = testing::randn({tokens, H, DR}, 14);
  const float scale = 0.45f;

  // Expanded: kv = latent . W_kvb^T viewed as [keys, heads, nope + v]; k_nope and v are slices.
  Tensor kv = Tensor::empty(DType::f32, {keys, H * (DN + DV)});
  ref::linear(latent.view<const float, 2>(), wkvb.view<const float, 2>(), kv.view<float, 2>());
  auto kv3 = kv.view<const float, 2>().reshape<3>({keys, H, DN + DV});
  Tensor expanded = Tensor::empty(DType::f32, {tokens, H, DV});
  ref::mla_attention_expanded(qn.view<const float, 3>(), qp.view<const float, 3>(), kv3.slice(2, 0, DN),
                              kp.view<const float, 2>(), kv3.slice(2, DN, DN + DV), scale, q_start,
                              expanded.view<float, 3>());

  // Absorbed: rows [c_kv || k_pe] in pages 2, 0, 1 (out of order on purpose).
  Tensor rows = Tensor::empty(DType::f32, {keys, RK + DR});
  for (int64_t s = 0; s < keys; ++s) {
    for (int64_t c = 0; c < RK; ++c) rows.view<float, 2>()(s, c) = latent.view<const float, 2>()(s, c);
    for (int64_t d = 0; d < DR; ++d) rows.view<float, 2>()(s, RK + d) = kp.view<const float, 2>()(s, d);
  }
  Tensor pages = Tensor::zeros(DType::f32, {4, page, RK + DR});  // [num_pages, page_size, width]
  Tensor table = Tensor::from_vector(std::vector<int32_t>{2, 0, 1}, {3});
  ref::kv_cache_write(rows.view<const float, 2>().slice(0, 0, 5), pages.view<float, 3>(), table.view<const int32_t, 1>(), 0);
  ref::kv_cache_write(rows.view<const float, 2>().slice(0, 5, keys), pages.view<float, 3>(), table.view<const int32_t, 1>(), 5);
  Tensor gathered = Tensor::empty(DType::f32, {keys, RK + DR});
  ref::kv_cache_gather(pages.view<const float, 3>(), table.view<const int32_t, 1>(), gathered.view<float, 2>());
  CHECK(testing::max_abs_diff(gathered, rows) == 0);

  Tensor q_lat = Tensor::empty(DType::f32, {tokens, H, RK}), o_lat = Tensor::empty(DType::f32, {tokens, H, RK});
  Tensor absorbed = Tensor::empty(DType::f32, {tokens, H, DV});
  ref::mla_absorb_q(qn.view<const float, 3>(), wkvb.view<const float, 2>(), int(DV), q_lat.view<float, 3>());
  ref::mla_attention_absorbed(q_lat.view<const float, 3>(), qp.view<const float, 3>(), pages.view<const float, 3>(),
                              table.view<const int32_t, 1>(), keys, scale, q_start, o_lat.view<float, 3>());
  ref::mla_v_up(o_lat.view<const float, 3>(), wkvb.view<const float, 2>(), int(DN), absorbed.view<float, 3>());
  CHECK(testing::max_abs_diff(absorbed, expanded) < 1e-5);
  CHECK(testing::max_abs(expanded) > 0.1);
}

TEST_CASE("paged cache errors") {
  Tensor pages = Tensor::zeros(DType::f32, {2, 4, 3});
  Tensor table = Tensor::from_vector(std::vector<int32_t>{1, 5}, {2});
  Tensor rows = testing::randn({6, 3}, 1);
  CHECK_THROWS_WITH(ref::kv_cache_write(rows.view<const float, 2>(), pages.view<float, 3>(), table.view<const int32_t, 1>(), 0),
                    "kv_cache_write: block_table[1] = 5 is not a page in [0, 2)");
  CHECK_THROWS_WITH(ref::kv_cache_write(rows.view<const float, 2>(), pages.view<float, 3>(), table.view<const int32_t, 1>(), 3),
                    "kv_cache_write: 9 tokens need 3 pages, the block table has 2");
  Tensor w = testing::randn({10, 7}, 2);
  Tensor qn = testing::randn({1, 3, 5}, 3), ql = Tensor::empty(DType::f32, {1, 3, 7});
  CHECK_THROWS_WITH(ref::mla_absorb_q(qn.view<const float, 3>(), w.view<const float, 2>(), 6, ql.view<float, 3>()),
                    doctest::Contains("kv_b weight has shape [10, 7], expected [33, 7]"));
}
