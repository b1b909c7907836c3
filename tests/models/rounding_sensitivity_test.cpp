// SPDX-License-Identifier: MIT
// How precisely the activations of a forward must be carried to meet the fixtures' GPU bound
// (every prefill position's logits cosine >= 0.999 against the float64 oracle): the host model's
// fp64 forward with the three sub-layer outputs of every layer (attention heads before o_proj,
// o_proj's output, the FFN / MoE output) rounded in place to `bits` significant bits through Exec's
// hook. On tiny-r1-bf16 two tokens have near-tied expert scores, so bf16 (8 bits) flips their
// routing and the bound is missed; 12 bits meet it. This is the measurement behind docs/model.md's
// "What falls short of the fixtures' GPU bounds": a bf16 GPU path cannot meet that bound on this
// fixture, a path carrying >= 12 significant bits can. The second case does the same for the
// native FP8 path against the activation-quantization simulation (0.9999): it needs fp32.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../support/oracle.hpp"
#include "../support/r1_testing.hpp"
#include "r1/models/deepseek_v3_load.hpp"
#include "r1/runtime/kv_cache.hpp"

using namespace r1;

namespace {

/// Rounds every element of an fp64 activation (contiguous, as the layers emit them) to `bits`
/// significant bits, round-to-nearest-even: what storing it in a narrower float does (8 = bf16).
void round_in_place(const Tensor& t, int bits) {
  REQUIRE(t.dtype() == DType::f64);
  REQUIRE(t.is_contiguous());
  double* p = static_cast<double*>(const_cast<void*>(t.data()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (p[i] == 0 || !std::isfinite(p[i])) continue;
    int e = 0;
    const double m = std::frexp(p[i], &e);  // p = m * 2^e, 0.5 <= |m| < 1
    p[i] = std::ldexp(std::nearbyint(std::ldexp(m, bits)), e - bits);
  }
}

struct Result {
  double worst = 1;
  int below = 0;  // positions with cosine < the bound
};

/// Prefill of the fixture's prompt with the sub-layer outputs rounded to `bits` (0: not rounded),
/// against the oracle's `target` logits, counting positions below `bound`.
Result prefill(const AnyDeepseekV3& model, const testing::Oracle& ref, int bits, const char* target = "logits",
               double bound = 0.999) {
  const std::vector<int32_t> prompt = ref.ids("input_ids");
  const int64_t t = int64_t(prompt.size());
  Exec ex;
  ex.hook = [&](std::string_view name, int, const Tensor& x) {
    if (bits > 0 && (name == "attn_heads" || name == "attn_out" || name == "ffn_out")) round_in_place(x, bits);
  };
  LatentKvCache cache(model.num_layers(), model.cache_width(), t);
  const Tensor logits = model.forward(ex, make_view<1>(prompt.data(), {t}), 0, cache.prepare(t));  // [tokens, vocab]
  const Tensor want = ref.get(target);                                                            // [tokens, vocab]
  Result r;
  for (int64_t i = 0; i < t; ++i) {
    const double c = testing::row_cosine(logits, want, i);
    r.worst = std::min(r.worst, c);
    r.below += c < bound;
  }
  return r;
}

}  // namespace

TEST_CASE("tiny-r1-bf16: bf16 sub-layer outputs miss the GPU bound, 12 significant bits meet it") {
  const testing::Oracle ref("tiny-r1-bf16");
  const AnyDeepseekV3 model = load_deepseek_v3(std::string(R1_TEST_DATA_DIR) + "/tiny-r1-bf16", {});
  const Result exact = prefill(model, ref, 0), b8 = prefill(model, ref, 8), b10 = prefill(model, ref, 10),
               b12 = prefill(model, ref, 12), b16 = prefill(model, ref, 16);
  MESSAGE("worst prefill cosine / positions < 0.999: fp64 ", exact.worst, " / ", exact.below, "; 8 bits (bf16) ",
          b8.worst, " / ", b8.below, "; 10 bits ", b10.worst, " / ", b10.below, "; 12 bits ", b12.worst, " / ",
          b12.below, "; 16 bits ", b16.worst, " / ", b16.below);
  CHECK(exact.below == 0);
  CHECK(b8.below >= 1);  // near-tied experts: bf16 alone is enough to flip them
  CHECK(b8.worst < 0.999);
  CHECK(b12.below == 0);
  CHECK(b16.below == 0);
}

// The FP8 compute path's bound (native FP8 against the oracle's activation-quantization simulation,
// cosine >= 0.9999 per position) is far stricter: every e4m3 rounding decision of every quantized
// activation must match, so the activations feeding the quantizers must be nearly exact. On
// tiny-r1-mtp 16 significant bits at the sub-layer outputs still leave almost every position below
// it; 24 bits (fp32) meet it.
TEST_CASE("tiny-r1-mtp native FP8: 16-bit sub-layer outputs miss the simulation bound, fp32's 24 bits meet it") {
  const testing::Oracle ref("tiny-r1-mtp");
  ModelLoadOptions opt;
  opt.fp8 = quant::Fp8Compute::native;
  const AnyDeepseekV3 model = load_deepseek_v3(std::string(R1_TEST_DATA_DIR) + "/tiny-r1-mtp", opt);
  const char* sim = "fp8_act_sim_logits";
  const Result exact = prefill(model, ref, 0, sim, 0.9999), b8 = prefill(model, ref, 8, sim, 0.9999),
               b16 = prefill(model, ref, 16, sim, 0.9999), b24 = prefill(model, ref, 24, sim, 0.9999);
  MESSAGE("worst prefill cosine / positions < 0.9999 vs fp8_act_sim_logits: fp64 ", exact.worst, " / ", exact.below,
          "; 8 bits (bf16) ", b8.worst, " / ", b8.below, "; 16 bits ", b16.worst, " / ", b16.below, "; 24 bits (fp32) ",
          b24.worst, " / ", b24.below);
  CHECK(exact.below == 0);
  CHECK(b8.below > 0);
  CHECK(b16.below > 0);
  CHECK(b24.below == 0);
}
