// SPDX-License-Identifier: MIT
// r1::cuda::grouped_linear (bf16) and grouped_linear_fp8_native against the ref twins run expert by
// expert on the same rows: random routing with empty experts, all rows on one expert, 256 experts,
// stacked and per-expert-pointer weights, R1's expert shapes, replay of a captured CUDA graph with
// new routing written on the device, the argument errors, and the grouped dispatch default. The
// Hopper wgmma grouped kernel (own_wgmma) is tested in its own program, grouped_gemm_wgmma_test.cu
// (a trap there ends the CUDA context); the cases here name own / own_sm80, or stay below the row
// counts where `automatic` picks it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "gemm_test_util.hpp"
#include "grouped_test_util.hpp"
#include "r1/kernels/cuda/grouped_gemm.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"

using namespace r1;
using namespace r1::gpu_test;
using cuda::GemmBackend;

namespace {

constexpr double kTol = 4e-3, kTolMax = 8e-3;


void run_bf16(int64_t experts, int64_t rows, int64_t n, int64_t k, Route route, bool pointers, GemmBackend backend,
              Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(experts), uint64_t(rows), uint64_t(n * 131 + k), uint64_t(route));
  const std::vector<int32_t> off = make_offsets(experts, rows, route, seed);
  Tensor x = random_uniform<bf16>({rows, k}, seed + 1);
  Tensor w = random_uniform<bf16>({experts, n, k}, seed + 2, 0.5f);
  Tensor wd = w.to(Space::cuda, stream);
  PointerTable table(wd, experts, n * k * 2, seed + 3, stream);
  std::vector<double> ref(size_t(rows * n));
  auto refv = make_view<2>(ref.data(), {rows, n});  // [R, N]
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t lo = off[size_t(e)], hi = off[size_t(e) + 1];
    if (lo == hi) continue;
    const int64_t slot = pointers ? table.perm[size_t(e)] : e;
    ref::linear(x.view<const bf16, 2>().slice(0, lo, hi), w.view<const bf16, 3>().select(0, slot), refv.slice(0, lo, hi));
  }
  Tensor xd = x.to(Space::cuda, stream), od = device_offsets(off, stream);
  Tensor y = Tensor::empty(DType::bf16, {rows, n}, Space::cuda, stream);
  poison(y, stream);
  const auto ew = pointers ? cuda::ExpertWeights<bf16>::pointers(table.ptr<bf16>(), experts, n, k, k)
                           : cuda::ExpertWeights<bf16>::stacked(wd.view<const bf16, 3>());
  cuda::grouped_linear(xd.view<const bf16, 2>(), od.view<const int32_t, 1>(), ew, y.view<bf16, 2>(), stream, backend);
  Tensor yh = y.to(Space::host, stream);
  const Compare r = compare<bf16>(yh.view<const bf16, 2>(), refv.as_const());
  INFO("bf16 E=", experts, " R=", rows, " N=", n, " K=", k, " route=", int(route), " pointers=", pointers,
       " backend=", cuda::gemm_backend_name(backend), ": ", r.str());
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= kTol);
  CHECK(r.max_rel <= kTolMax);
}

void run_fp8(int64_t experts, int64_t rows, int64_t n, int64_t k, Route route, bool pointers, GemmBackend backend,
             Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(experts), uint64_t(rows), uint64_t(n * 131 + k), 100 + uint64_t(route));
  const std::vector<int32_t> off = make_offsets(experts, rows, route, seed);
  const int64_t nb = (n + 127) / 128, kb = k / 128;
  Tensor x = random_uniform<float>({rows, k}, seed + 1, 4.0f);
  Tensor xq = Tensor::empty(DType::f8_e4m3, {rows, k}), xs = Tensor::empty(DType::f32, {rows, kb});
  ref::act_quant<128>(x.view<const float, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
  Tensor wq = random_e4m3({experts, n, k}, seed + 2);
  Tensor ws = random_scales({experts, nb, kb}, seed + 3, -12.0f, -7.0f);
  Tensor wqd = wq.to(Space::cuda, stream), wsd = ws.to(Space::cuda, stream);
  PointerTable wtable(wqd, experts, n * k, seed + 4, stream);
  PointerTable stable(wsd, experts, nb * kb * 4, seed + 4, stream);  // same permutation
  std::vector<double> ref(size_t(rows * n));
  auto refv = make_view<2>(ref.data(), {rows, n});
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t lo = off[size_t(e)], hi = off[size_t(e) + 1];
    if (lo == hi) continue;
    const int64_t slot = pointers ? wtable.perm[size_t(e)] : e;
    ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>().slice(0, lo, hi),
                                     xs.view<const float, 2>().slice(0, lo, hi),
                                     wq.view<const fp8_e4m3, 3>().select(0, slot),
                                     ws.view<const float, 3>().select(0, slot), refv.slice(0, lo, hi));
  }
  Tensor xqd = xq.to(Space::cuda, stream), xsd = xs.to(Space::cuda, stream), od = device_offsets(off, stream);
  Tensor y = Tensor::empty(DType::bf16, {rows, n}, Space::cuda, stream);
  poison(y, stream);
  const auto ew = pointers ? cuda::ExpertWeights<fp8_e4m3>::pointers(wtable.ptr<fp8_e4m3>(), experts, n, k, k)
                           : cuda::ExpertWeights<fp8_e4m3>::stacked(wqd.view<const fp8_e4m3, 3>());
  const auto es = pointers ? cuda::ExpertWeights<float>::pointers(stable.ptr<float>(), experts, nb, kb, kb)
                           : cuda::ExpertWeights<float>::stacked(wsd.view<const float, 3>());
  cuda::grouped_linear_fp8_native<128, 128>(xqd.view<const fp8_e4m3, 2>(), xsd.view<const float, 2>(),
                                            od.view<const int32_t, 1>(), ew, es, y.view<bf16, 2>(), stream, backend);
  Tensor yh = y.to(Space::host, stream);
  const Compare r = compare<bf16>(yh.view<const bf16, 2>(), refv.as_const());
  INFO("fp8 E=", experts, " R=", rows, " N=", n, " K=", k, " route=", int(route), " pointers=", pointers,
       " backend=", cuda::gemm_backend_name(backend), ": ", r.str());
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= kTol);
  CHECK(r.max_rel <= kTolMax);
}

}  // namespace

TEST_CASE("grouped_linear bf16: routings, sizes, weight layouts") {
  Stream stream;
  for (int64_t rows : {1, 7, 129, 300}) {
    run_bf16(8, rows, 200, 256, Route::random, false, GemmBackend::own, stream);
    run_bf16(8, rows, 64, 136, Route::random, true, GemmBackend::own, stream);
  }
  for (Route r : {Route::one_expert, Route::first, Route::last}) run_bf16(8, 300, 130, 128, r, r == Route::last, GemmBackend::own, stream);
  run_bf16(256, 128, 192, 256, Route::random, false, GemmBackend::automatic, stream);  // decode: T=16, top-8
  run_bf16(256, 2048, 128, 128, Route::random, true, GemmBackend::own, stream);        // ~8 rows per expert
  run_bf16(4, 1000, 256, 256, Route::random, false, GemmBackend::own, stream);         // large groups: 128-row tiles
}

TEST_CASE("grouped_linear fp8: routings, sizes, weight layouts, both instruction paths") {
  Stream stream;
  for (GemmBackend b : {GemmBackend::own, GemmBackend::own_sm80}) {
    for (int64_t rows : {1, 7, 129, 300}) {
      run_fp8(8, rows, 576, 256, Route::random, rows % 2 == 0, b, stream);
    }
    for (Route r : {Route::one_expert, Route::first, Route::last}) run_fp8(8, 300, 200, 384, r, r == Route::first, b, stream);
    run_fp8(256, 128, 256, 256, Route::random, false, b, stream);
    run_fp8(4, 1000, 256, 512, Route::random, true, b, stream);
  }
}

TEST_CASE("grouped GEMMs at R1's expert shapes (16 experts)") {
  Stream stream;
  run_bf16(16, 40, 4096, 7168, Route::random, false, GemmBackend::own, stream);  // gate + up
  run_bf16(16, 40, 7168, 2048, Route::random, true, GemmBackend::own, stream);   // down
  run_fp8(16, 40, 4096, 7168, Route::random, true, GemmBackend::own, stream);
  run_fp8(16, 40, 7168, 2048, Route::random, false, GemmBackend::own, stream);
}

TEST_CASE("grouped_linear: empty input and zero-row routing") {
  Stream stream;
  Tensor x = Tensor::empty(DType::bf16, {0, 64}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::bf16, {0, 32}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::bf16, {4, 32, 64}, Space::cuda, stream);
  Tensor od = device_offsets({0, 0, 0, 0, 0}, stream);
  cuda::grouped_linear(x.view<const bf16, 2>(), od.view<const int32_t, 1>(),
                       cuda::ExpertWeights<bf16>::stacked(w.view<const bf16, 3>()), y.view<bf16, 2>(), stream);
  stream.sync();
}

TEST_CASE("grouped_linear: a captured CUDA graph replays with new routing read on the device") {
  Stream stream;
  const int64_t experts = 16, rows = 96, n = 256, k = 512;
  Tensor x = random_uniform<bf16>({rows, k}, case_seed(31));
  Tensor w = random_uniform<bf16>({experts, n, k}, case_seed(32), 0.5f);
  Tensor xd = x.to(Space::cuda, stream), wd = w.to(Space::cuda, stream);
  const std::vector<int32_t> off_a = make_offsets(experts, rows, Route::random, case_seed(33));
  const std::vector<int32_t> off_b = make_offsets(experts, rows, Route::one_expert, 0);
  Tensor od = device_offsets(off_a, stream);
  Tensor y = Tensor::empty(DType::bf16, {rows, n}, Space::cuda, stream);
  const auto ew = cuda::ExpertWeights<bf16>::stacked(wd.view<const bf16, 3>());
  auto call = [&] {
    cuda::grouped_linear(xd.view<const bf16, 2>(), od.view<const int32_t, 1>(), ew, y.view<bf16, 2>(), stream,
                         GemmBackend::own);
  };
  call();  // warm-up: kernel attributes are set outside the capture
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
      if (lo < hi) ref::linear(x.view<const bf16, 2>().slice(0, lo, hi), w.view<const bf16, 3>().select(0, e), refv.slice(0, lo, hi));
    }
    const Compare r = compare<bf16>(yh.view<const bf16, 2>(), refv.as_const());
    INFO((off == &off_a ? "random routing" : "all rows on one expert"), ": ", r.str());
    CHECK(r.nonfinite == 0);
    CHECK(r.rel_norm <= kTol);
  }
}

TEST_CASE("grouped_linear: bad arguments are r1::Errors") {
  Stream stream;
  Tensor x = Tensor::empty(DType::bf16, {10, 64}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::bf16, {10, 32}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::bf16, {4, 32, 64}, Space::cuda, stream);
  Tensor od = device_offsets({0, 3, 3, 7, 10}, stream);
  Tensor oh = Tensor::from_vector(std::vector<int32_t>{0, 3, 3, 7, 10}, {5});
  const auto ew = cuda::ExpertWeights<bf16>::stacked(w.view<const bf16, 3>());
  CHECK_THROWS_WITH(cuda::grouped_linear(x.view<const bf16, 2>(), od.view<const int32_t, 1>(), ew, y.view<bf16, 2>(),
                                         stream, GemmBackend::cublaslt),
                    doctest::Contains("no cublaslt grouped-GEMM policy"));
  CHECK_THROWS_WITH(cuda::grouped_linear(x.view<const bf16, 2>(), oh.view<const int32_t, 1>(), ew, y.view<bf16, 2>(), stream),
                    doctest::Contains("offsets must be in cuda memory"));
  CHECK_THROWS_WITH(cuda::grouped_linear(x.view<const bf16, 2>(), od.view<const int32_t, 1>().slice(0, 0, 4), ew,
                                         y.view<bf16, 2>(), stream),
                    doctest::Contains("expected 3 x [32, 64]"));
  CHECK_THROWS_WITH(cuda::grouped_linear(x.view<const bf16, 2>().slice(1, 0, 60), od.view<const int32_t, 1>(),
                                         cuda::ExpertWeights<bf16>::stacked(w.view<const bf16, 3>().slice(2, 0, 60)),
                                         y.view<bf16, 2>(), stream),
                    doctest::Contains("16-byte"));
  Tensor ws = Tensor::empty(DType::f32, {4, 1, 1}, Space::cuda, stream);
  Tensor xq = Tensor::empty(DType::f8_e4m3, {10, 64}, Space::cuda, stream);
  Tensor xs = Tensor::empty(DType::f32, {10, 1}, Space::cuda, stream);
  Tensor wq = Tensor::empty(DType::f8_e4m3, {4, 32, 64}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::grouped_linear_fp8_native<128, 128>(
                        xq.view<const fp8_e4m3, 2>(), xs.view<const float, 2>(), od.view<const int32_t, 1>(),
                        cuda::ExpertWeights<fp8_e4m3>::stacked(wq.view<const fp8_e4m3, 3>()),
                        cuda::ExpertWeights<float>::stacked(ws.view<const float, 3>()), y.view<bf16, 2>(), stream)),
                    doctest::Contains("not a multiple of the 128"));
}

TEST_CASE("grouped GEMM dispatch: automatic picks the Hopper kernel only for many rows per expert") {
  if (std::getenv("R1_GEMM_BACKEND") != nullptr) {
    MESSAGE("R1_GEMM_BACKEND overrides the default; skipped");
    return;
  }
  using cuda::GemmKind;
  using cuda::grouped_gemm_default_backend;
  // R1 prefill, T = 4096: 32768 rows over 256 experts (128 per expert)
  CHECK(grouped_gemm_default_backend(GemmKind::fp8_block, 32768, 256, 2048, 7168) == GemmBackend::own_wgmma);
  CHECK(grouped_gemm_default_backend(GemmKind::bf16, 32768, 256, 7168, 2048) == GemmBackend::own_wgmma);
  // decode and short prefill: few rows per expert stay on the mma.sync kernel's short tiles
  CHECK(grouped_gemm_default_backend(GemmKind::fp8_block, 128, 256, 2048, 7168) == GemmBackend::own);
  CHECK(grouped_gemm_default_backend(GemmKind::fp8_block, 2048, 256, 2048, 7168) == GemmBackend::own);
  CHECK(grouped_gemm_default_backend(GemmKind::fp8_block, cuda::kGroupedWgmmaMinRows - 1, 1, 2048, 7168) ==
        GemmBackend::own);
  CHECK(grouped_gemm_default_backend(GemmKind::fp8_block, cuda::kGroupedWgmmaMinRows, 1, 2048, 7168) ==
        GemmBackend::own_wgmma);
}
