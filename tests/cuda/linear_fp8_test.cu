// SPDX-License-Identifier: MIT
// r1::cuda::linear_fp8_native (DeepSeek FP8 block-scaled GEMM) against ref::linear_fp8_native in
// fp64 on the same e4m3 codes and scales: r1's kernel (native e4m3 mma and the sm_80 f16 path),
// cuBLASLt's block scaling, both activation-scale layouts, ragged N (R1's 576-row kv_a), R1's real
// shapes on a few tokens, and the argument errors.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/cublaslt.hpp"
#include "r1/kernels/cuda/linear_fp8.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"

using namespace r1;
using namespace r1::gpu_test;
using cuda::GemmBackend;

namespace {

// bf16 output of an fp32-accumulated sum: one bf16 rounding per element dominates.
constexpr double kTol = 4e-3, kTolMax = 8e-3;

/// Host operands of one FP8 GEMM: quantized activations (ref::act_quant), random e4m3 weight codes
/// and positive block scales.
struct Fp8Operands {
  Tensor xq, xs, wq, ws;  // [M, K] e4m3, [M, K/128] f32 row-major, [N, K] e4m3, [ceil(N/128), K/128] f32
  Fp8Operands(int64_t m, int64_t n, int64_t k, uint64_t seed) {
    Tensor x = random_uniform<float>({m, k}, seed);
    float* px = x.data_as<float>();
    for (int64_t r = 0; r < m; ++r)  // rows of very different magnitude: scales differ by 2^6
      for (int64_t j = 0; j < k; ++j) px[r * k + j] *= std::exp2(float(r % 7) - 3.0f);
    xq = Tensor::empty(DType::f8_e4m3, {m, k});
    xs = Tensor::empty(DType::f32, {m, k / 128});
    ref::act_quant<128>(x.view<const float, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
    wq = random_e4m3({n, k}, seed + 1);
    ws = random_scales({(n + 127) / 128, k / 128}, seed + 2, -12.0f, -6.0f);
  }
};

/// The activation scales on the device, row-major [M, K/128] or MN-major [K/128, M].
struct DeviceScales {
  Tensor t;
  View<float, 2> v;
  DeviceScales(const Tensor& xs_host, bool mn_major, stream_t stream) {
    const int64_t m = xs_host.size(0), g = xs_host.size(1);
    if (!mn_major) {
      t = xs_host.to(Space::cuda, stream);
      v = t.view<float, 2>();
      return;
    }
    Tensor tr = Tensor::empty(DType::f32, {g, m});
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < g; ++j) tr.data_as<float>()[j * m + r] = xs_host.data_as<float>()[r * g + j];
    t = tr.to(Space::cuda, stream);
    v = cuda::mn_major_scales(t.data_as<float>(), m, g);
  }
};

/// cuBLASLt may have no FP8 block-scaled algorithm for some shapes (e.g. a few rows); those cases
/// are reported, not failed, unless `required`: wrong results always fail.
enum class Lt { required, optional };

void run_fp8(int64_t m, int64_t n, int64_t k, GemmBackend backend, bool mn_major, Stream& stream,
             int64_t y_pad = 0, Lt lt = Lt::required) {
  if (backend == GemmBackend::cublaslt && skip_cublaslt("linear_fp8")) return;
  const Fp8Operands h(m, n, k, case_seed(uint64_t(m), uint64_t(n), uint64_t(k), 17));
  std::vector<double> ref(size_t(m * n));
  auto refv = make_view<2>(ref.data(), {m, n});  // [M, N]
  ref::linear_fp8_native<128, 128>(h.xq.view<const fp8_e4m3, 2>(), h.xs.view<const float, 2>(),
                                   h.wq.view<const fp8_e4m3, 2>(), h.ws.view<const float, 2>(), refv);
  Tensor xq = h.xq.to(Space::cuda, stream), wq = h.wq.to(Space::cuda, stream), ws = h.ws.to(Space::cuda, stream);
  DeviceScales xs(h.xs, mn_major, stream);
  Tensor y = Tensor::empty(DType::bf16, {m, n + y_pad}, Space::cuda, stream);
  poison(y, stream);
  if (backend == GemmBackend::cublaslt && lt == Lt::optional) {
    if (!cuda::cublaslt::try_linear_fp8_block(xq.view<const fp8_e4m3, 2>(), xs.v, wq.view<const fp8_e4m3, 2>(),
                                              ws.view<const float, 2>(), y.view<bf16, 2>().slice(1, 0, n), stream)) {
      MESSAGE("cuBLASLt has no FP8 block-scaled algorithm for M=", m, " N=", n, " K=", k, " (not a failure)");
      return;
    }
  } else {
    cuda::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xs.v, wq.view<const fp8_e4m3, 2>(),
                                      ws.view<const float, 2>(), y.view<bf16, 2>().slice(1, 0, n), stream, backend);
  }
  Tensor yh = y.to(Space::host, stream);
  const Compare r = compare<bf16>(yh.view<const bf16, 2>().slice(1, 0, n), refv.as_const());
  INFO("M=", m, " N=", n, " K=", k, " backend=", cuda::gemm_backend_name(backend), " xs ",
       mn_major ? "MN-major" : "row-major", ": ", r.str());
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= kTol);
  CHECK(r.max_rel <= kTolMax);
  CHECK(touched_padding(yh, n) == 0);
}

}  // namespace

TEST_CASE("linear_fp8: r1's kernel at odd sizes, ragged N, both scale layouts") {
  Stream stream;
  const int64_t ms[] = {1, 2, 7, 127, 128, 129, 300};
  const int64_t nks[][2] = {{576, 1024}, {7, 128}, {129, 256}, {300, 384}, {1000, 1152}};
  for (int64_t m : ms) {
    for (const auto& nk : nks) {
      run_fp8(m, nk[0], nk[1], GemmBackend::own, (m + nk[0]) % 2 == 0, stream);
    }
  }
  run_fp8(5, 576, 1024, GemmBackend::own, false, stream, 3);  // padded, odd output row stride
}

TEST_CASE("linear_fp8: own from kOwnWgmmaMinRows rows (the Hopper kernel where sm_90a code runs)") {
  Stream stream;
  const int64_t m0 = cuda::kOwnWgmmaMinRows;
  run_fp8(m0 - 1, 576, 1024, GemmBackend::own, true, stream);  // the mma.sync kernel
  run_fp8(m0, 576, 1024, GemmBackend::own, false, stream);
  run_fp8(m0 + 188, 1000, 1152, GemmBackend::own, true, stream);  // ragged M and N tiles
  run_fp8(m0 + 1, 576, 1024, GemmBackend::own, false, stream, 3);  // padded, odd output row stride
}

TEST_CASE("linear_fp8: the sm_80 path (e4m3 decoded to f16 in registers)") {
  Stream stream;
  for (int64_t m : {1, 7, 129, 300}) {
    run_fp8(m, 576, 1024, GemmBackend::own_sm80, m % 2 == 0, stream);
    run_fp8(m, 129, 256, GemmBackend::own_sm80, m % 2 == 1, stream);
  }
}

TEST_CASE("linear_fp8: cuBLASLt block scaling (Hopper)") {
  Stream stream;
  int major = 0;
  R1_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  if (major != 9) {
    MESSAGE("cuBLASLt's FP8 block scaling runs on sm_90 only; skipped on this GPU");
    return;
  }
  // Shapes whose every dimension is a multiple of 16 must run; the others are tried and reported.
  for (int64_t m : {1, 2, 7, 127, 128, 129, 300}) {
    const Lt lt = m % 16 == 0 ? Lt::required : Lt::optional;
    run_fp8(m, 576, 1024, GemmBackend::cublaslt, true, stream, 0, lt);
    run_fp8(m, 1024, 512, GemmBackend::cublaslt, true, stream, 0, lt);
  }
}

TEST_CASE("linear_fp8: cuBLASLt's scale layouts (diagnostic: which reading of the scale buffers matches)") {
  int major = 0;
  R1_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  if (major != 9 || skip_cublaslt("scale layouts")) return;
  Stream stream;
  // M = N = K = 512: the weight-scale grid is square (4 x 4), so it can be read row-major or
  // transposed; the activation-scale buffer (512 x 4) can be read MN-major or row-major. Distinct
  // random scales make the four readings give four different products; the one cuBLASLt computed is
  // reported, and r1's (MN-major activations, row-major weights) is required.
  const int64_t m = 512, n = 512, k = 512, g = k / 128, nb = n / 128;
  const uint64_t seed = case_seed(77);
  Tensor xq = random_e4m3({m, k}, seed), wq = random_e4m3({n, k}, seed + 1);
  Tensor xs_buf = random_scales({g * m}, seed + 2, -8.0f, -2.0f);   // what cuBLASLt is given
  Tensor ws_buf = random_scales({nb * g}, seed + 3, -8.0f, -2.0f);
  const float* xb = xs_buf.data_as<float>();
  const float* wb = ws_buf.data_as<float>();
  // the readings: activation scale (r, b) at b * M + r (MN-major) or r * G + b (row-major);
  // weight scale (nb, b) at nb * G + b (row-major) or b * NB + nb (transposed)
  auto ref_for = [&](bool xs_mn, bool ws_rm) {
    Tensor xs = Tensor::empty(DType::f32, {m, g}), ws = Tensor::empty(DType::f32, {nb, g});
    for (int64_t r = 0; r < m; ++r)
      for (int64_t b = 0; b < g; ++b) xs.data_as<float>()[r * g + b] = xb[xs_mn ? b * m + r : r * g + b];
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t b = 0; b < g; ++b) ws.data_as<float>()[i * g + b] = wb[ws_rm ? i * g + b : b * nb + i];
    std::vector<double> ref(size_t(m * n));
    ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xs.view<const float, 2>(),
                                     wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(),
                                     make_view<2>(ref.data(), {m, n}));
    return ref;
  };
  Tensor xqd = xq.to(Space::cuda, stream), wqd = wq.to(Space::cuda, stream);
  Tensor xsd = xs_buf.to(Space::cuda, stream), wsd = ws_buf.to(Space::cuda, stream);
  Tensor y = Tensor::empty(DType::bf16, {m, n}, Space::cuda, stream);
  poison(y, stream);
  cuda::cublaslt::linear_fp8_block(xqd.view<const fp8_e4m3, 2>(), cuda::mn_major_scales(xsd.data_as<float>(), m, g),
                                   wqd.view<const fp8_e4m3, 2>(), make_view<2>(wsd.data_as<const float>(), {nb, g}, Space::cuda),
                                   y.view<bf16, 2>(), stream);
  Tensor yh = y.to(Space::host, stream);
  const char* names[4] = {"xs MN-major, ws row-major (r1's assumption)", "xs MN-major, ws transposed",
                          "xs row-major, ws row-major", "xs row-major, ws transposed"};
  double err[4];
  for (int i = 0; i < 4; ++i) {
    const std::vector<double> ref = ref_for(i < 2, i % 2 == 0);
    err[i] = compare<bf16>(yh.view<const bf16, 2>(), make_view<2>(ref.data(), {m, n}).as_const()).rel_norm;
    MESSAGE("cuBLASLt FP8 output vs reference reading '", names[i], "': rel_norm ", err[i]);
  }
  CHECK(err[0] <= kTol);
}

TEST_CASE("linear_fp8: R1 shapes on a few tokens") {
  Stream stream;
  // q_a + kv_a, kv_a alone (ragged 576), q_b, kv_b, o_proj, expert gate+up, expert down, dense gate
  const int64_t nks[][2] = {{2112, 7168}, {576, 7168}, {24576, 1536}, {32768, 512},
                            {7168, 16384}, {4096, 7168}, {7168, 2048}, {18432, 7168}};
  int major = 0;
  R1_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  for (const auto& nk : nks) {
    run_fp8(2, nk[0], nk[1], GemmBackend::own, false, stream);
    run_fp8(3, nk[0], nk[1], GemmBackend::own, true, stream);
    if (major == 9) {
      run_fp8(3, nk[0], nk[1], GemmBackend::cublaslt, true, stream, 0, Lt::optional);
      run_fp8(16, nk[0], nk[1], GemmBackend::cublaslt, true, stream, 0, Lt::required);
    }
  }
  run_fp8(200, 2112, 7168, GemmBackend::automatic, true, stream);
}

TEST_CASE("linear_fp8: bad arguments are r1::Errors") {
  Stream stream;
  const int64_t m = 4, n = 256, k = 512;
  Tensor xq = Tensor::empty(DType::f8_e4m3, {m, k}, Space::cuda, stream);
  Tensor xs = Tensor::empty(DType::f32, {m, k / 128}, Space::cuda, stream);
  Tensor wq = Tensor::empty(DType::f8_e4m3, {n, k}, Space::cuda, stream);
  Tensor ws = Tensor::empty(DType::f32, {n / 128, k / 128}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::bf16, {m, n}, Space::cuda, stream);
  auto call = [&](View<const fp8_e4m3, 2> a, View<const float, 2> as, View<const fp8_e4m3, 2> b,
                  View<const float, 2> bs, View<bf16, 2> out, GemmBackend be) {
    cuda::linear_fp8_native<128, 128>(a, as, b, bs, out, stream, be);
  };
  const auto xqv = xq.view<const fp8_e4m3, 2>();
  const auto xsv = xs.view<const float, 2>();
  const auto wqv = wq.view<const fp8_e4m3, 2>();
  const auto wsv = ws.view<const float, 2>();
  const auto yv = y.view<bf16, 2>();
  for (GemmBackend be : {GemmBackend::own, GemmBackend::cublaslt}) {
    // K not a multiple of 128
    Tensor xq2 = Tensor::empty(DType::f8_e4m3, {m, 320}, Space::cuda, stream);
    Tensor wq2 = Tensor::empty(DType::f8_e4m3, {n, 320}, Space::cuda, stream);
    Tensor xs2 = Tensor::empty(DType::f32, {m, 2}, Space::cuda, stream);
    Tensor ws2 = Tensor::empty(DType::f32, {2, 3}, Space::cuda, stream);
    CHECK_THROWS_WITH(call(xq2.view<const fp8_e4m3, 2>(), xs2.view<const float, 2>(), wq2.view<const fp8_e4m3, 2>(),
                           ws2.view<const float, 2>(), yv, be),
                      doctest::Contains("not a multiple of the 128"));
    // host operand
    Tensor xqh = Tensor::empty(DType::f8_e4m3, {m, k});
    CHECK_THROWS_WITH(call(xqh.view<const fp8_e4m3, 2>(), xsv, wqv, wsv, yv, be), doctest::Contains("cuda memory"));
    // scale shapes
    CHECK_THROWS_WITH(call(xqv, xsv.slice(1, 0, 3), wqv, wsv, yv, be), doctest::Contains("x scale has 3 groups"));
    CHECK_THROWS_WITH(call(xqv, xsv, wqv, wsv.slice(0, 0, 1), yv, be), doctest::Contains("weight_scale_inv has shape"));
    // output shape
    CHECK_THROWS_WITH(call(xqv, xsv, wqv, wsv, yv.slice(1, 0, 100), be), doctest::Contains("y has 100 columns"));
  }
  int major = 0;
  R1_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  // cuBLASLt takes no strides for scales: row-major activation scales are refused (m > 1, K/128 > 1)
  CHECK_THROWS_WITH(call(xqv, xsv, wqv, wsv, yv, GemmBackend::cublaslt),
                    doctest::Contains(major == 9 ? "MN-major" : "Hopper"));
  // unaligned weight rows
  Tensor wbuf = Tensor::empty(DType::f8_e4m3, {n * k + 8}, Space::cuda, stream);
  View<const fp8_e4m3, 2> wodd;
  wodd.data = wbuf.data_as<fp8_e4m3>() + 1;
  wodd.shape[0] = n;
  wodd.shape[1] = k;
  wodd.stride[0] = k;
  wodd.stride[1] = 1;
  wodd.space = Space::cuda;
  CHECK_THROWS_WITH(call(xqv, xsv, wodd, wsv, yv, GemmBackend::own), doctest::Contains("16-byte boundaries"));
}
