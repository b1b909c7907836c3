// SPDX-License-Identifier: MIT
// Router<Scoring, Selection>: the MoE gate. Router logits are computed in fp32 from the input
// rounded to fp32 and the gate weight, as Hugging Face does even in a float64 model (r1-spec
// §11.1; DeepSeek's own code uses bf16 logits), then ref::route_experts picks the experts in fp32
// (see kernels/ref/router.hpp for the exact rule).
//
// RouterSet<R...> holds one of a closed set of routers chosen at load time from config.json
// (scoring_func x topk_method); a model type instantiates it instead of one fixed router.
#pragma once

#include <string>
#include <variant>

#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/router.hpp"
#include "r1/layers/exec.hpp"
#include "r1/layers/weights.hpp"

namespace r1 {

template <route::Scoring Scoring, route::Selection Sel>
class Router {
 public:
  using scoring = Scoring;
  using selection = Sel;
  /// Whether this router uses e_score_correction_bias (DeepSeek-V3's "noaux_tc").
  static constexpr bool uses_bias = std::is_same_v<Scoring, route::Sigmoid>;

  Router() = default;
  /// `weight` [n_experts, dim]; `bias` [n_experts] f32 (required iff uses_bias).
  Router(Tensor weight, Tensor bias, const route::RouterConfig& cfg, std::string name)
      : name_(std::move(name)), cfg_(cfg) {
    route::validate<Sel>(cfg_);
    R1_CHECK(weight.rank() == 2 && weight.size(0) == cfg.n_experts, "router", name_,
             ": gate weight has shape ", weight.shape().str(), ", expected ", cfg.n_experts, " rows");
    weight_ = weight;
    host_w_ = host_f32_copy(weight);
    if constexpr (uses_bias) {
      R1_CHECK(bias.defined(), "router", name_, ": missing e_score_correction_bias");
      bias_ = host_f32_copy(bias);
    }
  }
  template <WeightSource S>
  static Router load(const S& src, const std::string& prefix, int64_t dim, const route::RouterConfig& cfg) {
    Tensor w = load_tensor(src, prefix + ".weight", {DType::bf16, DType::f32}, Shape{cfg.n_experts, dim});  // [experts, dim]
    Tensor b;  // [experts] correction bias, or undefined
    if constexpr (uses_bias) {
      b = load_tensor(src, prefix + ".e_score_correction_bias", {DType::f32, DType::bf16}, Shape{cfg.n_experts});
    }
    return Router(w, b, cfg, prefix);
  }

  const route::RouterConfig& config() const { return cfg_; }
  int top_k() const { return cfg_.top_k; }
  int n_experts() const { return cfg_.n_experts; }

  /// @param x       [tokens, dim] activations
  /// @param ids     [tokens, top_k] I32, written
  /// @param weights [tokens, top_k] F32, written
  void forward(const Exec& ex, const Tensor& x, const Tensor& ids, const Tensor& weights) const {
    ex.require_host(name_);
    auto xv = act_view<2>(x, name_, "input");
    const int64_t t = xv.shape[0], d = xv.shape[1];
    Tensor xf = Tensor::empty(DType::f32, {t, d});  // [tokens, dim] input rounded to fp32
    auto xfv = xf.view<float, 2>();
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < d; ++j) xfv(i, j) = float(xv(i, j));
    Tensor logits = Tensor::empty(DType::f32, {t, cfg_.n_experts});  // [tokens, n_experts]
    ref::linear(xf.view<const float, 2>(), host_w_.view<const float, 2>(), logits.view<float, 2>());
    Tensor none = Tensor::empty(DType::f32, {0});  // [0]: no bias
    const Tensor& b = uses_bias ? bias_ : none;
    ref::route_experts<Scoring, Sel>(logits.view<const float, 2>(), b.view<const float, 1>(), cfg_,
                                     ids.view<int32_t, 2>(), weights.view<float, 2>());
  }

 private:
  std::string name_;
  route::RouterConfig cfg_;
  Tensor weight_;  // [n_experts, dim] storage dtype
  Tensor host_w_;  // [n_experts, dim] f32
  Tensor bias_;    // [n_experts] f32
};

/// One of a closed set of routers; forward dispatches to the one held.
template <class... Routers>
class RouterSet {
 public:
  RouterSet() = default;
  template <class R>
  RouterSet(R r) : impl_(std::move(r)) {}
  int top_k() const { return std::visit([](const auto& r) { return r.top_k(); }, impl_); }
  int n_experts() const { return std::visit([](const auto& r) { return r.n_experts(); }, impl_); }
  void forward(const Exec& ex, const Tensor& x, const Tensor& ids, const Tensor& weights) const {
    std::visit([&](const auto& r) { r.forward(ex, x, ids, weights); }, impl_);
  }
  template <class R>
  bool holds() const { return std::holds_alternative<R>(impl_); }

 private:
  std::variant<Routers...> impl_;
};

}  // namespace r1
