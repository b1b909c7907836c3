// SPDX-License-Identifier: MIT
// CudaDeepseekV3: the DeepSeek-V3/R1 model on one GPU, built once from a checkpoint (any
// WeightSource) and the same ModelConfig as the host model (models/deepseek_v3.hpp), computing with
// bf16 activations (or f32 ones: LoadOptions::activations, see Activations), f32 router logits and
// f32 output logits. The residual stream is f32 with bf16 activations and f64 with f32 ones
// (residual_t); in the f64 case sub-layer outputs are added to it, and the norms that read it
// compute, in fp64. That is for FP8 native mode's quantizers: the oracle quantizes fp64 activations, and the first
// layer's normalized embeddings (products of bf16 values) put some inputs exactly on e4m3 rounding
// ties, which fp64 keeps and fp32 arithmetic perturbs; one code flipped there cascades through
// every later token (docs/model.md, "FP8 native with f32 activations"). GEMMs, attention and
// SwiGLU stay fp32.
//
// One forward runs `batch` sequences with `tokens` new tokens each (rows = batch * tokens):
//   h = Embedding(ids) (residual_t); per layer: a = norm(h += pending); o = MLA(a); a = norm(h += o);
//   pending = FFN(a); finally hn = norm(h += pending); logits = lm_head(hn)
// Residual adds are fused into the next norm (cuda::add_rmsnorm). Everything the forward reads
// about positions lives in device memory (DeviceBatch): token ids, positions, cache slots, the
// sequences' lengths and block tables, so a decode step can be captured in a CUDA graph and
// replayed with new values; its intermediates come from a Workspace (runtime/workspace_cuda.hpp)
// at addresses that repeat from one call to the next.
//
// MLA forms: `expanded` (flash prefill over the gathered latent rows; needs the host to know the
// sequence's start, DeviceBatch::start >= 0, one sequence) and `absorbed` (batched paged decode,
// lengths on the device). FP8 native mode quantizes every FP8 linear's input 1 x 128 (act_quant,
// or rmsnorm_quant_fp8 straight from the residual where the input is a norm of it). The latent
// cache holds rows in the activation dtype (bf16 or f32); in native mode the prefill's kv_b reads
// the act_quant'ed latent (the oracle's simulation), while the absorbed decode reads the cached
// latent: unquantized with bf16 activations, as DeepSeek's own absorbed inference code does, its
// dequantized codes with f32 ones. Host-only code: kernels run through r1::cuda declarations.
#pragma once

#include "r1/core/config.hpp"

#if R1_WITH_CUDA

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "r1/io/checkpoint.hpp"
#include "r1/models/deepseek_v3.hpp"
#include "r1/models/deepseek_v3_any.hpp"
#include "r1/models/deepseek_v3_cuda_layers.hpp"

namespace r1 {

class CudaDeepseekV3 {
 public:
  struct LoadOptions {
    quant::Fp8Compute fp8 = quant::Fp8Compute::dequant;
    Activations activations = Activations::bf16;
    bool mtp = false;
    LoadProgress progress;
  };

  /// Uploads the weights `src` names under `cfg` to the current device (on detail::kWeightStream,
  /// the legacy default stream, which their memory is tied to); returns once they are on the device,
  /// visible to every stream.
  template <WeightSource S>
  static CudaDeepseekV3 load(const S& src, const ModelConfig& cfg, const LoadOptions& opt) {
    DeepseekV3<quant::Dense<bf16>>::check_supported(cfg);
    R1_CHECK(cuda_device_count() > 0, "model", "no CUDA device is visible (the CUDA model needs a GPU)");
    R1_CHECK(!opt.mtp || cfg.num_nextn_predict_layers > 0, "model",
             "MTP was requested but the config has num_nextn_predict_layers = ", cfg.num_nextn_predict_layers);
    if (cfg.quantization) {
      R1_CHECK(cfg.quantization->block_rows == 128 && cfg.quantization->block_cols == 128, "model",
               "quantization_config.weight_block_size [", cfg.quantization->block_rows, ", ",
               cfg.quantization->block_cols, "] is not supported (supported: ", kSupportedWeightFormats, ")");
    }
    CudaDeepseekV3 m;
    m.cfg_ = cfg;
    m.mode_.fp8_checkpoint = cfg.quantization.has_value();
    m.mode_.fp8 = opt.fp8;
    m.mode_.act = opt.activations;
    const int64_t d = cfg.hidden_size, v = cfg.vocab_size;
    m.embed_ = detail::upload(
        detail::to_host_bf16(load_tensor(src, "model.embed_tokens.weight", {DType::bf16, DType::f32}, Shape{v, d})));
    const ref::RopeTable rope = rope_table_for(cfg);
    m.inv_freq_ = detail::upload(Tensor::from_vector(rope.inv_freq, {int64_t(rope.inv_freq.size())}));
    m.attention_factor_ = rope.attention_factor;
    m.softmax_scale_ = softmax_scale_for(cfg);
    const int total = int(cfg.num_hidden_layers) + (opt.mtp ? 1 : 0);
    for (int l = 0; l < cfg.num_hidden_layers; ++l) {
      m.layers_.push_back(DeviceDecoderLayer::load(src, cfg, l, m.mode_));
      if (opt.progress) opt.progress("layer " + std::to_string(l), l + 1, total);
    }
    m.norm_ = DeviceNorm::load(src, "model.norm", d, float(cfg.rms_norm_eps));
    if (cfg.tie_word_embeddings && !src.has("lm_head.weight")) {
      m.lm_head_.name = "lm_head (tied)";
      m.lm_head_.w = m.embed_;
    } else {
      DeviceWeightMode dense = m.mode_;
      dense.fp8 = quant::Fp8Compute::dequant;  // the head is bf16 in every DeepSeek checkpoint
      m.lm_head_ = DeviceLinear::load(src, "lm_head", v, d, dense);
    }
    if (opt.mtp) {
      const int l = int(cfg.num_hidden_layers);
      const std::string p = "model.layers." + std::to_string(l);
      DeviceMtp t;
      if (src.has(p + ".embed_tokens.weight")) {
        t.embed = detail::upload(
            detail::to_host_bf16(load_tensor(src, p + ".embed_tokens.weight", {DType::bf16, DType::f32}, Shape{v, d})));
      }
      const float eps = float(cfg.rms_norm_eps);
      t.enorm = DeviceNorm::load(src, p + ".enorm", d, eps);
      t.hnorm = DeviceNorm::load(src, p + ".hnorm", d, eps);
      t.eh_proj = DeviceLinear::load(src, p + ".eh_proj", d, 2 * d, m.mode_);
      t.block = DeviceDecoderLayer::load(src, cfg, l, m.mode_);
      t.head_norm = DeviceNorm::load(src, p + ".shared_head.norm", d, eps);
      DeviceWeightMode dense = m.mode_;
      dense.fp8 = quant::Fp8Compute::dequant;
      t.head = DeviceLinear::load(src, p + ".shared_head.head", v, d, dense);
      m.mtp_ = std::move(t);
      if (opt.progress) opt.progress("mtp layer " + std::to_string(l), total, total);
    }
    // Uploads (on detail::kWeightStream) are complete and visible to every stream.
    R1_CUDA_CHECK(cudaDeviceSynchronize());
    return m;
  }

  const ModelConfig& config() const { return cfg_; }
  int num_layers() const { return int(layers_.size()); }
  bool has_mtp() const { return mtp_.has_value(); }
  int64_t cache_width() const { return cfg_.kv_lora_rank + cfg_.qk_rope_head_dim; }
  std::string policy_name() const {
    std::string p = !mode_.fp8_checkpoint ? "bf16" : mode_.native() ? "fp8 native" : "fp8 dequant";
    return p + ", " + activations_name(mode_.act) + " activations";
  }
  Activations activations() const { return mode_.act; }
  /// The dtype of activations, of the latent cache and of forward()'s final_hidden.
  DType activation_dtype() const { return mode_.f32() ? DType::f32 : DType::bf16; }

  /// The main model over one batch of new tokens.
  /// @param pages        per layer [num_pages, page_size, cache_width] latent cache (device,
  ///                     activation_dtype())
  /// @param logits       [rows, vocab] f32 output
  /// @param final_hidden if defined, [rows, hidden] device activation_dtype(): receives the
  ///                     final-normed states (MTP input)
  void forward(Workspace& ws, const DeviceBatch& b, const std::vector<Tensor>& pages, View<float, 2> logits,
               const Tensor& final_hidden = Tensor()) const {
    R1_CHECK(pages.size() == layers_.size(), "model", "got ", pages.size(), " layer caches for ", layers_.size(),
             " layers");
    for (const Tensor& p : pages) check_pages(p);
    check_rows(b, logits, final_hidden);
    if (mode_.f32()) {
      forward_t<float>(ws, b, pages, logits, final_hidden);
    } else {
      forward_t<bf16>(ws, b, pages, logits, final_hidden);
    }
  }

  /// The MTP module's draft logits for rows whose main-model states are `h` and whose next tokens
  /// are b.ids (positions, slots and lengths index the MTP module's own one-layer cache).
  /// @param h      [rows, hidden] device activation_dtype(): final-normed main states
  /// @param pages  [num_pages, page_size, cache_width] the MTP layer's cache (activation_dtype())
  /// @param logits [rows, vocab] f32
  void mtp_forward(Workspace& ws, const DeviceBatch& b, const Tensor& h, const Tensor& pages,
                   View<float, 2> logits) const {
    R1_CHECK(mtp_.has_value(), "model", "the MTP module was not loaded (load with MTP enabled)");
    check_rows(b, logits, Tensor());
    check_pages(pages);
    const int64_t n = b.rows();
    check_hidden(h, n, "mtp", "hidden states");
    if (mode_.f32()) {
      mtp_forward_t<float>(ws, b, h.view<const float, 2>(), pages, logits);
    } else {
      mtp_forward_t<bf16>(ws, b, h.view<const bf16, 2>(), pages, logits);
    }
  }

 private:
  struct DeviceMtp {
    Tensor embed;  // [vocab, hidden] bf16, or undefined: the main embedding
    DeviceNorm enorm, hnorm, head_norm;
    DeviceLinear eh_proj, head;
    DeviceDecoderLayer block;
  };

  template <class TA>
  void forward_t(Workspace& ws, const DeviceBatch& b, const std::vector<Tensor>& pages, View<float, 2> logits,
                 const Tensor& final_hidden) const {
    const int64_t n = b.rows(), d = cfg_.hidden_size;
    const stream_t s = ws.stream();
    const LayerContext ctx = context(ws);
    using TR = residual_t<TA>;
    Tensor h = ws.take(dtype_v<TR>, {n, d});  // [rows, hidden] residual stream (f32, or f64 for f32 activations)
    cuda::embedding(b.ids, embed_.view<const bf16, 2>(), h.view<TR, 2>(), s);
    Tensor pending;  // [rows, hidden] TA: the last sub-layer output not yet added to h
    for (size_t l = 0; l < layers_.size(); ++l) pending = layers_[l].forward(ctx, b, h, pending, pages[l]);
    const Tensor hn = final_hidden.defined() ? final_hidden : ws.take(dtype_v<TA>, {n, d});  // [rows, hidden]
    const View<TA, 2> hv = hn.view<TA, 2>();
    // the final norm reads the residual in its own precision (fp64 for f32 activations)
    cuda::add_rmsnorm(h.view<TR, 2>(), pending.view<const TA, 2>(), norm_.view(), norm_.eps, hv, s);
    logits_linear<TA>(hv.as_const(), lm_head_.w, logits, s);
  }

  template <class TA>
  void mtp_forward_t(Workspace& ws, const DeviceBatch& b, View<const TA, 2> h, const Tensor& pages,
                     View<float, 2> logits) const {
    const DeviceMtp& t = *mtp_;
    const int64_t n = b.rows(), d = cfg_.hidden_size;
    const stream_t s = ws.stream();
    const LayerContext ctx = context(ws);
    constexpr DType act = dtype_v<TA>;
    Tensor e = ws.take(act, {n, d});        // [rows, hidden] embedding of the next tokens
    Tensor cat = ws.take(act, {n, 2 * d});  // [rows, 2 * hidden]: [enorm(e) ; hnorm(h)]
    cuda::embedding(b.ids, (t.embed.defined() ? t.embed : embed_).view<const bf16, 2>(), e.view<TA, 2>(), s);
    auto cv = cat.view<TA, 2>();
    cuda::rmsnorm(e.view<const TA, 2>(), t.enorm.view(), t.enorm.eps, cv.slice(1, 0, d), s);
    cuda::rmsnorm(h, t.hnorm.view(), t.hnorm.eps, cv.slice(1, d, 2 * d), s);
    // The block's residual stream starts as eh_proj's output, which the GEMM writes in the
    // activation dtype (bf16, or f32), and stays in it: no f64 residual here, since it starts as a
    // GEMM output rather than as exact bf16 embeddings (the ties the main model's f64 stream keeps).
    Tensor u = ws.take(act, {n, d});  // [rows, hidden]
    apply_linear<TA>(ctx, t.eh_proj, cat.view<const TA, 2>(), {}, u.view<TA, 2>());
    Tensor pending = t.block.forward(ctx, b, u, Tensor(), pages);  // [rows, hidden]
    Tensor un = ws.take(act, {n, d});                               // [rows, hidden]
    cuda::add_rmsnorm(u.view<TA, 2>(), pending.view<const TA, 2>(), t.head_norm.view(), t.head_norm.eps,
                      un.view<TA, 2>(), s);
    logits_linear<TA>(un.view<const TA, 2>(), t.head.w, logits, s);
  }

  /// h must be device [n, hidden] in the activation dtype.
  void check_hidden(const Tensor& h, int64_t n, const char* op, const char* what) const {
    R1_CHECK(h.defined() && h.space() == Space::cuda && h.dtype() == activation_dtype() && h.rank() == 2 &&
                 h.size(0) == n && h.size(1) == cfg_.hidden_size,
             op, what, " must be device ", dtype_name(activation_dtype()), " [", n, ", ", cfg_.hidden_size, "]");
  }

  void check_pages(const Tensor& p) const {
    R1_CHECK(p.defined() && p.space() == Space::cuda && p.dtype() == activation_dtype() && p.rank() == 3 &&
                 p.size(2) == cache_width(),
             "model", "a latent cache must be device ", dtype_name(activation_dtype()),
             " [pages, page_size, ", cache_width(), "] (the model's activation dtype), got ",
             p.defined() ? dtype_name(p.dtype()) : "none");
  }

  LayerContext context(Workspace& ws) const {
    LayerContext c;
    c.ws = &ws;
    c.cfg = &cfg_;
    c.inv_freq = inv_freq_.view<const float, 1>();
    c.attention_factor = attention_factor_;
    c.softmax_scale = softmax_scale_;
    c.native = mode_.native();
    return c;
  }
  void check_rows(const DeviceBatch& b, View<float, 2> logits, const Tensor& hidden) const {
    const int64_t n = b.rows();
    R1_CHECK(n > 0, "model", "forward needs at least one token");
    R1_CHECK(b.ids.shape[0] == n && b.positions.shape[0] == n && b.slots.shape[0] == n &&
                 b.seq_lens.shape[0] == b.batch && b.block_tables.shape[0] == b.batch,
             "model", "batch views disagree: ", b.batch, " sequences x ", b.tokens, " tokens, ids [", b.ids.shape[0],
             "], positions [", b.positions.shape[0], "], slots [", b.slots.shape[0], "], seq_lens [",
             b.seq_lens.shape[0], "], block_tables [", b.block_tables.shape[0], ", ...]");
    R1_CHECK(b.start < 0 || b.batch == 1, "model", "a host-known start (expanded attention) needs one sequence");
    R1_CHECK(logits.shape[0] == n && logits.shape[1] == cfg_.vocab_size, "model", "logits are [", logits.shape[0],
             ", ", logits.shape[1], "], expected [", n, ", ", cfg_.vocab_size, "]");
    if (hidden.defined()) check_hidden(hidden, n, "model", "final_hidden");
  }

  ModelConfig cfg_;
  DeviceWeightMode mode_;
  Tensor embed_;     // [vocab, hidden] bf16
  Tensor inv_freq_;  // [rope_dim / 2] f32
  float attention_factor_ = 1;
  double softmax_scale_ = 0;
  std::vector<DeviceDecoderLayer> layers_;
  DeviceNorm norm_;
  DeviceLinear lm_head_;  // [vocab, hidden] bf16
  std::optional<DeviceMtp> mtp_;
};

/// Opens a checkpoint directory and uploads it (see CudaDeepseekV3::load).
inline CudaDeepseekV3 load_deepseek_v3_cuda(const std::filesystem::path& dir,
                                            const CudaDeepseekV3::LoadOptions& opt = {}) {
  io::Checkpoint ck = io::Checkpoint::open(dir);
  const ModelConfig cfg = parse_model_config(ck.config_json(), (dir / "config.json").string());
  return CudaDeepseekV3::load(ck, cfg, opt);
}

}  // namespace r1

#endif  // R1_WITH_CUDA
