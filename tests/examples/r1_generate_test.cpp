// SPDX-License-Identifier: MIT
// The r1-generate binary, run as a user runs it: its --dump-logits file against the oracle
// fixtures, speculative decoding, and clean failures (non-zero exit, a message naming the problem,
// never a crash) for bad checkpoints and arguments.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../support/r1_testing.hpp"
#include "r1/io/safetensors.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {
const std::string kData = R1_TEST_DATA_DIR;

struct Run {
  int status = -1;  // exit status, or -1 if the program did not exit normally (signal)
  std::string output;  // stdout and stderr
};

Run run(const std::string& args) {
  const std::string cmd = std::string(R1_GENERATE_BIN) + " " + args + " 2>&1";
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string ids_arg(const Tensor& ids) {
  std::string s;
  for (int64_t i = 0; i < ids.numel(); ++i) s += (i ? "," : "") + std::to_string(ids.data_as<int64_t>()[i]);
  return s;
}

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("r1_generate_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Runs `dir` on its oracle prompt with --dump-logits and checks the file against reference.safetensors.
void check_dump(const std::string& dir, const std::string& extra, const char* ids_name, double prefill_tol) {
  CAPTURE(dir);
  const auto ref = io::SafetensorsFile::open(kData + "/" + dir + "/reference.safetensors");
  const Tensor prompt = ref.tensor("input_ids"), want = ref.tensor(ids_name);  // [T] and [T + N] I64
  const int64_t t = prompt.numel(), n = want.numel() - t;
  const fs::path out = temp_dir(dir) / "dump.safetensors";
  const Run r = run("--model " + kData + "/" + dir + " --prompt-ids " + ids_arg(prompt) + " --max-new-tokens " +
                    std::to_string(n) + " --dump-logits " + out.string() + " " + extra);
  CAPTURE(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("tokens/s") != std::string::npos);
  const auto dump = io::SafetensorsFile::open(out);
  const Tensor prefill = dump.tensor("prefill_logits"), steps = dump.tensor("step_logits"), ids = dump.tensor("generated_ids");  // [T, vocab], [N, vocab], [T + N]
  CHECK(prefill.dtype() == DType::f32);
  CHECK(prefill.shape() == Shape{t, ref.tensor("logits").size(1)});
  CHECK(steps.shape() == Shape{n, ref.tensor("logits").size(1)});
  CHECK(ids.dtype() == DType::i64);
  CHECK(testing::max_abs_diff(ids, want) == 0);
  if (prefill_tol > 0) {
    CHECK(testing::max_abs_diff(prefill, ref.tensor("logits")) <= prefill_tol);
    CHECK(testing::max_abs_diff(steps, ref.tensor("teacher_forced_logits").slice(0, t - 1, t + n - 1)) <= 3e-3);
  }
  fs::remove_all(out.parent_path());
}
}  // namespace

TEST_CASE("r1-generate --dump-logits matches the oracle: tiny-r1-bf16, tiny-r1-fp8 (dequant)") {
  check_dump("tiny-r1-bf16", "", "generated_ids", 1e-3);
  check_dump("tiny-r1-fp8", "--fp8 dequant", "generated_ids", 1e-3);
}

TEST_CASE("r1-generate on tiny-r1-mtp: --mtp gives the greedy ids; --fp8 native the FP8-simulated ids") {
  check_dump("tiny-r1-mtp", "--mtp", "generated_ids", 1e-3);
  check_dump("tiny-r1-mtp", "--fp8 native", "fp8_act_sim_generated_ids", 0);
  const Run r = run("--model " + kData + "/tiny-r1-mtp --prompt-ids 0,5,7 --max-new-tokens 6 --mtp");
  CHECK(r.status == 0);
  CHECK(r.output.find("MTP accepted") != std::string::npos);
}

TEST_CASE("r1-generate: sampling is reproducible from its seed") {
  const std::string base = "--model " + kData + "/tiny-r1-bf16 --prompt-ids 0,11,12 --max-new-tokens 12 --quiet ";
  const Run a = run(base + "--temperature 1.5 --top-k 50 --top-p 0.9 --seed 7");
  const Run b = run(base + "--temperature 1.5 --top-k 50 --top-p 0.9 --seed 7");
  const Run c = run(base + "--temperature 1.5 --top-k 50 --top-p 0.9 --seed 8");
  const Run g = run(base + "--temperature 0");
  REQUIRE(a.status == 0);
  CHECK(a.output == b.output);
  CHECK(a.output != c.output);
  CHECK(a.output != g.output);
  CHECK(run(base + "--temperature 1 --top-k 1 --seed 3").output == g.output);  // top-k 1 is greedy
}

TEST_CASE("r1-generate fails cleanly on bad checkpoints and arguments") {
  auto fails_with = [](const std::string& args, const std::string& message) {
    const Run r = run(args);
    CAPTURE(args);
    CAPTURE(r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find(message) != std::string::npos);
  };
  const std::string bf16 = kData + "/tiny-r1-bf16";
  // A checkpoint whose index names a shard that is not there.
  const fs::path broken = temp_dir("broken");
  for (const char* f : {"config.json", "model.safetensors.index.json", "model-00001-of-00003.safetensors",
                        "model-00002-of-00003.safetensors"})
    fs::copy_file(bf16 + "/" + f, broken / f);
  fails_with("--model " + broken.string() + " --prompt-ids 0,1", "model-00003-of-00003.safetensors");
  // A tensor missing from a single-file checkpoint: rewrite tiny-v3-plain without one expert weight.
  {
    const fs::path miss = temp_dir("missing");
    fs::copy_file(kData + "/tiny-v3-plain/config.json", miss / "config.json");
    const auto src = io::SafetensorsFile::open(kData + "/tiny-v3-plain/model.safetensors");
    std::vector<std::pair<std::string, Tensor>> keep;
    for (const auto& e : src.entries())
      if (e.name != "model.layers.1.mlp.experts.5.down_proj.weight") keep.push_back({e.name, src.tensor(e.name)});
    io::write_safetensors(miss / "model.safetensors", keep);
    fails_with("--model " + miss.string() + " --prompt-ids 0,1",
               "missing tensor model.layers.1.mlp.experts.5.down_proj.weight (expected BF16 [128, 48])");
    fs::remove_all(miss);
  }
  fails_with("--model " + broken.string() + "/nowhere --prompt-ids 0", "nowhere");
  fails_with("--model " + kData + "/tiny-r1-fp8 --prompt-ids 0,1 --fp8 native",
             "model.layers.0.self_attn.q_b_proj: K = 192 is not a multiple of 128");
  {
    // --device cuda: with a GPU it generates the host's greedy tokens (the first 8 are the GPU
    // tolerance of tests/data's README); without one, or in a build without CUDA, a clear error.
    const Run gpu = run("--model " + bf16 + " --prompt-ids 0,5,7 --max-new-tokens 8 --device cuda --quiet");
    if (gpu.status == 0) {
      const Run cpu = run("--model " + bf16 + " --prompt-ids 0,5,7 --max-new-tokens 8 --quiet");
      CHECK(cpu.status == 0);
      CHECK(gpu.output == cpu.output);
      // f32 activations (fp32 GEMMs and attention) on an FP8 checkpoint: the host's greedy ids
      const std::string mtp = kData + "/tiny-r1-mtp --prompt-ids 0,5,7 --max-new-tokens 8 --quiet";
      const Run g32 = run("--model " + mtp + " --device cuda --activations f32");
      const Run c32 = run("--model " + mtp);
      CHECK(g32.status == 0);
      CHECK(g32.output == c32.output);
    } else {
      INFO(gpu.output);
      CHECK(gpu.status == 1);
      CHECK((gpu.output.find("no CUDA device is visible") != std::string::npos ||
             gpu.output.find("built without CUDA support") != std::string::npos));
    }
  }
  fails_with("--model " + bf16 + " --prompt-ids 0,2000", "token id 2000 at position 1 is outside the model's vocabulary of 1024");
  fails_with("--model " + bf16 + " --prompt-ids 0,,1", "entry 1 (\"\") is not a token id");
  fails_with("--model " + bf16 + " --prompt hello", "no tokenizer.json in");
  fails_with("--model " + bf16 + " --prompt-ids 0 --mtp", "num_nextn_predict_layers = 0");
  fails_with("--model " + bf16, "give a prompt");
  fs::remove_all(broken);

  // command-line syntax errors exit with 2, as --help says (a bad choice, an unknown flag)
  for (const std::string bad : {"--activations f16", "--device gpu", "--bogus"}) {
    const Run r = run("--model " + bf16 + " --prompt-ids 0,5 " + bad);
    INFO(bad, ": ", r.output);
    CHECK(r.status == 2);
  }
  const Run help = run("--help");
  CHECK(help.status == 0);
  for (const char* flag : {"--model", "--prompt-ids", "--max-new-tokens", "--temperature", "--top-p", "--top-k", "--seed",
                           "--fp8", "--mtp", "--dump-logits", "--device", "--activations"})
    CHECK(help.output.find(flag) != std::string::npos);
}

TEST_CASE("r1-generate --prompt: R1 chat template, tokenizer, streamed text") {
  // A random model with DeepSeek-V3's real vocabulary (129280) and a tiny width, so that the
  // tokenizer's ids are rows of its embedding.
  const fs::path dir = temp_dir("vocab");
  const int64_t v = 129280, d = 16;
  const nlohmann::json cfg = {
      {"model_type", "deepseek_v3"}, {"vocab_size", v}, {"hidden_size", d}, {"intermediate_size", 32},
      {"num_hidden_layers", 1}, {"first_k_dense_replace", 1}, {"num_attention_heads", 2}, {"q_lora_rank", nullptr},
      {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4}, {"v_head_dim", 8},
      {"n_routed_experts", nullptr}, {"max_position_embeddings", 4096}, {"bos_token_id", 0}, {"eos_token_id", 1}};
  std::ofstream(dir / "config.json") << cfg.dump();
  std::vector<std::pair<std::string, Tensor>> t;
  uint64_t seed = 1;
  auto add = [&](const std::string& name, const Shape& s) { t.push_back({name, testing::randn_bf16(s, ++seed, 0.3f)}); };
  add("model.embed_tokens.weight", {v, d});
  add("lm_head.weight", {v, d});
  for (const char* n : {"model.norm.weight", "model.layers.0.input_layernorm.weight",
                        "model.layers.0.post_attention_layernorm.weight"})
    add(n, {d});
  add("model.layers.0.self_attn.kv_a_layernorm.weight", {16});
  add("model.layers.0.self_attn.q_proj.weight", {2 * 12, d});
  add("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", {20, d});
  add("model.layers.0.self_attn.kv_b_proj.weight", {2 * 16, 16});
  add("model.layers.0.self_attn.o_proj.weight", {d, 16});
  add("model.layers.0.mlp.gate_proj.weight", {32, d});
  add("model.layers.0.mlp.up_proj.weight", {32, d});
  add("model.layers.0.mlp.down_proj.weight", {d, 32});
  io::write_safetensors(dir / "model.safetensors", t);

  const std::string tok = " --tokenizer " + kData + "/deepseek-v3";
  const Run a = run("--model " + dir.string() + tok + " --prompt 'Hello, world' --max-new-tokens 8 --ignore-eos");
  CAPTURE(a.output);
  CHECK(a.status == 0);
  // BOS <｜User｜> "Hello" "," " world" <｜Assistant｜> <think> "\n": 8 prompt tokens
  CHECK(a.output.find("prefill 8 tokens") != std::string::npos);
  const Run b = run("--model " + dir.string() + tok + " --prompt 'Hello, world' --max-new-tokens 8 --raw --quiet");
  CAPTURE(b.output);
  CHECK(b.status == 0);
  CHECK(!b.output.empty());
  fs::remove_all(dir);
}
