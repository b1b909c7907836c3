// SPDX-License-Identifier: MIT
// RMSNorm layer: a [dim] weight (bf16 or f32 in checkpoints) and eps.
#pragma once

#include <string>

#include "r1/kernels/ref/rmsnorm.hpp"
#include "r1/layers/exec.hpp"
#include "r1/layers/weights.hpp"

namespace r1 {

class RMSNorm {
 public:
  RMSNorm() = default;
  RMSNorm(Tensor weight, float eps, std::string name) : name_(std::move(name)), eps_(eps) {
    R1_CHECK(weight.rank() == 1, "rmsnorm", name_, ": weight must be 1-D, got ", weight.shape().str());
    R1_CHECK(eps >= 0, "rmsnorm", name_, ": eps ", eps, " must be >= 0");
    weight_ = weight;
    host_w_ = host_f32_copy(weight);
  }
  /// Loads `<prefix>.weight` [dim] (BF16 or F32).
  template <WeightSource S>
  static RMSNorm load(const S& src, const std::string& prefix, int64_t dim, float eps) {
    return RMSNorm(load_tensor(src, prefix + ".weight", {DType::bf16, DType::f32}, Shape{dim}), eps, prefix);
  }

  int64_t dim() const { return weight_.size(0); }
  float eps() const { return eps_; }
  const Tensor& weight() const { return weight_; }

  /// @param x [tokens, dim]
  /// @param y [tokens, dim] (may alias x, or be a column slice of a wider tensor)
  void forward(const Exec& ex, const Tensor& x, const Tensor& y) const {
    ex.require_host(name_);
    ref::rmsnorm(act_view<2>(x, name_, "input"), host_w_.view<const float, 1>(), eps_,
                 act_view<2, host_act_t>(y, name_, "output"));
  }
  Tensor forward(const Exec& ex, const Tensor& x) const {
    ex.require_host(name_);
    Tensor y = ex.act(x.shape());  // [tokens, dim]
    forward(ex, x, y);
    return y;
  }
  /// residual += x; y = norm(residual).
  /// @param residual [tokens, dim] in-out;  @param x [tokens, dim];  @param y [tokens, dim]
  void add_forward(const Exec& ex, const Tensor& residual, const Tensor& x, const Tensor& y) const {
    ex.require_host(name_);
    ref::add_rmsnorm(act_view<2, host_act_t>(residual, name_, "residual"), act_view<2>(x, name_, "input"),
                     host_w_.view<const float, 1>(), eps_, act_view<2, host_act_t>(y, name_, "output"));
  }

 private:
  std::string name_;
  float eps_ = 1e-6f;
  Tensor weight_;  // [dim] storage dtype
  Tensor host_w_;  // [dim] f32
};

}  // namespace r1
