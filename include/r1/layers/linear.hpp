// SPDX-License-Identifier: MIT
// Linear<Quant>: a bias-free linear layer y = x . W^T whose weight is held in its checkpoint
// storage format (bf16, or e4m3 + f32 weight_scale_inv) and computed according to the policy:
//   Dense<T>           the T weights
//   Fp8Block<dequant>  the dequantized weights, activations as they are
//   Fp8Block<native>   activations quantized 1 x BK per token (DeepSeek's act_quant), times the
//                      dequantized weights; K % BK != 0 is rejected when the layer is built.
// Host path: an fp32 copy of the (dequantized) weight is made once at construction: fp32 holds
// bf16 exactly and is how checkpoints' FP8 weights dequantize (code * scale rounded to fp32), and
// the reference kernels then read contiguous rows. Activations are F64 (layers/exec.hpp). Native
// mode evaluates fake-quantized activations (act_quant + act_dequant) times the dequantized weight:
// the same products as DeepSeek's block-scaled fp8_gemm summed in another order (ref::
// linear_fp8_native is that kernel, the CUDA twin's oracle), and exactly what the project's fp64
// FP8 simulation computes. The storage tensors stay available for device upload.
#pragma once

#include <string>
#include <type_traits>
#include <variant>

#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"
#include "r1/layers/exec.hpp"
#include "r1/layers/weights.hpp"
#include "r1/quant/quant.hpp"

namespace r1 {

template <quant::Policy Q>
class Linear {
 public:
  using policy = Q;

  Linear() = default;

  /// From storage tensors. `weight` [out, in] of Q's dtype; `scale` [ceil(out/BN), ceil(in/BK)]
  /// f32 for FP8 policies (ignored otherwise). `name` appears in error messages.
  Linear(Tensor weight, Tensor scale, std::string name) : name_(std::move(name)) {
    R1_CHECK(weight.rank() == 2, "linear", name_, ": weight must be 2-D, got ", weight.shape().str());
    R1_CHECK(weight.dtype() == Q::weight_dtype, "linear", name_, ": weight has dtype ",
             dtype_name(weight.dtype()), ", the policy stores ", dtype_name(Q::weight_dtype));
    weight_ = weight;
    const int64_t n = weight.size(0), k = weight.size(1);
    if constexpr (Q::has_scale) {
      const Shape want{ref::detail::ceil_div(n, Q::block_n), ref::detail::ceil_div(k, Q::block_k)};
      R1_CHECK(scale.defined(), "linear", name_, ": missing weight_scale_inv (expected F32 ", want.str(), ")");
      R1_CHECK(scale.dtype() == DType::f32 && scale.shape() == want, "linear", name_,
               ": weight_scale_inv is ", dtype_name(scale.dtype()), " ", scale.shape().str(),
               ", expected F32 ", want.str());
      if constexpr (Q::quantizes_activations) {
        R1_CHECK(k % Q::act_group == 0, "linear", name_, ": K = ", k, " is not a multiple of ",
                 Q::act_group, ", so its input cannot be quantized 1 x ", Q::act_group,
                 " (fp8 native mode, as DeepSeek's act_quant); use fp8 dequant mode for this checkpoint");
      }
      scale_ = scale.space() == Space::host ? scale.contiguous() : scale.to(Space::host);
      Tensor wq = weight_.space() == Space::host ? weight_.contiguous() : weight_.to(Space::host);  // [out, in] e4m3
      host_w_ = Tensor::empty(DType::f32, {n, k});
      ref::dequant_fp8_block<Q::block_n, Q::block_k>(wq.view<const fp8_e4m3, 2>(), scale_.view<const float, 2>(),
                                                     host_w_.view<float, 2>());
    } else {
      (void)scale;
      host_w_ = host_f32_copy(weight_);
    }
  }

  /// Loads `<prefix>.weight` (and `<prefix>.weight_scale_inv` for FP8) with shape [out, in].
  template <WeightSource S>
  static Linear load(const S& src, const std::string& prefix, int64_t out, int64_t in) {
    Tensor w = load_tensor(src, prefix + ".weight", {Q::weight_dtype}, Shape{out, in});  // [out, in]
    Tensor s;  // [ceil(out/BN), ceil(in/BK)] for FP8, else undefined
    if constexpr (Q::has_scale) {
      s = load_tensor(src, prefix + ".weight_scale_inv", {DType::f32},
                      Shape{ref::detail::ceil_div(out, Q::block_n), ref::detail::ceil_div(in, Q::block_k)});
    }
    return Linear(w, s, prefix);
  }

  int64_t out_features() const { return weight_.size(0); }
  int64_t in_features() const { return weight_.size(1); }
  const std::string& name() const { return name_; }
  const Tensor& weight() const { return weight_; }  ///< storage dtype, [out, in]
  const Tensor& scale() const { return scale_; }    ///< f32 weight_scale_inv, or undefined
  /// The weight as fp32 on the host (dequantized for FP8): [out, in]. MLA's absorbed form reads
  /// kv_b through this.
  View<const float, 2> host_weight() const { return host_w_.view<const float, 2>(); }

  /// y = x . W^T.
  /// @param x [tokens, in] activations
  /// @param y [tokens, out] activations (may be a column slice of a wider tensor)
  void forward(const Exec& ex, const Tensor& x, const Tensor& y) const {
    ex.require_host(name_);
    auto xv = act_view<2>(x, name_, "input");
    auto yv = act_view<2, host_act_t>(y, name_, "output");
    R1_CHECK(xv.shape[1] == in_features(), "linear", name_, ": input has ", xv.shape[1],
             " features, expected ", in_features());
    if constexpr (Q::quantizes_activations) {
      const int64_t m = xv.shape[0], k = xv.shape[1];
      Tensor xq = Tensor::empty(DType::f8_e4m3, {m, k});                    // [tokens, in]
      Tensor xs = Tensor::empty(kHostActDType, {m, k / Q::act_group});      // [tokens, in / group]
      Tensor xd = ex.act({m, k});                                           // [tokens, in]
      ref::act_quant<Q::act_group>(xv, xq.view<fp8_e4m3, 2>(), xs.view<host_act_t, 2>());
      ref::act_dequant<Q::act_group>(xq.view<const fp8_e4m3, 2>(), xs.view<const host_act_t, 2>(),
                                     xd.view<host_act_t, 2>());
      ref::linear(xd.view<const host_act_t, 2>(), host_w_.view<const float, 2>(), yv);
    } else {
      ref::linear(xv, host_w_.view<const float, 2>(), yv);
    }
  }
  /// Allocating form: returns [tokens, out].
  Tensor forward(const Exec& ex, const Tensor& x) const {
    ex.require_host(name_);
    Tensor y = ex.act({x.size(0), out_features()});  // [tokens, out]
    forward(ex, x, y);
    return y;
  }

 private:
  std::string name_;
  Tensor weight_;      // [out, in] storage dtype
  Tensor scale_;       // [ceil(out/BN), ceil(in/BK)] f32 (FP8 only)
  Tensor host_w_;      // [out, in] f32, dequantized
};

/// A linear layer whose storage the checkpoint decides: the model's policy Q when the tensor is
/// stored that way, else bf16 (DeepSeek ships MTP's eh_proj in bf16 inside the FP8 checkpoint,
/// while other exports quantize it).
template <quant::Policy Q>
class FlexLinear {
 public:
  using Dense = Linear<quant::Dense<bf16>>;
  FlexLinear() = default;

  template <WeightSource S>
  static FlexLinear load(const S& src, const std::string& prefix, int64_t out, int64_t in) {
    FlexLinear f;
    if constexpr (!std::is_same_v<Q, quant::Dense<bf16>>) {
      if (src.has(prefix + ".weight_scale_inv") || !src.has(prefix + ".weight") ||
          src.get(prefix + ".weight").dtype() == Q::weight_dtype) {
        f.impl_ = Linear<Q>::load(src, prefix, out, in);
        return f;
      }
    }
    f.impl_ = Dense::load(src, prefix, out, in);
    return f;
  }
  void forward(const Exec& ex, const Tensor& x, const Tensor& y) const {
    std::visit([&](const auto& l) { l.forward(ex, x, y); }, impl_);
  }
  Tensor forward(const Exec& ex, const Tensor& x) const {
    return std::visit([&](const auto& l) { return l.forward(ex, x); }, impl_);
  }
  int64_t out_features() const { return std::visit([](const auto& l) { return l.out_features(); }, impl_); }
  bool is_dense_bf16() const { return std::holds_alternative<Dense>(impl_); }

 private:
  // One alternative when the model itself is bf16 (a variant may not repeat a type).
  std::conditional_t<std::is_same_v<Q, quant::Dense<bf16>>, std::variant<Dense>, std::variant<Linear<Q>, Dense>> impl_;
};

}  // namespace r1
