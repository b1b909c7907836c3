// SPDX-License-Identifier: MIT
// r1's Hopper FP8 GEMM (GemmBackend::own_wgmma: TMA + wgmma, sm_90a) against
// ref::linear_fp8_native in fp64, at odd sizes, ragged N, both activation-scale layouts and R1's
// shapes. A separate program from linear_fp8_test: a protocol error in this kernel traps (bounded
// mbarrier waits), which ends the process's CUDA context, so it must not take the others with it.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/linear.hpp"
#include "r1/kernels/cuda/linear_fp8.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"

using namespace r1;
using namespace r1::gpu_test;
using cuda::GemmBackend;

namespace {

constexpr double kTol = 4e-3, kTolMax = 8e-3;

void run(int64_t m, int64_t n, int64_t k, bool mn_major, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(m), uint64_t(n), uint64_t(k), 90);
  Tensor x = random_uniform<float>({m, k}, seed, 3.0f);
  Tensor xq = Tensor::empty(DType::f8_e4m3, {m, k}), xs = Tensor::empty(DType::f32, {m, k / 128});
  ref::act_quant<128>(x.view<const float, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
  Tensor wq = random_e4m3({n, k}, seed + 1);
  Tensor ws = random_scales({(n + 127) / 128, k / 128}, seed + 2, -12.0f, -6.0f);
  std::vector<double> ref(size_t(m * n));
  auto refv = make_view<2>(ref.data(), {m, n});  // [M, N]
  ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xs.view<const float, 2>(),
                                   wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(), refv);
  Tensor xqd = xq.to(Space::cuda, stream), wqd = wq.to(Space::cuda, stream), wsd = ws.to(Space::cuda, stream);
  Tensor xsd;
  View<float, 2> xsv;
  if (mn_major) {
    Tensor tr = Tensor::empty(DType::f32, {k / 128, m});
    for (int64_t r = 0; r < m; ++r)
      for (int64_t g = 0; g < k / 128; ++g) tr.data_as<float>()[g * m + r] = xs.data_as<float>()[r * (k / 128) + g];
    xsd = tr.to(Space::cuda, stream);
    xsv = cuda::mn_major_scales(xsd.data_as<float>(), m, k / 128);
  } else {
    xsd = xs.to(Space::cuda, stream);
    xsv = xsd.view<float, 2>();
  }
  Tensor y = Tensor::empty(DType::bf16, {m, n}, Space::cuda, stream);
  poison(y, stream);
  cuda::linear_fp8_native<128, 128>(xqd.view<const fp8_e4m3, 2>(), xsv, wqd.view<const fp8_e4m3, 2>(),
                                    wsd.view<const float, 2>(), y.view<bf16, 2>(), stream, GemmBackend::own_wgmma);
  Tensor yh = y.to(Space::host, stream);
  const Compare r = compare<bf16>(yh.view<const bf16, 2>(), refv.as_const());
  INFO("own_wgmma M=", m, " N=", n, " K=", k, " xs ", mn_major ? "MN-major" : "row-major", ": ", r.str());
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= kTol);
  CHECK(r.max_rel <= kTolMax);
}

}  // namespace

TEST_CASE("linear_fp8 own_wgmma: odd sizes, ragged N, both scale layouts") {
  if (!hopper()) {
    MESSAGE("own_wgmma needs an sm_90 GPU; skipped");
    return;
  }
  Stream stream;
  // one tile first: the smallest case shows a descriptor or barrier error most plainly
  run(64, 128, 128, false, stream);
  for (int64_t m : {1, 2, 7, 127, 128, 129, 300}) {
    run(m, 576, 1024, m % 2 == 0, stream);
    run(m, 7, 128, false, stream);
    run(m, 129, 256, true, stream);
    run(m, 1000, 1152, m % 2 == 1, stream);  // more K blocks than ring slots
  }
  // Many tiles per persistent block, a ragged last M tile (700 = 5 x 128 + 60) and N tile.
  run(700, 1300, 640, true, stream);
}

TEST_CASE("linear_fp8 own_wgmma: R1 shapes") {
  if (!hopper()) return;
  Stream stream;
  const int64_t nks[][2] = {{2112, 7168}, {576, 7168}, {24576, 1536}, {32768, 512},
                            {7168, 16384}, {4096, 7168}, {7168, 2048}, {18432, 7168}};
  for (const auto& nk : nks) run(3, nk[0], nk[1], true, stream);
  run(512, 576, 7168, true, stream);
  run(256, 2048, 2048, false, stream);
}

