// SPDX-License-Identifier: MIT
// The CUDA model end to end (models/deepseek_v3_cuda.hpp, runtime/generate_cuda.hpp):
//  - every oracle fixture with f32 activations within the GPU tolerances of tests/data's README,
//    as CHECKs: per-position cosine >= 0.999 against `logits`, top-1 agreement >= 0.95, the first
//    8 greedy tokens identical, step logits against teacher_forced_logits; and with bf16
//    activations within what a bf16 path can hold on these fixtures (see check_fixture);
//  - FP8 native against the oracle's activation-quantization simulation (f32 activations,
//    tiny-r1-mtp: cosine >= 0.9999 per position), and tiny-r1-fp8's K = 192 error;
//  - MTP speculative decoding = plain greedy decoding on the GPU, token for token;
//  - the decode step replayed from a CUDA graph = eager, bit for bit; seeded sampling reproducible;
//  - batch 2 with prompts of different lengths = each prompt alone;
// The full-width R1 decoder layer is in model_full_layer_test.cu (its own process: ~10 GB of host memory).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../support/oracle.hpp"
#include "../support/r1_testing.hpp"
#include "r1/io/safetensors.hpp"
#include "r1/models/deepseek_v3_any.hpp"
#include "r1/models/deepseek_v3_load.hpp"
#include "r1/runtime/generate.hpp"
#include "r1/runtime/generate_cuda.hpp"

using namespace r1;

namespace {
using testing::Oracle;
const std::string kData = R1_TEST_DATA_DIR;

CudaDeepseekV3 load_cuda(const std::string& dir, quant::Fp8Compute fp8 = quant::Fp8Compute::dequant, bool mtp = false,
                         Activations act = Activations::bf16) {
  CudaDeepseekV3::LoadOptions o;
  o.fp8 = fp8;
  o.mtp = mtp;
  o.activations = act;
  return load_deepseek_v3_cuda(kData + "/" + dir, o);
}

/// Per-row cosine statistics and the fraction of rows whose argmax agrees, over the first `rows`.
/// `clean` is the fraction of rows with cosine >= 0.999 (the README's per-position bound).
struct RowStats {
  double worst_cosine = 1, median_cosine = 1, clean = 1, top1 = 1;
};
RowStats compare_rows(const Tensor& got, const Tensor& want, int64_t rows) {
  RowStats s;
  int agree = 0;
  std::vector<double> cs;
  for (int64_t r = 0; r < rows; ++r) {
    cs.push_back(testing::row_cosine(got, want, r));
    s.worst_cosine = std::min(s.worst_cosine, cs.back());
    const Tensor g = got.select(0, r).contiguous(), w = want.select(0, r).contiguous();  // [vocab]
    int64_t ag = 0, aw = 0;
    for (int64_t i = 1; i < g.size(0); ++i) {
      if (testing::at(g, i) > testing::at(g, ag)) ag = i;
      if (testing::at(w, i) > testing::at(w, aw)) aw = i;
    }
    agree += ag == aw;
  }
  if (!cs.empty()) {
    std::vector<double> sorted = cs;
    std::sort(sorted.begin(), sorted.end());
    s.median_cosine = sorted[sorted.size() / 2];
    s.clean = double(std::count_if(cs.begin(), cs.end(), [](double c) { return c >= 0.999; })) / double(cs.size());
  }
  s.top1 = rows ? double(agree) / double(rows) : 1.0;
  return s;
}

/// How many leading entries two id lists share.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

GenerateOptions greedy_opts(int new_tokens) {
  GenerateOptions g;
  g.max_new_tokens = new_tokens;
  g.record_logits = true;
  return g;
}

// Tolerances. The README's GPU bounds (every position's cosine >= 0.999, the first 8 greedy tokens
// identical) are reported with WARN: on these random tiny models a bf16 activation path flips
// MoE routing decisions at a few positions (two experts' biased scores closer than bf16 rounding),
// and a flipped token's logits then have cosine ~0.95-0.99. The host shows it too: rounding only
// the router's input to bf16, everything else fp64, gives tiny-r1-bf16 cosines 0.9976 and 0.9931 at
// positions 17 and 37 (docs/model.md). The CHECKs hold what a correct bf16 path guarantees and
// what a real bug (RoPE, attention, masks, permutation) would break at most positions: median
// cosine >= 0.9999, >= 85% of positions within the README bound, top-1 agreement >= 0.9.
void check_fixture(const std::string& dir, Activations act = Activations::bf16) {
  CAPTURE(dir);
  const bool f32 = act == Activations::f32;
  const std::string what = dir + (f32 ? " (f32 activations)" : "");
  const Oracle ref(dir);
  const CudaDeepseekV3 model = load_cuda(dir, quant::Fp8Compute::dequant, false, act);
  const std::vector<int32_t> prompt = ref.ids("input_ids"), want = ref.ids("generated_ids");
  const int64_t t = int64_t(prompt.size());
  std::string note;
  const GenerateResult r = generate_cuda(model, prompt, greedy_opts(int(want.size() - prompt.size())), {}, &note);
  CHECK(note.empty());
  const RowStats p = compare_rows(r.prefill_logits, ref.get("logits"), t);
  MESSAGE(what, ": prefill cosine median ", p.median_cosine, ", worst ", p.worst_cosine, ", positions >= 0.999: ",
          p.clean, ", top-1 agreement ", p.top1, ", max abs error ",
          testing::max_abs_diff(r.prefill_logits, ref.get("logits")));
  const size_t same = common_prefix(r.ids, want);
  MESSAGE(what, ": ", same - prompt.size(), " of ", want.size() - prompt.size(), " greedy tokens identical");
  const size_t readme_same = std::min(want.size(), prompt.size() + 8);  // the first 8 (or all) new ids
  if (f32) {  // the README's GPU bounds themselves
    CHECK(p.worst_cosine >= 0.999);
    CHECK(p.top1 >= 0.95);
    CHECK(same >= readme_same);
  } else {
    CHECK(p.median_cosine >= 0.9999);
    CHECK(p.clean >= 0.85);
    CHECK(p.top1 >= 0.9);
    WARN_MESSAGE(p.worst_cosine >= 0.999, what, ": README bound missed: worst prefill cosine ", p.worst_cosine);
    CHECK(same >= prompt.size() + 1);
    WARN_MESSAGE(same >= readme_same, what, ": README bound missed: ", same - prompt.size(),
                 " greedy tokens identical (8 asked)");
  }
  // Step logits against the teacher-forced forward, for the steps whose inputs agree.
  const int64_t steps = int64_t(same) - t + 1;  // step i was chosen after ids[0 .. t + i - 1]
  const Tensor tf = ref.get("teacher_forced_logits");  // [len(generated_ids), vocab]
  const int64_t rows = std::min<int64_t>(steps, r.step_logits.size(0));
  const RowStats st = compare_rows(r.step_logits, tf.slice(0, t - 1, t - 1 + rows).contiguous(), rows);
  MESSAGE(what, ": decode steps cosine median ", st.median_cosine, ", worst ", st.worst_cosine, " over ", rows,
          " steps");
  if (f32) {
    CHECK(st.worst_cosine >= 0.999);
  } else {
    CHECK(st.median_cosine >= 0.999);
    WARN_MESSAGE(st.worst_cosine >= 0.999, what, ": README bound missed: worst step cosine ", st.worst_cosine);
  }
}
}  // namespace

TEST_CASE("cuda model: tiny-r1-bf16 matches the oracle") { check_fixture("tiny-r1-bf16"); }
TEST_CASE("cuda model: tiny-r1-fp8 (dequant) matches the oracle") { check_fixture("tiny-r1-fp8"); }
TEST_CASE("cuda model: tiny-r1-mtp (dequant) matches the oracle") { check_fixture("tiny-r1-mtp"); }
TEST_CASE("cuda model: tiny-v3-noqlora matches the oracle") { check_fixture("tiny-v3-noqlora"); }
TEST_CASE("cuda model: tiny-v3-plain matches the oracle") { check_fixture("tiny-v3-plain"); }
TEST_CASE("cuda model: tiny-v3-fp8-mtp (dequant) matches the oracle") { check_fixture("tiny-v3-fp8-mtp"); }

namespace {
// FP8 native against the oracle's fp64 activation-quantization simulation. The issue's bound
// (cosine >= 0.9999 per position on tiny-r1-mtp) needs the same e4m3 decision for every quantized
// activation; the GPU quantizes bf16 activations (the FP8 GEMMs write bf16), which moves many
// values across e4m3 rounding boundaries (measured on an H100: median cosine 0.9967 on tiny-r1-mtp,
// 0.9964 on tiny-v3-fp8-mtp, every position below 0.999), so that bound is reported with WARN and
// the CHECKs guard what the bf16 path holds (median cosine >= 0.995, top-1 >= 0.75).
/// What a native run must hold: CHECKed medians, worst cosine and top-1 (0: not checked) and the
/// number of leading greedy ids equal to the simulation's; the issue / README bounds are WARNed.
struct NativeBounds {
  double median, worst, top1;
  size_t ids;
};

void check_native(const std::string& dir, Activations act, double min_cosine, NativeBounds b) {
  CAPTURE(dir);
  const std::string what = dir + " (" + activations_name(act) + " activations)";
  const Oracle ref(dir);
  const CudaDeepseekV3 model = load_cuda(dir, quant::Fp8Compute::native, false, act);
  CHECK(model.policy_name() == std::string("fp8 native, ") + activations_name(act) + " activations");
  const std::vector<int32_t> prompt = ref.ids("input_ids"), want = ref.ids("fp8_act_sim_generated_ids");
  const GenerateResult r = generate_cuda(model, prompt, greedy_opts(int(want.size() - prompt.size())));
  const Tensor sim = ref.get("fp8_act_sim_logits");  // [tokens, vocab]
  const RowStats p = compare_rows(r.prefill_logits, sim, sim.size(0));
  MESSAGE(what, ": native prefill cosine median ", p.median_cosine, ", worst ", p.worst_cosine,
          ", positions >= 0.999: ", p.clean, ", top-1 ", p.top1, ", max abs error ",
          testing::max_abs_diff(r.prefill_logits, sim));
  CHECK(p.median_cosine >= b.median);
  if (b.worst > 0) CHECK(p.worst_cosine >= b.worst);
  if (b.top1 > 0) CHECK(p.top1 >= b.top1);
  WARN_MESSAGE(p.worst_cosine >= min_cosine, what, ": issue bound missed: worst native cosine ", p.worst_cosine,
               " < ", min_cosine);
  const size_t same = common_prefix(r.ids, want);
  MESSAGE(what, ": native ", same - prompt.size(), " of ", want.size() - prompt.size(), " greedy tokens identical");
  CHECK(same >= std::min(want.size(), prompt.size() + b.ids));
  WARN_MESSAGE(same >= std::min(want.size(), prompt.size() + 8), what, ": README bound missed: ",
               same - prompt.size(), " native greedy tokens identical (8 asked)");
}
}  // namespace

namespace {
/// --mtp on `dir` (loaded with its MTP module) must give exactly the plain greedy ids, the
/// property speculative decoding has to keep, and draft something; the oracle's ids under
/// `ids_key` are the README's bound (WARN: see check_fixture).
void check_mtp(const std::string& dir, quant::Fp8Compute fp8, Activations act, const char* ids_key) {
  CAPTURE(dir);
  const Oracle ref(dir);
  const CudaDeepseekV3 model = load_cuda(dir, fp8, true, act);
  REQUIRE(model.has_mtp());
  const std::vector<int32_t> prompt = ref.ids("input_ids"), want = ref.ids(ids_key);
  GenerateOptions g = greedy_opts(int(want.size() - prompt.size()));
  const GenerateResult plain = generate_cuda(model, prompt, g);
  g.mtp = true;
  const GenerateResult spec = generate_cuda(model, prompt, g);
  MESSAGE(dir, " (", model.policy_name(), "): MTP accepted ", spec.stats.accepted, " of ", spec.stats.drafted,
          " drafts");
  CHECK(spec.ids == plain.ids);
  WARN(common_prefix(spec.ids, want) >= std::min(want.size(), prompt.size() + 8));
  CHECK(spec.stats.drafted > 0);
}
}  // namespace

TEST_CASE("cuda model: tiny-r1-mtp (native) matches the activation-quantized oracle") {
  check_native("tiny-r1-mtp", Activations::bf16, 0.9999, {0.995, 0, 0.75, 1});
}
TEST_CASE("cuda model: tiny-v3-fp8-mtp (native) matches the activation-quantized oracle") {
  // A known e4m3 rounding tie in this fixture (docs/model.md) limits even the fp64 host to 0.99938.
  check_native("tiny-v3-fp8-mtp", Activations::bf16, 0.999, {0.995, 0, 0.75, 1});
}

TEST_CASE("cuda model: tiny-r1-fp8 cannot run FP8 native (K = 192)") {
  CHECK_THROWS_WITH(load_cuda("tiny-r1-fp8", quant::Fp8Compute::native),
                    doctest::Contains("model.layers.0.self_attn.q_b_proj: K = 192 is not a multiple of 128"));
}

// f32 activations: the README's GPU bounds hold as CHECKs. Every activation, the latent cache
// included, is f32 and every GEMM fp32 FMA, so the GPU tracks the fp64 oracle to fp32 rounding and
// the fixtures' near-tied expert choices resolve as the oracle's do (the host measurement in
// tests/models/rounding_sensitivity_test.cpp: >= 12 significant bits in the sub-layer outputs are
// enough on these fixtures, bf16 has 8).
TEST_CASE("cuda model, f32 activations: every fixture within the README's GPU bounds") {
  for (const char* dir :
       {"tiny-r1-bf16", "tiny-r1-fp8", "tiny-r1-mtp", "tiny-v3-noqlora", "tiny-v3-plain", "tiny-v3-fp8-mtp"}) {
    check_fixture(dir, Activations::f32);
  }
}

// FP8 native with f32 activations: every quantizer reads fp32 values, the latent cache holds
// kv_b's dequantized input codes (the simulation's decode semantics), and the residual stream is
// f64 with the norms that feed quantizers computing in fp64: the fixtures' inputs hold exact e4m3
// rounding ties that fp64 resolves to even and fp32 arithmetic did not, and one flipped code
// cascades (docs/model.md, "FP8 native with f32 activations"; before the f64 residual tiny-r1-mtp
// measured median 0.998, worst 0.985, 5 of 16 ids). Measured on an H100 with it: tiny-r1-mtp
// cosine 1.0 at every position (max abs logit error 1.5e-5), 16 of 16 ids; tiny-v3-fp8-mtp median
// 0.99994, worst 0.99938 (the fixture's known tie, where the fp64 host has the same), 16 of 16.
// The issue's bound (0.9999 on tiny-r1-mtp) is a CHECK here; MTP keeps the native greedy ids.
TEST_CASE("cuda model, f32 activations: FP8 native against the activation-quantized oracle") {
  check_native("tiny-r1-mtp", Activations::f32, 0.9999, {0.9999, 0.9999, 0.99, 16});
  // A known e4m3 rounding tie in this fixture (docs/model.md) limits even the fp64 host to 0.99938;
  // measured: median 0.99994, worst 0.99938, 16 of 16 ids.
  check_native("tiny-v3-fp8-mtp", Activations::f32, 0.999, {0.9999, 0.999, 0, 16});
  // --mtp with --fp8 native: the speculative path must give exactly the plain greedy ids
  for (const char* dir : {"tiny-r1-mtp", "tiny-v3-fp8-mtp"}) {
    check_mtp(dir, quant::Fp8Compute::native, Activations::f32, "fp8_act_sim_generated_ids");
  }
}

TEST_CASE("cuda model, f32 activations: FP8 native against the host's native model at every depth") {
  // The host's native path matches the oracle simulation (tests/models). Cutting the config's
  // layer count to 1 .. L shows where the GPU's f32 native model would depart from it. Measured on
  // an H100 with the f64 residual: cosine 1.0 (to six digits) at every depth of both fixtures,
  // prefill and steps (without it tiny-r1-mtp fell to 0.99962 after one dense layer, 0.98462 after
  // four).
  for (const std::string name : {"tiny-r1-mtp", "tiny-v3-fp8-mtp"}) {
  CAPTURE(name);
  const std::string dir = kData + "/" + name;
  io::Checkpoint ck = io::Checkpoint::open(dir);
  const ModelConfig full = parse_model_config(ck.config_json(), dir + "/config.json");
  const Oracle ref(name);
  const std::vector<int32_t> prompt = ref.ids("input_ids");
  GenerateOptions g = greedy_opts(4);
  for (int64_t layers = 1; layers <= full.num_hidden_layers; ++layers) {
    CAPTURE(layers);
    ModelConfig cfg = full;
    cfg.num_hidden_layers = layers;
    ModelLoadOptions ho;
    ho.fp8 = quant::Fp8Compute::native;
    const GenerateResult host = generate(AnyDeepseekV3::load(ck, cfg, ho), prompt, g);
    CudaDeepseekV3::LoadOptions co;
    co.fp8 = quant::Fp8Compute::native;
    co.activations = Activations::f32;
    const GenerateResult dev = generate_cuda(CudaDeepseekV3::load(ck, cfg, co), prompt, g);
    const RowStats p = compare_rows(dev.prefill_logits, host.prefill_logits, int64_t(prompt.size()));
    // step i is comparable while the ids before it agree
    const int64_t steps = std::min<int64_t>(int64_t(common_prefix(dev.ids, host.ids)) - int64_t(prompt.size()) + 1,
                                            dev.step_logits.size(0));
    const RowStats st = compare_rows(dev.step_logits, host.step_logits, steps);
    const std::string kind = cfg.is_moe_layer(layers - 1) ? "MoE" : "dense";
    MESSAGE(name, ", ", layers, " layers (last ", kind, "): f32 native vs host native, prefill cosine median ",
            p.median_cosine, ", worst ", p.worst_cosine, "; ", steps, " steps, worst ", st.worst_cosine);
    CHECK(p.worst_cosine >= 0.9999);
    CHECK(st.worst_cosine >= 0.9999);
  }
  }
}

TEST_CASE("cuda model, f32 activations: MTP keeps the greedy ids; graph replay equals eager") {
  const Oracle ref("tiny-r1-mtp");
  const CudaDeepseekV3 model = load_cuda("tiny-r1-mtp", quant::Fp8Compute::dequant, true, Activations::f32);
  CHECK(model.activation_dtype() == DType::f32);
  const std::vector<int32_t> prompt = ref.ids("input_ids"), want = ref.ids("generated_ids");
  GenerateOptions g = greedy_opts(int(want.size() - prompt.size()));
  CudaRunOptions eager;
  eager.graph = false;
  const CudaGenerateResult plain = generate_cuda_batch(model, {prompt}, g, eager);
  const CudaGenerateResult graphed = generate_cuda_batch(model, {prompt}, g);
  CHECK(graphed.graph_used);
  CHECK(graphed.sequences[0].ids == plain.sequences[0].ids);
  CHECK(testing::max_abs_diff(plain.sequences[0].step_logits, graphed.sequences[0].step_logits) == 0.0);
  CHECK(common_prefix(plain.sequences[0].ids, want) >= std::min(want.size(), prompt.size() + 8));
  g.mtp = true;
  const GenerateResult spec = generate_cuda(model, prompt, g);
  MESSAGE("f32 MTP accepted ", spec.stats.accepted, " of ", spec.stats.drafted, " drafts");
  CHECK(spec.ids == plain.sequences[0].ids);
  CHECK(spec.stats.drafted > 0);
}

TEST_CASE("cuda model: MTP speculative decoding yields exactly the greedy ids") {
  for (const char* dir : {"tiny-r1-mtp", "tiny-v3-fp8-mtp"}) {
    check_mtp(dir, quant::Fp8Compute::dequant, Activations::bf16, "generated_ids");
  }
}

TEST_CASE("cuda model: graph replay equals eager decoding, greedy and sampled") {
  const Oracle ref("tiny-r1-bf16");
  const CudaDeepseekV3 model = load_cuda("tiny-r1-bf16");
  const std::vector<int32_t> prompt = ref.ids("input_ids");
  for (float temperature : {0.0f, 0.8f}) {
    CAPTURE(temperature);
    GenerateOptions g = greedy_opts(12);
    g.sampling = {temperature, 40, 0.95f};
    g.seed = 7;
    CudaRunOptions eager;
    eager.graph = false;
    const CudaGenerateResult a = generate_cuda_batch(model, {prompt}, g, eager);
    const CudaGenerateResult b = generate_cuda_batch(model, {prompt}, g);
    CHECK_FALSE(a.graph_used);
    CHECK(b.graph_used);
    CHECK(b.graph_note.empty());
    CHECK(a.sequences[0].ids == b.sequences[0].ids);
    CHECK(testing::max_abs_diff(a.sequences[0].step_logits, b.sequences[0].step_logits) == 0.0);
    const CudaGenerateResult c = generate_cuda_batch(model, {prompt}, g);  // same seed, same draws
    CHECK(c.sequences[0].ids == b.sequences[0].ids);
  }
}

TEST_CASE("cuda model: a batch of 2 prompts of different lengths equals each alone") {
  const Oracle ref("tiny-r1-mtp");
  const CudaDeepseekV3 model = load_cuda("tiny-r1-mtp");
  const std::vector<int32_t> p0 = ref.ids("input_ids");
  const std::vector<int32_t> p1 = {0, 17, 400, 3, 999, 64, 12};
  const GenerateOptions g = greedy_opts(10);
  const CudaGenerateResult both = generate_cuda_batch(model, {p0, p1}, g);
  CHECK(both.graph_used);
  const std::vector<std::vector<int32_t>> prompts = {p0, p1};
  for (size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    const GenerateResult alone = generate_cuda(model, prompts[i], g);
    CHECK(both.sequences[i].ids == alone.ids);
    // GEMMs of a different row count may pick another algorithm: equal up to rounding.
    const RowStats s = compare_rows(both.sequences[i].step_logits, alone.step_logits, alone.step_logits.size(0));
    CHECK(s.worst_cosine >= 0.99999);
  }
}

TEST_CASE("cuda model: errors name what is wrong") {
  const CudaDeepseekV3 model = load_cuda("tiny-r1-bf16");
  CHECK_THROWS_WITH(generate_cuda(model, std::vector<int32_t>{0, 5000}, greedy_opts(2)),
                    doctest::Contains("token id 5000 at position 1 is outside the model's vocabulary of 1024"));
  GenerateOptions g = greedy_opts(2);
  g.mtp = true;
  CHECK_THROWS_WITH(generate_cuda(model, std::vector<int32_t>{0, 5}, g), doctest::Contains("needs the MTP module"));
}

TEST_CASE("cuda model: caches and hidden states in another dtype than the activations are errors") {
  Stream stream;
  CHECK_THROWS_WITH(DeviceLatentCache(2, 144, 1, 16, 64, DType::f64, stream),
                    doctest::Contains("rows of F64 (bf16 or f32 expected)"));
  const CudaDeepseekV3 model = load_cuda("tiny-r1-bf16", quant::Fp8Compute::dequant, false, Activations::f32);
  REQUIRE(model.activation_dtype() == DType::f32);
  // a bf16 cache (what a bf16 model uses) given to the f32 model
  DeviceLatentCache cache(model.num_layers(), model.cache_width(), 1, 16, 64, DType::bf16, stream);
  StepInputs in(4, 1, stream);
  for (int32_t i = 0; i < 3; ++i) {
    in.host_ids()[i] = i;
    in.host_positions()[i] = i;
    in.host_slots()[i] = cache.slot(0, i);
  }
  in.host_seq_lens()[0] = 3;
  const DeviceBatch b = in.upload(1, 3, cache.block_tables(), 0);
  Workspace ws(stream);
  Tensor logits = Tensor::empty(DType::f32, {3, model.config().vocab_size}, Space::cuda, stream);  // [3, vocab]
  CHECK_THROWS_WITH(model.forward(ws, b, cache.pages(), logits.view<float, 2>()),
                    doctest::Contains("a latent cache must be device F32"));
  // final hidden states of the wrong dtype
  DeviceLatentCache f32_cache(model.num_layers(), model.cache_width(), 1, 16, 64, DType::f32, stream);
  Tensor hidden = Tensor::empty(DType::bf16, {3, model.config().hidden_size}, Space::cuda, stream);  // [3, hidden]
  CHECK_THROWS_WITH(model.forward(ws, b, f32_cache.pages(), logits.view<float, 2>(), hidden),
                    doctest::Contains("final_hidden must be device F32"));
  stream.sync();
}

namespace {
/// Per-position cosine of prefill logits against the oracle, as one line (for diagnosis).
std::string cosine_line(const Tensor& got, const Tensor& want, int64_t rows) {
  std::string s;
  char buf[32];
  for (int64_t r = 0; r < rows; ++r) {
    std::snprintf(buf, sizeof buf, "%s%.4f", r ? " " : "", testing::row_cosine(got, want, r));
    s += buf;
  }
  return s;
}
}  // namespace

TEST_CASE("cuda model: prefill is causal (a prompt's prefix gives the same logits rows)") {
  // The rows of a prefix's prefill must equal the full prompt's first rows up to GEMM tiling
  // (cosine >= 0.99999): anything that mixes tokens (permutation, attention tiles, masks) shows here.
  for (const std::string dir : {"tiny-r1-bf16", "tiny-v3-fp8-mtp", "tiny-v3-plain"}) {
    CAPTURE(dir);
    const Oracle ref(dir);
    const CudaDeepseekV3 model = load_cuda(dir);
    const std::vector<int32_t> prompt = ref.ids("input_ids");
    const GenerateResult full = generate_cuda(model, prompt, greedy_opts(1));
    const Tensor want = ref.get("logits");  // [T, vocab]
    MESSAGE(dir, " per-position cosine vs oracle: ", cosine_line(full.prefill_logits, want, int64_t(prompt.size())));
    for (size_t n : {size_t(1), size_t(8), size_t(20)}) {
      if (n >= prompt.size()) continue;
      const std::vector<int32_t> pre(prompt.begin(), prompt.begin() + std::ptrdiff_t(n));
      const GenerateResult part = generate_cuda(model, pre, greedy_opts(1));
      const RowStats s = compare_rows(part.prefill_logits, full.prefill_logits.slice(0, 0, int64_t(n)).contiguous(),
                                      int64_t(n));
      MESSAGE(dir, " prefix ", n, ": worst cosine vs the full prompt's rows ", s.worst_cosine);
      CHECK(s.worst_cosine >= 0.99999);
    }
  }
}

