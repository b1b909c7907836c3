// SPDX-License-Identifier: MIT
// The fused MoE router (r1::cuda::route_experts, sigmoid + group-limited top-2-sum, R1's 256
// experts in 8 groups, top-4 groups, top-8, bias, scaling 2.5) at decode and prefill token counts,
// beside bench/peers_extra.py's "torch router T{T}" row (Hugging Face's noaux_tc gate). Memory-bound:
// bytes are the f32 logits and bias read plus the ids and weights written.
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/router.hpp"

namespace {

using namespace r1;

void add(int64_t tokens) {
  const std::string shape = "T" + std::to_string(tokens) + " e256 g8 tg4 top8";
  bench::add_row("router/own/" + shape, [=](benchmark::State& st) {
    route::RouterConfig cfg;
    cfg.n_experts = 256;
    cfg.n_group = 8;
    cfg.topk_group = 4;
    cfg.top_k = 8;
    cfg.routed_scaling_factor = 2.5f;
    Tensor logits = bench::random_device(DType::f32, {tokens, 256}, 1, 4.0f);  // [T, 256]
    Tensor bias = bench::random_device(DType::f32, {256}, 2, 0.05f);           // [256]
    Tensor ids = Tensor::empty(DType::i32, {tokens, 8}, Space::cuda);          // [T, 8]
    Tensor w = Tensor::empty(DType::f32, {tokens, 8}, Space::cuda);            // [T, 8]
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::route_experts<route::Sigmoid, route::GroupLimited<route::Top2Sum>>(
          logits.view<const float, 2>(), bias.view<const float, 1>(), cfg, ids.view<int32_t, 2>(), w.view<float, 2>(),
          tm.stream());
    });
    bench::Work work;
    work.bytes = 4.0 * double(tokens * 256 + 256) + 8.0 * double(tokens * 8);
    bench::report(st, s, work, {"router", shape, "own", "torch router T" + std::to_string(tokens)});
  });
}

void register_rows() {
  for (int64_t t : {1, 16, 256, 4096}) add(t);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
