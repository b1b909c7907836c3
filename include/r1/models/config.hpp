// SPDX-License-Identifier: MIT
// config.json of the DeepSeek-V3 family (DeepSeek-V3/R1 671B, V2/V2-Lite-style routers, the tiny
// fixtures) as a typed, validated struct. Field names follow Hugging Face's.
//
// Policy (docs/config.md has the full table):
// - Fields that size the model (vocab, hidden, layers, heads, ranks, head dims, experts) are
//   required: a silent default of R1's 7168 for a tiny model would be a wrong answer, not an error.
// - Fields with a behavioural default take Hugging Face's DeepseekV3Config default when absent.
// - Every value is type-checked (an integer field rejects 256.0 and "256"), range-checked against
//   a documented cap, and checked for consistency (expert groups, top-k, token ids).
// - Only raw configuration lives here. Derived numerics (YaRN frequencies, softmax scale) belong
//   to layers/, which applies Hugging Face's rules to these raw values.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "r1/core/error.hpp"
#include "r1/io/json.hpp"
#include "r1/io/limits.hpp"

namespace r1 {

/// Router nonlinearity.
enum class ScoringFunc : uint8_t { sigmoid, softmax };
/// Expert selection: V3's bias-corrected group-limited top-k, V2-Lite's plain top-k, V2's
/// group-limited top-k with the group max as group score.
enum class TopkMethod : uint8_t { noaux_tc, greedy, group_limited_greedy };
enum class RopeType : uint8_t { plain, yarn };

inline const char* scoring_func_name(ScoringFunc s) { return s == ScoringFunc::sigmoid ? "sigmoid" : "softmax"; }
inline const char* topk_method_name(TopkMethod t) {
  return t == TopkMethod::noaux_tc ? "noaux_tc" : t == TopkMethod::greedy ? "greedy" : "group_limited_greedy";
}
inline const char* rope_type_name(RopeType r) { return r == RopeType::yarn ? "yarn" : "default"; }

/// Rotary embedding parameters, read from `rope_scaling` (V3 hub configs) or `rope_parameters`
/// (transformers v5), with `rope_theta` from there or from the top level.
struct RopeConfig {
  RopeType type = RopeType::plain;
  double theta = 10000.0;
  // YaRN only. Optional fields keep "absent" distinct from any value because Hugging Face's
  // formulas treat absence specially (e.g. no mscale_all_dim: no softmax-scale correction; no
  // original_max_position_embeddings: the correction range uses max_position_embeddings). The
  // frequencies use `factor` as written, as the oracle does (models/deepseek_v3.hpp,
  // yarn_frequency_params; tests/data/tiny-v3-noqlora pins it down).
  double factor = 1.0;
  std::optional<int64_t> original_max_position_embeddings;
  double beta_fast = 32.0;  // HF: `get("beta_fast") or 32`, so 0 and null mean 32 as well
  double beta_slow = 1.0;   // HF: `get("beta_slow") or 1`
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  std::optional<double> attention_factor;
  bool truncate = true;
  bool operator==(const RopeConfig&) const = default;
};

/// quantization_config of a block-scaled FP8 checkpoint.
struct Fp8Quantization {
  int64_t block_rows = 128;  // weight_block_size[0]: output dimension
  int64_t block_cols = 128;  // weight_block_size[1]: input dimension
  std::string scale_fmt;     // "" or "ue8m0" (V3.1: scales are powers of two)
  std::vector<std::string> modules_to_not_convert;
  bool operator==(const Fp8Quantization&) const = default;
};

struct ModelConfig {
  std::string model_type = "deepseek_v3";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;      // dense MLP width (layers < first_k_dense_replace)
  int64_t moe_intermediate_size = 0;  // width of one routed (and one shared) expert
  int64_t num_hidden_layers = 0;
  int64_t num_nextn_predict_layers = 0;  // MTP modules, stored as layers num_hidden_layers + k
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // bookkeeping only: MLA has one latent KV head
  int64_t q_lora_rank = 0;          // 0: direct q_proj (HF null)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;     // 0: no MoE layers (HF null)
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  TopkMethod topk_method = TopkMethod::noaux_tc;
  ScoringFunc scoring_func = ScoringFunc::sigmoid;
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  std::string hidden_act = "silu";
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  RopeConfig rope;
  bool rope_interleave = true;
  bool attention_bias = false;
  bool tie_word_embeddings = false;
  std::optional<Fp8Quantization> quantization;  // absent: plain (bf16/f32) weights
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype;  // "bfloat16" etc. as written ("" when absent)

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool has_q_lora() const { return q_lora_rank > 0; }
  int64_t experts_per_group() const { return n_group > 0 ? n_routed_experts / n_group : 0; }
  /// Layers of the whole stack, MTP modules included.
  int64_t total_layers() const { return num_hidden_layers + num_nextn_predict_layers; }
  /// Hugging Face's rule: `n_routed_experts` set, `layer >= first_k_dense_replace` and
  /// `layer % moe_layer_freq == 0`. Applies to MTP layers (index >= num_hidden_layers) too.
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  bool operator==(const ModelConfig&) const = default;
};

/// Documented caps ("absurd sizes"): values beyond these are rejected as corrupt rather than
/// allocated. They are far above every published DeepSeek-family model (docs/config.md).
namespace config_limits {
inline constexpr int64_t max_vocab = int64_t(1) << 24;
inline constexpr int64_t max_hidden = int64_t(1) << 16;
inline constexpr int64_t max_intermediate = int64_t(1) << 20;
inline constexpr int64_t max_layers = 1024;
inline constexpr int64_t max_nextn = 16;
inline constexpr int64_t max_heads = 1024;
inline constexpr int64_t max_rank = int64_t(1) << 16;   // q_lora_rank, kv_lora_rank
inline constexpr int64_t max_head_dim = 1024;
inline constexpr int64_t max_experts = int64_t(1) << 14;
inline constexpr int64_t max_shared_experts = 64;
inline constexpr int64_t max_positions = int64_t(1) << 24;
inline constexpr int64_t max_block = 4096;               // FP8 weight block edge
inline constexpr double max_rope_theta = 1e12;
inline constexpr double max_rope_factor = 1e6;
inline constexpr double max_scaling_factor = 1e6;        // routed_scaling_factor
inline constexpr std::size_t max_string = 256;           // hidden_act, torch_dtype, ...
inline constexpr std::size_t max_list = 4096;            // eos ids, modules_to_not_convert
}  // namespace config_limits

namespace detail {

/// Typed access to one JSON object with errors of the form
/// `config: <source>: field "a.b" = <value>: <why>`.
class ConfigFields {
 public:
  using json = nlohmann::json;
  ConfigFields(const json& obj, const std::string& source, std::string prefix = "")
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  /// The value of `key`, or nullptr when absent.
  const json* get(std::string_view key) const {
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }
  /// Absent, or present with a JSON null.
  bool missing(std::string_view key) const {
    const json* v = get(key);
    return v == nullptr || v->is_null();
  }
  [[noreturn]] void bad(std::string_view key, const json& v, const std::string& why) const {
    fail("config", source_, ": field \"", prefix_, key, "\" = ", render(v), ": ", why);
  }
  [[noreturn]] void absent(std::string_view key, const std::string& why) const {
    fail("config", source_, ": field \"", prefix_, key, "\" is missing", why.empty() ? "" : ": ", why);
  }

  int64_t as_int(std::string_view key, const json& v, int64_t lo, int64_t hi) const {
    int64_t x = 0;
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > uint64_t(hi)) bad(key, v, detail::str_cat("must be between ", lo, " and ", hi));
      x = int64_t(u);
    } else if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else {
      bad(key, v, detail::str_cat("expected an integer, got ", kind(v)));
    }
    if (x < lo || x > hi) bad(key, v, detail::str_cat("must be between ", lo, " and ", hi));
    return x;
  }
  int64_t req_int(std::string_view key, int64_t lo, int64_t hi) const {
    const json* v = get(key);
    if (!v) absent(key, "it sizes the model, so it has no default");
    return as_int(key, *v, lo, hi);
  }
  int64_t opt_int(std::string_view key, int64_t dflt, int64_t lo, int64_t hi) const {
    return missing(key) ? dflt : as_int(key, *get(key), lo, hi);
  }
  std::optional<int64_t> nullable_int(std::string_view key, int64_t lo, int64_t hi) const {
    if (missing(key)) return std::nullopt;
    return as_int(key, *get(key), lo, hi);
  }
  /// A finite number (integer or float) in [lo, hi] (or (lo, hi] when `lo_open`).
  double as_num(std::string_view key, const json& v, double lo, double hi, bool lo_open) const {
    if (!v.is_number()) bad(key, v, detail::str_cat("expected a number, got ", kind(v)));
    const double x = v.get<double>();
    if (!std::isfinite(x)) bad(key, v, "must be finite");
    if (x < lo || (lo_open && x == lo) || x > hi) {
      bad(key, v, detail::str_cat("must be in ", lo_open ? "(" : "[", lo, ", ", hi, "]"));
    }
    return x;
  }
  double opt_num(std::string_view key, double dflt, double lo, double hi, bool lo_open) const {
    return missing(key) ? dflt : as_num(key, *get(key), lo, hi, lo_open);
  }
  std::optional<double> nullable_num(std::string_view key, double lo, double hi, bool lo_open) const {
    if (missing(key)) return std::nullopt;
    return as_num(key, *get(key), lo, hi, lo_open);
  }
  bool opt_bool(std::string_view key, bool dflt) const {
    if (missing(key)) return dflt;
    const json& v = *get(key);
    if (!v.is_boolean()) bad(key, v, detail::str_cat("expected true or false, got ", kind(v)));
    return v.get<bool>();
  }
  std::string as_str(std::string_view key, const json& v) const {
    if (!v.is_string()) bad(key, v, detail::str_cat("expected a string, got ", kind(v)));
    const std::string& s = v.get_ref<const std::string&>();
    if (s.size() > config_limits::max_string) {
      bad(key, v, detail::str_cat("longer than ", config_limits::max_string, " bytes"));
    }
    return s;
  }
  std::string opt_str(std::string_view key, const std::string& dflt) const {
    return missing(key) ? dflt : as_str(key, *get(key));
  }

  static const char* kind(const json& v) {
    switch (v.type()) {
      case json::value_t::null: return "null";
      case json::value_t::boolean: return "a boolean";
      case json::value_t::string: return "a string";
      case json::value_t::array: return "an array";
      case json::value_t::object: return "an object";
      case json::value_t::number_float: return "a non-integer number";
      case json::value_t::number_integer:
      case json::value_t::number_unsigned: return "an integer";
      default: return "a binary value";
    }
  }
  static std::string render(const json& v) {
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (s.size() > 80) s = s.substr(0, 77) + "...";
    return s;
  }

 private:
  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

inline void parse_rope(const nlohmann::json& top, const ConfigFields& f, const std::string& source,
                       ModelConfig& c) {
  // transformers reads `rope_scaling or rope_parameters`; rope_theta comes from that dict, else
  // from the top level, else 10000.
  // Python's `or` also skips an empty dict.
  auto given = [&](const char* k) { return !f.missing(k) && !(top.at(k).is_object() && top.at(k).empty()); };
  const char* key = given("rope_scaling") ? "rope_scaling" : given("rope_parameters") ? "rope_parameters" : nullptr;
  const double top_theta = f.opt_num("rope_theta", 10000.0, 0.0, config_limits::max_rope_theta, true);
  c.rope = RopeConfig{};
  c.rope.theta = top_theta;
  if (!key) return;
  const nlohmann::json& r = top.at(key);
  if (!r.is_object()) f.bad(key, r, detail::str_cat("expected an object, got ", ConfigFields::kind(r)));
  const ConfigFields rf(r, source, std::string(key) + ".");
  c.rope.theta = rf.opt_num("rope_theta", top_theta, 0.0, config_limits::max_rope_theta, true);
  std::string type = rf.opt_str("rope_type", "");
  const std::string legacy = rf.opt_str("type", "");
  if (!type.empty() && !legacy.empty() && type != legacy) {
    rf.bad("type", r.at("type"), detail::str_cat("disagrees with rope_type \"", type, "\""));
  }
  if (type.empty()) type = legacy.empty() ? "default" : legacy;
  if (type == "default") {
    c.rope.type = RopeType::plain;
    return;
  }
  if (type != "yarn") {
    rf.bad(rf.get("rope_type") ? "rope_type" : "type", rf.get("rope_type") ? r.at("rope_type") : r.at("type"),
           "unsupported RoPE type (supported: default, yarn)");
  }
  c.rope.type = RopeType::yarn;
  if (rf.missing("factor")) rf.absent("factor", "YaRN needs a scaling factor");
  c.rope.factor = rf.as_num("factor", r.at("factor"), 1.0, config_limits::max_rope_factor, false);
  c.rope.original_max_position_embeddings =
      rf.nullable_int("original_max_position_embeddings", 1, config_limits::max_positions);
  const double bf = rf.opt_num("beta_fast", 0.0, 0.0, 1e6, false);
  const double bs = rf.opt_num("beta_slow", 0.0, 0.0, 1e6, false);
  c.rope.beta_fast = bf == 0.0 ? 32.0 : bf;
  c.rope.beta_slow = bs == 0.0 ? 1.0 : bs;
  c.rope.mscale = rf.nullable_num("mscale", 0.0, 1e3, false);
  c.rope.mscale_all_dim = rf.nullable_num("mscale_all_dim", 0.0, 1e3, false);
  c.rope.attention_factor = rf.nullable_num("attention_factor", 0.0, 1e3, true);
  c.rope.truncate = rf.opt_bool("truncate", true);
}

inline void parse_quantization(const nlohmann::json& q, const ConfigFields& f, const std::string& source,
                               ModelConfig& c) {
  if (!q.is_object()) f.bad("quantization_config", q, detail::str_cat("expected an object, got ", ConfigFields::kind(q)));
  const ConfigFields qf(q, source, "quantization_config.");
  const std::string method = qf.opt_str("quant_method", "");
  if (method != "fp8") {
    if (method.empty()) qf.absent("quant_method", "r1 reads block-scaled FP8 (\"fp8\")");
    qf.bad("quant_method", q.at("quant_method"), "unsupported (r1 reads block-scaled FP8: \"fp8\")");
  }
  if (qf.opt_str("fmt", "e4m3") != "e4m3") {
    qf.bad("fmt", q.at("fmt"), "unsupported FP8 format (r1 reads e4m3 weights)");
  }
  if (qf.opt_str("activation_scheme", "dynamic") != "dynamic") {
    qf.bad("activation_scheme", q.at("activation_scheme"),
           "unsupported (r1 quantizes activations dynamically; static scales are not read)");
  }
  Fp8Quantization fq;
  const std::string sf = qf.opt_str("scale_fmt", "");
  if (!sf.empty() && sf != "ue8m0") qf.bad("scale_fmt", q.at("scale_fmt"), "unsupported (supported: null, \"ue8m0\")");
  fq.scale_fmt = sf;
  if (qf.missing("weight_block_size")) {
    qf.absent("weight_block_size", "r1 reads block-scaled FP8 and needs the block size");
  }
  const nlohmann::json& bs = q.at("weight_block_size");
  if (!bs.is_array() || bs.size() != 2) {
    qf.bad("weight_block_size", bs, "expected two integers [rows, cols]");
  }
  fq.block_rows = qf.as_int("weight_block_size[0]", bs[0], 1, config_limits::max_block);
  fq.block_cols = qf.as_int("weight_block_size[1]", bs[1], 1, config_limits::max_block);
  if (!qf.missing("modules_to_not_convert")) {
    const nlohmann::json& m = q.at("modules_to_not_convert");
    if (!m.is_array() || m.size() > config_limits::max_list) {
      qf.bad("modules_to_not_convert", m, detail::str_cat("expected a list of at most ", config_limits::max_list, " names"));
    }
    for (const auto& e : m) fq.modules_to_not_convert.push_back(qf.as_str("modules_to_not_convert[]", e));
  }
  c.quantization = fq;
}

}  // namespace detail

/// Parses and validates a DeepSeek-V3-family config; `source` names it in errors (a path).
inline ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source) {
  namespace L = config_limits;
  using detail::ConfigFields;
  if (!j.is_object()) {
    fail("config", source, ": expected a JSON object, got ", ConfigFields::kind(j));
  }
  const ConfigFields f(j, source);
  ModelConfig c;

  if (f.missing("model_type")) f.absent("model_type", "expected \"deepseek_v3\" or \"deepseek_v2\"");
  c.model_type = f.as_str("model_type", j.at("model_type"));
  if (c.model_type != "deepseek_v3" && c.model_type != "deepseek_v2") {
    f.bad("model_type", j.at("model_type"), "unsupported (supported: deepseek_v3, deepseek_v2)");
  }
  const bool v3 = c.model_type == "deepseek_v3";

  c.vocab_size = f.req_int("vocab_size", 1, L::max_vocab);
  c.hidden_size = f.req_int("hidden_size", 1, L::max_hidden);
  c.intermediate_size = f.req_int("intermediate_size", 1, L::max_intermediate);
  c.num_hidden_layers = f.req_int("num_hidden_layers", 1, L::max_layers);
  c.num_nextn_predict_layers = f.opt_int("num_nextn_predict_layers", 0, 0, L::max_nextn);
  c.num_attention_heads = f.req_int("num_attention_heads", 1, L::max_heads);
  c.num_key_value_heads = f.opt_int("num_key_value_heads", c.num_attention_heads, 1, L::max_heads);
  if (f.get("q_lora_rank") == nullptr) {
    f.absent("q_lora_rank", "use null (or 0) for a direct q_proj; Hugging Face's default is R1's 1536");
  }
  c.q_lora_rank = f.opt_int("q_lora_rank", 0, 0, L::max_rank);
  c.kv_lora_rank = f.req_int("kv_lora_rank", 1, L::max_rank);
  c.qk_nope_head_dim = f.req_int("qk_nope_head_dim", 1, L::max_head_dim);
  c.qk_rope_head_dim = f.req_int("qk_rope_head_dim", 2, L::max_head_dim);
  if (c.qk_rope_head_dim % 2 != 0) {
    f.bad("qk_rope_head_dim", j.at("qk_rope_head_dim"), "must be even (RoPE rotates pairs)");
  }
  c.v_head_dim = f.req_int("v_head_dim", 1, L::max_head_dim);

  // Mixture of experts.
  c.first_k_dense_replace = f.opt_int("first_k_dense_replace", 0, 0, c.num_hidden_layers);
  c.moe_layer_freq = f.opt_int("moe_layer_freq", 1, 1, L::max_layers);
  if (f.get("n_routed_experts") == nullptr) {
    f.absent("n_routed_experts", "use null for a model without MoE layers");
  }
  c.n_routed_experts = f.opt_int("n_routed_experts", 0, 0, L::max_experts);
  c.topk_method = v3 ? TopkMethod::noaux_tc : TopkMethod::greedy;
  c.scoring_func = v3 ? ScoringFunc::sigmoid : ScoringFunc::softmax;
  c.norm_topk_prob = v3;
  c.routed_scaling_factor = v3 ? 2.5 : 1.0;
  if (c.n_routed_experts > 0) {
    c.moe_intermediate_size = f.req_int("moe_intermediate_size", 1, L::max_intermediate);
    c.num_experts_per_tok = f.req_int("num_experts_per_tok", 1, c.n_routed_experts);
    c.n_shared_experts = f.opt_int("n_shared_experts", 0, 0, L::max_shared_experts);
    c.n_group = f.opt_int("n_group", 1, 1, c.n_routed_experts);
    c.topk_group = f.opt_int("topk_group", c.n_group, 1, c.n_group);
    const std::string tm = f.opt_str("topk_method", topk_method_name(c.topk_method));
    if (tm == "noaux_tc") {
      c.topk_method = TopkMethod::noaux_tc;
    } else if (tm == "greedy") {
      c.topk_method = TopkMethod::greedy;
    } else if (tm == "group_limited_greedy") {
      c.topk_method = TopkMethod::group_limited_greedy;
    } else {
      f.bad("topk_method", j.at("topk_method"), "unsupported (supported: noaux_tc, greedy, group_limited_greedy)");
    }
    const std::string sf = f.opt_str("scoring_func", scoring_func_name(c.scoring_func));
    if (sf == "sigmoid") {
      c.scoring_func = ScoringFunc::sigmoid;
    } else if (sf == "softmax") {
      c.scoring_func = ScoringFunc::softmax;
    } else {
      f.bad("scoring_func", j.at("scoring_func"), "unsupported (supported: sigmoid, softmax)");
    }
    c.norm_topk_prob = f.opt_bool("norm_topk_prob", c.norm_topk_prob);
    c.routed_scaling_factor =
        f.opt_num("routed_scaling_factor", c.routed_scaling_factor, 0.0, L::max_scaling_factor, true);
    if (c.n_routed_experts % c.n_group != 0) {  // n_group is present: its default 1 divides
      f.bad("n_group", j.at("n_group"),
            detail::str_cat("n_routed_experts (", c.n_routed_experts, ") is not divisible into ", c.n_group,
                            " equal groups"));
    }
    if (c.topk_method == TopkMethod::noaux_tc && c.experts_per_group() < 2) {
      f.bad("n_group", j.contains("n_group") ? j.at("n_group") : nlohmann::json(c.n_group),
            detail::str_cat("noaux_tc scores each group by its top-2 experts, but groups have ",
                            c.experts_per_group(), " expert"));
    }
    const bool grouped = c.topk_method != TopkMethod::greedy;
    if (grouped && c.num_experts_per_tok > c.topk_group * c.experts_per_group()) {
      f.bad("num_experts_per_tok", j.at("num_experts_per_tok"),
            detail::str_cat("more experts than the ", c.topk_group, " kept groups of ", c.experts_per_group(),
                            " hold"));
    }
  } else {
    for (int64_t l = 0; l < c.total_layers(); ++l) {
      if (l >= c.first_k_dense_replace && l % c.moe_layer_freq == 0) {
        f.bad("n_routed_experts", j.at("n_routed_experts"),
              detail::str_cat("layer ", l, " is an MoE layer (first_k_dense_replace = ", c.first_k_dense_replace,
                              ") but there are no routed experts"));
      }
    }
  }

  c.hidden_act = f.opt_str("hidden_act", "silu");
  if (c.hidden_act != "silu") f.bad("hidden_act", j.at("hidden_act"), "unsupported activation (supported: silu)");
  c.rms_norm_eps = f.opt_num("rms_norm_eps", 1e-6, 0.0, 1.0, true);
  c.max_position_embeddings = f.opt_int("max_position_embeddings", 4096, 1, L::max_positions);
  detail::parse_rope(j, f, source, c);
  c.rope_interleave = f.opt_bool("rope_interleave", true);
  c.attention_bias = f.opt_bool("attention_bias", false);
  if (c.attention_bias) f.bad("attention_bias", j.at("attention_bias"), "unsupported (MLA projections have no bias)");
  c.tie_word_embeddings = f.opt_bool("tie_word_embeddings", false);
  if (!f.missing("quantization_config")) detail::parse_quantization(j.at("quantization_config"), f, source, c);

  // Token ids must be rows of the embedding.
  c.bos_token_id = f.nullable_int("bos_token_id", 0, c.vocab_size - 1);
  c.pad_token_id = f.nullable_int("pad_token_id", 0, c.vocab_size - 1);
  if (!f.missing("eos_token_id")) {
    const nlohmann::json& e = j.at("eos_token_id");
    if (e.is_array()) {
      if (e.size() > L::max_list) f.bad("eos_token_id", e, detail::str_cat("more than ", L::max_list, " ids"));
      for (const auto& id : e) c.eos_token_ids.push_back(f.as_int("eos_token_id[]", id, 0, c.vocab_size - 1));
    } else {
      c.eos_token_ids.push_back(f.as_int("eos_token_id", e, 0, c.vocab_size - 1));
    }
  }
  c.torch_dtype = f.opt_str("torch_dtype", f.opt_str("dtype", ""));
  return c;
}

/// Reads and validates `path`: a config.json file, or a directory containing one.
inline ModelConfig load_model_config(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path file = fs::is_directory(path, ec) ? path / "config.json" : path;
  io::JsonLimits jl;
  jl.max_depth = io::limits::max_config_depth;
  const nlohmann::json j = io::read_json_file(file, io::limits::max_config_bytes, jl, "config");
  return parse_model_config(j, file.string());
}

// ---- presets ------------------------------------------------------------------------------------

/// DeepSeek-R1 / DeepSeek-V3 671B as published (r1-spec.md §1.1).
inline ModelConfig r1_671b() {
  ModelConfig c;
  c.model_type = "deepseek_v3";
  c.vocab_size = 129280;
  c.hidden_size = 7168;
  c.intermediate_size = 18432;
  c.moe_intermediate_size = 2048;
  c.num_hidden_layers = 61;
  c.num_nextn_predict_layers = 1;
  c.num_attention_heads = 128;
  c.num_key_value_heads = 128;
  c.q_lora_rank = 1536;
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  c.n_routed_experts = 256;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 8;
  c.n_group = 8;
  c.topk_group = 4;
  c.first_k_dense_replace = 3;
  c.moe_layer_freq = 1;
  c.topk_method = TopkMethod::noaux_tc;
  c.scoring_func = ScoringFunc::sigmoid;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  c.hidden_act = "silu";
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = 163840;
  c.rope.type = RopeType::yarn;
  c.rope.theta = 10000.0;
  c.rope.factor = 40.0;
  c.rope.original_max_position_embeddings = 4096;
  c.rope.beta_fast = 32.0;
  c.rope.beta_slow = 1.0;
  c.rope.mscale = 1.0;
  c.rope.mscale_all_dim = 1.0;
  c.quantization = Fp8Quantization{};
  c.bos_token_id = 0;
  c.eos_token_ids = {1};
  c.torch_dtype = "bfloat16";
  return c;
}

/// tests/data/tiny-r1-bf16: 4 layers (1 dense + 3 MoE), hidden 256, 16 experts, bf16 weights.
inline ModelConfig tiny_r1_bf16() {
  ModelConfig c = r1_671b();
  c.vocab_size = 1024;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.moe_intermediate_size = 128;
  c.num_hidden_layers = 4;
  c.num_nextn_predict_layers = 0;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.q_lora_rank = 192;
  c.kv_lora_rank = 128;
  c.qk_nope_head_dim = 32;
  c.qk_rope_head_dim = 16;
  c.v_head_dim = 32;
  c.n_routed_experts = 16;
  c.num_experts_per_tok = 4;
  c.n_group = 4;
  c.topk_group = 2;
  c.first_k_dense_replace = 1;
  c.quantization.reset();
  return c;
}

/// tests/data/tiny-r1-fp8: tiny-r1-bf16's weights in 128x128 block FP8.
inline ModelConfig tiny_r1_fp8() {
  ModelConfig c = tiny_r1_bf16();
  c.quantization = Fp8Quantization{};
  return c;
}

/// tests/data/tiny-r1-mtp: FP8, R1's head dims, 2 dense + 2 MoE layers and one MTP layer.
inline ModelConfig tiny_r1_mtp() {
  ModelConfig c = tiny_r1_fp8();
  c.num_nextn_predict_layers = 1;
  c.first_k_dense_replace = 2;
  c.q_lora_rank = 256;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  c.max_position_embeddings = 4096;
  c.rope.factor = 8.0;
  c.rope.original_max_position_embeddings = 512;
  return c;
}

// ---- parameter count ----------------------------------------------------------------------------

/// Parameters implied by a config, from the tensor shapes of the published layout (FP8 scale
/// tensors are not parameters and are not counted).
struct ParameterCount {
  int64_t main = 0;        // embedding, decoder layers, final norm, lm_head (once when tied)
  int64_t activated = 0;   // of `main`, what one token uses: only num_experts_per_tok routed experts
  int64_t mtp = 0;         // the MTP modules' own parameters
  int64_t mtp_copies = 0;  // the embed_tokens / shared_head.head copies each MTP module stores
  int64_t stored() const { return main + mtp + mtp_copies; }
};

inline ParameterCount parameter_count(const ModelConfig& c) {
  // parse_model_config's caps keep every sum below inside int64: the largest term, experts x
  // 3 x hidden x moe_intermediate x (layers + MTP layers), is below 2^62 (tested at the caps).
  const int64_t D = c.hidden_size, H = c.num_attention_heads, V = c.vocab_size;
  const int64_t qk = c.qk_head_dim();
  int64_t attn = (c.kv_lora_rank + c.qk_rope_head_dim) * D + c.kv_lora_rank +  // kv_a + its norm
                 H * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank +    // kv_b
                 D * H * c.v_head_dim;                                         // o
  attn += c.has_q_lora() ? c.q_lora_rank * D + c.q_lora_rank + H * qk * c.q_lora_rank : H * qk * D;
  const int64_t norms = 2 * D;
  const int64_t dense = 3 * D * c.intermediate_size;
  const int64_t expert = 3 * D * c.moe_intermediate_size;
  const int64_t router = c.n_routed_experts * D + (c.topk_method == TopkMethod::noaux_tc ? c.n_routed_experts : 0);
  const int64_t shared = c.n_shared_experts * expert;
  auto layer = [&](int64_t l, bool activated) {
    if (!c.is_moe_layer(l)) return attn + norms + dense;
    return attn + norms + router + shared + (activated ? c.num_experts_per_tok : c.n_routed_experts) * expert;
  };
  ParameterCount p;
  const int64_t embed = V * D, head = c.tie_word_embeddings ? 0 : V * D;
  p.main = p.activated = embed + D + head;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    p.main += layer(l, false);
    p.activated += layer(l, true);
  }
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    // enorm, hnorm, eh_proj [D, 2D], shared_head.norm, and a full decoder layer.
    p.mtp += 3 * D + 2 * D * D + layer(c.num_hidden_layers + k, false);
    p.mtp_copies += 2 * V * D;
  }
  return p;
}

}  // namespace r1
