// SPDX-License-Identifier: MIT
// AnyDeepseekV3: the closed set of DeepseekV3 instantiations r1 ships, and the one dispatch that
// picks a member from config.json and the user's FP8 choice:
//   no quantization_config                      -> DeepseekV3<Dense<bf16>>
//   fp8 e4m3, weight_block_size [128, 128]:
//     Fp8Mode::dequant (default)                -> DeepseekV3<Fp8Dequant>
//     Fp8Mode::native                           -> DeepseekV3<Fp8Native>
// Anything else is an r1::Error listing these combinations.
#pragma once

#include <string>
#include <variant>

#include "r1/models/deepseek_v3.hpp"

namespace r1 {

struct ModelLoadOptions {
  quant::Fp8Compute fp8 = quant::Fp8Compute::dequant;  ///< how FP8 checkpoints compute
  bool mtp = false;                                    ///< load the MTP (next-n) module
  LoadProgress progress;                               ///< optional
};

/// The supported weight formats, for error messages.
inline constexpr const char* kSupportedWeightFormats =
    "BF16 weights (no quantization_config) -> Dense<bf16>; F8_E4M3 weights with 128x128 F32 "
    "weight_scale_inv (quantization_config: fp8, e4m3, dynamic, weight_block_size [128, 128]) -> "
    "Fp8Block<128, 128> in dequant or native mode";

class AnyDeepseekV3 {
 public:
  using Bf16 = DeepseekV3<quant::Dense<bf16>>;
  using Fp8D = DeepseekV3<quant::Fp8Dequant>;
  using Fp8N = DeepseekV3<quant::Fp8Native>;

  AnyDeepseekV3() = default;

  /// The concrete model, for code that wants the static type.
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), m_);
  }
  template <class M>
  explicit AnyDeepseekV3(M m) : m_(std::move(m)) {}

  template <WeightSource S>
  static AnyDeepseekV3 load(const S& src, const ModelConfig& cfg, const ModelLoadOptions& opt = {}) {
    if (!cfg.quantization) return AnyDeepseekV3(Bf16::load(src, cfg, opt.mtp, opt.progress));
    const Fp8Quantization& q = *cfg.quantization;
    R1_CHECK(q.block_rows == 128 && q.block_cols == 128, "model", "quantization_config.weight_block_size [",
             q.block_rows, ", ", q.block_cols, "] is not supported (supported: ", kSupportedWeightFormats, ")");
    if (opt.fp8 == quant::Fp8Compute::native) return AnyDeepseekV3(Fp8N::load(src, cfg, opt.mtp, opt.progress));
    return AnyDeepseekV3(Fp8D::load(src, cfg, opt.mtp, opt.progress));
  }

  /// "bf16", "fp8 dequant" or "fp8 native".
  std::string policy_name() const {
    if (std::holds_alternative<Bf16>(m_)) return "bf16";
    return std::holds_alternative<Fp8D>(m_) ? "fp8 dequant" : "fp8 native";
  }
  const ModelConfig& config() const { return visit([](const auto& m) -> const ModelConfig& { return m.config(); }); }
  int num_layers() const { return visit([](const auto& m) { return m.num_layers(); }); }
  bool has_mtp() const { return visit([](const auto& m) { return m.has_mtp(); }); }
  int64_t cache_width() const { return visit([](const auto& m) { return m.cache_width(); }); }

  Tensor forward(const Exec& ex, View<const int32_t, 1> ids, int64_t start, const std::vector<LatentCacheRef>& caches,
                 Tensor* final_hidden = nullptr, MlaForm form = MlaForm::automatic) const {
    return visit([&](const auto& m) { return m.forward(ex, ids, start, caches, final_hidden, form); });
  }
  Tensor mtp_forward(const Exec& ex, const Tensor& h, View<const int32_t, 1> next_ids, int64_t start,
                     const LatentCacheRef& cache, MlaForm form = MlaForm::automatic) const {
    return visit([&](const auto& m) { return m.mtp_forward(ex, h, next_ids, start, cache, form); });
  }

 private:
  std::variant<Bf16, Fp8D, Fp8N> m_;
};

}  // namespace r1
