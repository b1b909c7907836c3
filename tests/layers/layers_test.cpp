// SPDX-License-Identifier: MIT
// Layers on random weights held in a TensorMap: Linear policies (errors, native vs dequant), MoE
// composition against the per-token formula, and MLA's absorbed and expanded forms (all three
// quantization policies, with and without q_lora, chunked prefill on a paged cache).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "../support/r1_testing.hpp"
#include "r1/kernels/ref/rope.hpp"
#include "r1/layers/experts.hpp"
#include "r1/layers/mla.hpp"
#include "r1/layers/mlp.hpp"
#include "r1/layers/moe.hpp"
#include "r1/layers/router.hpp"
#include "r1/runtime/kv_cache.hpp"

using namespace r1;

namespace {
// Adds `name`.weight [out, in] (bf16, or e4m3 + weight_scale_inv when fp8) to `m`.
void add_linear(TensorMap& m, const std::string& name, int64_t out, int64_t in, uint64_t seed, bool fp8) {
  Tensor w = testing::randn({out, in}, seed, 1.0f / std::sqrt(float(in)));  // [out, in]
  if (fp8) {
    auto [q, s] = testing::quantize_fp8_block(w);
    m.set(name + ".weight", q);
    m.set(name + ".weight_scale_inv", s);
  } else {
    Tensor b = Tensor::empty(DType::bf16, {out, in});  // [out, in]
    for (int64_t i = 0; i < b.numel(); ++i) b.data_as<bf16>()[i] = bf16(w.data_as<float>()[i]);
    m.set(name + ".weight", b);
  }
}
void add_norm(TensorMap& m, const std::string& name, int64_t dim, uint64_t seed) {
  Tensor w = testing::randn({dim}, seed, 0.1f);  // [dim]
  Tensor b = Tensor::empty(DType::bf16, {dim});  // [dim]
  for (int64_t i = 0; i < dim; ++i) b.data_as<bf16>()[i] = bf16(1.0f + w.data_as<float>()[i]);
  m.set(name + ".weight", b);
}

MlaConfig mla_config(int64_t q_lora) {
  MlaConfig c;
  c.hidden = 256;
  c.heads = 3;
  c.q_lora_rank = q_lora;
  c.kv_lora_rank = 128;
  c.nope_dim = 24;
  c.rope_dim = 8;
  c.v_dim = 40;
  ref::YarnParams y;
  y.factor = 4;
  y.original_max_position = 256;
  y.mscale = y.mscale_all_dim = 0.707;
  c.softmax_scale = ref::mla_softmax_scale(int(c.qk_dim()), &y);
  c.rope = ref::make_rope_table(int(c.rope_dim), 50000, &y);
  return c;
}

TensorMap mla_weights(const MlaConfig& c, bool fp8) {
  TensorMap m;
  const std::string p = "attn";
  if (c.q_lora_rank) {
    add_linear(m, p + ".q_a_proj", c.q_lora_rank, c.hidden, 1, fp8);
    add_norm(m, p + ".q_a_layernorm", c.q_lora_rank, 2);
    add_linear(m, p + ".q_b_proj", c.heads * c.qk_dim(), c.q_lora_rank, 3, fp8);
  } else {
    add_linear(m, p + ".q_proj", c.heads * c.qk_dim(), c.hidden, 4, fp8);
  }
  add_linear(m, p + ".kv_a_proj_with_mqa", c.cache_width(), c.hidden, 5, fp8);
  add_norm(m, p + ".kv_a_layernorm", c.kv_lora_rank, 6);
  add_linear(m, p + ".kv_b_proj", c.heads * (c.nope_dim + c.v_dim), c.kv_lora_rank, 7, fp8);
  add_linear(m, p + ".o_proj", c.hidden, c.heads * c.v_dim, 8, fp8);
  return m;
}

// Runs `tokens` in chunks through an MLA layer with a forced form; returns the outputs.
template <class Q>
Tensor run_mla(const MLA<Q>& mla, const Tensor& x, const std::vector<int64_t>& chunks, MlaForm form, int64_t page) {
  const MlaConfig& c = mla.config();
  const int64_t t = x.size(0);
  LatentKvCache cache(1, c.cache_width(), t, page);
  Tensor out = Tensor::empty(DType::f64, {t, c.hidden});  // [tokens, hidden]
  int64_t start = 0;
  for (int64_t n : chunks) {
    mla.forward(Exec{}, x.slice(0, start, start + n), start, cache.prepare(n)[0], out.slice(0, start, start + n), form);
    cache.commit(n);
    start += n;
  }
  return out;
}

template <class Q>
void check_forms(bool fp8, const MlaConfig& c) {
  const TensorMap m = mla_weights(c, fp8);
  const MLA<Q> mla = MLA<Q>::load(m, "attn", c);
  const Tensor x = testing::randn_f64({11, c.hidden}, 42);  // [tokens, hidden]
  const Tensor ref_out = run_mla(mla, x, {11}, MlaForm::expanded, 64);  // [tokens, hidden]
  CHECK(testing::max_abs(ref_out) > 0.01);
  // The same tokens: absorbed; chunked 4 + 1 + 6 in either form; 3-token pages (block table crosses pages).
  for (auto form : {MlaForm::absorbed, MlaForm::expanded, MlaForm::automatic}) {
    CAPTURE(int(form));
    CHECK(testing::max_abs_diff(run_mla(mla, x, {11}, form, 64), ref_out) < 1e-12);
    CHECK(testing::max_abs_diff(run_mla(mla, x, {4, 1, 6}, form, 3), ref_out) < 1e-12);
  }
}
}  // namespace

TEST_CASE("MLA: absorbed and expanded forms agree, with and without q_lora, on chunks and pages") {
  check_forms<quant::Dense<bf16>>(false, mla_config(96));
  check_forms<quant::Dense<bf16>>(false, mla_config(0));
  check_forms<quant::Fp8Dequant>(true, mla_config(96));
  // Native needs every FP8 K to be a multiple of 128: q_lora 128, heads * v = 128.
  MlaConfig c = mla_config(128);
  c.heads = 2;
  c.v_dim = 64;
  check_forms<quant::Fp8Native>(true, c);
}

TEST_CASE("MLA: causality, and native mode quantizes the cached latent") {
  MlaConfig c = mla_config(128);
  c.heads = 2;
  c.v_dim = 64;
  const TensorMap m = mla_weights(c, true);
  const auto deq = MLA<quant::Fp8Dequant>::load(m, "attn", c);
  const auto nat = MLA<quant::Fp8Native>::load(m, "attn", c);
  Tensor x = testing::randn_f64({5, c.hidden}, 7);  // [tokens, hidden]
  const Tensor a = run_mla(deq, x, {5}, MlaForm::automatic, 64);  // [tokens, hidden]
  const Tensor b = run_mla(nat, x, {5}, MlaForm::automatic, 64);  // [tokens, hidden]
  const double diff = testing::max_abs_diff(a, b);
  CHECK(diff > 1e-4);                              // quantization is visible ...
  CHECK(diff < 0.1 * testing::max_abs(a));         // ... and small
  // Changing the last token changes only the last output row.
  Tensor y = x.to(Space::host);  // [tokens, hidden]
  y.data_as<double>()[4 * c.hidden + 3] += 1.0;
  const Tensor a2 = run_mla(deq, y, {5}, MlaForm::automatic, 64);  // [tokens, hidden]
  CHECK(testing::max_abs_diff(a.slice(0, 0, 4), a2.slice(0, 0, 4)) == 0);
  CHECK(testing::max_abs_diff(a.slice(0, 4, 5), a2.slice(0, 4, 5)) > 0);
}

TEST_CASE("Linear policies: errors name the tensor; native equals fake-quantized dequant") {
  TensorMap m;
  add_linear(m, "fp8", 144, 192, 1, true);
  add_linear(m, "dense", 64, 32, 2, false);
  CHECK_THROWS_WITH(Linear<quant::Fp8Native>::load(m, "fp8", 144, 192),
                    doctest::Contains("linear: fp8: K = 192 is not a multiple of 128"));
  CHECK_NOTHROW(Linear<quant::Fp8Dequant>::load(m, "fp8", 144, 192));
  CHECK_THROWS_WITH(Linear<quant::Dense<bf16>>::load(m, "fp8", 144, 192),
                    "checkpoint: tensor fp8.weight has dtype F8_E4M3, expected BF16 [144, 192]");
  CHECK_THROWS_WITH(Linear<quant::Dense<bf16>>::load(m, "dense", 64, 33),
                    "checkpoint: tensor dense.weight has shape [64, 32], expected [64, 33]");
  CHECK_THROWS_WITH(Linear<quant::Dense<bf16>>::load(m, "nothing", 64, 32),
                    "checkpoint: missing tensor nothing.weight (expected BF16 [64, 32])");
  m.erase("fp8.weight_scale_inv");
  CHECK_THROWS_WITH(Linear<quant::Fp8Dequant>::load(m, "fp8", 144, 192),
                    "checkpoint: missing tensor fp8.weight_scale_inv (expected F32 [2, 2])");

  // Native = act_quant then the dequantized weight: compare with the kernels directly.
  TensorMap n;
  add_linear(n, "l", 200, 256, 3, true);
  const auto nat = Linear<quant::Fp8Native>::load(n, "l", 200, 256);
  const auto deq = Linear<quant::Fp8Dequant>::load(n, "l", 200, 256);
  const Tensor x = testing::randn_f64({3, 256}, 4);  // [tokens, in]
  const Tensor yn = nat.forward(Exec{}, x), yd = deq.forward(Exec{}, x);  // [tokens, out]
  Tensor xq = Tensor::empty(DType::f8_e4m3, {3, 256}), xs = Tensor::empty(DType::f64, {3, 2});  // [tokens, in], [tokens, in / 128]
  ref::act_quant<128>(x.view<const double, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<double, 2>());
  Tensor xd = Tensor::empty(DType::f64, {3, 256});  // [tokens, in]
  ref::act_dequant<128>(xq.view<const fp8_e4m3, 2>(), xs.view<const double, 2>(), xd.view<double, 2>());
  CHECK(testing::max_abs_diff(yn, deq.forward(Exec{}, xd)) == 0);
  CHECK(testing::max_abs_diff(yn, yd) > 0);
  // And DeepSeek's block-scaled kernel gives the same products, summed in another order.
  Tensor yk = Tensor::empty(DType::f64, {3, 200});  // [tokens, out]
  ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xs.view<const double, 2>(),
                                   n.get("l.weight").view<const fp8_e4m3, 2>(),
                                   n.get("l.weight_scale_inv").view<const float, 2>(), yk.view<double, 2>());
  CHECK(testing::max_abs_diff(yn, yk) < 1e-6 * testing::max_abs(yk));

  Exec gpu;
  gpu.space = Space::cuda;
  CHECK_THROWS_WITH(deq.forward(gpu, x), doctest::Contains("l: host layers run on the host (Space::host); the GPU model is CudaDeepseekV3"));
}

TEST_CASE("MoE<Router, Experts, Shared> equals the per-token formula") {
  const int64_t d = 64, w = 32;
  const int e = 6;
  TensorMap m;
  for (int i = 0; i < e; ++i) {
    add_linear(m, "moe.experts." + std::to_string(i) + ".gate_proj", w, d, 10 + 3 * i, false);
    add_linear(m, "moe.experts." + std::to_string(i) + ".up_proj", w, d, 11 + 3 * i, false);
    add_linear(m, "moe.experts." + std::to_string(i) + ".down_proj", d, w, 12 + 3 * i, false);
  }
  for (const char* p : {"gate_proj", "up_proj"}) add_linear(m, std::string("moe.shared.") + p, 2 * w, d, 50, false);
  add_linear(m, "moe.shared.down_proj", d, 2 * w, 51, false);
  add_linear(m, "moe.gate", e, d, 52, false);
  Tensor bias = testing::randn({e}, 53, 0.1f);  // [experts]
  m.set("moe.gate.e_score_correction_bias", bias);

  using Q = quant::Dense<bf16>;
  using R = Router<route::Sigmoid, route::GroupLimited<route::Top2Sum>>;
  using Mlp = DenseMLP<act::SwiGLU, Q>;
  const route::RouterConfig rc{e, 3, 2, 3, true, 2.5f};
  MoE<R, Experts<act::SwiGLU, Q>, Mlp> moe(R::load(m, "moe.gate", d, rc),
                                          Experts<act::SwiGLU, Q>::load(m, "moe.experts", e, d, w),
                                          Mlp::load(m, "moe.shared", d, 2 * w));
  const Tensor x = testing::randn_f64({9, d}, 54);  // [tokens, dim]
  Tensor out = Tensor::empty(DType::f64, {9, d});  // [tokens, dim]
  Tensor ids, wts;  // [tokens, top_k] I32, F32
  Exec ex;
  ex.hook = [&](std::string_view name, int, const Tensor& t) {
    if (name == "moe_ids") ids = t.to(Space::host);
    if (name == "moe_weights") wts = t.to(Space::host);
  };
  moe.forward(ex, x, out);
  REQUIRE(ids.defined());
  // Expected: sum_j w_j Expert_{id_j}(x) + Shared(x), each expert run on its own.
  const Tensor shared = Mlp::load(m, "moe.shared", d, 2 * w).forward(Exec{}, x);  // [tokens, dim]
  const auto experts = Experts<act::SwiGLU, Q>::load(m, "moe.experts", e, d, w);
  for (int64_t t = 0; t < 9; ++t) {
    std::vector<double> want(size_t(d), 0.0);
    for (int j = 0; j < 3; ++j) {
      const int id = ids.data_as<int32_t>()[t * 3 + j];
      const Tensor y = experts[id].forward(Exec{}, x.slice(0, t, t + 1));  // [1, dim]
      for (int64_t i = 0; i < d; ++i) want[size_t(i)] += double(wts.data_as<float>()[t * 3 + j]) * y.data_as<double>()[i];
    }
    for (int64_t i = 0; i < d; ++i)
      CHECK(std::fabs(out.data_as<double>()[t * d + i] - want[size_t(i)] - shared.data_as<double>()[t * d + i]) < 1e-12);
  }
}
