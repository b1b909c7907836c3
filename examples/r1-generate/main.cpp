// SPDX-License-Identifier: MIT
// r1-generate: load a DeepSeek-V3/R1 checkpoint directory (config.json + safetensors shards) and
// generate from a prompt, greedily or by sampling, optionally with MTP speculative decoding.
// Generated text (or ids) streams to stdout; load progress, speed and errors go to stderr.
// See --help and docs/model.md.
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <unistd.h>

#include "r1/io/chat.hpp"
#include "r1/io/safetensors.hpp"
#include "r1/io/tokenizer.hpp"
#include "r1/models/deepseek_v3_load.hpp"
#include "r1/runtime/generate.hpp"
#include "r1/runtime/generate_cuda.hpp"

namespace {

namespace fs = std::filesystem;

struct Options {
  std::string model;
  std::string device = "cpu";
  std::string prompt;
  std::string prompt_ids;
  int max_new_tokens = 32;
  float temperature = 0;
  float top_p = 1;
  int top_k = 0;
  uint64_t seed = 0;
  std::string fp8 = "dequant";
  std::string activations = "bf16";
  bool mtp = false;
  std::string dump;
  std::string tokenizer;
  std::string chat_template = "deepseek-r1";
  bool raw = false;
  bool ignore_eos = false;
  int page_size = 64;
  bool quiet = false;
};

/// "0,5,7" -> {0, 5, 7}; anything else is an error naming the bad entry.
std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    R1_CHECK(!item.empty() && used == item.size() && v >= 0 && v <= INT32_MAX, "--prompt-ids",
             "entry ", ids.size(), " (\"", item, "\") is not a token id (expected e.g. 0,5,7)");
    ids.push_back(int32_t(v));
    pos = comma + 1;
  }
  return ids;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Everything after loading, shared by both devices: the prompt, generation (`gen(prompt, g)`
/// returns a GenerateResult), streaming, speed lines and --dump-logits.
template <class Model, class Gen>
int run_model(const Options& o, const Model& model, std::vector<int32_t> prompt, double load_seconds, bool tty,
              Gen&& gen) {
  using namespace r1;
  const ModelConfig& cfg = model.config();
  if (!o.quiet) {
    std::fprintf(stderr, "%sr1-generate: loaded in %.2f s: %s weights, %d layers, hidden %lld, vocab %lld%s%s\n",
                 tty ? "\r" : "", load_seconds, model.policy_name().c_str(), model.num_layers(),
                 (long long)cfg.hidden_size, (long long)cfg.vocab_size, model.has_mtp() ? ", MTP module" : "",
                 o.device == "cuda" ? ", on the GPU" : "");
    if (!cfg.quantization && o.fp8 != "dequant")
      std::fprintf(stderr, "r1-generate: note: --fp8 %s has no effect on a checkpoint without FP8 weights\n", o.fp8.c_str());
  }

  // Prompt.
  std::optional<io::Tokenizer> tok;
  if (o.prompt_ids.empty()) {
    const fs::path tpath = o.tokenizer.empty() ? fs::path(o.model) : fs::path(o.tokenizer);
    std::error_code ec;
    const bool has_file = fs::is_regular_file(tpath, ec) || fs::is_regular_file(tpath / "tokenizer.json", ec);
    R1_CHECK(has_file, "--prompt", "no tokenizer.json in ", tpath.string(),
             ": give --tokenizer FILE_OR_DIR, or token ids with --prompt-ids");
    io::LoadOptions lo;
    lo.r1_think_tokens = !o.raw && o.chat_template == "deepseek-r1";
    tok = io::Tokenizer::load(tpath, lo);
    if (o.raw) {
      prompt.push_back(tok->bos_id());
      tok->encode_append(o.prompt, io::EncodeMode::raw, prompt);
    } else {
      prompt = io::encode_chat(*tok, {{"user", o.prompt}}, *io::parse_chat_template(o.chat_template));
    }
  }
  R1_CHECK(!prompt.empty(), "prompt", "the prompt has no tokens");
  for (size_t i = 0; i < prompt.size(); ++i) {
    R1_CHECK(prompt[i] >= 0 && prompt[i] < cfg.vocab_size, "prompt", "token id ", prompt[i], " at position ", i,
             " is outside the model's vocabulary of ", cfg.vocab_size,
             tok ? " (the tokenizer does not belong to this model; tiny test models take --prompt-ids)" : "");
  }
  R1_CHECK(int64_t(prompt.size()) + o.max_new_tokens + 1 <= cfg.max_position_embeddings, "prompt",
           prompt.size(), " prompt tokens + ", o.max_new_tokens, " new tokens exceed max_position_embeddings = ",
           cfg.max_position_embeddings);

  // Generation, streaming the output.
  GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.sampling = {o.temperature, o.top_k, o.top_p};
  g.seed = o.seed;
  g.mtp = o.mtp;
  g.record_logits = !o.dump.empty();
  g.page_size = o.page_size;
  if (!o.ignore_eos)
    for (int64_t e : cfg.eos_token_ids) g.stop_ids.push_back(int32_t(e));
  std::optional<io::StreamDecoder> stream;
  if (tok) stream.emplace(*tok, /*skip_special_tokens=*/false);
  bool first = true;
  g.on_token = [&](int32_t id) {
    if (stream) {
      std::fputs(stream->push(id).c_str(), stdout);
    } else {
      std::fprintf(stdout, first ? "%d" : ",%d", id);
    }
    first = false;
    std::fflush(stdout);
  };
  const GenerateResult r = gen(prompt, g);
  if (stream) std::fputs(stream->flush().c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);

  const GenerateStats& s = r.stats;
  if (!o.quiet) {
    std::fprintf(stderr, "r1-generate: prefill %d tokens in %.3f s (%.1f tokens/s)\n", s.prompt_tokens,
                 s.prefill_seconds, s.prompt_tokens / std::max(s.prefill_seconds, 1e-9));
    std::fprintf(stderr, "r1-generate: decode %d tokens in %.3f s (%.1f tokens/s)\n", s.new_tokens, s.decode_seconds,
                 s.new_tokens / std::max(s.decode_seconds, 1e-9));
    if (o.mtp)
      std::fprintf(stderr, "r1-generate: MTP accepted %d of %d drafts (%.1f%%) in %d verify steps\n", s.accepted,
                   s.drafted, 100.0 * s.acceptance_rate(), s.forwards);
  }

  if (!o.dump.empty()) {
    std::vector<int64_t> all(r.ids.begin(), r.ids.end());
    io::write_safetensors(o.dump,
                          {{"prefill_logits", r.prefill_logits},
                           {"step_logits", r.step_logits},
                           {"generated_ids", Tensor::from_vector(all, {int64_t(all.size())})}},
                          {{"model", o.model}, {"weights", model.policy_name()}, {"mtp", o.mtp ? "1" : "0"}});
    if (!o.quiet) std::fprintf(stderr, "r1-generate: wrote %s\n", o.dump.c_str());
  }
  return 0;
}

int run(const Options& o) {
  using namespace r1;
  R1_CHECK(o.max_new_tokens >= 0, "--max-new-tokens", o.max_new_tokens, " is negative");
  R1_CHECK(o.page_size > 0, "--page-size", o.page_size, " must be positive");

  // Token ids are checked before the (possibly long) load; text prompts need the tokenizer.
  std::vector<int32_t> prompt;
  if (!o.prompt_ids.empty()) prompt = parse_ids(o.prompt_ids);

  // Model.
  const bool tty = isatty(fileno(stderr)) != 0;
  LoadProgress progress;
  if (!o.quiet) {
    // One line per layer, redrawn in place on a terminal.
    progress = [tty](const std::string& what, int done, int total) {
      std::fprintf(stderr, tty ? "\rr1-generate: loaded %s (%d/%d)   " : "r1-generate: loaded %s (%d/%d)\n",
                   what.c_str(), done, total);
      std::fflush(stderr);
    };
  }
  const quant::Fp8Compute fp8 = o.fp8 == "native" ? quant::Fp8Compute::native : quant::Fp8Compute::dequant;
  auto t0 = std::chrono::steady_clock::now();
  if (o.device == "cuda") {
#if R1_WITH_CUDA
    R1_CHECK(cuda_device_count() > 0, "--device", "no CUDA device is visible; use --device cpu");
    if (!o.quiet) std::fprintf(stderr, "r1-generate: loading %s onto the GPU\n", o.model.c_str());
    CudaDeepseekV3::LoadOptions load;
    load.fp8 = fp8;
    load.activations = o.activations == "f32" ? Activations::f32 : Activations::bf16;
    load.mtp = o.mtp;
    load.progress = progress;
    const CudaDeepseekV3 model = load_deepseek_v3_cuda(o.model, load);
    return run_model(o, model, std::move(prompt), seconds_since(t0), tty,
                     [&](const std::vector<int32_t>& p, const GenerateOptions& g) {
                       std::string note;
                       GenerateResult r = generate_cuda(model, p, g, {}, &note);
                       if (!o.quiet && !note.empty()) std::fprintf(stderr, "r1-generate: note: %s\n", note.c_str());
                       return r;
                     });
#else
    fail("--device", "this r1-generate was built without CUDA support; use --device cpu");
#endif
  }
  ModelLoadOptions load;
  load.fp8 = fp8;
  load.mtp = o.mtp;
  load.progress = progress;
  if (!o.quiet) std::fprintf(stderr, "r1-generate: loading %s\n", o.model.c_str());
  const AnyDeepseekV3 model = load_deepseek_v3(o.model, load);
  return run_model(o, model, std::move(prompt), seconds_since(t0), tty,
                   [&](const std::vector<int32_t>& p, const GenerateOptions& g) { return generate(model, p, g); });
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "r1-generate: run a DeepSeek-V3/R1 checkpoint (Hugging Face layout: config.json, safetensors\n"
      "shards, model.safetensors.index.json) on the host or one GPU (--device cuda) and generate tokens.\n\n"
      "The prompt is text (--prompt; encoded with the R1 chat template unless --raw, needs a\n"
      "tokenizer.json in the model directory or --tokenizer) or token ids (--prompt-ids 0,5,7).\n"
      "New tokens stream to stdout as text (with a tokenizer) or comma-separated ids; load progress\n"
      "and prefill/decode speed go to stderr. --temperature 0 (the default) is greedy decoding.\n"
      "Exit status: 0 on success, 1 with \"r1-generate: ...\" on stderr for any error (bad\n"
      "checkpoint, unsupported config, bad arguments), 2 for command-line syntax errors.\n\n"
      "Examples:\n"
      "  r1-generate --model tests/data/tiny-r1-bf16 --prompt-ids 0,5,7 --max-new-tokens 16\n"
      "  r1-generate --model tests/data/tiny-r1-mtp --prompt-ids 0,5,7 --max-new-tokens 16 --mtp\n"
      "  r1-generate --model DIR --prompt 'What is 1+1?' --temperature 0.6 --top-p 0.95 --seed 1"};
  app.add_option("--model", o.model, "checkpoint directory")->required();
  app.add_option("--device", o.device, "cpu, or cuda (one GPU, CUDA-graph decode)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--activations", o.activations,
                 "--device cuda: bf16 (tensor-core GEMMs and attention; the fast path) or f32 (every "
                 "activation and the latent cache in f32, an f64 residual, fp32 GEMMs: tracks an fp64 "
                 "reference, and with --fp8 native makes the e4m3 decisions of an fp64 simulation; slower)")
      ->check(CLI::IsMember({"bf16", "f32"}))
      ->capture_default_str();
  auto* p_text = app.add_option("--prompt", o.prompt, "prompt text (needs a tokenizer)");
  auto* p_ids = app.add_option("--prompt-ids", o.prompt_ids, "prompt token ids, comma-separated");
  p_text->excludes(p_ids);
  app.add_option("--max-new-tokens", o.max_new_tokens, "tokens to generate (fewer if an EOS id comes first)")
      ->capture_default_str();
  app.add_option("--temperature", o.temperature, "sampling temperature; 0 is greedy")->capture_default_str();
  app.add_option("--top-p", o.top_p, "nucleus sampling mass in (0, 1]")->capture_default_str();
  app.add_option("--top-k", o.top_k, "keep the k most likely tokens (0: all)")->capture_default_str();
  app.add_option("--seed", o.seed, "sampling seed")->capture_default_str();
  app.add_option("--fp8", o.fp8,
                 "FP8 checkpoints: dequant (weights dequantized) or native (activations quantized 1x128 as "
                 "DeepSeek's FP8 GEMM; every FP8 input dimension must be a multiple of 128)")
      ->check(CLI::IsMember({"dequant", "native"}))
      ->capture_default_str();
  app.add_flag("--mtp", o.mtp, "speculative decoding with the MTP (next-n) module, one draft token per step");
  app.add_option("--dump-logits", o.dump,
                 "write a safetensors file: prefill_logits F32 [T, vocab], step_logits F32 [N, vocab] (the logits "
                 "each new token was chosen from), generated_ids I64 [T + N]");
  app.add_option("--tokenizer", o.tokenizer, "tokenizer.json or its directory (default: the model directory)");
  app.add_option("--chat-template", o.chat_template, "chat template for --prompt: deepseek-r1 or deepseek-v3")
      ->check(CLI::IsMember({"deepseek-r1", "deepseek-v3"}))
      ->capture_default_str();
  app.add_flag("--raw", o.raw, "encode --prompt as plain text after BOS, without a chat template");
  app.add_flag("--ignore-eos", o.ignore_eos, "do not stop at the config's eos_token_id");
  app.add_option("--page-size", o.page_size, "latent KV cache page size in tokens")->capture_default_str();
  app.add_flag("--quiet", o.quiet, "no progress or speed lines on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints the message (or --help) and names its own error codes; r1-generate documents 2
    // for every command-line syntax error (0 for --help).
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (o.device == "cpu" && app.count("--activations") > 0 && !o.quiet) {
    std::fprintf(stderr, "r1-generate: note: --activations applies to --device cuda; it has no effect on the host model\n");
  }
  if (o.prompt.empty() && o.prompt_ids.empty()) {
    std::fprintf(stderr, "r1-generate: give a prompt: --prompt TEXT or --prompt-ids 0,5,7 (see --help)\n");
    return 1;
  }
  // A progress line redrawn in place ends without a newline; errors start on their own line.
  const char* nl = isatty(fileno(stderr)) ? "\n" : "";
  try {
    return run(o);
  } catch (const r1::Error& e) {
    std::fprintf(stderr, "%sr1-generate: %s\n", nl, e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%sr1-generate: out of memory\n", nl);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%sr1-generate: %s\n", nl, e.what());
  }
  return 1;
}
