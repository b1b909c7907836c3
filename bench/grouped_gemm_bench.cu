// SPDX-License-Identifier: MIT
// Grouped MoE GEMMs (r1::cuda::grouped_linear, grouped_linear_fp8_native) on one R1 MoE layer:
// 256 experts, top-8 routing of T = 16, 256, 4096 tokens (8T rows), expert gate + up [4096, 7168]
// and down [7168, 2048]. Rows: each GEMM alone, and both back to back ("moe_gemms"), which is
// compared with tools/peer_baselines.py's torch._grouped_mm MoE row of the same T (that row also
// runs the permutation, SwiGLU and combine, so the ratio flatters r1 by their cost). Bytes count
// the weights of the experts that receive tokens, once, plus activations in and out.
// Backends: "own" rows run r1's mma.sync grouped kernel (GemmBackend::own), "own_wgmma" rows the
// Hopper TMA + wgmma grouped kernel (sm_90a; T = 256 and 4096), registered last so that a trap in
// it cannot cost the other rows. `automatic` (what moe_bench's layer runs) picks between the two.
#include <random>
#include <string>
#include <vector>

#include "bench_common.cuh"
#include "moe_weights.cuh"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/grouped_gemm.hpp"

namespace {

using namespace r1;
using cuda::GemmBackend;

using namespace r1::bench::moe;  // kExperts, kTopK, kHidden, kInter and the expert weights

/// Routing of T tokens: offsets [E + 1] on the device, and how many experts receive tokens.
struct Routing {
  Tensor offsets;
  int64_t rows = 0, active = 0;
};
Routing make_routing(int64_t tokens) {
  std::mt19937_64 rng(uint64_t(tokens) * 7919u);
  std::vector<int32_t> count(size_t(kExperts), 0);
  std::vector<int> ids(static_cast<size_t>(kExperts));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < kExperts; ++e) ids[size_t(e)] = int(e);
    for (int64_t j = 0; j < kTopK; ++j) {  // kTopK distinct experts (partial Fisher-Yates)
      const size_t pick = size_t(j) + size_t(rng() % uint64_t(kExperts - j));
      std::swap(ids[size_t(j)], ids[pick]);
      ++count[size_t(ids[size_t(j)])];
    }
  }
  std::vector<int32_t> off(size_t(kExperts) + 1, 0);
  Routing r;
  for (int64_t e = 0; e < kExperts; ++e) {
    off[size_t(e) + 1] = off[size_t(e)] + count[size_t(e)];
    r.active += count[size_t(e)] > 0;
  }
  r.rows = tokens * kTopK;
  r.offsets = Tensor::from_vector(off, {kExperts + 1}).to(Space::cuda);
  return r;
}


enum class Which { gate_up, down, both };
const char* which_name(Which w) { return w == Which::gate_up ? "gate_up" : w == Which::down ? "down" : "gemms"; }

bench::Work moe_work(const Routing& r, Which which, double elem_bytes, bool fp8) {
  bench::Work w;
  const double rows = double(r.rows), act = double(r.active);
  auto gemm = [&](double n, double k) {
    w.bytes += act * n * k * elem_bytes + rows * k * elem_bytes + rows * n * 2.0;
    if (fp8) w.bytes += act * (n / 128) * (k / 128) * 4.0 + rows * (k / 128) * 4.0;
    w.flops += 2.0 * rows * n * k;
  };
  if (which != Which::down) gemm(2.0 * kInter, kHidden);
  if (which != Which::gate_up) gemm(kHidden, kInter);
  w.fp8 = fp8;
  return w;
}

void add_bf16(int64_t tokens, Which which, GemmBackend backend = GemmBackend::own) {
  const std::string shape = "T" + std::to_string(tokens) + " e256 top8";
  const std::string kernel = std::string("moe_") + which_name(which) + "_bf16";
  const std::string peer = which == Which::both ? "torch _grouped_mm MoE T" + std::to_string(tokens) : "";
  const std::string bname = cuda::gemm_backend_name(backend);
  bench::add_row(kernel + "/" + bname + "/" + shape, [=](benchmark::State& st) {
    const Routing r = make_routing(tokens);
    Bf16Experts& e = bf16_experts();
    Tensor x = bench::random_device(DType::bf16, {r.rows, kHidden}, 1);
    Tensor h = bench::random_device(DType::bf16, {r.rows, kInter}, 2);  // stands in for SwiGLU's output
    Tensor y13 = Tensor::empty(DType::bf16, {r.rows, 2 * kInter}, Space::cuda);
    Tensor y2 = Tensor::empty(DType::bf16, {r.rows, kHidden}, Space::cuda);
    const auto w13 = cuda::ExpertWeights<bf16>::stacked(e.w13.view<const bf16, 3>());
    const auto w2 = cuda::ExpertWeights<bf16>::stacked(e.w2.view<const bf16, 3>());
    bench::Timer& tm = bench::timer();
    const auto off = r.offsets.view<const int32_t, 1>();
    const double s = tm.median([&] {
      if (which != Which::down) {
        cuda::grouped_linear(x.view<const bf16, 2>(), off, w13, y13.view<bf16, 2>(), tm.stream(), backend);
      }
      if (which != Which::gate_up) {
        cuda::grouped_linear(h.view<const bf16, 2>(), off, w2, y2.view<bf16, 2>(), tm.stream(), backend);
      }
    });
    bench::report(st, s, moe_work(r, which, 2.0, false), {kernel, shape, bname, peer});
  });
}

void add_fp8(int64_t tokens, Which which, GemmBackend backend = GemmBackend::own) {
  const std::string shape = "T" + std::to_string(tokens) + " e256 top8";
  const std::string kernel = std::string("moe_") + which_name(which) + "_fp8";
  const std::string bname = cuda::gemm_backend_name(backend);
  bench::add_row(kernel + "/" + bname + "/" + shape, [=](benchmark::State& st) {
    const Routing r = make_routing(tokens);
    Fp8Experts& e = fp8_experts();
    Tensor xq = bench::random_device(DType::f8_e4m3, {r.rows, kHidden}, 1);
    Tensor xs = bench::random_scales_device({kHidden / 128, r.rows}, 2);
    Tensor hq = bench::random_device(DType::f8_e4m3, {r.rows, kInter}, 3);
    Tensor hs = bench::random_scales_device({kInter / 128, r.rows}, 4);
    Tensor y13 = Tensor::empty(DType::bf16, {r.rows, 2 * kInter}, Space::cuda);
    Tensor y2 = Tensor::empty(DType::bf16, {r.rows, kHidden}, Space::cuda);
    const auto q13 = cuda::ExpertWeights<fp8_e4m3>::stacked(e.q13.view<const fp8_e4m3, 3>());
    const auto s13 = cuda::ExpertWeights<float>::stacked(e.s13.view<const float, 3>());
    const auto q2 = cuda::ExpertWeights<fp8_e4m3>::stacked(e.q2.view<const fp8_e4m3, 3>());
    const auto s2 = cuda::ExpertWeights<float>::stacked(e.s2.view<const float, 3>());
    const View<float, 2> xsv = cuda::mn_major_scales(xs.data_as<float>(), r.rows, kHidden / 128);
    const View<float, 2> hsv = cuda::mn_major_scales(hs.data_as<float>(), r.rows, kInter / 128);
    bench::Timer& tm = bench::timer();
    const auto off = r.offsets.view<const int32_t, 1>();
    const double s = tm.median([&] {
      if (which != Which::down) {
        cuda::grouped_linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xsv, off, q13, s13,
                                                  y13.view<bf16, 2>(), tm.stream(), backend);
      }
      if (which != Which::gate_up) {
        cuda::grouped_linear_fp8_native<128, 128>(hq.view<const fp8_e4m3, 2>(), hsv, off, q2, s2, y2.view<bf16, 2>(),
                                                  tm.stream(), backend);
      }
    });
    bench::report(st, s, moe_work(r, which, 1.0, true), {kernel, shape, bname, ""});
  });
}

void register_rows() {
  for (int64_t t : {16, 256, 4096})
    for (Which w : {Which::gate_up, Which::down, Which::both}) add_bf16(t, w);
  for (int64_t t : {16, 256, 4096})
    for (Which w : {Which::gate_up, Which::down, Which::both}) add_fp8(t, w);
  // The Hopper grouped kernels last (own process state: a trap ends the CUDA context).
  for (int64_t t : {256, 4096})
    for (Which w : {Which::gate_up, Which::down, Which::both}) add_fp8(t, w, GemmBackend::own_wgmma);
  for (int64_t t : {256, 4096})
    for (Which w : {Which::gate_up, Which::down, Which::both}) add_bf16(t, w, GemmBackend::own_wgmma);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
