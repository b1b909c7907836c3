// SPDX-License-Identifier: MIT
// The device decoder block of CudaDeepseekV3 (models/deepseek_v3_cuda.hpp): MLA, dense MLP and MoE
// forwards over uploaded weights (deepseek_v3_cuda_weights.hpp), launching kernels only through the
// host-callable r1::cuda declarations, with every intermediate from a Workspace.
//
// Activation dtypes (the block is a template on TA, the activation type, and TR, the residual
// stream's; Activations in deepseek_v3_cuda_weights.hpp):
//  - bf16: GEMM inputs and sub-layer outputs bf16; the residual stream f32 (bf16 in the MTP block,
//    whose input comes out of a bf16 GEMM); router logits f32; tensor-core GEMMs and attention.
//  - f32: every activation and the latent cache f32; GEMMs are cuda::linear_f32 /
//    grouped_linear_f32 (fp32 FMA), attention the generic fp32 kernels. The main model's residual
//    stream is f64 (residual_t): the f32 sub-layer outputs are added to it in fp64 and the norms
//    reading it (the norms of every layer's two inputs and the final norm) compute in fp64 and
//    write f32 (f32 in the MTP block, whose input comes out of an f32 GEMM).
// In FP8 native mode an FP8 linear's input is quantized 1 x 128 (cuda::act_quant), except where it
// is a norm of the residual stream: then cuda::rmsnorm_quant_fp8 quantizes straight from the
// residual, which keeps the e4m3 rounding decisions as close to the oracle's fp64 simulation as
// possible. With f32 activations that is exact where it matters most: from the f64 residual the
// norm, its amax, the scale and the quotient are fp64, the quotient rounded to fp32 and then to
// e4m3 as the simulation does, so inputs sitting exactly on an e4m3 rounding tie (the first
// layer's normalized embeddings, products of bf16 values, have them) stay on it and round to even;
// fp32 arithmetic there moved one of tiny-r1-mtp's off its tie, and the flipped code cascaded
// (docs/model.md, "FP8 native with f32 activations"). The norms of q_a's and kv_a's f32 outputs
// quantize in fp64 too (quant_norm_t): their fp32 scales, one f32 ulp off the simulation's, were
// the next departure. Every other quantizer (act_quant) reads fp32 values in fp32.
#pragma once

#include "r1/core/config.hpp"

#if R1_WITH_CUDA

#include <optional>
#include <string>
#include <type_traits>

#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/embedding.hpp"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/kernels/cuda/kv_cache.hpp"
#include "r1/kernels/cuda/linear.hpp"
#include "r1/kernels/cuda/linear_f32.hpp"
#include "r1/kernels/cuda/linear_fp8.hpp"
#include "r1/kernels/cuda/mla.hpp"
#include "r1/kernels/cuda/moe.hpp"
#include "r1/kernels/cuda/rmsnorm.hpp"
#include "r1/kernels/cuda/rope.hpp"
#include "r1/kernels/cuda/router.hpp"
#include "r1/kernels/cuda/swiglu.hpp"
#include "r1/kernels/router_policy.hpp"
#include "r1/models/deepseek_v3.hpp"
#include "r1/models/deepseek_v3_cuda_weights.hpp"
#include "r1/runtime/workspace_cuda.hpp"

namespace r1 {

/// One forward's token layout: `batch` sequences with `tokens` new tokens each, rows ordered
/// sequence-major (row = b * tokens + t). Everything the kernels read lives on the device.
struct DeviceBatch {
  int64_t batch = 1, tokens = 1;
  View<const int32_t, 1> ids;           ///< [rows] token ids
  View<const int32_t, 1> positions;     ///< [rows] absolute positions
  View<const int32_t, 1> slots;         ///< [rows] cache slot of each new row (page * page_size + offset)
  View<const int32_t, 1> seq_lens;      ///< [batch] cached tokens after this forward (the keys)
  View<const int32_t, 2> block_tables;  ///< [batch, max_blocks] pages of each sequence
  /// >= 0: one sequence whose first new token sits at this host-known position, which selects the
  /// expanded (prefill) attention; -1: absorbed (decode) attention with lengths read on the device.
  int64_t start = -1;
  int64_t rows() const { return batch * tokens; }
};

/// The main model's residual stream type for activation type TA: f32 with bf16 activations, f64
/// with f32 ones (the norms feeding FP8 native's quantizers then compute in fp64: file comment).
template <class TA>
using residual_t = std::conditional_t<std::is_same_v<TA, float>, double, float>;

/// The arithmetic of the norms of TA projections (q_a, kv_a) that FP8 native quantizes: the
/// residual's precision (fp64 with f32 activations, the f32 outputs read exactly into fp64, as the
/// residual's norms; fp32 with bf16 ones).
template <class TA>
using quant_norm_t = residual_t<TA>;

/// What every layer of one forward shares.
struct LayerContext {
  Workspace* ws = nullptr;
  const ModelConfig* cfg = nullptr;
  View<const float, 1> inv_freq;  ///< [rope_dim / 2] f32
  float attention_factor = 1;
  double softmax_scale = 0;
  bool native = false;  ///< FP8 native mode
  stream_t stream() const { return ws->stream(); }
};

/// An activation quantized 1 x 128: codes and MN-major scales.
struct QuantAct {
  View<const fp8_e4m3, 2> q;  ///< [rows, K] e4m3
  View<const float, 2> s;     ///< [rows, K / 128] f32
  bool defined() const { return q.data != nullptr; }
};

/// Quantizes x [rows, K] (bf16 or f32) 1 x 128 into workspace buffers.
template <class TX>
QuantAct quantize(const LayerContext& c, View<const TX, 2> x) {
  const int64_t m = x.shape[0], k = x.shape[1];
  Tensor q = c.ws->take(DType::f8_e4m3, {m, k});       // [rows, K]
  Tensor s = c.ws->take(DType::f32, {k / 128, m});     // [K / 128, rows]: MN-major scales
  const View<float, 2> sv = cuda::mn_major_scales(s.data_as<float>(), m, k / 128);  // [rows, K / 128]
  cuda::act_quant<128, TX>(x, q.view<fp8_e4m3, 2>(), sv, c.stream());
  return QuantAct{q.view<const fp8_e4m3, 2>(), sv};
}

/// rmsnorm(x) * w quantized 1 x 128 without rounding the norm's output in between, computed in C
/// (by default fp64 for an f64 x, else fp32).
/// @param x [rows, K] f64, f32 or bf16 (the residual stream, or a projection)
template <class TX, class C = cuda::norm_compute_t<TX>>
QuantAct norm_quantize(const LayerContext& c, View<const TX, 2> x, const DeviceNorm& n) {
  const int64_t m = x.shape[0], k = x.shape[1];
  Tensor q = c.ws->take(DType::f8_e4m3, {m, k});    // [rows, K]
  Tensor s = c.ws->take(DType::f32, {k / 128, m});  // [K / 128, rows]
  const View<float, 2> sv = cuda::mn_major_scales(s.data_as<float>(), m, k / 128);  // [rows, K / 128]
  cuda::rmsnorm_quant_fp8<128, TX, bf16, C>(x, n.view(), n.eps, q.view<fp8_e4m3, 2>(), sv, c.stream());
  return QuantAct{q.view<const fp8_e4m3, 2>(), sv};
}

/// y = x . W^T. A native FP8 layer uses `xq` when given (already quantized x), else quantizes x.
/// @param x [rows, in] TA (may be empty when xq is given and the layer is native)
/// @param y [rows, out] TA
template <class TA>
void apply_linear(const LayerContext& c, const DeviceLinear& l, View<const TA, 2> x, QuantAct xq, View<TA, 2> y) {
  R1_CHECK(l.native() || x.data != nullptr, "linear", l.name, ": no unquantized input for a layer that needs one");
  const stream_t s = c.stream();
  if (l.native()) {
    const QuantAct a = xq.defined() ? xq : quantize(c, x);
    if constexpr (std::is_same_v<TA, float>) {
      cuda::linear_f32(a.q, a.s, l.w.view<const fp8_e4m3, 2>(), l.ws.view<const float, 2>(), y, s);
    } else {
      cuda::linear_fp8_native<128, 128>(a.q, a.s, l.w.view<const fp8_e4m3, 2>(), l.ws.view<const float, 2>(), y, s);
    }
  } else if constexpr (std::is_same_v<TA, float>) {
    if (l.fp8()) {
      cuda::linear_f32(x, l.w.view<const fp8_e4m3, 2>(), l.ws.view<const float, 2>(), y, s);
    } else {
      cuda::linear_f32(x, l.w.view<const bf16, 2>(), y, s);
    }
  } else {
    cuda::linear<bf16>(x, l.w.view<const bf16, 2>(), y, s);
  }
}

/// logits [rows, out] f32 = x . W^T for a bf16 weight (router, LM heads), in the activations' GEMM.
template <class TA>
void logits_linear(View<const TA, 2> x, const Tensor& w, View<float, 2> logits, stream_t s) {
  if constexpr (std::is_same_v<TA, float>) {
    cuda::linear_f32(x, w.view<const bf16, 2>(), logits, s);
  } else {
    cuda::linear<float>(x, w.view<const bf16, 2>(), logits, s);
  }
}

/// One decoder block (r1-spec §2) on the device.
class DeviceDecoderLayer {
 public:
  enum class RouterKind { v3, greedy, group_max };

  template <WeightSource S>
  static DeviceDecoderLayer load(const S& src, const ModelConfig& cfg, int l, const DeviceWeightMode& mode) {
    DeviceDecoderLayer L;
    const std::string p = "model.layers." + std::to_string(l);
    const int64_t d = cfg.hidden_size;
    const float eps = float(cfg.rms_norm_eps);
    L.index_ = l;
    L.in_norm_ = DeviceNorm::load(src, p + ".input_layernorm", d, eps);
    L.attn_ = DeviceMla::load(src, p + ".self_attn", cfg, mode);
    L.post_norm_ = DeviceNorm::load(src, p + ".post_attention_layernorm", d, eps);
    if (!cfg.is_moe_layer(l)) {
      L.mlp_ = DeviceMlp::load(src, p + ".mlp", d, cfg.intermediate_size, mode);
      return L;
    }
    L.moe_ = true;
    L.rc_ = router_config_for(cfg);
    if (cfg.scoring_func == ScoringFunc::sigmoid) {
      L.kind_ = RouterKind::v3;
    } else {
      L.kind_ = cfg.topk_method == TopkMethod::greedy ? RouterKind::greedy : RouterKind::group_max;
    }
    L.router_ = DeviceRouter::load(src, p + ".mlp.gate", cfg.n_routed_experts, d, L.kind_ == RouterKind::v3);
    L.experts_ = DeviceExperts::load(src, p + ".mlp.experts", cfg.n_routed_experts, d, cfg.moe_intermediate_size, mode);
    if (cfg.n_shared_experts > 0) {
      L.shared_ = DeviceMlp::load(src, p + ".mlp.shared_experts", d, cfg.n_shared_experts * cfg.moe_intermediate_size,
                                  mode);
    }
    return L;
  }

  bool is_moe() const { return moe_; }

  /// Runs the block. `h` is the residual stream [rows, hidden] (bf16 activations: f32, or bf16 in
  /// the MTP block; f32 activations: f64, or f32 in the MTP block), `pending` the previous block's
  /// FFN output [rows, hidden] (activation dtype) not yet added to it (undefined for the first
  /// block), `pages` this layer's latent cache [num_pages, page_size, kv_lora + rope] in the
  /// activation dtype. Returns this block's FFN output [rows, hidden] in the activation dtype,
  /// likewise not yet added.
  Tensor forward(const LayerContext& c, const DeviceBatch& b, const Tensor& h, const Tensor& pending,
                 const Tensor& pages) const {
    if (pages.dtype() == DType::f32) {
      if (h.dtype() == DType::f64) return forward_t<float>(c, b, h.view<double, 2>(), pending, pages.view<float, 3>());
      R1_CHECK(h.dtype() == DType::f32, "model", "f32 activations need an f64 or f32 residual stream, got ",
               dtype_name(h.dtype()));
      return forward_t<float>(c, b, h.view<float, 2>(), pending, pages.view<float, 3>());
    }
    R1_CHECK(pages.dtype() == DType::bf16, "model", "latent cache of ", dtype_name(pages.dtype()),
             " (bf16 or f32 expected)");
    if (h.dtype() == DType::f32) return forward_t<bf16>(c, b, h.view<float, 2>(), pending, pages.view<bf16, 3>());
    return forward_t<bf16>(c, b, h.view<bf16, 2>(), pending, pages.view<bf16, 3>());
  }

 private:
  template <class TA, class TR>
  Tensor forward_t(const LayerContext& c, const DeviceBatch& b, View<TR, 2> h, const Tensor& pending,
                   View<TA, 3> pages) const {
    const int64_t n = h.shape[0], d = h.shape[1];
    const stream_t s = c.stream();
    constexpr DType act = dtype_v<TA>;
    Tensor a = c.ws->take(act, {n, d});  // [rows, hidden] normalized input
    auto av = a.view<TA, 2>();
    if (pending.defined()) {
      cuda::add_rmsnorm(h, pending.view<const TA, 2>(), in_norm_.view(), in_norm_.eps, av, s);
    } else {
      cuda::rmsnorm(h.as_const(), in_norm_.view(), in_norm_.eps, av, s);
    }
    QuantAct aq;  // native: the same input quantized from the residual (q_a / q_proj and kv_a share it)
    if (c.native && d % 128 == 0) aq = norm_quantize(c, h.as_const(), in_norm_);
    Tensor o = c.ws->take(act, {n, d});  // [rows, hidden] attention output
    attention<TA>(c, b, av.as_const(), aq, pages, o.view<TA, 2>());
    cuda::add_rmsnorm(h, o.view<const TA, 2>(), post_norm_.view(), post_norm_.eps, av, s);
    QuantAct fq;
    if (c.native && d % 128 == 0) fq = norm_quantize(c, h.as_const(), post_norm_);
    Tensor out = c.ws->take(act, {n, d});  // [rows, hidden] FFN output
    if (moe_) {
      moe<TA>(c, av.as_const(), fq, out.view<TA, 2>());
    } else {
      mlp<TA>(c, *mlp_, av.as_const(), fq, out.view<TA, 2>());
    }
    return out;
  }

  /// MLA (r1-spec §3): queries, the new latent rows into the cache, attention, o_proj.
  template <class TA>
  void attention(const LayerContext& c, const DeviceBatch& b, View<const TA, 2> x, QuantAct xq, View<TA, 3> pages,
                 View<TA, 2> out) const {
    const ModelConfig& g = *c.cfg;
    const stream_t s = c.stream();
    const int64_t n = x.shape[0], heads = g.num_attention_heads, nope = g.qk_nope_head_dim,
                  rope = g.qk_rope_head_dim, qk = nope + rope, rank = g.kv_lora_rank, vd = g.v_head_dim,
                  width = rank + rope;
    const DeviceMla& m = attn_;
    Tensor q = c.ws->take(dtype_v<TA>, {n, heads * qk});  // [rows, heads * (nope + rope)]
    if (g.q_lora_rank > 0) {
      Tensor cq = c.ws->take(dtype_v<TA>, {n, g.q_lora_rank});  // [rows, q_lora]
      apply_linear<TA>(c, m.q_a, x, xq, cq.view<TA, 2>());
      if (m.q_b.native()) {
        const QuantAct cq_q = norm_quantize<TA, quant_norm_t<TA>>(c, cq.view<const TA, 2>(), m.q_norm);
        apply_linear<TA>(c, m.q_b, {}, cq_q, q.view<TA, 2>());
      } else {
        cuda::rmsnorm(cq.view<const TA, 2>(), m.q_norm.view(), m.q_norm.eps, cq.view<TA, 2>(), s);
        apply_linear<TA>(c, m.q_b, cq.view<const TA, 2>(), {}, q.view<TA, 2>());
      }
    } else {
      apply_linear<TA>(c, m.q_proj, x, xq, q.view<TA, 2>());
    }
    auto q3 = q.view<TA, 2>().template reshape<3>({n, heads, qk});  // [rows, heads, nope + rope]
    auto q_nope = q3.slice(2, 0, nope);                       // [rows, heads, nope]
    auto q_pe = q3.slice(2, nope, qk);                        // [rows, heads, rope]
    cuda::rope_interleaved(q_pe, b.positions, c.inv_freq, c.attention_factor, s);

    // New cache rows [rows, rank + rope]: normalized latent, then the rotated shared key.
    Tensor kv = c.ws->take(dtype_v<TA>, {n, width});  // [rows, rank + rope]
    auto kvv = kv.view<TA, 2>();
    apply_linear<TA>(c, m.kv_a, x, xq, kvv);
    // Native: kv_b's input quantized straight from the norm (no rounding of the normalized latent
    // before its e4m3 rounding). With f32 activations the cache then holds the latent as kv_b's FP8
    // GEMM sees it (the dequantized codes, exact in f32), so the absorbed decode's keys and values
    // are the oracle simulation's kv_b(quant(c)); with bf16 activations the cache holds the
    // unquantized bf16 latent, as DeepSeek's own absorbed inference does.
    constexpr bool f32 = std::is_same_v<TA, float>;
    QuantAct lat_q;
    if (m.kv_b.native() && (b.start == 0 || f32)) {
      lat_q = norm_quantize<TA, quant_norm_t<TA>>(c, kvv.slice(1, 0, rank).as_const(), m.kv_norm);
    }
    bool cached = false;  // the latent rows already hold what the cache should
    if constexpr (f32) {
      if (lat_q.defined()) {
        cuda::act_dequant<128>(lat_q.q, lat_q.s, kvv.slice(1, 0, rank), s);
        cached = true;
      }
    }
    if (!cached) {
      cuda::rmsnorm(kvv.slice(1, 0, rank).as_const(), m.kv_norm.view(), m.kv_norm.eps, kvv.slice(1, 0, rank), s);
    }
    View<TA, 3> k_pe3;  // [rows, 1, rope]: the rotation's [tokens, heads, dim] with one head
    k_pe3.data = kvv.data + rank;
    k_pe3.space = Space::cuda;
    k_pe3.shape[0] = n, k_pe3.shape[1] = 1, k_pe3.shape[2] = rope;
    k_pe3.stride[0] = kvv.stride[0], k_pe3.stride[1] = rope, k_pe3.stride[2] = 1;
    cuda::rope_interleaved(k_pe3, b.positions, c.inv_freq, c.attention_factor, s);
    cuda::kv_cache_write(kvv.as_const(), pages, b.slots, s);

    Tensor o = c.ws->take(dtype_v<TA>, {n, heads * vd});  // [rows, heads * v]
    auto o3 = o.view<TA, 2>().template reshape<3>({n, heads, vd});  // [rows, heads, v]
    const View<const TA, 2> w_kvb = m.kv_b_dense.view<const TA, 2>();  // [heads * (nope + v), rank]
    if (b.start >= 0) {
      // Prefill: every key's k_nope and v from the latent rows (kv_b over the gathered cache).
      const int64_t keys = b.start + n;
      Tensor all = c.ws->take(dtype_v<TA>, {keys, width});  // [keys, rank + rope]
      auto allv = all.view<TA, 2>();
      cuda::kv_cache_gather(pages.as_const(), b.block_tables.select(0, 0), allv, s);
      Tensor kvx = c.ws->take(dtype_v<TA>, {keys, heads * (nope + vd)});  // [keys, heads * (nope + v)]
      // From position 0 the new rows are every key: kv_b takes the quantized latent as it is; a later
      // chunk quantizes the gathered rows.
      apply_linear<TA>(c, m.kv_b, allv.slice(1, 0, rank).as_const(), b.start == 0 ? lat_q : QuantAct{},
                       kvx.view<TA, 2>());
      auto kv3 = kvx.view<const TA, 2>().template reshape<3>({keys, heads, nope + vd});  // [keys, heads, nope + v]
      cuda::mla_attention_expanded<TA>(q_nope.as_const(), q_pe.as_const(), kv3.slice(2, 0, nope),
                                         allv.slice(1, rank, width).as_const(), kv3.slice(2, nope, nope + vd),
                                         c.softmax_scale, b.start, o3, s);
    } else {
      // Decode: absorbed attention over the paged cache, batched, lengths on the device.
      Tensor q_lat = c.ws->take(dtype_v<TA>, {n, heads, rank});  // [rows, heads, rank]
      Tensor o_lat = c.ws->take(dtype_v<TA>, {n, heads, rank});  // [rows, heads, rank]
      cuda::mla_absorb_q<TA>(q_nope.as_const(), w_kvb, int(vd), q_lat.view<TA, 3>(), s);
      const int64_t bt = b.batch, tt = b.tokens;
      auto ql4 = q_lat.view<const TA, 3>().template reshape<4>({bt, tt, heads, rank});  // [batch, tokens, heads, rank]
      auto ol4 = o_lat.view<TA, 3>().template reshape<4>({bt, tt, heads, rank});        // [batch, tokens, heads, rank]
      View<const TA, 4> qpe4;  // [batch, tokens, heads, rope]: a strided slice of q
      qpe4.data = q_pe.data;
      qpe4.space = Space::cuda;
      qpe4.shape[0] = bt, qpe4.shape[1] = tt, qpe4.shape[2] = heads, qpe4.shape[3] = rope;
      qpe4.stride[0] = tt * q_pe.stride[0], qpe4.stride[1] = q_pe.stride[0], qpe4.stride[2] = q_pe.stride[1];
      qpe4.stride[3] = 1;
      cuda::mla_attention_absorbed<TA>(ql4, qpe4, pages.as_const(), b.block_tables, b.seq_lens, c.softmax_scale,
                                         ol4, s);
      cuda::mla_v_up<TA>(o_lat.view<const TA, 3>(), w_kvb, int(nope), o3, s);
    }
    apply_linear<TA>(c, m.o, o.view<const TA, 2>(), {}, out);
  }

  /// FFN(x) = down(silu(gate(x)) * up(x)).
  template <class TA>
  static void mlp(const LayerContext& c, const DeviceMlp& f, View<const TA, 2> x, QuantAct xq, View<TA, 2> y) {
    const int64_t n = x.shape[0], w = f.gate.out();
    constexpr DType act = dtype_v<TA>;
    Tensor g = c.ws->take(act, {n, w});  // [rows, width]
    Tensor u = c.ws->take(act, {n, w});  // [rows, width]
    apply_linear<TA>(c, f.gate, x, xq, g.view<TA, 2>());
    apply_linear<TA>(c, f.up, x, xq, u.view<TA, 2>());
    if constexpr (std::is_same_v<TA, bf16>) {
      if (f.down.native()) {
        // The product rounded to bf16, then quantized in the same kernel (= swiglu + act_quant).
        Tensor q = c.ws->take(DType::f8_e4m3, {n, w});  // [rows, width]
        Tensor s = c.ws->take(DType::f32, {w / 128, n});  // [width / 128, rows] MN-major scales
        const View<float, 2> sv = cuda::mn_major_scales(s.data_as<float>(), n, w / 128);  // [rows, width / 128]
        cuda::swiglu_quant_fp8<128>(g.view<const bf16, 2>(), u.view<const bf16, 2>(), q.view<fp8_e4m3, 2>(), sv,
                                    c.stream());
        apply_linear<bf16>(c, f.down, {}, QuantAct{q.view<const fp8_e4m3, 2>(), sv}, y);
        return;
      }
    }
    // f32: the product stays f32 up to the down projection (or its quantizer).
    cuda::swiglu(g.view<const TA, 2>(), u.view<const TA, 2>(), g.view<TA, 2>(), c.stream());
    apply_linear<TA>(c, f.down, g.view<const TA, 2>(), {}, y);
  }

  /// MoE(x) = sum_j w_j Expert_{id_j}(x) + Shared(x)  (r1-spec §5).
  template <class TA>
  void moe(const LayerContext& c, View<const TA, 2> x, QuantAct xq, View<TA, 2> y) const {
    const int64_t n = x.shape[0], e = experts_.count, k = rc_.top_k;
    const stream_t s = c.stream();
    Tensor logits = c.ws->take(DType::f32, {n, e});  // [rows, n_experts] fp32 router logits
    logits_linear<TA>(x, router_.w, logits.view<float, 2>(), s);
    Tensor ids = c.ws->take(DType::i32, {n, k});  // [rows, top_k]
    Tensor wts = c.ws->take(DType::f32, {n, k});  // [rows, top_k]
    View<const float, 1> bias;  // [n_experts], or [0] for none
    bias.space = Space::cuda;
    if (router_.bias.defined()) bias = router_.bias.view<const float, 1>();
    auto lv = logits.view<const float, 2>();
    switch (kind_) {
      case RouterKind::v3:
        cuda::route_experts<route::Sigmoid, route::GroupLimited<route::Top2Sum>>(lv, bias, rc_, ids.view<int32_t, 2>(),
                                                                                wts.view<float, 2>(), s);
        break;
      case RouterKind::greedy:
        cuda::route_experts<route::Softmax, route::Greedy>(lv, bias, rc_, ids.view<int32_t, 2>(), wts.view<float, 2>(), s);
        break;
      case RouterKind::group_max:
        cuda::route_experts<route::Softmax, route::GroupLimited<route::GroupMax>>(lv, bias, rc_, ids.view<int32_t, 2>(),
                                                                                 wts.view<float, 2>(), s);
        break;
    }
    Tensor shared;  // [rows, hidden] shared-expert output, or undefined
    View<const TA, 2> sv;
    sv.space = Space::cuda;
    if (shared_) {
      shared = c.ws->take(dtype_v<TA>, {n, x.shape[1]});
      mlp<TA>(c, *shared_, x, xq, shared.view<TA, 2>());
      sv = shared.view<const TA, 2>();
    }
    const DeviceExperts& E = experts_;
    auto expert_fn = [&](View<const TA, 2> xe, View<const int32_t, 1> offsets, View<TA, 2> ye) {
      if (E.fp8()) {
        const auto w8 = [](const Tensor& t) { return cuda::ExpertWeights<fp8_e4m3>::stacked(t.view<const fp8_e4m3, 3>()); };
        const auto sc = [](const Tensor& t) { return cuda::ExpertWeights<float>::stacked(t.view<const float, 3>()); };
        if constexpr (std::is_same_v<TA, float>) {
          cuda::moe_experts_swiglu(xe, offsets, w8(E.gate), sc(E.gate_s), w8(E.up), sc(E.up_s), w8(E.down),
                                   sc(E.down_s), ye, s, E.native);
        } else {
          cuda::moe_experts_swiglu(xe, offsets, w8(E.gate), sc(E.gate_s), w8(E.up), sc(E.up_s), w8(E.down),
                                   sc(E.down_s), ye, s);
        }
      } else {
        const auto w16 = [](const Tensor& t) { return cuda::ExpertWeights<bf16>::stacked(t.view<const bf16, 3>()); };
        cuda::moe_experts_swiglu(xe, offsets, w16(E.gate), w16(E.up), w16(E.down), ye, s);
      }
    };
    cuda::moe_routed<TA>(x, ids.view<const int32_t, 2>(), wts.view<const float, 2>(), int(e), expert_fn, sv, y, s);
  }

  int index_ = 0;
  DeviceNorm in_norm_, post_norm_;
  DeviceMla attn_;
  std::optional<DeviceMlp> mlp_;
  bool moe_ = false;
  RouterKind kind_ = RouterKind::v3;
  route::RouterConfig rc_;
  DeviceRouter router_;
  DeviceExperts experts_;
  std::optional<DeviceMlp> shared_;
};

}  // namespace r1

#endif  // R1_WITH_CUDA
