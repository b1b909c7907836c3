// SPDX-License-Identifier: MIT
// r1::cuda::route_experts against ref::route_experts: ids must match exactly and weights to 1e-6
// relative (the same fp32 arithmetic; exp is exp(double) rounded once, glibc's expf is correctly
// rounded but for rare cases, so a 1-ulp score difference could reorder only an exact near tie:
// with the logits below that did not occur, and a mismatch is reported with both scores).
// Cases: R1 (256 experts, 8 groups, top-4 groups, top-8, bias, scaling 2.5) at odd token counts,
// other configurations (n_group 1, Softmax + GroupMax, Greedy, 1024 experts, one expert per group),
// ties (equal and coarsely quantized logits), a bias that decides the selection, non-finite
// logits (ids -1, weights 0, error flag), empty input and argument errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/router.hpp"
#include "r1/kernels/ref/router.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

enum class Logits { random, equal, coarse, bias_decides };

route::RouterConfig config(int e, int g, int tg, int k, bool norm = true, float scale = 1.0f) {
  route::RouterConfig c;
  c.n_experts = e;
  c.n_group = g;
  c.topk_group = tg;
  c.top_k = k;
  c.norm_topk_prob = norm;
  c.routed_scaling_factor = scale;
  return c;
}

Tensor make_logits(int64_t tokens, int e, Logits kind, uint64_t seed) {
  Tensor z = random_uniform<float>({tokens, int64_t(e)}, seed, 4.0f);
  float* p = z.data_as<float>();
  for (int64_t i = 0; i < tokens * e; ++i) {
    if (kind == Logits::equal) p[i] = 0.5f;
    if (kind == Logits::coarse) p[i] = std::round(p[i] * 2.0f) / 2.0f;  // 17 values: many exact ties
    if (kind == Logits::bias_decides) p[i] *= 0.01f;
  }
  return z;
}

Tensor make_bias(int e, bool has, Logits kind, uint64_t seed) {
  if (!has) return Tensor::empty(DType::f32, {0});
  Tensor b = random_uniform<float>({int64_t(e)}, seed, kind == Logits::bias_decides ? 1.0f : 0.05f);
  return b;
}

template <class S, class Sel>
void run_router(int64_t tokens, const route::RouterConfig& cfg, bool has_bias, Logits kind, Stream& stream) {
  const int e = cfg.n_experts, k = cfg.top_k;
  const uint64_t seed = case_seed(uint64_t(tokens), uint64_t(e * 100 + k), uint64_t(kind), uint64_t(cfg.n_group));
  Tensor z = make_logits(tokens, e, kind, seed);
  Tensor b = make_bias(e, has_bias, kind, seed + 1);
  Tensor ids_ref = Tensor::empty(DType::i32, {tokens, int64_t(k)});
  Tensor w_ref = Tensor::empty(DType::f32, {tokens, int64_t(k)});
  ref::route_experts<S, Sel>(z.view<const float, 2>(), b.view<const float, 1>(), cfg, ids_ref.view<int32_t, 2>(),
                             w_ref.view<float, 2>());

  Tensor zd = z.to(Space::cuda, stream), bd = b.to(Space::cuda, stream);
  Tensor ids = Tensor::empty(DType::i32, {tokens, int64_t(k)}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::f32, {tokens, int64_t(k)}, Space::cuda, stream);
  Tensor flag = Tensor::zeros(DType::i32, {1}, Space::cuda, stream);
  poison(ids, stream);
  poison(w, stream);
  cuda::route_experts<S, Sel>(zd.view<const float, 2>(), bd.view<const float, 1>(), cfg, ids.view<int32_t, 2>(),
                              w.view<float, 2>(), stream, flag.data_as<int32_t>());
  Tensor ih = ids.to(Space::host, stream), wh = w.to(Space::host, stream), fh = flag.to(Space::host, stream);
  int64_t bad_ids = 0, bad_w = 0;
  std::string first;
  for (int64_t i = 0; i < tokens * k; ++i) {
    const int32_t a = ih.data_as<int32_t>()[i], r = ids_ref.data_as<int32_t>()[i];
    if (a != r) {
      if (bad_ids++ == 0) {
        const int64_t t = i / k;
        const float* zt = z.data_as<float>() + t * e;
        first = "token " + std::to_string(t) + " slot " + std::to_string(i % k) + ": gpu " + std::to_string(a) +
                " ref " + std::to_string(r) + " (logits " + (a >= 0 && a < e ? std::to_string(zt[a]) : "-") +
                " vs " + std::to_string(zt[r]) + ")";
      }
    }
    const float wa = wh.data_as<float>()[i], wr = w_ref.data_as<float>()[i];
    bad_w += !(std::fabs(wa - wr) <= 1e-6f * std::fabs(wr));
  }
  INFO(S::name, " E=", e, " groups=", cfg.n_group, "/", cfg.topk_group, " k=", k, " T=", tokens, " bias=", has_bias,
       " logits=", int(kind), " ", first);
  CHECK(bad_ids == 0);
  CHECK(bad_w == 0);
  CHECK(fh.data_as<int32_t>()[0] == 0);
}

using R1Sel = route::GroupLimited<route::Top2Sum>;
using V2Sel = route::GroupLimited<route::GroupMax>;

}  // namespace

TEST_CASE("router: R1 (sigmoid, 256 experts, 8 groups, top-4 groups, top-8) at odd token counts") {
  Stream stream;
  const auto cfg = config(256, 8, 4, 8, true, 2.5f);
  for (int64_t t : {1, 2, 7, 127, 128, 129, 1000}) {
    run_router<route::Sigmoid, R1Sel>(t, cfg, true, Logits::random, stream);
    run_router<route::Sigmoid, R1Sel>(t, cfg, false, Logits::random, stream);
  }
}

TEST_CASE("router: other configurations") {
  Stream stream;
  for (int64_t t : {1, 7, 129}) {
    run_router<route::Sigmoid, R1Sel>(t, config(64, 1, 1, 6), true, Logits::random, stream);          // n_group 1
    run_router<route::Sigmoid, R1Sel>(t, config(16, 4, 2, 2, false, 1.0f), true, Logits::random, stream);
    run_router<route::Softmax, V2Sel>(t, config(64, 8, 3, 6, false, 16.0f), false, Logits::random, stream);  // V2
    run_router<route::Softmax, route::Greedy>(t, config(64, 1, 1, 6, false), false, Logits::random, stream);  // V2-Lite
    run_router<route::Softmax, route::Greedy>(t, config(48, 1, 1, 8, true), false, Logits::random, stream);
    run_router<route::Sigmoid, route::Greedy>(t, config(32, 1, 1, 4), true, Logits::random, stream);
    run_router<route::Sigmoid, V2Sel>(t, config(32, 32, 8, 8), true, Logits::random, stream);  // one expert per group
    run_router<route::Softmax, R1Sel>(t, config(40, 5, 2, 3), false, Logits::random, stream);
    run_router<route::Sigmoid, R1Sel>(t, config(1024, 32, 4, 32), true, Logits::random, stream);  // the limits
    run_router<route::Sigmoid, route::Greedy>(t, config(1000, 1, 1, 32), false, Logits::random, stream);
  }
}

TEST_CASE("router: ties break to the lowest index; the bias selects but does not weight") {
  Stream stream;
  for (int64_t t : {1, 33}) {
    run_router<route::Sigmoid, R1Sel>(t, config(256, 8, 4, 8, true, 2.5f), false, Logits::equal, stream);
    run_router<route::Sigmoid, R1Sel>(t, config(256, 8, 4, 8, true, 2.5f), false, Logits::coarse, stream);
    run_router<route::Softmax, V2Sel>(t, config(64, 8, 3, 6), false, Logits::coarse, stream);
    run_router<route::Softmax, route::Greedy>(t, config(64, 1, 1, 6), false, Logits::equal, stream);
    run_router<route::Sigmoid, R1Sel>(t, config(256, 8, 4, 8, true, 2.5f), true, Logits::bias_decides, stream);
  }
  // The bias decides: experts 200..207 get a large bias and must be chosen, weighted by their
  // (unbiased) scores, which are the smallest.
  const int64_t tokens = 3;
  const auto cfg = config(256, 8, 4, 8, true, 1.0f);
  std::vector<float> z(size_t(tokens * 256)), b(256, 0.0f);
  for (size_t i = 0; i < z.size(); ++i) z[i] = (i % 256) >= 200 && (i % 256) < 208 ? -3.0f : 1.0f;
  for (int i = 200; i < 208; ++i) b[size_t(i)] = 10.0f;
  Tensor zd = Tensor::from_vector(z, {tokens, 256}).to(Space::cuda, stream);
  Tensor bd = Tensor::from_vector(b, {256}).to(Space::cuda, stream);
  Tensor ids = Tensor::empty(DType::i32, {tokens, 8}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::f32, {tokens, 8}, Space::cuda, stream);
  cuda::route_experts<route::Sigmoid, R1Sel>(zd.view<const float, 2>(), bd.view<const float, 1>(), cfg,
                                             ids.view<int32_t, 2>(), w.view<float, 2>(), stream);
  Tensor ih = ids.to(Space::host, stream), wh = w.to(Space::host, stream);
  for (int64_t i = 0; i < tokens * 8; ++i) {
    CHECK(ih.data_as<int32_t>()[i] == 200 + int(i % 8));
    CHECK(wh.data_as<float>()[i] == doctest::Approx(0.125).epsilon(1e-6));
  }
}

TEST_CASE("router: non-finite logits give ids -1, weights 0 and the error flag") {
  Stream stream;
  const auto cfg = config(256, 8, 4, 8, true, 2.5f);
  const int64_t tokens = 9;
  Tensor z = make_logits(tokens, 256, Logits::random, case_seed(77));
  Tensor clean = make_logits(tokens, 256, Logits::random, case_seed(77));
  z.data_as<float>()[2 * 256 + 17] = std::numeric_limits<float>::quiet_NaN();
  z.data_as<float>()[5 * 256 + 255] = std::numeric_limits<float>::infinity();
  z.data_as<float>()[8 * 256 + 0] = -std::numeric_limits<float>::infinity();
  Tensor b = make_bias(256, true, Logits::random, case_seed(78));
  Tensor ids_ref = Tensor::empty(DType::i32, {tokens, 8}), w_ref = Tensor::empty(DType::f32, {tokens, 8});
  CHECK_THROWS_AS((ref::route_experts<route::Sigmoid, R1Sel>(z.view<const float, 2>(), b.view<const float, 1>(), cfg,
                                                             ids_ref.view<int32_t, 2>(), w_ref.view<float, 2>())),
                  r1::Error);
  ref::route_experts<route::Sigmoid, R1Sel>(clean.view<const float, 2>(), b.view<const float, 1>(), cfg,
                                            ids_ref.view<int32_t, 2>(), w_ref.view<float, 2>());
  Tensor zd = z.to(Space::cuda, stream), bd = b.to(Space::cuda, stream);
  Tensor ids = Tensor::empty(DType::i32, {tokens, 8}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::f32, {tokens, 8}, Space::cuda, stream);
  Tensor flag = Tensor::zeros(DType::i32, {1}, Space::cuda, stream);
  poison(ids, stream);
  poison(w, stream);
  cuda::route_experts<route::Sigmoid, R1Sel>(zd.view<const float, 2>(), bd.view<const float, 1>(), cfg,
                                             ids.view<int32_t, 2>(), w.view<float, 2>(), stream, flag.data_as<int32_t>());
  Tensor ih = ids.to(Space::host, stream), wh = w.to(Space::host, stream), fh = flag.to(Space::host, stream);
  CHECK(fh.data_as<int32_t>()[0] == 1);
  for (int64_t t = 0; t < tokens; ++t) {
    const bool bad = t == 2 || t == 5 || t == 8;
    for (int64_t j = 0; j < 8; ++j) {
      const int32_t id = ih.data_as<int32_t>()[t * 8 + j];
      const float wt = wh.data_as<float>()[t * 8 + j];
      INFO("token ", t, " slot ", j);
      CHECK(id == (bad ? -1 : ids_ref.data_as<int32_t>()[t * 8 + j]));
      CHECK(wt == (bad ? 0.0f : w_ref.data_as<float>()[t * 8 + j]));
    }
  }
  // A non-finite bias is caught the same way.
  Tensor b2 = make_bias(256, true, Logits::random, case_seed(79));
  b2.data_as<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  Tensor b2d = b2.to(Space::cuda, stream), cd = clean.to(Space::cuda, stream);
  Tensor flag2 = Tensor::zeros(DType::i32, {1}, Space::cuda, stream);
  cuda::route_experts<route::Sigmoid, R1Sel>(cd.view<const float, 2>(), b2d.view<const float, 1>(), cfg,
                                             ids.view<int32_t, 2>(), w.view<float, 2>(), stream, flag2.data_as<int32_t>());
  Tensor ih2 = ids.to(Space::host, stream), fh2 = flag2.to(Space::host, stream);
  CHECK(fh2.data_as<int32_t>()[0] == 1);
  CHECK(ih2.data_as<int32_t>()[0] == -1);
}

TEST_CASE("router: empty input and argument errors") {
  Stream stream;
  const auto cfg = config(256, 8, 4, 8);
  using Fn = void (*)(View<const float, 2>, View<const float, 1>, const route::RouterConfig&, View<int32_t, 2>,
                      View<float, 2>, stream_t, int32_t*);
  const Fn fn = &cuda::route_experts<route::Sigmoid, R1Sel>;
  Tensor z0 = Tensor::empty(DType::f32, {0, 256}, Space::cuda, stream);
  Tensor i0 = Tensor::empty(DType::i32, {0, 8}, Space::cuda, stream), w0 = Tensor::empty(DType::f32, {0, 8}, Space::cuda, stream);
  Tensor nob = Tensor::empty(DType::f32, {0});
  fn(z0.view<const float, 2>(), nob.view<const float, 1>(), cfg, i0.view<int32_t, 2>(), w0.view<float, 2>(), stream, nullptr);
  stream.sync();

  Tensor z = Tensor::empty(DType::f32, {4, 256}, Space::cuda, stream);
  Tensor ids = Tensor::empty(DType::i32, {4, 8}, Space::cuda, stream), w = Tensor::empty(DType::f32, {4, 8}, Space::cuda, stream);
  Tensor zh = Tensor::empty(DType::f32, {4, 256});
  CHECK_THROWS_WITH(fn(zh.view<const float, 2>(), nob.view<const float, 1>(), cfg, ids.view<int32_t, 2>(),
                       w.view<float, 2>(), stream, nullptr),
                    doctest::Contains("logits must be in cuda memory"));
  CHECK_THROWS_WITH(fn(z.view<const float, 2>().slice(1, 0, 128), nob.view<const float, 1>(), cfg, ids.view<int32_t, 2>(),
                       w.view<float, 2>(), stream, nullptr),
                    doctest::Contains("logits has 128 experts"));
  CHECK_THROWS_WITH(fn(z.view<const float, 2>(), nob.view<const float, 1>(), cfg, ids.view<int32_t, 2>().slice(0, 0, 3),
                       w.view<float, 2>(), stream, nullptr),
                    doctest::Contains("ids has 3 rows"));
  CHECK_THROWS_WITH(fn(z.view<const float, 2>(), nob.view<const float, 1>(), cfg, ids.view<int32_t, 2>(),
                       w.view<float, 2>().slice(1, 0, 7), stream, nullptr),
                    doctest::Contains("weights has 7 columns"));
  Tensor b = Tensor::empty(DType::f32, {255}, Space::cuda, stream);
  CHECK_THROWS_WITH(fn(z.view<const float, 2>(), b.view<const float, 1>(), cfg, ids.view<int32_t, 2>(),
                       w.view<float, 2>(), stream, nullptr),
                    doctest::Contains("bias has 255 entries"));
  CHECK_THROWS_WITH(fn(z.view<const float, 2>(), nob.view<const float, 1>(), config(256, 7, 4, 8), ids.view<int32_t, 2>(),
                       w.view<float, 2>(), stream, nullptr),
                    doctest::Contains("n_group = 7 must divide"));
  Tensor zbig = Tensor::empty(DType::f32, {4, 2048}, Space::cuda, stream);
  CHECK_THROWS_WITH(fn(zbig.view<const float, 2>(), nob.view<const float, 1>(), config(2048, 8, 4, 8), ids.view<int32_t, 2>(),
                       w.view<float, 2>(), stream, nullptr),
                    doctest::Contains("exceeds the kernel's limit of 1024"));
  Tensor ids64 = Tensor::empty(DType::i32, {4, 64}, Space::cuda, stream), w64 = Tensor::empty(DType::f32, {4, 64}, Space::cuda, stream);
  CHECK_THROWS_WITH(fn(z.view<const float, 2>(), nob.view<const float, 1>(), config(256, 8, 8, 64), ids64.view<int32_t, 2>(),
                       w64.view<float, 2>(), stream, nullptr),
                    doctest::Contains("num_experts_per_tok = 64 exceeds"));
}
