// SPDX-License-Identifier: MIT
// DenseMLP<Act, Quant>: the gated feed-forward block FFN(x) = W_down . act(W_gate . x, W_up . x).
// DeepSeek uses it for the first dense layers, for each routed expert and for the shared experts
// (width n_shared_experts * moe_intermediate_size). Act is a policy; SwiGLU is the one shipped.
#pragma once

#include <string>

#include "r1/kernels/ref/swiglu.hpp"
#include "r1/layers/exec.hpp"
#include "r1/layers/linear.hpp"

namespace r1 {

namespace act {
/// silu(gate) * up (config.json "hidden_act": "silu").
struct SwiGLU {
  static constexpr const char* name = "silu";
  /// @param gate [rows, width]; @param up [rows, width]; @param out [rows, width] (may alias gate)
  static void apply(const Exec& ex, const Tensor& gate, const Tensor& up, const Tensor& out) {
    ex.require_host("swiglu");
    ref::swiglu(act_view<2>(gate, "swiglu", "gate"), act_view<2>(up, "swiglu", "up"),
                act_view<2, host_act_t>(out, "swiglu", "out"));
  }
};
}  // namespace act

template <class Act, quant::Policy Q>
class DenseMLP {
 public:
  DenseMLP() = default;
  DenseMLP(Linear<Q> gate, Linear<Q> up, Linear<Q> down)
      : gate_(std::move(gate)), up_(std::move(up)), down_(std::move(down)) {
    R1_CHECK(gate_.out_features() == up_.out_features() && gate_.in_features() == up_.in_features() &&
                 down_.in_features() == gate_.out_features() && down_.out_features() == gate_.in_features(),
             "mlp", gate_.name(), ": inconsistent gate/up/down shapes");
  }
  /// Loads `<prefix>.{gate,up,down}_proj` for hidden size `dim` and inner width `width`.
  template <WeightSource S>
  static DenseMLP load(const S& src, const std::string& prefix, int64_t dim, int64_t width) {
    return DenseMLP(Linear<Q>::load(src, prefix + ".gate_proj", width, dim),
                    Linear<Q>::load(src, prefix + ".up_proj", width, dim),
                    Linear<Q>::load(src, prefix + ".down_proj", dim, width));
  }

  int64_t dim() const { return gate_.in_features(); }
  int64_t width() const { return gate_.out_features(); }

  /// @param x [tokens, dim]
  /// @param y [tokens, dim]
  void forward(const Exec& ex, const Tensor& x, const Tensor& y) const {
    Tensor g = gate_.forward(ex, x);  // [tokens, width]
    Tensor u = up_.forward(ex, x);    // [tokens, width]
    Act::apply(ex, g, u, g);
    down_.forward(ex, g, y);
  }
  /// Allocating form: returns [tokens, dim].
  Tensor forward(const Exec& ex, const Tensor& x) const {
    ex.require_host(gate_.name());
    Tensor y = ex.act({x.size(0), dim()});  // [tokens, dim]
    forward(ex, x, y);
    return y;
  }

 private:
  Linear<Q> gate_, up_, down_;
};

}  // namespace r1
