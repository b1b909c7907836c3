// SPDX-License-Identifier: MIT
// The generation runtime: the paged latent cache; speculative decoding's bookkeeping on a scripted
// model (accepts, rejects, rollback, exact sampling distribution); and a random DeepSeek-V3-family
// checkpoint unlike the fixtures (q_lora null, n_group 1, two shared experts, odd dims, YaRN under
// rope_parameters, a bf16 eh_proj MTP layer) written to disk, loaded and run: the two MLA forms
// agree, incremental decoding reproduces the full forward, MTP decoding reproduces greedy.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "../support/r1_testing.hpp"
#include "r1/io/safetensors.hpp"
#include "r1/models/deepseek_v3_load.hpp"
#include "r1/runtime/generate.hpp"

using namespace r1;
namespace fs = std::filesystem;

TEST_CASE("LatentKvCache maps pages on demand, rolls back, and refuses to overflow") {
  LatentKvCache c(2, 5, 10, 4);  // 2 layers, rows of 5, 10 tokens in pages of 4 -> 3 pages
  CHECK(c.capacity() == 12);
  CHECK(c.pages_in_use() == 0);
  auto refs = c.prepare(5);
  REQUIRE(refs.size() == 2);
  CHECK(refs[0].pages.shape() == Shape{3, 4, 5});
  CHECK(refs[0].pages.dtype() == kHostActDType);
  CHECK(c.pages_in_use() == 2);
  c.commit(5);
  c.prepare(3);
  c.commit(3);
  CHECK(c.length() == 8);
  CHECK(c.pages_in_use() == 2);
  c.truncate(4);  // back to one full page
  CHECK(c.length() == 4);
  CHECK(c.pages_in_use() == 1);
  c.prepare(1);
  CHECK(c.pages_in_use() == 2);
  CHECK_THROWS_WITH(c.prepare(9), "kv_cache: cannot hold 13 tokens: capacity is 12 (raise the cache's max_tokens)");
  CHECK_THROWS_WITH(c.truncate(5), "kv_cache: cannot truncate 4 tokens to 5");
}

namespace {
// A scripted "model" over a vocabulary of V: the main model's logits at position p after token x
// favour next(x) = (3x + 1) mod V; the MTP module drafts next(next(x)) correctly except at
// positions where `wrong(p)`. It checks that generate() keeps both caches in step.
struct ScriptedModel {
  static constexpr int64_t V = 8;
  ModelConfig cfg;
  std::vector<int32_t> wrong_at;  // MTP positions whose draft is wrong
  bool greedy = true;             // greedy runs also check that each MTP pair is (h_i, x_{i+1})
  ScriptedModel() {
    cfg.vocab_size = V;
    cfg.max_position_embeddings = 1000;
  }
  static int32_t next(int32_t x) { return int32_t((3 * x + 1) % V); }
  const ModelConfig& config() const { return cfg; }
  int num_layers() const { return 1; }
  bool has_mtp() const { return true; }
  int64_t cache_width() const { return 1; }
  // Logits: 2 for the favoured token, 0 elsewhere (softmax probability e^2 / (e^2 + 7) = 0.51).
  static Tensor logits_for(const std::vector<int32_t>& favoured) {
    Tensor l = Tensor::zeros(kHostActDType, {int64_t(favoured.size()), V});  // [tokens, V]
    for (size_t i = 0; i < favoured.size(); ++i) l.view<double, 2>()(int64_t(i), favoured[i]) = 2.0;
    return l;
  }
  Tensor forward(const Exec&, View<const int32_t, 1> ids, int64_t start, const std::vector<LatentCacheRef>& caches,
                 Tensor* hidden = nullptr, MlaForm = MlaForm::automatic) const {
    REQUIRE(caches.size() == 1);
    std::vector<int32_t> fav;
    Tensor h = Tensor::empty(kHostActDType, {ids.shape[0], 2});  // [tokens, (token, position)]
    for (int64_t i = 0; i < ids.shape[0]; ++i) {
      fav.push_back(next(ids(i)));
      h.view<double, 2>()(i, 0) = ids(i);
      h.view<double, 2>()(i, 1) = double(start + i);
    }
    if (hidden) *hidden = h;
    return logits_for(fav);
  }
  Tensor mtp_forward(const Exec&, const Tensor& h, View<const int32_t, 1> next_ids, int64_t start,
                     const LatentCacheRef&, MlaForm = MlaForm::automatic) const {
    std::vector<int32_t> fav;
    for (int64_t i = 0; i < next_ids.shape[0]; ++i) {
      const int32_t x_next = next_ids(i);
      const int64_t pos = start + i;
      REQUIRE(int64_t(h.view<const double, 2>()(i, 1)) == pos);  // h_i belongs to position i
      if (greedy) REQUIRE(next(int32_t(h.view<const double, 2>()(i, 0))) == x_next);  // the pair (h_i, x_{i+1})
      const bool wrong = std::find(wrong_at.begin(), wrong_at.end(), int32_t(pos)) != wrong_at.end();
      fav.push_back(wrong ? int32_t((next(x_next) + 1) % V) : next(x_next));
    }
    return logits_for(fav);
  }
};
}  // namespace

TEST_CASE("speculative decoding bookkeeping: accepts, rejects and rollback give the greedy sequence") {
  ScriptedModel m;
  m.wrong_at = {4, 5, 9};
  const std::vector<int32_t> prompt = {1, 4, 5};
  GenerateOptions plain;
  plain.max_new_tokens = 11;
  plain.record_logits = true;
  const GenerateResult g = generate(m, prompt, plain);
  GenerateOptions spec = plain;
  spec.mtp = true;
  const GenerateResult s = generate(m, prompt, spec);
  CHECK(s.ids == g.ids);
  CHECK(s.ids.size() == prompt.size() + 11);
  CHECK(testing::max_abs_diff(s.step_logits, g.step_logits) == 0);
  CHECK(s.stats.drafted > 0);
  CHECK(s.stats.accepted > 0);
  CHECK(s.stats.accepted < s.stats.drafted);
  CHECK(s.stats.forwards < g.stats.forwards);  // fewer main-model steps than tokens
  MESSAGE("scripted MTP: accepted ", s.stats.accepted, "/", s.stats.drafted, " in ", s.stats.forwards, " verify steps");
  // Stop ids end generation in both modes at the same place.
  spec.stop_ids = {s.ids[prompt.size() + 4]};
  plain.stop_ids = spec.stop_ids;
  CHECK(generate(m, prompt, spec).ids == generate(m, prompt, plain).ids);
}

TEST_CASE("speculative sampling with a greedy draft keeps the target distribution") {
  // With a draft that is always token next(next(x)), the second new token's distribution must be
  // the target's: 0.51 on the favoured token, 0.07 on each other.
  ScriptedModel m;
  m.greedy = false;
  std::map<int32_t, int> count;
  const int n = 6000;
  for (int seed = 0; seed < n; ++seed) {
    GenerateOptions o;
    o.max_new_tokens = 2;
    o.mtp = true;
    o.sampling.temperature = 1;
    o.seed = uint64_t(seed);
    const GenerateResult r = generate(m, {2}, o);
    if (r.ids[1] == ScriptedModel::next(2)) ++count[r.ids[2]];
  }
  int total = 0;
  for (auto& [id, c] : count) total += c;
  REQUIRE(total > 2000);
  const int32_t fav = ScriptedModel::next(ScriptedModel::next(2));
  const double p_fav = std::exp(2.0) / (std::exp(2.0) + 7);
  CHECK(std::fabs(count[fav] / double(total) - p_fav) < 0.03);
  for (int32_t id = 0; id < ScriptedModel::V; ++id)
    if (id != fav) CHECK(std::fabs(count[id] / double(total) - (1 - p_fav) / 7) < 0.02);
}

namespace {
// A random V3-family checkpoint on disk, structurally unlike the fixtures.
struct RandomCheckpoint {
  fs::path dir;
  nlohmann::json config;
  RandomCheckpoint() {
    dir = fs::temp_directory_path() / ("r1_random_v3_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    config = {{"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "deepseek_v3"},
              {"vocab_size", 97}, {"hidden_size", 72}, {"intermediate_size", 88}, {"moe_intermediate_size", 20},
              {"num_hidden_layers", 3}, {"first_k_dense_replace", 1}, {"moe_layer_freq", 1},
              {"num_nextn_predict_layers", 1}, {"num_attention_heads", 3}, {"num_key_value_heads", 3},
              {"q_lora_rank", nullptr}, {"kv_lora_rank", 40}, {"qk_nope_head_dim", 12}, {"qk_rope_head_dim", 6},
              {"v_head_dim", 10}, {"n_routed_experts", 6}, {"n_shared_experts", 2}, {"num_experts_per_tok", 2},
              {"n_group", 1}, {"topk_group", 1}, {"topk_method", "noaux_tc"}, {"scoring_func", "sigmoid"},
              {"norm_topk_prob", true}, {"routed_scaling_factor", 1.5}, {"hidden_act", "silu"},
              {"rms_norm_eps", 1e-6}, {"max_position_embeddings", 4096}, {"tie_word_embeddings", false},
              {"bos_token_id", 0}, {"eos_token_id", 1},
              {"rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 50000.0}, {"factor", 4.0},
                                   {"original_max_position_embeddings", 256}, {"beta_fast", 32}, {"beta_slow", 1},
                                   {"mscale", 0.707}, {"mscale_all_dim", 0.707}}}};
    std::vector<std::pair<std::string, Tensor>> t;
    uint64_t seed = 100;
    auto lin = [&](const std::string& name, int64_t out, int64_t in) {
      t.push_back({name + ".weight", testing::randn_bf16({out, in}, ++seed, 1.0f / std::sqrt(float(in)))});
    };
    auto norm = [&](const std::string& name, int64_t d) {
      Tensor w = testing::randn({d}, ++seed, 0.1f);  // [d]
      Tensor b = Tensor::empty(DType::bf16, {d});  // [d]
      for (int64_t i = 0; i < d; ++i) b.data_as<bf16>()[i] = bf16(1 + w.data_as<float>()[i]);
      t.push_back({name + ".weight", b});
    };
    const int64_t d = 72, v = 97;
    t.push_back({"model.embed_tokens.weight", testing::randn_bf16({v, d}, ++seed)});
    lin("lm_head", v, d);
    norm("model.norm", d);
    for (int l = 0; l <= 3; ++l) {  // layer 3 is the MTP module
      const std::string p = "model.layers." + std::to_string(l);
      norm(p + ".input_layernorm", d);
      norm(p + ".post_attention_layernorm", d);
      lin(p + ".self_attn.q_proj", 3 * 18, d);
      lin(p + ".self_attn.kv_a_proj_with_mqa", 46, d);
      norm(p + ".self_attn.kv_a_layernorm", 40);
      lin(p + ".self_attn.kv_b_proj", 3 * 22, 40);
      lin(p + ".self_attn.o_proj", d, 30);
      if (l == 0) {
        for (const char* x : {".mlp.gate_proj", ".mlp.up_proj"}) lin(p + x, 88, d);
        lin(p + ".mlp.down_proj", d, 88);
        continue;
      }
      lin(p + ".mlp.gate", 6, d);
      Tensor bias = testing::randn({6}, ++seed, 0.2f);  // [6]
      t.push_back({p + ".mlp.gate.e_score_correction_bias", bias});
      for (int e = 0; e < 6; ++e) {
        const std::string q = p + ".mlp.experts." + std::to_string(e);
        lin(q + ".gate_proj", 20, d);
        lin(q + ".up_proj", 20, d);
        lin(q + ".down_proj", d, 20);
      }
      lin(p + ".mlp.shared_experts.gate_proj", 40, d);
      lin(p + ".mlp.shared_experts.up_proj", 40, d);
      lin(p + ".mlp.shared_experts.down_proj", d, 40);
    }
    norm("model.layers.3.enorm", d);
    norm("model.layers.3.hnorm", d);
    lin("model.layers.3.eh_proj", d, 2 * d);
    norm("model.layers.3.shared_head.norm", d);
    lin("model.layers.3.shared_head.head", v, d);
    io::write_safetensors(dir / "model.safetensors", t);
    std::ofstream(dir / "config.json") << config.dump(2);
  }
  ~RandomCheckpoint() { fs::remove_all(dir); }
};
}  // namespace

TEST_CASE("a random V3-family checkpoint (no q_lora, n_group 1, 2 shared experts, odd dims) runs generically") {
  const RandomCheckpoint ck;
  ModelLoadOptions opt;
  opt.mtp = true;
  const AnyDeepseekV3 model = load_deepseek_v3(ck.dir, opt);
  CHECK(model.policy_name() == "bf16");
  CHECK(model.has_mtp());
  std::vector<int32_t> prompt = {0};
  for (int i = 1; i < 19; ++i) prompt.push_back(int32_t((i * 37) % 97));
  const int64_t t = int64_t(prompt.size());

  // The two MLA forms over the whole prompt.
  auto full = [&](const std::vector<int32_t>& ids, MlaForm form, int64_t page, Tensor* hidden = nullptr) {
    LatentKvCache c(model.num_layers(), model.cache_width(), int64_t(ids.size()), page);
    return model.forward(Exec{}, make_view<1>(ids.data(), {int64_t(ids.size())}), 0, c.prepare(int64_t(ids.size())),
                         hidden, form);
  };
  const Tensor expanded = full(prompt, MlaForm::expanded, 64);  // [tokens, vocab]
  const Tensor absorbed = full(prompt, MlaForm::absorbed, 5);  // [tokens, vocab]
  CHECK(testing::max_abs(expanded) > 0.1);
  CHECK(testing::max_abs_diff(expanded, absorbed) < 1e-10);

  // Incremental decoding (cache) reproduces the full forward over the generated sequence.
  GenerateOptions g;
  g.max_new_tokens = 14;
  g.record_logits = true;
  const GenerateResult r = generate(model, prompt, g);
  REQUIRE(r.ids.size() == prompt.size() + 14);
  const Tensor tf = full(r.ids, MlaForm::automatic, 64);  // [t + 14, vocab]
  CHECK(testing::max_abs_diff(r.prefill_logits, tf.slice(0, 0, t)) < 1e-5);
  CHECK(testing::max_abs_diff(r.step_logits, tf.slice(0, t - 1, t + 13)) < 1e-5);
  for (int64_t i = 0; i < 14; ++i) {  // each chosen token is the argmax of its step
    CHECK(r.ids[size_t(t + i)] == ref::argmax(tf.view<const double, 2>().select(0, t - 1 + i)));
  }

  // Page size does not matter; MTP speculative decoding gives the greedy sequence.
  GenerateOptions small = g;
  small.page_size = 3;
  CHECK(generate(model, prompt, small).ids == r.ids);
  GenerateOptions spec = g;
  spec.mtp = true;
  const GenerateResult s = generate(model, prompt, spec);
  CHECK(s.ids == r.ids);
  CHECK(s.stats.drafted > 0);
  MESSAGE("random checkpoint: MTP accepted ", s.stats.accepted, "/", s.stats.drafted);

  // Sampling: reproducible from the seed, and different from greedy.
  GenerateOptions samp = g;
  samp.sampling = {1.2f, 20, 0.95f};
  samp.seed = 5;
  const auto a = generate(model, prompt, samp).ids, b = generate(model, prompt, samp).ids;
  CHECK(a == b);
  CHECK(a != r.ids);
  samp.mtp = true;  // speculative sampling runs on the real model too
  CHECK(generate(model, prompt, samp).ids.size() == prompt.size() + 14);
}
