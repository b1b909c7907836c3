// SPDX-License-Identifier: MIT
// MTP<Layer, Quant>: DeepSeek-V3's multi-token-prediction (next-n) module, stored as decoder layer
// num_hidden_layers (r1-spec §8.1). For position i, from the main model's final-normed hidden
// state h_i and the next token x_{i+1}:
//   u_i = eh_proj([enorm(Emb(x_{i+1})) ; hnorm(h_i)])     embedding first (vLLM, SGLang)
//   v_i = Layer(u_i) at position i                          its own latent cache
//   logits'_i = shared_head.head(shared_head.norm(v_i))    predicts x_{i+2}
// Emb is the layer's own embed_tokens copy when the checkpoint has one, else the main embedding.
#pragma once

#include <optional>
#include <string>

#include "r1/layers/decoder.hpp"
#include "r1/layers/embedding.hpp"
#include "r1/layers/linear.hpp"
#include "r1/layers/norm.hpp"

namespace r1 {

template <class Layer, quant::Policy Q>
class MTP {
 public:
  MTP() = default;
  MTP(RMSNorm enorm, RMSNorm hnorm, FlexLinear<Q> eh_proj, Layer block, RMSNorm head_norm,
      Linear<quant::Dense<bf16>> head, std::optional<Embedding> embed)
      : enorm_(std::move(enorm)), hnorm_(std::move(hnorm)), eh_proj_(std::move(eh_proj)),
        block_(std::move(block)), head_norm_(std::move(head_norm)), head_(std::move(head)),
        embed_(std::move(embed)) {}

  const Layer& block() const { return block_; }
  bool has_own_embedding() const { return embed_.has_value(); }
  const FlexLinear<Q>& eh_proj() const { return eh_proj_; }

  /// Draft logits for positions start .. start+T-1.
  /// @param main_embed the main model's embedding (used when the layer has no copy)
  /// @param h          [tokens, hidden] final-normed main hidden states at those positions
  /// @param next_ids   [tokens] the token after each position
  /// @param start      position of the first row (= tokens already in the MTP cache)
  /// @return [tokens, vocab] logits
  Tensor forward(const Exec& ex, const Embedding& main_embed, const Tensor& h, View<const int32_t, 1> next_ids,
                 int64_t start, const LatentCacheRef& cache, MlaForm form = MlaForm::automatic) const {
    const int64_t t = h.size(0), d = h.size(1);
    R1_CHECK(next_ids.shape[0] == t, "mtp", "got ", t, " hidden states and ", next_ids.shape[0], " next tokens");
    Tensor cat = ex.act({t, 2 * d});  // [tokens, 2 * hidden]: [enorm(emb) ; hnorm(h)]
    Tensor e = ex.act({t, d});        // [tokens, hidden]
    (embed_ ? *embed_ : main_embed).forward(ex, next_ids, e);
    enorm_.forward(ex, e, cat.slice(1, 0, d));
    hnorm_.forward(ex, h, cat.slice(1, d, 2 * d));
    Tensor u = eh_proj_.forward(ex, cat);  // [tokens, hidden]
    block_.forward(ex, u, start, cache, form);
    head_norm_.forward(ex, u, u);
    ex.emit("mtp_norm", block_.index(), u);
    return head_.forward(ex, u);
  }

 private:
  RMSNorm enorm_, hnorm_;
  FlexLinear<Q> eh_proj_;
  Layer block_;
  RMSNorm head_norm_;
  Linear<quant::Dense<bf16>> head_;
  std::optional<Embedding> embed_;
};

}  // namespace r1
