// SPDX-License-Identifier: MIT
// Device weights of the DeepSeek-V3/R1 CUDA model, uploaded once from any WeightSource (an
// io::Checkpoint, or a TensorMap) under the published tensor names, with the same dtype and shape
// checks (and error messages) as the host layers' loaders.
//
// Storage on the device, per the FP8 mode and activation precision the user chose:
//   BF16 checkpoint            bf16 weights
//   FP8, Fp8Compute::dequant   bf16 activations: weights dequantized on the host (code * scale in
//                              fp32, rounded to bf16) and uploaded as bf16: DeepSeek's default
//                              gemm_impl = "bf16". f32 activations: e4m3 codes + f32 scales, which
//                              the fp32 GEMMs (cuda::linear_f32) dequantize exactly as they read them
//   FP8, Fp8Compute::native    e4m3 codes + f32 weight_scale_inv, for act_quant + the block-scaled
//                              FP8 GEMM; every such K must be a multiple of 128 (same error as the
//                              host path)
// A tensor the FP8 checkpoint stores in bf16 (MTP's eh_proj in the published R1) stays bf16.
// Routed experts are stacked per projection into one [E, N, K] tensor (one allocation, one stride
// for the grouped GEMM). Host-only code: includes no CUDA headers.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "r1/kernels/ref/linear_fp8.hpp"
#include "r1/layers/weights.hpp"
#include "r1/models/config.hpp"
#include "r1/quant/fp8_block.hpp"

namespace r1 {

/// The device model's activation precision.
///  - bf16: activations (GEMM inputs and outputs, attention, the latent cache) in bf16, tensor-core
///    GEMMs and attention kernels; the residual stream, router logits and output logits in f32.
///    The fast path, for real models.
///  - f32: every activation and the latent cache in f32, every GEMM and the attention in fp32 FMA
///    (cuda::linear_f32, the attention's generic kernels): tracks an fp64 reference to fp32
///    rounding, for checking a checkpoint or a variant against one (the oracle fixtures). Several
///    times slower and twice the cache memory.
enum class Activations { bf16, f32 };

inline const char* activations_name(Activations a) { return a == Activations::f32 ? "f32" : "bf16"; }

/// How the device model stores and computes linear layers.
struct DeviceWeightMode {
  bool fp8_checkpoint = false;                         ///< config has quantization_config
  quant::Fp8Compute fp8 = quant::Fp8Compute::dequant;  ///< for FP8 checkpoints
  Activations act = Activations::bf16;
  bool native() const { return fp8_checkpoint && fp8 == quant::Fp8Compute::native; }
  bool f32() const { return act == Activations::f32; }
};

namespace detail {
inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// The stream weights are allocated and uploaded on: the legacy default stream. A device Tensor's
/// memory returns to the pool on the stream it was allocated on, so model weights must not be tied
/// to a caller's stream that may be destroyed before the model (a load helper's temporary Stream,
/// say): that would free them on a dead stream. CudaDeepseekV3::load synchronizes the device at
/// its end, so every later stream sees the uploaded weights.
inline constexpr stream_t kWeightStream = nullptr;

/// A host tensor's bytes uploaded to a new device tensor (same dtype and shape), on kWeightStream.
inline Tensor upload(const Tensor& host) {
  const Tensor src = host.space() == Space::host ? host.contiguous() : host;       // same shape
  Tensor d = Tensor::empty(src.dtype(), src.shape(), Space::cuda, kWeightStream);  // same shape
  d.copy_from(src, kWeightStream);
  return d;
}

/// FP8 [N, K] codes and [ceil(N/128), ceil(K/128)] scales dequantized to a host bf16 [N, K].
inline Tensor dequant_to_bf16(const Tensor& wq, const Tensor& ws) {
  const Tensor q = wq.contiguous(), s = ws.contiguous();                // [N, K] e4m3, scale grid
  Tensor out = Tensor::empty(DType::bf16, {wq.size(0), wq.size(1)});  // [N, K]
  ref::dequant_fp8_block<128, 128>(q.view<const fp8_e4m3, 2>(), s.view<const float, 2>(), out.view<bf16, 2>());
  return out;
}

/// FP8 [N, K] codes and their scale grid dequantized to a host f32 [N, K] (exact: a code has 4
/// significant bits).
inline Tensor dequant_to_f32(const Tensor& wq, const Tensor& ws) {
  const Tensor q = wq.contiguous(), s = ws.contiguous();               // [N, K] e4m3, scale grid
  Tensor out = Tensor::empty(DType::f32, {wq.size(0), wq.size(1)});  // [N, K]
  ref::dequant_fp8_block<128, 128>(q.view<const fp8_e4m3, 2>(), s.view<const float, 2>(), out.view<float, 2>());
  return out;
}

/// A host float (f32 or bf16) tensor converted to host f32.
inline Tensor to_host_f32(const Tensor& t) { return host_f32_copy(t); }

/// A host bf16 or f32 tensor as host bf16 (f32 rounded to nearest even).
inline Tensor to_host_bf16(const Tensor& t) {
  if (t.dtype() == DType::bf16) return t.space() == Space::host ? t.contiguous() : t.to(Space::host);
  const Tensor f = host_f32_copy(t);                     // same shape
  Tensor out = Tensor::empty(DType::bf16, t.shape());   // same shape
  for (int64_t i = 0; i < f.numel(); ++i) out.data_as<bf16>()[i] = bf16(f.data_as<float>()[i]);
  return out;
}
}  // namespace detail

/// A bias-free linear layer on the device: y = x . W^T.
struct DeviceLinear {
  std::string name;
  Tensor w;   ///< [out, in] bf16, or e4m3 when fp8()
  Tensor ws;  ///< [ceil(out/128), ceil(in/128)] f32 weight_scale_inv (fp8() only)
  bool quantize_input = false;  ///< FP8 native: the input is quantized 1 x 128 to e4m3

  bool defined() const { return w.defined(); }
  /// Stored as e4m3 codes + block scales (FP8 native, or FP8 dequant with f32 activations).
  bool fp8() const { return ws.defined(); }
  /// FP8 native compute: act_quant'ed input times the codes.
  bool native() const { return quantize_input; }
  int64_t out() const { return w.size(0); }
  int64_t in() const { return w.size(1); }

  /// The host tensors a layer's device storage is made of: `<prefix>.weight` [out, in] as the
  /// device keeps it (bf16, or e4m3 in native mode and with f32 activations) and its
  /// weight_scale_inv (e4m3 only, undefined otherwise); `wq`/`wsc` are the FP8 codes and scales
  /// when the checkpoint stores the tensor as FP8.
  struct HostParts {
    Tensor w, ws;    // device layout: [out, in] bf16 or e4m3; [ceil(out/128), in/128] f32
    Tensor wq, wsc;  // FP8 storage as read: [out, in] e4m3, scale grid f32 (undefined for bf16)
  };
  template <WeightSource S>
  static HostParts host_parts(const S& src, const std::string& prefix, int64_t out, int64_t in,
                              const DeviceWeightMode& mode) {
    HostParts h;
    const std::string wn = prefix + ".weight";
    const bool stored_fp8 = mode.fp8_checkpoint && (src.has(prefix + ".weight_scale_inv") || !src.has(wn) ||
                                                    src.get(wn).dtype() == DType::f8_e4m3);
    if (!stored_fp8) {
      h.w = load_tensor(src, wn, {DType::bf16}, Shape{out, in});  // [out, in]
      return h;
    }
    h.wq = load_tensor(src, wn, {DType::f8_e4m3}, Shape{out, in});  // [out, in]
    h.wsc = load_tensor(src, prefix + ".weight_scale_inv", {DType::f32},
                        Shape{detail::cdiv(out, 128), detail::cdiv(in, 128)});  // scale grid
    if (mode.native()) {
      R1_CHECK(in % 128 == 0, "linear", prefix, ": K = ", in,
               " is not a multiple of 128, so its input cannot be quantized 1 x 128 (fp8 native mode, as "
               "DeepSeek's act_quant); use fp8 dequant mode for this checkpoint");
      h.w = h.wq;
      h.ws = h.wsc;
    } else if (mode.f32()) {
      h.w = h.wq;  // dequantized exactly inside the fp32 GEMM
      h.ws = h.wsc;
    } else {
      h.w = detail::dequant_to_bf16(h.wq, h.wsc);  // [out, in]
    }
    return h;
  }

  /// Loads `<prefix>.weight` [out, in] (and its weight_scale_inv when stored as FP8).
  /// `dense_copy`, when given, also receives the weight as a plain [out, in] matrix in the
  /// activation dtype on the device (MLA's kv_b for the absorbed form): bf16 (the layer's own w when
  /// it is bf16, else dequantized from the codes already read, so the checkpoint tensor is read
  /// once), or f32 with f32 activations (exact).
  template <WeightSource S>
  static DeviceLinear load(const S& src, const std::string& prefix, int64_t out, int64_t in,
                           const DeviceWeightMode& mode, Tensor* dense_copy = nullptr) {
    const HostParts h = host_parts(src, prefix, out, in, mode);
    DeviceLinear l;
    l.name = prefix;
    l.w = detail::upload(h.w);
    if (h.ws.defined()) l.ws = detail::upload(h.ws);
    l.quantize_input = mode.native() && h.ws.defined();
    if (dense_copy) {
      if (mode.f32()) {
        *dense_copy = detail::upload(h.wq.defined() ? detail::dequant_to_f32(h.wq, h.wsc) : detail::to_host_f32(h.w));
      } else {
        *dense_copy = l.w.dtype() == DType::bf16 ? l.w : detail::upload(detail::dequant_to_bf16(h.wq, h.wsc));
      }
    }
    return l;
  }
};

/// RMSNorm weight on the device in bf16 (what cuda::rmsnorm is instantiated for; checkpoints store
/// norm weights in bf16, an f32 one is rounded to bf16).
struct DeviceNorm {
  Tensor w;  ///< [dim] bf16
  float eps = 1e-6f;
  template <WeightSource S>
  static DeviceNorm load(const S& src, const std::string& prefix, int64_t dim, float eps) {
    DeviceNorm n;
    n.eps = eps;
    n.w = detail::upload(detail::to_host_bf16(load_tensor(src, prefix + ".weight", {DType::bf16, DType::f32}, Shape{dim})));
    return n;
  }
  View<const bf16, 1> view() const { return w.view<const bf16, 1>(); }
};

/// Routed experts of one MoE layer, stacked per projection.
struct DeviceExperts {
  int64_t count = 0, dim = 0, width = 0;
  bool native = false;             ///< FP8 native: inputs quantized 1 x 128
  Tensor gate, up, down;           ///< [E, width, dim], [E, width, dim], [E, dim, width]: bf16 or e4m3
  Tensor gate_s, up_s, down_s;     ///< e4m3 only: [E, ceil(width/128), ceil(dim/128)], ..., [E, ceil(dim/128), ceil(width/128)] f32

  bool fp8() const { return gate.dtype() == DType::f8_e4m3; }

  template <WeightSource S>
  static DeviceExperts load(const S& src, const std::string& prefix, int64_t n, int64_t dim, int64_t width,
                            const DeviceWeightMode& mode) {
    DeviceExperts e;
    e.count = n;
    e.dim = dim;
    e.width = width;
    e.native = mode.native();
    // Each expert's host tensors go straight into its slice of the stacked device tensors (no
    // per-expert device allocation and device-to-device copy).
    auto stack = [&](const char* proj, int64_t rows, int64_t cols, Tensor& w, Tensor& s) {
      for (int64_t i = 0; i < n; ++i) {
        const std::string p = prefix + "." + std::to_string(i) + "." + proj;
        const DeviceLinear::HostParts h = DeviceLinear::host_parts(src, p, rows, cols, mode);
        if (i == 0) {
          w = Tensor::empty(h.w.dtype(), {n, rows, cols}, Space::cuda, detail::kWeightStream);  // [E, rows, cols]
          if (h.ws.defined())
            s = Tensor::empty(DType::f32, {n, h.ws.size(0), h.ws.size(1)}, Space::cuda, detail::kWeightStream);  // scales
        }
        R1_CHECK(h.w.dtype() == w.dtype(), "experts", p, ": stored as ", dtype_name(h.w.dtype()),
                 " while expert 0 is ", dtype_name(w.dtype()));
        w.select(0, i).copy_from(h.w.contiguous(), detail::kWeightStream);
        if (h.ws.defined()) s.select(0, i).copy_from(h.ws.contiguous(), detail::kWeightStream);
      }
    };
    stack("gate_proj", width, dim, e.gate, e.gate_s);
    stack("up_proj", width, dim, e.up, e.up_s);
    stack("down_proj", dim, width, e.down, e.down_s);
    return e;
  }
};

/// The MoE gate: weight [E, dim] bf16 (logits in f32) and the correction bias [E] f32.
struct DeviceRouter {
  Tensor w;     ///< [n_experts, dim] bf16
  Tensor bias;  ///< [n_experts] f32, or undefined (softmax routers)
  template <WeightSource S>
  static DeviceRouter load(const S& src, const std::string& prefix, int64_t n, int64_t dim, bool uses_bias) {
    DeviceRouter r;
    r.w = detail::upload(
        detail::to_host_bf16(load_tensor(src, prefix + ".weight", {DType::bf16, DType::f32}, Shape{n, dim})));
    if (uses_bias) {
      r.bias = detail::upload(
          detail::to_host_f32(load_tensor(src, prefix + ".e_score_correction_bias", {DType::f32, DType::bf16}, Shape{n})));
    }
    return r;
  }
};

/// A dense gated MLP (first dense layers, shared experts).
struct DeviceMlp {
  DeviceLinear gate, up, down;
  template <WeightSource S>
  static DeviceMlp load(const S& src, const std::string& prefix, int64_t dim, int64_t width,
                        const DeviceWeightMode& mode) {
    return DeviceMlp{DeviceLinear::load(src, prefix + ".gate_proj", width, dim, mode),
                     DeviceLinear::load(src, prefix + ".up_proj", width, dim, mode),
                     DeviceLinear::load(src, prefix + ".down_proj", dim, width, mode)};
  }
};

/// MLA's projections (r1-spec §3).
struct DeviceMla {
  DeviceLinear q_a, q_b, q_proj;  ///< q_a/q_b with q_lora, else q_proj
  DeviceNorm q_norm;
  DeviceLinear kv_a, kv_b, o;
  DeviceNorm kv_norm;
  Tensor kv_b_dense;  ///< [heads * (nope + v), kv_lora] bf16 or f32 (the activation dtype): W_UK / W_UV for the absorbed form

  template <WeightSource S>
  static DeviceMla load(const S& src, const std::string& p, const ModelConfig& c, const DeviceWeightMode& mode) {
    DeviceMla m;
    const int64_t d = c.hidden_size, h = c.num_attention_heads, qk = c.qk_head_dim();
    const float eps = float(c.rms_norm_eps);
    if (c.q_lora_rank > 0) {
      m.q_a = DeviceLinear::load(src, p + ".q_a_proj", c.q_lora_rank, d, mode);
      m.q_norm = DeviceNorm::load(src, p + ".q_a_layernorm", c.q_lora_rank, eps);
      m.q_b = DeviceLinear::load(src, p + ".q_b_proj", h * qk, c.q_lora_rank, mode);
    } else {
      m.q_proj = DeviceLinear::load(src, p + ".q_proj", h * qk, d, mode);
    }
    m.kv_a = DeviceLinear::load(src, p + ".kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, d, mode);
    m.kv_norm = DeviceNorm::load(src, p + ".kv_a_layernorm", c.kv_lora_rank, eps);
    const int64_t kvb_out = h * (c.qk_nope_head_dim + c.v_head_dim);
    m.kv_b = DeviceLinear::load(src, p + ".kv_b_proj", kvb_out, c.kv_lora_rank, mode, &m.kv_b_dense);
    m.o = DeviceLinear::load(src, p + ".o_proj", d, h * c.v_head_dim, mode);
    return m;
  }
};

}  // namespace r1
