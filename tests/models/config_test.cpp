// SPDX-License-Identifier: MIT
// config.json -> ModelConfig: the fixtures equal their presets, R1's published config equals
// r1_671b(), the variants' rope_parameters / no-q_lora / plain-RoPE forms, defaults, the MoE
// layer rule, and parameter counts (R1 against r1-spec.md §1.2, the fixtures against the number
// of elements actually stored in their checkpoints). Bad values are covered case by case in
// tests/io/malformed_cases.hpp; here, a few messages are checked whole.
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "r1/io/checkpoint.hpp"
#include "r1/models/config.hpp"

namespace fs = std::filesystem;
using namespace r1;
using json = nlohmann::json;

namespace {

const fs::path kData = R1_TEST_DATA_DIR;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const r1::Error& e) {
    return e.what();
  }
  return "";
}

// DeepSeek-R1's config.json as published (r1-spec.md §1.1), auto_map left out.
const char* kR1Config = R"({
  "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1, "first_k_dense_replace": 3, "hidden_act": "silu",
  "hidden_size": 7168, "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
  "max_position_embeddings": 163840, "model_type": "deepseek_v3", "moe_intermediate_size": 2048,
  "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": true,
  "num_attention_heads": 128, "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
  "num_nextn_predict_layers": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                          "weight_block_size": [128, 128]},
  "rms_norm_eps": 1e-06, "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
  "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096, "type": "yarn"},
  "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "tie_word_embeddings": false,
  "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16", "transformers_version": "4.46.3",
  "use_cache": true, "v_head_dim": 128, "vocab_size": 129280, "aux_loss_alpha": 0.001, "seq_aux": true,
  "pretraining_tp": 1
})";

}  // namespace

TEST_CASE("the fixture configs equal their presets; R1's published config equals r1_671b()") {
  CHECK(load_model_config(kData / "tiny-r1-bf16") == tiny_r1_bf16());
  CHECK(load_model_config(kData / "tiny-r1-fp8" / "config.json") == tiny_r1_fp8());
  CHECK(load_model_config(kData / "tiny-r1-mtp") == tiny_r1_mtp());
  const ModelConfig r1 = parse_model_config(json::parse(kR1Config), "r1.json");
  CHECK(r1 == r1_671b());
  CHECK(r1.qk_head_dim() == 192);
  CHECK(r1.experts_per_group() == 32);
  CHECK(r1.total_layers() == 62);
  // The presets differ where the fixtures differ (operator== is not vacuous).
  CHECK_FALSE(tiny_r1_bf16() == tiny_r1_fp8());
  CHECK_FALSE(tiny_r1_fp8() == tiny_r1_mtp());
}

TEST_CASE("the structural variants: no q_lora, rope_parameters, plain RoPE, every layer MoE") {
  const ModelConfig nq = load_model_config(kData / "tiny-v3-noqlora");
  CHECK(nq.q_lora_rank == 0);
  CHECK_FALSE(nq.has_q_lora());
  CHECK(nq.n_group == 1);
  CHECK(nq.n_shared_experts == 2);
  CHECK(nq.v_head_dim == 40);
  CHECK(nq.rope.type == RopeType::yarn);
  CHECK(nq.rope.theta == 50000.0);  // from rope_parameters; there is no top-level rope_theta
  CHECK(nq.rope.factor == 4.0);
  CHECK(nq.rope.original_max_position_embeddings == 256);
  CHECK(nq.rope.mscale == 0.707);
  CHECK(nq.rope.mscale_all_dim == 0.707);
  CHECK_FALSE(nq.quantization.has_value());

  const ModelConfig pl = load_model_config(kData / "tiny-v3-plain");
  CHECK(pl.rope.type == RopeType::plain);
  CHECK(pl.rope.theta == 10000.0);
  CHECK_FALSE(pl.norm_topk_prob);
  CHECK(pl.routed_scaling_factor == 1.0);
  CHECK(pl.first_k_dense_replace == 0);
  CHECK(pl.is_moe_layer(0));
  CHECK(pl.is_moe_layer(1));

  const ModelConfig fm = load_model_config(kData / "tiny-v3-fp8-mtp");
  CHECK(fm.num_nextn_predict_layers == 1);
  CHECK(fm.topk_group == 1);
  CHECK(fm.quantization.has_value());
}

TEST_CASE("is_moe_layer follows Hugging Face's rule, MTP layers included") {
  const ModelConfig r1 = r1_671b();
  CHECK_FALSE(r1.is_moe_layer(0));
  CHECK_FALSE(r1.is_moe_layer(2));
  CHECK(r1.is_moe_layer(3));
  CHECK(r1.is_moe_layer(60));
  CHECK(r1.is_moe_layer(61));  // the MTP block is a full MoE decoder layer
  ModelConfig c = r1;
  c.moe_layer_freq = 2;
  CHECK_FALSE(c.is_moe_layer(3));
  CHECK(c.is_moe_layer(4));
  c.n_routed_experts = 0;
  CHECK_FALSE(c.is_moe_layer(4));
}

TEST_CASE("defaults, nulls and alternative spellings") {
  json j = json::parse(kR1Config);
  j.erase("num_nextn_predict_layers");
  j.erase("moe_layer_freq");
  j.erase("rope_theta");
  j["q_lora_rank"] = nullptr;
  j["eos_token_id"] = {1, 7};
  j["bos_token_id"] = nullptr;
  j["rope_scaling"] = json::object();  // empty: transformers falls through to rope_parameters
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 500000.0}, {"factor", 8}, {"beta_fast", 0}};
  j["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", {64, 32}}, {"scale_fmt", "ue8m0"},
                              {"modules_to_not_convert", {"lm_head"}}};
  j.erase("torch_dtype");
  j["dtype"] = "bfloat16";
  const ModelConfig c = parse_model_config(j, "variant.json");
  CHECK(c.num_nextn_predict_layers == 0);
  CHECK(c.moe_layer_freq == 1);
  CHECK(c.q_lora_rank == 0);
  CHECK(c.eos_token_ids == std::vector<int64_t>{1, 7});
  CHECK_FALSE(c.bos_token_id.has_value());
  CHECK(c.rope.type == RopeType::yarn);
  CHECK(c.rope.theta == 500000.0);
  CHECK(c.rope.factor == 8.0);
  CHECK(c.rope.beta_fast == 32.0);  // 0 means "use the default", as in transformers
  CHECK(c.rope.beta_slow == 1.0);
  CHECK_FALSE(c.rope.mscale.has_value());
  CHECK_FALSE(c.rope.original_max_position_embeddings.has_value());
  REQUIRE(c.quantization.has_value());
  CHECK(c.quantization->block_rows == 64);
  CHECK(c.quantization->block_cols == 32);
  CHECK(c.quantization->scale_fmt == "ue8m0");
  CHECK(c.quantization->modules_to_not_convert == std::vector<std::string>{"lm_head"});
  CHECK(c.torch_dtype == "bfloat16");

  // A V2-Lite-style config: softmax + greedy + no renormalization by default for deepseek_v2.
  json v2 = json::parse(kR1Config);
  v2["model_type"] = "deepseek_v2";
  for (const char* k : {"topk_method", "scoring_func", "norm_topk_prob", "routed_scaling_factor", "n_group",
                        "topk_group"}) {
    v2.erase(k);
  }
  const ModelConfig c2 = parse_model_config(v2, "v2.json");
  CHECK(c2.topk_method == TopkMethod::greedy);
  CHECK(c2.scoring_func == ScoringFunc::softmax);
  CHECK_FALSE(c2.norm_topk_prob);
  CHECK(c2.routed_scaling_factor == 1.0);
  CHECK(c2.n_group == 1);

  // No MoE at all: n_routed_experts null and every layer dense.
  json dense = json::parse(kR1Config);
  dense["n_routed_experts"] = nullptr;
  dense["first_k_dense_replace"] = 61;
  dense["num_nextn_predict_layers"] = 0;
  const ModelConfig cd = parse_model_config(dense, "dense.json");
  CHECK(cd.n_routed_experts == 0);
  CHECK_FALSE(cd.is_moe_layer(60));
}

TEST_CASE("errors name the source, the field, the value and the reason") {
  json j = json::parse(kR1Config);
  j["n_group"] = 7;
  CHECK(error_of([&] { parse_model_config(j, "/ckpt/config.json"); }) ==
        "config: /ckpt/config.json: field \"n_group\" = 7: n_routed_experts (256) is not divisible into 7 equal "
        "groups");
  j = json::parse(kR1Config);
  j["rope_scaling"]["factor"] = "40";
  CHECK(error_of([&] { parse_model_config(j, "c.json"); }) ==
        "config: c.json: field \"rope_scaling.factor\" = \"40\": expected a number, got a string");
  j = json::parse(kR1Config);
  j["quantization_config"]["fmt"] = "e5m2";
  CHECK(error_of([&] { parse_model_config(j, "c.json"); }) ==
        "config: c.json: field \"quantization_config.fmt\" = \"e5m2\": unsupported FP8 format (r1 reads e4m3 "
        "weights)");
  j = json::parse(kR1Config);
  j.erase("kv_lora_rank");
  CHECK(error_of([&] { parse_model_config(j, "c.json"); }) ==
        "config: c.json: field \"kv_lora_rank\" is missing: it sizes the model, so it has no default");
  // Values built in code (not parsed) can hold non-finite floats; they are rejected too.
  j = json::parse(kR1Config);
  j["rms_norm_eps"] = std::numeric_limits<double>::quiet_NaN();
  CHECK(error_of([&] { parse_model_config(j, "c.json"); }).find("must be finite") != std::string::npos);
  j["rms_norm_eps"] = std::numeric_limits<double>::infinity();
  CHECK(error_of([&] { parse_model_config(j, "c.json"); }).find("must be finite") != std::string::npos);
  CHECK(error_of([&] { parse_model_config(json::array(), "c.json"); }) ==
        "config: c.json: expected a JSON object, got an array");
  CHECK(error_of([&] { load_model_config(kData / "no-such-model"); }).find("cannot open") != std::string::npos);
}

TEST_CASE("parameter counts: R1 matches r1-spec.md §1.2, the fixtures match their stored tensors") {
  const ParameterCount r1 = parameter_count(r1_671b());
  CHECK(r1.main == 671'026'419'200);        // "main model 671.03 B"
  CHECK(r1.activated == 37'552'297'472);    // "activated ≈ 37.5 B including embedding and head"
  CHECK(r1.mtp == 11'610'068'224);          // "MTP unique ≈ 11.6 B"
  CHECK(r1.mtp_copies == 2 * 129280 * 7168);  // "plus the shared 0.9 B embedding and 0.9 B head copies"
  CHECK(r1.stored() == 684'489'845'504);    // what the published checkpoint holds (HF: "685B")

  for (const char* name : {"tiny-r1-bf16", "tiny-r1-fp8", "tiny-r1-mtp", "tiny-v3-noqlora", "tiny-v3-plain",
                           "tiny-v3-fp8-mtp"}) {
    INFO(name);
    const io::Checkpoint ck = io::Checkpoint::open(kData / name);
    const ModelConfig c = parse_model_config(ck.config_json(), name);
    int64_t main = 0, mtp = 0, copies = 0;
    const std::string mtp_prefix = "model.layers." + std::to_string(c.num_hidden_layers) + ".";
    for (const std::string& n : ck.names()) {
      if (n.size() >= 10 && n.compare(n.size() - 10, 10, "_scale_inv") == 0) continue;
      const int64_t k = ck.find(n)->shape.numel();
      if (n.rfind(mtp_prefix, 0) != 0) {
        main += k;
      } else if (n == mtp_prefix + "embed_tokens.weight" || n == mtp_prefix + "shared_head.head.weight") {
        copies += k;
      } else {
        mtp += k;
      }
    }
    const ParameterCount p = parameter_count(c);
    CHECK(p.main == main);
    CHECK(p.mtp == mtp);
    CHECK(p.mtp_copies == copies);
  }
}

TEST_CASE("parameter_count stays exact at the documented caps") {
  json j = json::parse(kR1Config);
  j["vocab_size"] = config_limits::max_vocab;
  j["hidden_size"] = config_limits::max_hidden;
  j["intermediate_size"] = config_limits::max_intermediate;
  j["moe_intermediate_size"] = config_limits::max_intermediate;
  j["num_hidden_layers"] = config_limits::max_layers;
  j["num_nextn_predict_layers"] = config_limits::max_nextn;
  j["num_attention_heads"] = config_limits::max_heads;
  j["num_key_value_heads"] = config_limits::max_heads;
  j["q_lora_rank"] = config_limits::max_rank;
  j["kv_lora_rank"] = config_limits::max_rank;
  j["qk_nope_head_dim"] = config_limits::max_head_dim;
  j["qk_rope_head_dim"] = config_limits::max_head_dim;
  j["v_head_dim"] = config_limits::max_head_dim;
  j["n_routed_experts"] = config_limits::max_experts;
  j["n_shared_experts"] = config_limits::max_shared_experts;
  j["first_k_dense_replace"] = 0;
  const ModelConfig c = parse_model_config(j, "caps.json");
  const ParameterCount p = parameter_count(c);
  // The same count in long double (64-bit mantissa: exact for these magnitudes up to rounding of
  // the last few bits), to show no int64 term wrapped around.
  const long double D = c.hidden_size, H = c.num_attention_heads, V = c.vocab_size;
  const long double attn = (c.kv_lora_rank + c.qk_rope_head_dim) * D + c.kv_lora_rank +
                           H * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank + D * H * c.v_head_dim +
                           c.q_lora_rank * D + c.q_lora_rank + H * c.qk_head_dim() * c.q_lora_rank;
  const long double layer = attn + 2 * D + c.n_routed_experts * D + c.n_routed_experts +
                            (c.n_routed_experts + c.n_shared_experts) * 3 * D * c.moe_intermediate_size;
  const long double main = 2 * V * D + D + c.num_hidden_layers * layer;
  CHECK(p.main > 0);
  CHECK(double(p.main) == doctest::Approx(double(main)).epsilon(1e-12));
  CHECK(p.stored() > p.main);
}
