// SPDX-License-Identifier: MIT
// MoE<Router, Experts, Shared>: route -> routed experts -> weighted combine, plus the shared
// experts (unweighted, r1-spec §5.4):  MoE(x) = sum_j w_j Expert_{id_j}(x) + Shared(x).
// Shared is optional (n_shared_experts = 0 has none).
#pragma once

#include <optional>
#include <string>

#include "r1/layers/exec.hpp"

namespace r1 {

template <class RouterT, class ExpertsT, class SharedT>
class MoE {
 public:
  MoE() = default;
  MoE(RouterT router, ExpertsT experts, std::optional<SharedT> shared)
      : router_(std::move(router)), experts_(std::move(experts)), shared_(std::move(shared)) {
    R1_CHECK(router_.n_experts() == experts_.count(), "moe", "the router has ", router_.n_experts(),
             " experts, the layer ", experts_.count());
  }

  const RouterT& router() const { return router_; }
  const ExpertsT& experts() const { return experts_; }
  bool has_shared() const { return shared_.has_value(); }

  /// @param x   [tokens, dim]
  /// @param out [tokens, dim]
  void forward(const Exec& ex, const Tensor& x, const Tensor& out, int layer = -1) const {
    const int64_t t = x.size(0), dim = x.size(1);
    const int k = router_.top_k();
    Tensor ids = ex.empty(DType::i32, {t, k});  // [tokens, top_k]
    Tensor w = ex.empty(DType::f32, {t, k});    // [tokens, top_k]
    router_.forward(ex, x, ids, w);
    ex.emit("moe_ids", layer, ids);
    ex.emit("moe_weights", layer, w);
    Tensor shared;  // [tokens, dim], or undefined without shared experts
    if (shared_) {
      shared = ex.act({t, dim});
      shared_->forward(ex, x, shared);
    }
    experts_.forward(ex, x, ids, w, shared, out);
  }

 private:
  RouterT router_;
  ExpertsT experts_;
  std::optional<SharedT> shared_;
};

}  // namespace r1
