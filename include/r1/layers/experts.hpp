// SPDX-License-Identifier: MIT
// Experts<Act, Quant>: the routed experts of an MoE layer (one DenseMLP each, published as one
// tensor per expert: mlp.experts.{e}.{gate,up,down}_proj). forward() permutes the tokens by
// expert, runs each expert on its contiguous block of rows and combines with the router weights
// (ref::moe_routed), adding an optional shared-expert output unweighted.
#pragma once

#include <string>
#include <vector>

#include "r1/kernels/ref/moe.hpp"
#include "r1/layers/mlp.hpp"

namespace r1 {

template <class Act, quant::Policy Q>
class Experts {
 public:
  using expert_type = DenseMLP<Act, Q>;
  Experts() = default;
  explicit Experts(std::vector<expert_type> experts, std::string name)
      : name_(std::move(name)), experts_(std::move(experts)) {
    R1_CHECK(!experts_.empty(), "experts", name_, ": no experts");
  }
  /// Loads `<prefix>.{0..n-1}` with hidden size `dim` and expert width `width`.
  template <WeightSource S>
  static Experts load(const S& src, const std::string& prefix, int n, int64_t dim, int64_t width) {
    std::vector<expert_type> e;
    e.reserve(size_t(n));
    for (int i = 0; i < n; ++i) e.push_back(expert_type::load(src, prefix + "." + std::to_string(i), dim, width));
    return Experts(std::move(e), prefix);
  }

  int count() const { return int(experts_.size()); }
  const expert_type& operator[](int e) const { return experts_[size_t(e)]; }

  /// out = sum_j weights[:, j] * Expert_{ids[:, j]}(x) + shared
  /// @param x       [tokens, dim] activations
  /// @param ids     [tokens, top_k] I32
  /// @param weights [tokens, top_k] F32
  /// @param shared  [tokens, dim] activations, or an undefined Tensor for none
  /// @param out     [tokens, dim] activations
  void forward(const Exec& ex, const Tensor& x, const Tensor& ids, const Tensor& weights, const Tensor& shared,
               const Tensor& out) const {
    ex.require_host(name_);
    Tensor none = ex.act({0, 0});  // [0, 0]: no shared output
    auto expert = [&](int e, View<const host_act_t, 2> xe, View<host_act_t, 2> ye) {
      // The rows of one expert, as tensors borrowing the permuted buffers.
      const Tensor xt = Tensor::borrow(const_cast<host_act_t*>(xe.data), kHostActDType, {xe.shape[0], xe.shape[1]},
                                       Space::host, nullptr);  // [rows, dim]
      const Tensor yt = Tensor::borrow(ye.data, kHostActDType, {ye.shape[0], ye.shape[1]}, Space::host, nullptr);  // [rows, dim]
      experts_[size_t(e)].forward(ex, xt, yt);
    };
    ref::moe_routed(act_view<2>(x, name_, "input"), ids.view<const int32_t, 2>(), weights.view<const float, 2>(),
                    count(), expert, act_view<2>(shared.defined() ? shared : none, name_, "shared"),
                    act_view<2, host_act_t>(out, name_, "output"));
  }

 private:
  std::string name_;
  std::vector<expert_type> experts_;
};

}  // namespace r1
