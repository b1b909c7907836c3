// SPDX-License-Identifier: MIT
// DeepseekV3<Quant>: the DeepSeek-V3 / R1 decoder assembled from r1's layers (r1-spec §2):
//   h = Embedding(ids); for each layer: h = DecoderLayer(h); logits = lm_head(norm(h))
// with dense MLPs where ModelConfig::is_moe_layer says so (first_k_dense_replace, moe_layer_freq)
// and MoE layers elsewhere, plus the optional MTP module stored as layer num_hidden_layers.
//
// Everything that sizes the model is a run-time value from config.json; the template parameter is
// the quantization policy only (models/deepseek_v3_any.hpp picks it from the checkpoint). Weights
// load from any WeightSource under the published tensor names (one tensor per routed expert,
// e_score_correction_bias, weight_scale_inv, q_proj when q_lora_rank is null); a missing or
// misshapen tensor is an r1::Error naming it and the expected dtype and shape.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "r1/kernels/ref/rope.hpp"
#include "r1/layers/decoder.hpp"
#include "r1/layers/embedding.hpp"
#include "r1/layers/experts.hpp"
#include "r1/layers/linear.hpp"
#include "r1/layers/mla.hpp"
#include "r1/layers/mlp.hpp"
#include "r1/layers/moe.hpp"
#include "r1/layers/mtp.hpp"
#include "r1/layers/norm.hpp"
#include "r1/layers/router.hpp"
#include "r1/models/config.hpp"

namespace r1 {

/// YaRN parameters for the rotary frequencies and the cos/sin multiplier. The factor is the
/// config's `factor` (DeepSeek's rope_factor). Some transformers versions replace it by
/// max_position_embeddings / original_max_position_embeddings; the oracle (transformers 5.17) does
/// not, which tests/data/tiny-v3-noqlora (8192 / 256 != 4) pins down. Without
/// original_max_position_embeddings the correction range uses max_position_embeddings; a missing
/// mscale or mscale_all_dim counts as 0 (Hugging Face's truthiness tests).
inline ref::YarnParams yarn_frequency_params(const ModelConfig& c) {
  ref::YarnParams y;
  const RopeConfig& r = c.rope;
  y.factor = r.factor;
  y.original_max_position = double(c.max_position_embeddings);
  if (r.original_max_position_embeddings) y.original_max_position = double(*r.original_max_position_embeddings);
  y.beta_fast = r.beta_fast;
  y.beta_slow = r.beta_slow;
  y.mscale = r.mscale.value_or(0.0);
  y.mscale_all_dim = r.mscale_all_dim.value_or(0.0);
  y.truncate = r.truncate;
  return y;
}

/// The RoPE table of a config: plain or YaRN, with Hugging Face's attention factor on cos/sin.
inline ref::RopeTable rope_table_for(const ModelConfig& c) {
  const int dim = int(c.qk_rope_head_dim);
  if (c.rope.type != RopeType::yarn) return ref::make_rope_table(dim, c.rope.theta, nullptr);
  const ref::YarnParams y = yarn_frequency_params(c);
  ref::RopeTable t = ref::make_rope_table(dim, c.rope.theta, &y);
  if (c.rope.attention_factor) t.attention_factor = float(*c.rope.attention_factor);
  return t;
}

/// MLA's softmax scale: qk_head_dim^-1/2 times mscale(factor, mscale_all_dim)^2 with the config's
/// own `factor` (Hugging Face's DeepseekV3Attention; R1: 0.1352337789).
inline double softmax_scale_for(const ModelConfig& c) {
  if (c.rope.type != RopeType::yarn) return ref::mla_softmax_scale(int(c.qk_head_dim()), nullptr);
  ref::YarnParams y;
  y.factor = c.rope.factor;
  y.mscale_all_dim = c.rope.mscale_all_dim.value_or(0.0);
  return ref::mla_softmax_scale(int(c.qk_head_dim()), &y);
}

inline MlaConfig mla_config_for(const ModelConfig& c) {
  MlaConfig m;
  m.hidden = c.hidden_size;
  m.heads = c.num_attention_heads;
  m.q_lora_rank = c.q_lora_rank;
  m.kv_lora_rank = c.kv_lora_rank;
  m.nope_dim = c.qk_nope_head_dim;
  m.rope_dim = c.qk_rope_head_dim;
  m.v_dim = c.v_head_dim;
  m.eps = float(c.rms_norm_eps);
  m.softmax_scale = softmax_scale_for(c);
  m.rope = rope_table_for(c);
  return m;
}

inline route::RouterConfig router_config_for(const ModelConfig& c) {
  route::RouterConfig r;
  r.n_experts = int(c.n_routed_experts);
  r.n_group = int(c.n_group);
  r.topk_group = int(c.topk_group);
  r.top_k = int(c.num_experts_per_tok);
  r.norm_topk_prob = c.norm_topk_prob;
  r.routed_scaling_factor = float(c.routed_scaling_factor);
  return r;
}

/// Load-time progress: (what, done, total) after each decoder layer.
using LoadProgress = std::function<void(const std::string& what, int done, int total)>;

template <quant::Policy Q>
class DeepseekV3 {
 public:
  using policy = Q;
  using Attn = MLA<Q>;
  using Mlp = DenseMLP<act::SwiGLU, Q>;
  using V3Router = Router<route::Sigmoid, route::GroupLimited<route::Top2Sum>>;   // noaux_tc
  using GreedyRouter = Router<route::Softmax, route::Greedy>;                     // V2-Lite
  using GroupMaxRouter = Router<route::Softmax, route::GroupLimited<route::GroupMax>>;  // V2
  using RouterT = RouterSet<V3Router, GreedyRouter, GroupMaxRouter>;
  using Moe = MoE<RouterT, Experts<act::SwiGLU, Q>, Mlp>;
  using Layer = DecoderLayer<Attn, Mlp, Moe>;
  using Mtp = MTP<Layer, Q>;

  DeepseekV3() = default;

  /// Builds the model from `src`. `load_mtp` loads the next-n module (layer num_hidden_layers);
  /// without it those tensors are never read.
  template <WeightSource S>
  static DeepseekV3 load(const S& src, const ModelConfig& cfg, bool load_mtp = false,
                         const LoadProgress& progress = {}) {
    check_supported(cfg);
    R1_CHECK(!load_mtp || cfg.num_nextn_predict_layers > 0, "model",
             "MTP was requested but the config has num_nextn_predict_layers = ",
             cfg.num_nextn_predict_layers);
    DeepseekV3 m;
    m.cfg_ = cfg;
    const int64_t d = cfg.hidden_size, v = cfg.vocab_size;
    m.embed_ = Embedding::load(src, "model.embed_tokens.weight", v, d);
    const int total = int(cfg.num_hidden_layers) + (load_mtp ? 1 : 0);
    for (int l = 0; l < cfg.num_hidden_layers; ++l) {
      m.layers_.push_back(load_layer(src, cfg, l));
      if (progress) progress("layer " + std::to_string(l), l + 1, total);
    }
    m.norm_ = RMSNorm::load(src, "model.norm", d, float(cfg.rms_norm_eps));
    if (cfg.tie_word_embeddings && !src.has("lm_head.weight")) {
      m.lm_head_ = Linear<quant::Dense<bf16>>(
          load_tensor(src, "model.embed_tokens.weight", {DType::bf16}, Shape{v, d}), Tensor(), "lm_head (tied)");
    } else {
      m.lm_head_ = Linear<quant::Dense<bf16>>::load(src, "lm_head", v, d);
    }
    if (load_mtp) {
      const int l = int(cfg.num_hidden_layers);
      const std::string p = "model.layers." + std::to_string(l);
      std::optional<Embedding> own;
      if (src.has(p + ".embed_tokens.weight")) own = Embedding::load(src, p + ".embed_tokens.weight", v, d);
      m.mtp_ = Mtp(RMSNorm::load(src, p + ".enorm", d, float(cfg.rms_norm_eps)),
                   RMSNorm::load(src, p + ".hnorm", d, float(cfg.rms_norm_eps)),
                   FlexLinear<Q>::load(src, p + ".eh_proj", d, 2 * d), load_layer(src, cfg, l),
                   RMSNorm::load(src, p + ".shared_head.norm", d, float(cfg.rms_norm_eps)),
                   Linear<quant::Dense<bf16>>::load(src, p + ".shared_head.head", v, d), std::move(own));
      if (progress) progress("mtp layer " + std::to_string(l), total, total);
    }
    return m;
  }

  const ModelConfig& config() const { return cfg_; }
  int num_layers() const { return int(layers_.size()); }
  bool has_mtp() const { return mtp_.has_value(); }
  /// Width of one latent cache row: kv_lora_rank + qk_rope_head_dim.
  int64_t cache_width() const { return cfg_.kv_lora_rank + cfg_.qk_rope_head_dim; }
  const Layer& layer(int l) const { return layers_[size_t(l)]; }
  const Embedding& embedding() const { return embed_; }

  /// Runs tokens at positions start .. start+T-1 through the main model, appending their latent
  /// rows to `caches` (one per layer; each must hold `start` tokens already).
  /// @param ids          [tokens]
  /// @param final_hidden if set, receives the final-normed hidden states [tokens, hidden] (the
  ///                     MTP module's input)
  /// @return logits [tokens, vocab] (F64 on the host)
  Tensor forward(const Exec& ex, View<const int32_t, 1> ids, int64_t start, const std::vector<LatentCacheRef>& caches,
                 Tensor* final_hidden = nullptr, MlaForm form = MlaForm::automatic) const {
    R1_CHECK(caches.size() == layers_.size(), "model", "got ", caches.size(), " layer caches for ",
             layers_.size(), " layers");
    const int64_t t = ids.shape[0];
    R1_CHECK(t > 0, "model", "forward needs at least one token");
    R1_CHECK(start >= 0 && start + t <= cfg_.max_position_embeddings, "model", "positions ", start, " .. ",
             start + t - 1, " exceed max_position_embeddings = ", cfg_.max_position_embeddings);
    Tensor h = ex.act({t, cfg_.hidden_size});  // [tokens, hidden] residual stream
    embed_.forward(ex, ids, h);
    ex.emit("embed", -1, h);
    for (size_t l = 0; l < layers_.size(); ++l) layers_[l].forward(ex, h, start, caches[l], form);
    norm_.forward(ex, h, h);
    ex.emit("final_norm", -1, h);
    Tensor logits = lm_head_.forward(ex, h);  // [tokens, vocab]
    ex.emit("logits", -1, logits);
    if (final_hidden) *final_hidden = h;
    return logits;
  }

  /// The MTP module's draft logits (see layers/mtp.hpp).
  /// @param h        [tokens, hidden] final-normed main hidden states at positions start ..
  /// @param next_ids [tokens] the token following each of those positions
  /// @return [tokens, vocab]
  Tensor mtp_forward(const Exec& ex, const Tensor& h, View<const int32_t, 1> next_ids, int64_t start,
                     const LatentCacheRef& cache, MlaForm form = MlaForm::automatic) const {
    R1_CHECK(mtp_.has_value(), "model", "the MTP module was not loaded (load with MTP enabled)");
    return mtp_->forward(ex, embed_, h, next_ids, start, cache, form);
  }

  /// Throws unless r1 implements what `cfg` describes; the message lists what is supported.
  static void check_supported(const ModelConfig& cfg) {
    R1_CHECK(cfg.hidden_act == "silu", "model", "hidden_act \"", cfg.hidden_act, "\" is not supported (supported: silu)");
    R1_CHECK(cfg.rope_interleave, "model",
             "rope_interleave = false pairs dimensions (i, i + d/2), which is wrong for DeepSeek checkpoints "
             "(r1-spec §4.5); supported: true");
    if (cfg.n_routed_experts > 0) router_kind(cfg);
  }

 private:
  enum class RouterKind { v3, greedy, group_max };
  static RouterKind router_kind(const ModelConfig& c) {
    if (c.scoring_func == ScoringFunc::sigmoid && c.topk_method == TopkMethod::noaux_tc) return RouterKind::v3;
    if (c.scoring_func == ScoringFunc::softmax && c.topk_method == TopkMethod::greedy) return RouterKind::greedy;
    if (c.scoring_func == ScoringFunc::softmax && c.topk_method == TopkMethod::group_limited_greedy)
      return RouterKind::group_max;
    fail("model", "unsupported router: scoring_func \"", scoring_func_name(c.scoring_func), "\" with topk_method \"",
         topk_method_name(c.topk_method),
         "\" (supported: sigmoid + noaux_tc [V3/R1], softmax + greedy [V2-Lite], softmax + "
         "group_limited_greedy [V2])");
  }

  template <WeightSource S>
  static Layer load_layer(const S& src, const ModelConfig& cfg, int l) {
    const std::string p = "model.layers." + std::to_string(l);
    const int64_t d = cfg.hidden_size;
    const float eps = float(cfg.rms_norm_eps);
    RMSNorm in_norm = RMSNorm::load(src, p + ".input_layernorm", d, eps);
    Attn attn = Attn::load(src, p + ".self_attn", mla_config_for(cfg));
    RMSNorm post_norm = RMSNorm::load(src, p + ".post_attention_layernorm", d, eps);
    if (!cfg.is_moe_layer(l)) {
      return Layer(l, std::move(in_norm), std::move(attn), std::move(post_norm),
                   Mlp::load(src, p + ".mlp", d, cfg.intermediate_size), std::nullopt);
    }
    const route::RouterConfig rc = router_config_for(cfg);
    RouterT router;
    switch (router_kind(cfg)) {
      case RouterKind::v3: router = V3Router::load(src, p + ".mlp.gate", d, rc); break;
      case RouterKind::greedy: router = GreedyRouter::load(src, p + ".mlp.gate", d, rc); break;
      case RouterKind::group_max: router = GroupMaxRouter::load(src, p + ".mlp.gate", d, rc); break;
    }
    auto experts = Experts<act::SwiGLU, Q>::load(src, p + ".mlp.experts", int(cfg.n_routed_experts), d,
                                                 cfg.moe_intermediate_size);
    std::optional<Mlp> shared;
    if (cfg.n_shared_experts > 0) {
      shared = Mlp::load(src, p + ".mlp.shared_experts", d, cfg.n_shared_experts * cfg.moe_intermediate_size);
    }
    return Layer(l, std::move(in_norm), std::move(attn), std::move(post_norm), std::nullopt,
                 Moe(std::move(router), std::move(experts), std::move(shared)));
  }

  ModelConfig cfg_;
  Embedding embed_;
  std::vector<Layer> layers_;
  RMSNorm norm_;
  Linear<quant::Dense<bf16>> lm_head_;
  std::optional<Mtp> mtp_;
};

}  // namespace r1
