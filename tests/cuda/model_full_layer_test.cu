// SPDX-License-Identifier: MIT
// One full-width DeepSeek-R1 decoder layer on the GPU against the host model (fp64 activations).
// R1's real shapes everywhere the kernels care: hidden 7168, 128 heads, q_lora 1536, kv_lora 512 +
// rope 64 (kv_a's 576 rows: a ragged FP8 scale block), nope/v 128, moe_inter 2048, 1 shared
// expert, 8 groups with topk_group 4 and top-8, YaRN factor 40; FP8 128 x 128 block weights drawn on
// the host with a fixed seed. The one reduction: 16 routed experts instead of 256 (2 per group, so
// group selection still decides), because the host model keeps an f32 copy of every weight and
// evaluates in fp64 on one thread: 256 experts would be 45 GB of host weights and minutes of
// generation, while 16 exercise the same kernels (the grouped GEMMs do not depend on E beyond its
// pointer table) at 3.7 GB. Vocabulary 256 keeps the head small.
//
// Tolerances. bf16 activations round every GEMM input and output (relative 2^-9 each); through the
// ~10 roundings of one layer that is about 1e-2 relative on the output, so logits rows agree to a
// cosine of about 0.9999. One routing decision can flip where two biased expert scores are within
// that noise of each other, which swaps one of 8 experts for that token and moves its row to ~0.99;
// the test asserts that the median row reaches 0.999 and every row 0.98, and reports the numbers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../support/r1_testing.hpp"
#include "r1/models/deepseek_v3_any.hpp"
#include "r1/runtime/generate.hpp"
#include "r1/runtime/generate_cuda.hpp"

using namespace r1;

namespace {

constexpr int64_t kHidden = 7168, kHeads = 128, kQLora = 1536, kKvLora = 512, kRope = 64, kNope = 128, kV = 128,
                  kInter = 2048, kExperts = 16, kVocab = 256;

uint64_t next(uint64_t& s) {  // xorshift64*
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 0x2545f4914f6cdd1dull;
}

/// Random FP8 codes with exponent field <= 7 (|v| <= 1.875, rms about 0.5; never NaN) and block
/// scales making the dequantized weight's standard deviation about 1 / sqrt(K).
void add_fp8(TensorMap& m, const std::string& name, int64_t n, int64_t k, uint64_t seed) {
  Tensor q = Tensor::empty(DType::f8_e4m3, {n, k});  // [n, k]
  uint8_t* p = static_cast<uint8_t*>(q.data());
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < n * k; i += 8) {
    const uint64_t r = next(s);
    for (int64_t j = 0; j < 8 && i + j < n * k; ++j) p[i + j] = uint8_t((r >> (8 * j)) & 0xbf);
  }
  const int64_t bn = (n + 127) / 128, bk = (k + 127) / 128;
  Tensor sc = Tensor::empty(DType::f32, {bn, bk});  // [ceil(n/128), ceil(k/128)]
  for (int64_t i = 0; i < bn * bk; ++i)
    sc.data_as<float>()[i] = float(2.0 / std::sqrt(double(k)) * (0.75 + 0.5 * double(next(s) >> 11) * 0x1.0p-53));
  m.set(name + ".weight", q);
  m.set(name + ".weight_scale_inv", sc);
}

void add_norm(TensorMap& m, const std::string& name, int64_t dim, uint64_t seed) {
  Tensor w = testing::randn({dim}, seed, 0.1f);  // [dim]
  Tensor b = Tensor::empty(DType::bf16, {dim});  // [dim]
  for (int64_t i = 0; i < dim; ++i) b.data_as<bf16>()[i] = bf16(1.0f + w.data_as<float>()[i]);
  m.set(name + ".weight", b);
}

nlohmann::json full_config() {
  return {{"model_type", "deepseek_v3"}, {"hidden_act", "silu"}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000},
          {"tie_word_embeddings", false}, {"bos_token_id", 0}, {"eos_token_id", 1}, {"torch_dtype", "bfloat16"},
          {"topk_method", "noaux_tc"}, {"scoring_func", "sigmoid"}, {"moe_layer_freq", 1}, {"vocab_size", kVocab},
          {"hidden_size", kHidden}, {"intermediate_size", 18432}, {"moe_intermediate_size", kInter},
          {"num_hidden_layers", 1}, {"first_k_dense_replace", 0}, {"num_nextn_predict_layers", 0},
          {"num_attention_heads", kHeads}, {"num_key_value_heads", kHeads}, {"q_lora_rank", kQLora},
          {"kv_lora_rank", kKvLora}, {"qk_nope_head_dim", kNope}, {"qk_rope_head_dim", kRope}, {"v_head_dim", kV},
          {"n_routed_experts", kExperts}, {"n_shared_experts", 1}, {"num_experts_per_tok", 8}, {"n_group", 8},
          {"topk_group", 4}, {"norm_topk_prob", true}, {"routed_scaling_factor", 2.5},
          {"max_position_embeddings", 163840},
          {"rope_scaling",
           {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096}, {"beta_fast", 32},
            {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
          {"quantization_config",
           {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
            {"weight_block_size", {128, 128}}}}};
}

TensorMap full_weights() {
  TensorMap m;
  uint64_t seed = 1000;
  m.set("model.embed_tokens.weight", testing::randn_bf16({kVocab, kHidden}, seed++));
  m.set("lm_head.weight", testing::randn_bf16({kVocab, kHidden}, seed++, float(1 / std::sqrt(double(kHidden)))));
  add_norm(m, "model.norm", kHidden, seed++);
  const std::string p = "model.layers.0";
  add_norm(m, p + ".input_layernorm", kHidden, seed++);
  add_norm(m, p + ".post_attention_layernorm", kHidden, seed++);
  add_fp8(m, p + ".self_attn.q_a_proj", kQLora, kHidden, seed++);
  add_norm(m, p + ".self_attn.q_a_layernorm", kQLora, seed++);
  add_fp8(m, p + ".self_attn.q_b_proj", kHeads * (kNope + kRope), kQLora, seed++);
  add_fp8(m, p + ".self_attn.kv_a_proj_with_mqa", kKvLora + kRope, kHidden, seed++);
  add_norm(m, p + ".self_attn.kv_a_layernorm", kKvLora, seed++);
  add_fp8(m, p + ".self_attn.kv_b_proj", kHeads * (kNope + kV), kKvLora, seed++);
  add_fp8(m, p + ".self_attn.o_proj", kHidden, kHeads * kV, seed++);
  m.set(p + ".mlp.gate.weight", testing::randn_bf16({kExperts, kHidden}, seed++, float(1 / std::sqrt(double(kHidden)))));
  m.set(p + ".mlp.gate.e_score_correction_bias", testing::randn({kExperts}, seed++, 0.05f));
  for (int64_t e = 0; e < kExperts; ++e) {
    const std::string q = p + ".mlp.experts." + std::to_string(e);
    add_fp8(m, q + ".gate_proj", kInter, kHidden, seed++);
    add_fp8(m, q + ".up_proj", kInter, kHidden, seed++);
    add_fp8(m, q + ".down_proj", kHidden, kInter, seed++);
  }
  add_fp8(m, p + ".mlp.shared_experts.gate_proj", kInter, kHidden, seed++);
  add_fp8(m, p + ".mlp.shared_experts.up_proj", kInter, kHidden, seed++);
  add_fp8(m, p + ".mlp.shared_experts.down_proj", kHidden, kInter, seed++);
  return m;
}

// Bounds: fp8 dequant (bf16 weights, bf16 activations vs the fp64 host) holds median >= 0.999 and
// worst >= 0.98 (measured 0.99997 / 0.99996 on an H100). fp8 native quantizes activations 1 x 128 to
// e4m3: the GPU quantizes bf16 activations, the host fp64 ones, so many codes differ by one e4m3
// step and a token's routing can flip (measured median 0.9988 / 0.9982, worst 0.961): native gets
// median >= 0.995 and worst >= 0.9, which any real defect (a wrong scale layout, a wrong expert)
// breaks by far. With f32 activations (fp32 GEMMs and attention, every quantizer reading fp32
// values) the GPU tracks the fp64 host in dequant mode: measured cosine 1.0 (max abs error 3e-6),
// bound median >= 0.99999, worst >= 0.9999. Native with f32 activations (f64 residual, fp64 norms
// before the quantizers) measured cosine 1.0 prefill and decode (max abs error 1.3e-3 of logits up
// to 3.5), bound median >= 0.99999, worst >= 0.9999; before the f64 residual, fp32 arithmetic
// resolved e4m3 rounding ties differently from the host's fp64 and the flipped codes cascaded
// (decode median 0.99934; docs/model.md, "FP8 native with f32 activations").
struct Bounds {
  double median, worst;
};
void compare(const std::string& what, const Tensor& got, const Tensor& want, int64_t rows, Bounds b) {
  std::vector<double> cos;
  for (int64_t r = 0; r < rows; ++r) cos.push_back(testing::row_cosine(got, want, r));
  std::vector<double> sorted = cos;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2], worst = sorted.front();
  MESSAGE(what, ": ", rows, " rows, median cosine ", median, ", worst ", worst, ", max abs error ",
          testing::max_abs_diff(got.slice(0, 0, rows), want.slice(0, 0, rows)), " (logits max ",
          testing::max_abs(want), ")");
  CHECK(median >= b.median);
  CHECK(worst >= b.worst);
}

void check_mode(const TensorMap& w, const ModelConfig& cfg, quant::Fp8Compute mode, Activations act) {
  const std::string name = std::string(quant::fp8_compute_name(mode)) + ", " + activations_name(act) + " activations";
  CAPTURE(name);
  const std::vector<int32_t> prompt = {0, 17, 200, 3, 99, 42};
  GenerateOptions g;
  g.max_new_tokens = 3;
  g.record_logits = true;
  GenerateResult host;
  {
    ModelLoadOptions lo;
    lo.fp8 = mode;
    const AnyDeepseekV3 hm = AnyDeepseekV3::load(w, cfg, lo);
    host = generate(hm, prompt, g);
  }
  CudaDeepseekV3::LoadOptions co;
  co.fp8 = mode;
  co.activations = act;
  const CudaDeepseekV3 dm = CudaDeepseekV3::load(w, cfg, co);
  const CudaGenerateResult dev = generate_cuda_batch(dm, {prompt}, g);
  const GenerateResult& d = dev.sequences[0];
  const bool native = mode == quant::Fp8Compute::native;
  const Bounds b = act == Activations::f32 ? Bounds{0.99999, 0.9999}
                  : native                   ? Bounds{0.995, 0.9}
                                             : Bounds{0.999, 0.98};
  compare(name + " prefill", d.prefill_logits, host.prefill_logits, int64_t(prompt.size()), b);
  size_t same = 0;
  while (same < d.ids.size() && same < host.ids.size() && d.ids[same] == host.ids[same]) ++same;
  MESSAGE(name, ": ", same - prompt.size(), " of ", g.max_new_tokens, " greedy tokens identical");
  const int64_t steps = std::min<int64_t>(int64_t(same - prompt.size()) + 1, g.max_new_tokens);
  compare(name + " decode steps (absorbed attention)", d.step_logits, host.step_logits, steps, b);
}

}  // namespace

TEST_CASE("cuda model: a full-width R1 decoder layer matches the host (fp8 dequant and native, bf16 and f32)") {
  const TensorMap w = full_weights();
  const ModelConfig cfg = parse_model_config(full_config(), "full-width R1 layer");
  for (Activations act : {Activations::bf16, Activations::f32}) {
    check_mode(w, cfg, quant::Fp8Compute::dequant, act);
    check_mode(w, cfg, quant::Fp8Compute::native, act);
  }
}
