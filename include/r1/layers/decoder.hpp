// SPDX-License-Identifier: MIT
// DecoderLayer<Attn, Mlp, Moe>: one pre-norm transformer block (r1-spec §2):
//   h += Attn(input_layernorm(h));  h += FFN(post_attention_layernorm(h))
// where FFN is the dense MLP or the MoE, fixed per layer index at load time.
#pragma once

#include <optional>
#include <string>

#include "r1/layers/mla.hpp"
#include "r1/layers/norm.hpp"

namespace r1 {

template <class Attn, class Mlp, class Moe>
class DecoderLayer {
 public:
  DecoderLayer() = default;
  DecoderLayer(int index, RMSNorm input_norm, Attn attn, RMSNorm post_norm, std::optional<Mlp> mlp,
               std::optional<Moe> moe)
      : index_(index), input_norm_(std::move(input_norm)), attn_(std::move(attn)),
        post_norm_(std::move(post_norm)), mlp_(std::move(mlp)), moe_(std::move(moe)) {
    R1_CHECK(mlp_.has_value() != moe_.has_value(), "decoder", "layer ", index,
             " needs exactly one of a dense MLP and an MoE");
  }

  int index() const { return index_; }
  bool is_moe() const { return moe_.has_value(); }
  const Attn& attention() const { return attn_; }
  const std::optional<Moe>& moe() const { return moe_; }

  /// Runs the block on the residual stream in place.
  /// @param h     [tokens, hidden] f32, updated
  /// @param start position of the first token (= tokens already in this layer's cache)
  void forward(const Exec& ex, const Tensor& h, int64_t start, const LatentCacheRef& cache,
               MlaForm form = MlaForm::automatic) const {
    const Shape s = h.shape();
    Tensor a = ex.act(s), o = ex.act(s);  // [tokens, hidden]
    input_norm_.forward(ex, h, a);
    attn_.forward(ex, a, start, cache, o, form, index_);
    ex.emit("attn_out", index_, o);
    post_norm_.add_forward(ex, h, o, a);
    if (moe_) {
      moe_->forward(ex, a, o, index_);
    } else {
      mlp_->forward(ex, a, o);
    }
    ex.emit("ffn_out", index_, o);
    ex.require_host("decoder");
    auto hv = h.view<host_act_t, 2>();
    auto ov = o.view<const host_act_t, 2>();
    for (int64_t i = 0; i < s[0]; ++i)
      for (int64_t j = 0; j < s[1]; ++j) hv(i, j) += ov(i, j);
    ex.emit("layer_out", index_, h);
  }

 private:
  int index_ = 0;
  RMSNorm input_norm_;
  Attn attn_;
  RMSNorm post_norm_;
  std::optional<Mlp> mlp_;
  std::optional<Moe> moe_;
};

}  // namespace r1
