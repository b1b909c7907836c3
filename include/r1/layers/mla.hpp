// SPDX-License-Identifier: MIT
// MLA<Quant>: DeepSeek's multi-head latent attention layer (r1-spec §3) with its paged latent
// cache rows [c_kv (kv_lora_rank) || k_pe (rope dim)] per token.
//
//   q      = q_b(q_a_layernorm(q_a(x)))        or q_proj(x) when q_lora_rank is 0 (V2-Lite style)
//   kv     = kv_a_proj_with_mqa(x);  c_kv = kv_a_layernorm(kv[:rank]);  k_pe = rope(kv[rank:])
//   cache <- [c_kv || k_pe] at positions start .. start+T-1
//   o      = attention over positions 0 .. start+T-1, expanded or absorbed (kernels/ref/mla.hpp)
//   out    = o_proj(o)
//
// Form: expanded for prefill-like calls, absorbed for decode (T <= 2: one token, or a token plus
// one speculative draft) and for short chunks over a long cache. Both forms give the same result
// to fp32 rounding; a given (T, cache length) always picks the same form, and every row is
// computed independently of the others, so a token's logits do not depend on whether it was
// decoded alone or verified together with a draft.
//
// FP8 native mode: kv_b's input (c_kv) is quantized 1 x 128 per token like every FP8 linear input.
// The cache stores that quantized-dequantized latent, so both forms compute exactly DeepSeek's
// native semantics (kv_b applied to quantized activations) without re-quantizing cached rows.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/kv_cache.hpp"
#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/mla.hpp"
#include "r1/kernels/ref/rope.hpp"
#include "r1/layers/linear.hpp"
#include "r1/layers/norm.hpp"

namespace r1 {

enum class MlaForm : uint8_t { automatic, expanded, absorbed };

/// One layer's view of a paged latent cache.
struct LatentCacheRef {
  Tensor pages;                        ///< [num_pages, page_size, kv_lora_rank + rope_dim] (F64 on the host)
  View<const int32_t, 1> block_table;  ///< [max_blocks] pages of the sequence
};

/// Run-time sizes of an MLA layer (config.json names).
struct MlaConfig {
  int64_t hidden = 0;        ///< hidden_size
  int64_t heads = 0;         ///< num_attention_heads
  int64_t q_lora_rank = 0;   ///< 0: direct q_proj
  int64_t kv_lora_rank = 0;  ///< latent width
  int64_t nope_dim = 0;      ///< qk_nope_head_dim
  int64_t rope_dim = 0;      ///< qk_rope_head_dim
  int64_t v_dim = 0;         ///< v_head_dim
  float eps = 1e-6f;         ///< rms_norm_eps of q_a_layernorm / kv_a_layernorm
  double softmax_scale = 0;  ///< ref::mla_softmax_scale(nope + rope, yarn)
  ref::RopeTable rope;       ///< frequencies for rope_dim
  int64_t qk_dim() const { return nope_dim + rope_dim; }
  int64_t cache_width() const { return kv_lora_rank + rope_dim; }
};

template <quant::Policy Q>
class MLA {
 public:
  MLA() = default;

  template <WeightSource S>
  static MLA load(const S& src, const std::string& prefix, const MlaConfig& c) {
    R1_CHECK(c.hidden > 0 && c.heads > 0 && c.kv_lora_rank > 0 && c.nope_dim > 0 && c.rope_dim > 0 &&
                 c.v_dim > 0 && c.q_lora_rank >= 0,
             "mla", prefix, ": all dimensions must be positive");
    R1_CHECK(c.rope.dim() == c.rope_dim, "mla", prefix, ": rope table has dimension ", c.rope.dim(),
             ", qk_rope_head_dim is ", c.rope_dim);
    R1_CHECK(c.softmax_scale > 0, "mla", prefix, ": softmax scale must be positive");
    MLA m;
    m.name_ = prefix;
    m.cfg_ = c;
    const int64_t qout = c.heads * c.qk_dim();
    if (c.q_lora_rank > 0) {
      m.q_a_ = Linear<Q>::load(src, prefix + ".q_a_proj", c.q_lora_rank, c.hidden);
      m.q_norm_ = RMSNorm::load(src, prefix + ".q_a_layernorm", c.q_lora_rank, c.eps);
      m.q_b_ = Linear<Q>::load(src, prefix + ".q_b_proj", qout, c.q_lora_rank);
    } else {
      m.q_proj_ = Linear<Q>::load(src, prefix + ".q_proj", qout, c.hidden);
    }
    m.kv_a_ = Linear<Q>::load(src, prefix + ".kv_a_proj_with_mqa", c.cache_width(), c.hidden);
    m.kv_norm_ = RMSNorm::load(src, prefix + ".kv_a_layernorm", c.kv_lora_rank, c.eps);
    m.kv_b_ = Linear<Q>::load(src, prefix + ".kv_b_proj", c.heads * (c.nope_dim + c.v_dim), c.kv_lora_rank);
    m.o_ = Linear<Q>::load(src, prefix + ".o_proj", c.hidden, c.heads * c.v_dim);
    return m;
  }

  const MlaConfig& config() const { return cfg_; }

  /// Which form `automatic` uses for `tokens` new tokens over a cache of `keys` tokens.
  static MlaForm choose(int64_t tokens, int64_t keys) {
    return (tokens <= 2 || tokens * 8 < keys) ? MlaForm::absorbed : MlaForm::expanded;
  }

  /// Attention for tokens at positions start .. start+T-1; their cache rows are written first.
  /// @param x     [tokens, hidden] normalized input
  /// @param start number of tokens already in the cache (the first new token's position)
  /// @param cache this layer's pages (F64 on the host) and the sequence's block table
  /// @param out   [tokens, hidden]
  void forward(const Exec& ex, const Tensor& x, int64_t start, const LatentCacheRef& cache, const Tensor& out,
               MlaForm form = MlaForm::automatic, int layer = -1) const {
    ex.require_host(name_);
    using T = host_act_t;
    const MlaConfig& c = cfg_;
    const int64_t t = x.size(0), rank = c.kv_lora_rank, keys = start + t;
    R1_CHECK(cache.pages.defined() && cache.pages.dtype() == kHostActDType && cache.pages.rank() == 3 &&
                 cache.pages.size(2) == c.cache_width(),
             "mla", name_, ": cache pages must be ", dtype_name(kHostActDType), " [pages, page_size, ",
             c.cache_width(), "]");
    auto pages = cache.pages.view<T, 3>();  // [num_pages, page_size, rank + rope]

    // Queries [tokens, heads, nope + rope].
    Tensor q;  // [tokens, heads * (nope + rope)]
    if (c.q_lora_rank > 0) {
      Tensor cq = q_a_->forward(ex, x);  // [tokens, q_lora_rank]
      q_norm_->forward(ex, cq, cq);
      q = q_b_->forward(ex, cq);
    } else {
      q = q_proj_->forward(ex, x);
    }
    auto q3 = q.view<T, 2>().reshape<3>({t, c.heads, c.qk_dim()});
    auto q_nope = q3.slice(2, 0, c.nope_dim);         // [tokens, heads, nope]
    auto q_pe = q3.slice(2, c.nope_dim, c.qk_dim());  // [tokens, heads, rope]
    std::vector<int64_t> pos(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) pos[size_t(i)] = start + i;
    auto pos_v = make_view<1>(static_cast<const int64_t*>(pos.data()), {t});  // [tokens]
    auto inv_freq = make_view<1>(c.rope.inv_freq.data(), {int64_t(c.rope.inv_freq.size())});
    ref::rope_interleaved(q_pe, pos_v, inv_freq, c.rope.attention_factor);

    // New cache rows [tokens, rank + rope]: normalized latent, then the rotated shared key.
    Tensor kv = kv_a_.forward(ex, x);  // [tokens, rank + rope]
    kv_norm_.forward(ex, kv.slice(1, 0, rank), kv.slice(1, 0, rank));
    auto kv2 = kv.view<T, 2>();
    if constexpr (Q::quantizes_activations) {
      // kv_b's act_quant, applied once here (see the file comment).
      Tensor lq = Tensor::empty(DType::f8_e4m3, {t, rank});                      // [tokens, rank]
      Tensor ls = Tensor::empty(kHostActDType, {t, rank / Q::act_group});  // [tokens, rank / group]
      ref::act_quant<Q::act_group>(kv2.slice(1, 0, rank).as_const(), lq.view<fp8_e4m3, 2>(), ls.view<T, 2>());
      ref::act_dequant<Q::act_group>(lq.view<const fp8_e4m3, 2>(), ls.view<const T, 2>(), kv2.slice(1, 0, rank));
    }
    auto k_pe_new = kv2.slice(1, rank, c.cache_width());  // [tokens, rope]
    View<T, 3> k_pe3;  // [tokens, 1, rope]: the rotation kernel's [tokens, heads, dim] with one head
    k_pe3.data = k_pe_new.data;
    k_pe3.shape[0] = t, k_pe3.shape[1] = 1, k_pe3.shape[2] = c.rope_dim;
    k_pe3.stride[0] = k_pe_new.stride[0], k_pe3.stride[1] = 0, k_pe3.stride[2] = 1;
    ref::rope_interleaved(k_pe3, pos_v, inv_freq, c.rope.attention_factor);
    ref::kv_cache_write(kv2.as_const(), pages, cache.block_table, start);

    Tensor o = ex.act({t, c.heads * c.v_dim});                  // [tokens, heads * v]
    auto o3 = o.view<T, 2>().reshape<3>({t, c.heads, c.v_dim});  // [tokens, heads, v]
    if (form == MlaForm::automatic) form = choose(t, keys);
    const auto w_kvb = kv_b_.host_weight();  // [heads * (nope + v), rank]
    if (form == MlaForm::expanded) {
      Tensor all = ex.act({keys, c.cache_width()});  // [keys, rank + rope]
      ref::kv_cache_gather(pages.as_const(), cache.block_table, all.view<T, 2>());
      auto all2 = all.view<const T, 2>();
      Tensor kvx = ex.act({keys, c.heads * (c.nope_dim + c.v_dim)});  // [keys, heads * (nope + v)]
      ref::linear(all2.slice(1, 0, rank), w_kvb, kvx.view<T, 2>());
      auto kv3 = kvx.view<const T, 2>().reshape<3>({keys, c.heads, c.nope_dim + c.v_dim});
      ref::mla_attention_expanded(q_nope.as_const(), q_pe.as_const(), kv3.slice(2, 0, c.nope_dim),
                                  all2.slice(1, rank, c.cache_width()), kv3.slice(2, c.nope_dim, c.nope_dim + c.v_dim),
                                  c.softmax_scale, start, o3);
    } else {
      Tensor q_lat = ex.act({t, c.heads, rank}), o_lat = ex.act({t, c.heads, rank});  // [tokens, heads, rank]
      ref::mla_absorb_q(q_nope.as_const(), w_kvb, int(c.v_dim), q_lat.view<T, 3>());
      ref::mla_attention_absorbed(q_lat.view<const T, 3>(), q_pe.as_const(), pages.as_const(), cache.block_table,
                                  keys, c.softmax_scale, start, o_lat.view<T, 3>());
      ref::mla_v_up(o_lat.view<const T, 3>(), w_kvb, int(c.nope_dim), o3);
    }
    ex.emit("attn_heads", layer, o);
    o_.forward(ex, o, out);
  }

 private:
  std::string name_;
  MlaConfig cfg_;
  std::optional<Linear<Q>> q_a_, q_b_, q_proj_;
  std::optional<RMSNorm> q_norm_;
  Linear<Q> kv_a_, kv_b_, o_;
  RMSNorm kv_norm_;
};

}  // namespace r1
