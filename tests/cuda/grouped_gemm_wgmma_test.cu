// SPDX-License-Identifier: MIT
// r1's Hopper grouped GEMMs (GemmBackend::own_wgmma: TMA + wgmma, sm_90a; gemm_wgmma_grouped.cuh)
// against the ref twins run expert by expert on the same rows: odd row counts (1, 7, 127, 129,
// 4096), empty experts, all rows on one expert, ragged N (576, 2112), K = 7168, 2048, 512 and
// ragged bf16 K, both activation-scale layouts, padded output rows (the padding stays untouched),
// rows the offsets do not cover (never written), the pointer-table fallback, `automatic` at large
// row counts, and a captured CUDA graph replayed with new routing. Outputs are NaN-poisoned before
// every run, so a row or column the kernel forgets shows up as non-finite.
// A separate program from grouped_gemm_test: a protocol error in this kernel traps (bounded
// mbarrier waits), which ends the process's CUDA context, so it must not take the others with it.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "gemm_test_util.hpp"
#include "grouped_test_util.hpp"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"

using namespace r1;
using namespace r1::gpu_test;
using cuda::GemmBackend;

namespace {

constexpr double kTol = 4e-3, kTolMax = 8e-3;

/// A device array of per-expert pointers into a stacked tensor (identity order: the fallback's
/// shuffled-table coverage lives in grouped_gemm_test).
Tensor pointer_table(const Tensor& stacked_dev, int64_t experts, int64_t per_expert_bytes, stream_t stream) {
  std::vector<int64_t> ptrs(size_t(experts), 0);
  const int64_t base = int64_t(reinterpret_cast<uintptr_t>(stacked_dev.data()));
  for (size_t e = 0; e < ptrs.size(); ++e) ptrs[e] = base + int64_t(e) * per_expert_bytes;
  return Tensor::from_vector(ptrs, {experts}).to(Space::cuda, stream);
}

struct Case {
  int64_t experts = 8, rows = 0, n = 0, k = 0;
  Route route = Route::random;
  bool mn_major = false;  // FP8: activation scales stored [K / 128, R]
  bool pointers = false;  // per-expert pointer tables (own_wgmma falls back to mma.sync)
  int64_t y_pad = 0;      // y's row stride is N + y_pad; the padding must stay poisoned
  int64_t routed = -1;    // rows the offsets cover (< rows: the rest of y must stay poisoned)
  GemmBackend backend = GemmBackend::own_wgmma;
};

/// Checks y (host copy, [rows, N + pad]) against the reference of its first `routed` rows, and that
/// nothing else was written.
void check_output(const Case& c, const Tensor& yh, const std::vector<double>& ref, int64_t routed, const char* what) {
  const int64_t ld = c.n + c.y_pad;
  auto yv = yh.view<const bf16, 2>().slice(0, 0, routed).slice(1, 0, c.n);  // [routed, N]
  auto refv = make_view<2>(ref.data(), {routed, c.n});
  const Compare r = compare<bf16>(yv, refv);
  int64_t touched = touched_padding(yh, c.n);
  const auto* b = static_cast<const uint8_t*>(yh.data());
  for (int64_t i = routed * ld * 2; i < c.rows * ld * 2; ++i) touched += b[i] != 0xff;
  INFO(what, " E=", c.experts, " R=", c.rows, " routed=", routed, " N=", c.n, " K=", c.k, " route=", int(c.route),
       " mn_major=", c.mn_major, " pointers=", c.pointers, " pad=", c.y_pad,
       " backend=", cuda::gemm_backend_name(c.backend), ": ", r.str(), ", bytes written outside: ", touched);
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= kTol);
  CHECK(r.max_rel <= kTolMax);
  CHECK(touched == 0);
}

void run_fp8(const Case& c, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(c.experts), uint64_t(c.rows), uint64_t(c.n * 131 + c.k),
                                  200 + uint64_t(c.route) + 10 * uint64_t(c.mn_major));
  const int64_t routed = c.routed < 0 ? c.rows : c.routed;
  const std::vector<int32_t> off = make_offsets(c.experts, routed, c.route, seed);
  const int64_t nb = (c.n + 127) / 128, kb = c.k / 128;
  Tensor x = random_uniform<float>({c.rows, c.k}, seed + 1, 4.0f);
  Tensor xq = Tensor::empty(DType::f8_e4m3, {c.rows, c.k}), xs = Tensor::empty(DType::f32, {c.rows, kb});
  ref::act_quant<128>(x.view<const float, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
  Tensor wq = random_e4m3({c.experts, c.n, c.k}, seed + 2);
  Tensor ws = random_scales({c.experts, nb, kb}, seed + 3, -12.0f, -7.0f);
  std::vector<double> ref(size_t(routed * c.n));
  auto refv = make_view<2>(ref.data(), {routed, c.n});  // [routed, N]
  for (int64_t e = 0; e < c.experts; ++e) {
    const int64_t lo = off[size_t(e)], hi = off[size_t(e) + 1];
    if (lo == hi) continue;
    ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>().slice(0, lo, hi),
                                     xs.view<const float, 2>().slice(0, lo, hi),
                                     wq.view<const fp8_e4m3, 3>().select(0, e), ws.view<const float, 3>().select(0, e),
                                     refv.slice(0, lo, hi));
  }
  Tensor xqd = xq.to(Space::cuda, stream), wqd = wq.to(Space::cuda, stream), wsd = ws.to(Space::cuda, stream);
  Tensor od = device_offsets(off, stream);
  Tensor xsd;
  View<float, 2> xsv;  // [R, K / 128] view, row-major or MN-major storage
  if (c.mn_major) {
    Tensor tr = Tensor::empty(DType::f32, {kb, c.rows});
    for (int64_t r = 0; r < c.rows; ++r)
      for (int64_t g = 0; g < kb; ++g) tr.data_as<float>()[g * c.rows + r] = xs.data_as<float>()[r * kb + g];
    xsd = tr.to(Space::cuda, stream);
    xsv = cuda::mn_major_scales(xsd.data_as<float>(), c.rows, kb);
  } else {
    xsd = xs.to(Space::cuda, stream);
    xsv = xsd.view<float, 2>();
  }
  Tensor ybuf = Tensor::empty(DType::bf16, {c.rows, c.n + c.y_pad}, Space::cuda, stream);  // [R, N + pad]
  poison(ybuf, stream);
  Tensor wtab = pointer_table(wqd, c.experts, c.n * c.k, stream);
  Tensor stab = pointer_table(wsd, c.experts, nb * kb * 4, stream);
  const auto ew = c.pointers ? cuda::ExpertWeights<fp8_e4m3>::pointers(
                                   reinterpret_cast<const fp8_e4m3* const*>(wtab.data()), c.experts, c.n, c.k, c.k)
                             : cuda::ExpertWeights<fp8_e4m3>::stacked(wqd.view<const fp8_e4m3, 3>());
  const auto es = c.pointers ? cuda::ExpertWeights<float>::pointers(reinterpret_cast<const float* const*>(stab.data()),
                                                                    c.experts, nb, kb, kb)
                             : cuda::ExpertWeights<float>::stacked(wsd.view<const float, 3>());
  cuda::grouped_linear_fp8_native<128, 128>(xqd.view<const fp8_e4m3, 2>(), xsv.as_const(), od.view<const int32_t, 1>(),
                                            ew, es, ybuf.view<bf16, 2>().slice(1, 0, c.n), stream, c.backend);
  Tensor yh = ybuf.to(Space::host, stream);
  check_output(c, yh, ref, routed, "fp8");
}

void run_bf16(const Case& c, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(c.experts), uint64_t(c.rows), uint64_t(c.n * 131 + c.k),
                                  300 + uint64_t(c.route));
  const int64_t routed = c.routed < 0 ? c.rows : c.routed;
  const std::vector<int32_t> off = make_offsets(c.experts, routed, c.route, seed);
  Tensor x = random_uniform<bf16>({c.rows, c.k}, seed + 1);
  Tensor w = random_uniform<bf16>({c.experts, c.n, c.k}, seed + 2, 0.5f);
  std::vector<double> ref(size_t(routed * c.n));
  auto refv = make_view<2>(ref.data(), {routed, c.n});  // [routed, N]
  for (int64_t e = 0; e < c.experts; ++e) {
    const int64_t lo = off[size_t(e)], hi = off[size_t(e) + 1];
    if (lo == hi) continue;
    ref::linear(x.view<const bf16, 2>().slice(0, lo, hi), w.view<const bf16, 3>().select(0, e), refv.slice(0, lo, hi));
  }
  Tensor xd = x.to(Space::cuda, stream), wd = w.to(Space::cuda, stream), od = device_offsets(off, stream);
  Tensor ybuf = Tensor::empty(DType::bf16, {c.rows, c.n + c.y_pad}, Space::cuda, stream);  // [R, N + pad]
  poison(ybuf, stream);
  Tensor wtab = pointer_table(wd, c.experts, c.n * c.k * 2, stream);
  const auto ew = c.pointers ? cuda::ExpertWeights<bf16>::pointers(reinterpret_cast<const bf16* const*>(wtab.data()),
                                                                   c.experts, c.n, c.k, c.k)
                             : cuda::ExpertWeights<bf16>::stacked(wd.view<const bf16, 3>());
  cuda::grouped_linear(xd.view<const bf16, 2>(), od.view<const int32_t, 1>(), ew,
                       ybuf.view<bf16, 2>().slice(1, 0, c.n), stream, c.backend);
  Tensor yh = ybuf.to(Space::host, stream);
  check_output(c, yh, ref, routed, "bf16");
}

Case mk(int64_t experts, int64_t rows, int64_t n, int64_t k, Route route = Route::random) {
  Case c;
  c.experts = experts;
  c.rows = rows;
  c.n = n;
  c.k = k;
  c.route = route;
  return c;
}

}  // namespace

TEST_CASE("grouped fp8 own_wgmma: odd row counts, empty experts, ragged N, both scale layouts") {
  if (!hopper()) {
    MESSAGE("own_wgmma needs an sm_90 GPU; skipped");
    return;
  }
  Stream stream;
  // one tile first: the smallest case shows a descriptor or barrier error most plainly
  run_fp8(mk(1, 64, 128, 128), stream);
  for (int64_t rows : {1, 7, 127, 128, 129, 300}) {
    Case c = mk(8, rows, 576, 512);
    c.mn_major = rows % 2 == 1;
    run_fp8(c, stream);
  }
  run_fp8(mk(8, 129, 576, 7168), stream);   // K = 7168: more K blocks than ring slots, many tiles per block
  run_fp8(mk(8, 200, 2112, 2048), stream);  // N = 2112 (ragged last tile), K = 2048
  Case many = mk(256, 4096, 256, 512);      // 256 experts, ~16 rows each, a third empty
  many.mn_major = true;
  run_fp8(many, stream);
}

TEST_CASE("grouped fp8 own_wgmma: routings, output layouts, fallbacks, automatic") {
  if (!hopper()) return;
  Stream stream;
  for (Route r : {Route::one_expert, Route::first, Route::last}) run_fp8(mk(8, 1000, 200, 384, r), stream);
  run_fp8(mk(16, 4096, 128, 256, Route::one_expert), stream);  // all 4096 rows on one expert: 32 M tiles
  Case pad = mk(8, 300, 200, 256);
  pad.y_pad = 64;  // padded output rows: columns past N stay untouched
  run_fp8(pad, stream);
  Case tail = mk(8, 300, 256, 256);
  tail.routed = 250;  // rows 250..299 belong to no expert: never written
  run_fp8(tail, stream);
  Case ptrs = mk(8, 300, 576, 512);
  ptrs.pointers = true;  // pointer tables: own_wgmma runs the mma.sync kernel
  run_fp8(ptrs, stream);
  Case automatic = mk(16, 2048, 256, 512);  // 128 rows per expert: automatic picks own_wgmma on sm_90a
  automatic.backend = GemmBackend::automatic;
  automatic.mn_major = true;
  run_fp8(automatic, stream);
}

TEST_CASE("grouped fp8 own_wgmma: R1 expert shapes") {
  if (!hopper()) return;
  Stream stream;
  Case gate = mk(4, 64, 2048, 7168);  // gate or up projection [2048, 7168]
  gate.mn_major = true;
  run_fp8(gate, stream);
  run_fp8(mk(4, 64, 7168, 2048), stream);  // down projection [7168, 2048]
}

TEST_CASE("grouped bf16 own_wgmma: odd sizes, ragged K and N, routings, layouts") {
  if (!hopper()) return;
  Stream stream;
  run_bf16(mk(1, 64, 128, 64), stream);
  for (int64_t rows : {1, 7, 127, 129, 300}) {
    run_bf16(mk(8, rows, 576, 512), stream);
    run_bf16(mk(8, rows, 200, 136), stream);  // K = 136: 272 bytes, the last stage half zeros
  }
  run_bf16(mk(8, 5, 64, 24), stream);          // K = 24: one stage, mostly zeros
  run_bf16(mk(8, 129, 576, 7168), stream);
  run_bf16(mk(8, 200, 2112, 2048), stream);
  run_bf16(mk(256, 4096, 128, 256), stream);
  for (Route r : {Route::one_expert, Route::first, Route::last}) run_bf16(mk(8, 1000, 130, 128, r), stream);
  run_bf16(mk(16, 4096, 128, 256, Route::one_expert), stream);
  Case pad = mk(8, 300, 200, 256);
  pad.y_pad = 64;
  run_bf16(pad, stream);
  Case tail = mk(8, 300, 256, 256);
  tail.routed = 250;
  run_bf16(tail, stream);
  Case ptrs = mk(8, 300, 576, 512);
  ptrs.pointers = true;
  run_bf16(ptrs, stream);
  Case automatic = mk(16, 2048, 256, 512);
  automatic.backend = GemmBackend::automatic;
  run_bf16(automatic, stream);
  run_bf16(mk(4, 64, 2048, 7168), stream);
  run_bf16(mk(4, 64, 7168, 2048), stream);
}

TEST_CASE("grouped bf16 own_wgmma: the 256-column tile") {
  if (!hopper()) return;
  // ceil(R / 128) x ceil(N / 256) >= 132 (the SMs of an H100 or H200) selects 128 x 256 tiles
  // (grouped_bf16_tile_n): ragged N (1040 = 4 x 256 + 16), a K tail (200 = 3 x 64 + 8), experts
  // whose rows start mid-tile, empty experts, and one expert owning every row.
  Stream stream;
  run_bf16(mk(8, 4224, 1040, 200), stream);
  run_bf16(mk(32, 4300, 1300, 136, Route::first), stream);
  run_bf16(mk(4, 4200, 1100, 264, Route::one_expert), stream);
  Case pad = mk(8, 4224, 1030, 128);
  pad.y_pad = 64;  // padded output rows: columns past N stay untouched
  run_bf16(pad, stream);
  // Output rows on 16 bytes (row stride 1032) take the 16-byte stores; N = 1030 ends inside an
  // 8-column block, stored element by element, and the 2 padding columns stay untouched.
  Case vec = mk(1, 4100, 1030, 128, Route::one_expert);
  vec.y_pad = 2;
  run_bf16(vec, stream);
}

TEST_CASE("grouped own_wgmma: 16-byte output stores with N ending inside an 8-column block") {
  if (!hopper()) return;
  Stream stream;
  for (int64_t rows : {7, 300}) {
    Case b = mk(8, rows, 1030, 256);
    b.y_pad = 2;  // row stride 1032: 16-byte rows
    run_bf16(b, stream);
    Case f = mk(8, rows, 1030, 256);
    f.y_pad = 2;
    run_fp8(f, stream);
  }
}

TEST_CASE("grouped fp8 own_wgmma: a captured CUDA graph replays with new routing read on the device") {
  if (!hopper()) return;
  Stream stream;
  const int64_t experts = 16, rows = 512, n = 256, k = 512, kb = k / 128;
  Tensor x = random_uniform<float>({rows, k}, case_seed(41), 4.0f);
  Tensor xq = Tensor::empty(DType::f8_e4m3, {rows, k}), xs = Tensor::empty(DType::f32, {rows, kb});
  ref::act_quant<128>(x.view<const float, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
  Tensor wq = random_e4m3({experts, n, k}, case_seed(42));
  Tensor ws = random_scales({experts, n / 128, kb}, case_seed(43), -12.0f, -7.0f);
  Tensor xqd = xq.to(Space::cuda, stream), xsd = xs.to(Space::cuda, stream);
  Tensor wqd = wq.to(Space::cuda, stream), wsd = ws.to(Space::cuda, stream);
  const std::vector<int32_t> off_a = make_offsets(experts, rows, Route::random, case_seed(44));
  const std::vector<int32_t> off_b = make_offsets(experts, rows, Route::one_expert, 0);
  Tensor od = device_offsets(off_a, stream);
  Tensor y = Tensor::empty(DType::bf16, {rows, n}, Space::cuda, stream);  // [R, N]
  const auto ew = cuda::ExpertWeights<fp8_e4m3>::stacked(wqd.view<const fp8_e4m3, 3>());
  const auto es = cuda::ExpertWeights<float>::stacked(wsd.view<const float, 3>());
  auto call = [&] {
    cuda::grouped_linear_fp8_native<128, 128>(xqd.view<const fp8_e4m3, 2>(), xsd.view<const float, 2>(),
                                              od.view<const int32_t, 1>(), ew, es, y.view<bf16, 2>(), stream,
                                              GemmBackend::own_wgmma);
  };
  call();  // warm-up: kernel attributes and the driver's encoder are fetched outside the capture
  stream.sync();
  const CapturedGraph graph(stream, call, cudaStreamCaptureModeGlobal);
  for (const auto* off : {&off_a, &off_b}) {
    od.copy_from(Tensor::from_vector(*off, {experts + 1}), stream);
    poison(y, stream);
    graph.launch(stream);
    Tensor yh = y.to(Space::host, stream);
    std::vector<double> ref(size_t(rows * n));
    auto refv = make_view<2>(ref.data(), {rows, n});
    for (int64_t e = 0; e < experts; ++e) {
      const int64_t lo = (*off)[size_t(e)], hi = (*off)[size_t(e) + 1];
      if (lo < hi) {
        ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>().slice(0, lo, hi),
                                         xs.view<const float, 2>().slice(0, lo, hi),
                                         wq.view<const fp8_e4m3, 3>().select(0, e),
                                         ws.view<const float, 3>().select(0, e), refv.slice(0, lo, hi));
      }
    }
    const Compare r = compare<bf16>(yh.view<const bf16, 2>(), refv.as_const());
    INFO((off == &off_a ? "random routing" : "all rows on one expert"), ": ", r.str());
    CHECK(r.nonfinite == 0);
    CHECK(r.rel_norm <= kTol);
    CHECK(r.max_rel <= kTolMax);
  }
}
