// SPDX-License-Identifier: MIT
// MoE data movement and the whole routed MoE layer on R1's shapes (hidden 7168, 256 experts, top-8,
// moe_inter 2048):
//  - moe_permute, moe_gather, moe_combine alone, and "moe_dispatch_combine" (all three), beside
//    bench/peers_extra.py's "torch moe dispatch+combine T{T}" row; memory-bound, bytes = every
//    input read once + every output written once;
//  - "moe_layer_bf16" / "moe_layer_fp8": cuda::moe_routed with cuda::moe_experts_swiglu (permute,
//    gather, [act_quant], grouped gate and up GEMMs, SwiGLU, [act_quant], grouped down GEMM,
//    combine) at T = 16, 256, 4096, beside tools/peer_baselines.py's "torch _grouped_mm MoE T{T}"
//    row (flops = 2 T top_k 3 H I, the peer's definition; bytes = the weights of the experts hit,
//    once, plus the activations). Expert weights are generated on the device (bf16 22.5 GB, FP8
//    11.3 GB); gate and up are the two halves of one stacked [E, 2I, H] tensor like the peer's w13.
#include <random>
#include <string>
#include <vector>

#include "bench_common.cuh"
#include "moe_weights.cuh"
#include "r1/kernels/cuda/moe.hpp"

namespace {

using namespace r1;

using namespace r1::bench::moe;  // kExperts, kTopK, kHidden, kInter and the expert weights

/// ids [T, top_k] on the device (top_k distinct random experts per token) and the experts hit.
struct Routing {
  Tensor ids, weights;
  int64_t active = 0;
};
Routing make_routing(int64_t tokens) {
  std::mt19937_64 rng(uint64_t(tokens) * 7919u);
  std::vector<int32_t> ids(static_cast<size_t>(tokens * kTopK));
  std::vector<int> perm(static_cast<size_t>(kExperts));
  std::vector<char> hit(static_cast<size_t>(kExperts), 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < kExperts; ++e) perm[size_t(e)] = int(e);
    for (int64_t j = 0; j < kTopK; ++j) {
      const size_t pick = size_t(j) + size_t(rng() % uint64_t(kExperts - j));
      std::swap(perm[size_t(j)], perm[pick]);
      ids[size_t(t * kTopK + j)] = perm[size_t(j)];
      hit[size_t(perm[size_t(j)])] = 1;
    }
  }
  Routing r;
  for (char h : hit) r.active += h;
  r.ids = Tensor::from_vector(ids, {tokens, kTopK}).to(Space::cuda);
  r.weights = bench::random_device(DType::f32, {tokens, kTopK}, 3, 0.3f);
  return r;
}


/// Rows [lo, hi) of every expert of a stacked [E, rows, cols] tensor.
template <class T>
cuda::ExpertWeights<T> half(const Tensor& t, int64_t lo, int64_t hi) {
  return cuda::ExpertWeights<T>::stacked(t.view<const T, 3>().slice(1, lo, hi));
}

enum class Part { permute, gather, combine, all };
const char* part_name(Part p) {
  return p == Part::permute ? "moe_permute" : p == Part::gather ? "moe_gather" : p == Part::combine ? "moe_combine"
                                                                                                      : "moe_dispatch_combine";
}

void add_movement(int64_t tokens, Part part) {
  const std::string shape = "T" + std::to_string(tokens) + " h7168 e256 top8";
  const std::string peer = part == Part::all ? "torch moe dispatch+combine T" + std::to_string(tokens) : "";
  bench::add_row(std::string(part_name(part)) + "/own/" + shape, [=](benchmark::State& st) {
    const Routing r = make_routing(tokens);
    const int64_t rows = tokens * kTopK;
    Tensor x = bench::random_device(DType::bf16, {tokens, kHidden}, 1);          // [T, H]
    Tensor xe = Tensor::empty(DType::bf16, {rows, kHidden}, Space::cuda);       // [R, H]
    Tensor ye = bench::random_device(DType::bf16, {rows, kHidden}, 2);          // [R, H]
    Tensor out = Tensor::empty(DType::bf16, {tokens, kHidden}, Space::cuda);    // [T, H]
    Tensor none = Tensor::empty(DType::bf16, {0, 0}, Space::cuda);
    Tensor off = Tensor::empty(DType::i32, {kExperts + 1}, Space::cuda);        // [E + 1]
    Tensor pairs = Tensor::empty(DType::i32, {rows}, Space::cuda);              // [R]
    bench::Timer& tm = bench::timer();
    const auto ids = r.ids.view<const int32_t, 2>();
    cuda::moe_permute(ids, int(kExperts), off.view<int32_t, 1>(), pairs.view<int32_t, 1>(), tm.stream());
    const double s = tm.median([&] {
      if (part == Part::permute || part == Part::all)
        cuda::moe_permute(ids, int(kExperts), off.view<int32_t, 1>(), pairs.view<int32_t, 1>(), tm.stream());
      if (part == Part::gather || part == Part::all)
        cuda::moe_gather<bf16>(x.view<const bf16, 2>(), pairs.view<const int32_t, 1>(), int(kTopK), xe.view<bf16, 2>(),
                               tm.stream());
      if (part == Part::combine || part == Part::all)
        cuda::moe_combine<bf16, bf16>(ye.view<const bf16, 2>(), pairs.view<const int32_t, 1>(),
                                      r.weights.view<const float, 2>(), none.view<const bf16, 2>(),
                                      out.view<bf16, 2>(), tm.stream());
    });
    const double idx_bytes = 4.0 * double(rows) * 2 + 4.0 * double(kExperts + 1);
    const double act = 2.0 * double(kHidden);
    bench::Work work;
    if (part == Part::permute || part == Part::all) work.bytes += idx_bytes;
    if (part == Part::gather || part == Part::all) work.bytes += double(tokens) * act + double(rows) * act + 4.0 * double(rows);
    if (part == Part::combine || part == Part::all)
      work.bytes += double(rows) * act + double(tokens) * act + 4.0 * double(rows) * 2;
    bench::report(st, s, work, {part_name(part), shape, "own", peer});
  });
}

void add_layer(int64_t tokens, bool fp8) {
  const std::string shape = "T" + std::to_string(tokens) + " h7168 i2048 e256 top8";
  const std::string kernel = fp8 ? "moe_layer_fp8" : "moe_layer_bf16";
  bench::add_row(kernel + "/own/" + shape, [=](benchmark::State& st) {
    const Routing r = make_routing(tokens);
    Tensor x = bench::random_device(DType::bf16, {tokens, kHidden}, 1);        // [T, H]
    Tensor out = Tensor::empty(DType::bf16, {tokens, kHidden}, Space::cuda);  // [T, H]
    Tensor none = Tensor::empty(DType::bf16, {0, 0}, Space::cuda);
    bench::Timer& tm = bench::timer();
    std::function<void(View<const bf16, 2>, View<const int32_t, 1>, View<bf16, 2>)> experts;
    if (fp8) {
      Fp8Experts& e = fp8_experts();
      experts = [&e, &tm](View<const bf16, 2> xe, View<const int32_t, 1> off, View<bf16, 2> ye) {
        cuda::moe_experts_swiglu(xe, off, half<fp8_e4m3>(e.q13, 0, kInter), half<float>(e.s13, 0, kInter / 128),
                                 half<fp8_e4m3>(e.q13, kInter, 2 * kInter),
                                 half<float>(e.s13, kInter / 128, 2 * kInter / 128),
                                 cuda::ExpertWeights<fp8_e4m3>::stacked(e.q2.view<const fp8_e4m3, 3>()),
                                 cuda::ExpertWeights<float>::stacked(e.s2.view<const float, 3>()), ye, tm.stream());
      };
    } else {
      Bf16Experts& e = bf16_experts();
      experts = [&e, &tm](View<const bf16, 2> xe, View<const int32_t, 1> off, View<bf16, 2> ye) {
        cuda::moe_experts_swiglu(xe, off, half<bf16>(e.w13, 0, kInter), half<bf16>(e.w13, kInter, 2 * kInter),
                                 cuda::ExpertWeights<bf16>::stacked(e.w2.view<const bf16, 3>()), ye, tm.stream());
      };
    }
    const double s = tm.median([&] {
      cuda::moe_routed<bf16>(x.view<const bf16, 2>(), r.ids.view<const int32_t, 2>(), r.weights.view<const float, 2>(),
                             int(kExperts), experts, none.view<const bf16, 2>(), out.view<bf16, 2>(), tm.stream());
    });
    const double rows = double(tokens * kTopK), wb = fp8 ? 1.0 : 2.0;
    bench::Work work;
    work.flops = 2.0 * rows * 3.0 * double(kHidden) * double(kInter);
    work.bytes = double(r.active) * 3.0 * double(kHidden) * double(kInter) * wb + 2.0 * 2.0 * double(tokens * kHidden);
    if (fp8) work.bytes += double(r.active) * 3.0 * double(kHidden / 128) * double(kInter / 128) * 4.0;
    work.fp8 = fp8;
    bench::report(st, s, work, {kernel, shape, "own", "torch _grouped_mm MoE T" + std::to_string(tokens)});
  });
}

void register_rows() {
  for (int64_t t : {1, 16, 256, 4096})
    for (Part p : {Part::permute, Part::gather, Part::combine, Part::all}) add_movement(t, p);
  for (bool fp8 : {false, true})
    for (int64_t t : {16, 256, 4096}) add_layer(t, fp8);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
