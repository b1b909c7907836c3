// SPDX-License-Identifier: MIT
// r1::cuda::linear (bf16 GEMM, bf16 / f32 out) against ref::linear in fp64 on the same bf16
// inputs: every backend, odd sizes, strided and unaligned operands, split-K decode shapes, R1's
// real projection shapes on a few tokens, CUDA-graph replay, and the argument errors.
#include <doctest/doctest.h>

#include <array>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/linear.hpp"
#include "r1/kernels/ref/linear.hpp"

using namespace r1;
using namespace r1::gpu_test;
using cuda::GemmBackend;

namespace {

// fp32-output error budget: fp32 accumulation in another order (and cuBLASLt's split-K) only.
constexpr double kTolF32 = 1e-4;
// bf16 output: one rounding of each element (2^-9 relative) on top.
constexpr double kTolBf16 = 4e-3, kTolBf16Max = 8e-3;

struct Case {
  int64_t m, n, k;
  int64_t x_pad = 0, y_pad = 0;  // extra elements per row (strided operands)
  int64_t x_offset = 0;          // x starts this many elements into its buffer (unaligned rows)
};

/// Runs one case on one backend and checks it against the fp64 reference.
template <class TY>
void run_case(const Case& c, GemmBackend backend, Stream& stream) {
  if (backend == GemmBackend::cublaslt && skip_cublaslt("linear")) return;
  const uint64_t seed = case_seed(uint64_t(c.m), uint64_t(c.n), uint64_t(c.k), uint64_t(backend));
  const int64_t ldx = c.k + c.x_pad, ldy = c.n + c.y_pad;
  // x lives in a [m, ldx] buffer with x_offset leading elements.
  Tensor xbuf = random_uniform<bf16>({c.m * ldx + c.x_offset}, seed);
  Tensor w = random_uniform<bf16>({c.n, c.k}, seed + 1, 0.5f);
  View<const bf16, 2> xh;
  xh.data = xbuf.data_as<bf16>() + c.x_offset;
  xh.shape[0] = c.m;
  xh.shape[1] = c.k;
  xh.stride[0] = ldx;
  xh.stride[1] = 1;
  std::vector<double> ref(size_t(c.m * c.n));
  auto refv = make_view<2>(ref.data(), {c.m, c.n});  // [M, N]
  ref::linear(xh, w.view<const bf16, 2>(), refv);

  Tensor xd = xbuf.to(Space::cuda, stream), wd = w.to(Space::cuda, stream);
  Tensor yd = Tensor::empty(dtype_v<TY>, {c.m, ldy}, Space::cuda, stream);
  poison(yd, stream);
  View<const bf16, 2> xv = xh;
  xv.data = xd.data_as<bf16>() + c.x_offset;
  xv.space = Space::cuda;
  View<TY, 2> yv = yd.view<TY, 2>().slice(1, 0, c.n);  // [M, N], row stride ldy
  cuda::linear<TY>(xv, wd.view<const bf16, 2>(), yv, stream, backend);
  Tensor yh = yd.to(Space::host, stream);
  const Compare r = compare<TY>(yh.view<const TY, 2>().slice(1, 0, c.n), refv.as_const());
  const bool f32 = std::is_same_v<TY, float>;
  INFO("M=", c.m, " N=", c.n, " K=", c.k, " x_pad=", c.x_pad, " y_pad=", c.y_pad, " x_offset=", c.x_offset,
       " backend=", cuda::gemm_backend_name(backend), " out=", f32 ? "f32" : "bf16", ": ", r.str());
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= (f32 ? kTolF32 : kTolBf16));
  CHECK(r.max_rel <= (f32 ? kTolF32 * 10 : kTolBf16Max));
  CHECK(touched_padding(yh, c.n) == 0);
}

const GemmBackend kBackends[] = {GemmBackend::own, GemmBackend::cublaslt};

}  // namespace

TEST_CASE("linear: odd sizes, both backends, bf16 and f32 out") {
  Stream stream;
  const int64_t ms[] = {1, 2, 7, 127, 128, 129, 300};
  // (N, K): tiny, K tail inside a stage, K % 8 != 0 (element loader), ragged N, several stages
  const int64_t nks[][2] = {{7, 9}, {129, 64}, {33, 136}, {257, 300}, {576, 1024}, {130, 7}};
  for (GemmBackend b : kBackends) {
    for (int64_t m : ms) {
      for (const auto& nk : nks) {
        run_case<bf16>({m, nk[0], nk[1]}, b, stream);
        run_case<float>({m, nk[0], nk[1]}, b, stream);
      }
    }
  }
}

TEST_CASE("linear: own_wgmma (the Hopper grouped kernel over one expert), bf16 out") {
  // On sm_90a machine code with 16-byte rows the TMA + wgmma kernel; elsewhere (odd K, rows off 16
  // bytes, other GPUs) the mma.sync kernel. f32 output is an error on this backend.
  Stream stream;
  for (int64_t m : {1, 7, 127, 128, 129, 300}) {
    for (const auto& nk : {std::array<int64_t, 2>{7, 64}, {129, 64}, {257, 300}, {576, 1024}, {130, 7}}) {
      run_case<bf16>({m, nk[0], nk[1]}, GemmBackend::own_wgmma, stream);
    }
  }
  run_case<bf16>({129, 200, 256, 8, 6}, GemmBackend::own_wgmma, stream);  // padded rows
  run_case<bf16>({33, 200, 256, 3, 1}, GemmBackend::own_wgmma, stream);   // odd row strides
  run_case<bf16>({129, 129, 512, 0, 3, 1}, GemmBackend::own_wgmma, stream);  // x one element off 16 bytes
  // Enough 128 x 256 tiles to fill an H100 or H200 (132 SMs): the 256-column tile, with ragged
  // M (4100 = 32 x 128 + 4), ragged N (1300 = 5 x 256 + 20) and a K tail (264 = 4 x 64 + 8).
  run_case<bf16>({4100, 1300, 264}, GemmBackend::own_wgmma, stream);
  run_case<bf16>({4224, 1032, 200, 8, 6}, GemmBackend::own_wgmma, stream);  // padded rows, wide tile
  Tensor x = Tensor::zeros(DType::bf16, {4, 64}, Space::cuda, stream), w = Tensor::zeros(DType::bf16, {8, 64}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::f32, {4, 8}, Space::cuda, stream);
  CHECK_THROWS_WITH(cuda::linear<float>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), y.view<float, 2>(), stream,
                                        GemmBackend::own_wgmma),
                    doctest::Contains("writes bf16 output"));
}

TEST_CASE("linear: own from kOwnWgmmaMinRows rows (bf16 out: the Hopper kernel where sm_90a code runs)") {
  Stream stream;
  const int64_t m0 = cuda::kOwnWgmmaMinRows;
  run_case<bf16>({m0 - 1, 576, 1024}, GemmBackend::own, stream);  // the mma.sync kernel
  run_case<bf16>({m0, 1300, 264}, GemmBackend::own, stream);
  run_case<float>({m0, 1300, 264}, GemmBackend::own, stream);           // f32 out: mma.sync
  run_case<bf16>({m0 + 88, 200, 256, 8, 6}, GemmBackend::own, stream);   // padded rows
  run_case<bf16>({m0 + 1, 129, 512, 0, 3, 1}, GemmBackend::own, stream);  // x off 16 bytes: mma.sync
}

TEST_CASE("linear: strided rows, padded output rows and unaligned x") {
  Stream stream;
  for (GemmBackend b : kBackends) {
    for (int64_t m : {1, 7, 129}) {
      run_case<bf16>({m, 200, 256, 8, 6}, b, stream);   // aligned, padded rows
      run_case<bf16>({m, 200, 256, 3, 1}, b, stream);   // odd row strides: element loader
      run_case<float>({m, 129, 512, 0, 3, 1}, b, stream);  // x one element off 16 bytes
    }
  }
}

TEST_CASE("linear: decode shapes that split K (deterministic reduction)") {
  Stream stream;
  // few output tiles and long K: the own kernel splits K across blocks
  for (int64_t m : {1, 2, 16, 17, 64, 65}) {
    run_case<bf16>({m, 128, 8192}, GemmBackend::own, stream);
    run_case<float>({m, 300, 4096}, GemmBackend::own, stream);
  }
  // the same inputs twice give the same bits
  const int64_t m = 3, n = 256, k = 8192;
  Tensor x = random_uniform<bf16>({m, k}, 11).to(Space::cuda, stream);
  Tensor w = random_uniform<bf16>({n, k}, 12).to(Space::cuda, stream);
  Tensor y1 = Tensor::empty(DType::f32, {m, n}, Space::cuda, stream);
  Tensor y2 = Tensor::empty(DType::f32, {m, n}, Space::cuda, stream);
  cuda::linear<float>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), y1.view<float, 2>(), stream, GemmBackend::own);
  cuda::linear<float>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), y2.view<float, 2>(), stream, GemmBackend::own);
  Tensor h1 = y1.to(Space::host, stream), h2 = y2.to(Space::host, stream);
  CHECK(std::memcmp(h1.data(), h2.data(), h1.nbytes()) == 0);
}

TEST_CASE("linear: R1 projection shapes on a few tokens") {
  Stream stream;
  // q_a + kv_a, q_b, kv_b, o_proj, expert gate+up, expert down, dense gate, shared/dense down
  const int64_t nks[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384},
                            {4096, 7168}, {7168, 2048},  {18432, 7168}, {7168, 18432}};
  for (GemmBackend b : kBackends) {
    for (const auto& nk : nks) run_case<bf16>({3, nk[0], nk[1]}, b, stream);
  }
  // the LM head, f32 logits
  for (GemmBackend b : kBackends) run_case<float>({2, 129280, 7168}, b, stream);
}

TEST_CASE("linear: automatic backend and compile-time policies") {
  Stream stream;
  run_case<bf16>({5, 256, 512}, GemmBackend::automatic, stream);
  run_case<bf16>({300, 256, 512}, GemmBackend::automatic, stream);
  if (skip_cublaslt("linear<gemm::CublasLt>")) return;
  Tensor x = random_uniform<bf16>({4, 64}, 1).to(Space::cuda, stream);
  Tensor w = random_uniform<bf16>({32, 64}, 2).to(Space::cuda, stream);
  Tensor ya = Tensor::empty(DType::f32, {4, 32}, Space::cuda, stream);
  Tensor yb = Tensor::empty(DType::f32, {4, 32}, Space::cuda, stream);
  cuda::linear<cuda::gemm::Own>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), ya.view<float, 2>(), stream);
  cuda::linear<cuda::gemm::CublasLt>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), yb.view<float, 2>(), stream);
  Tensor ha = ya.to(Space::host, stream), hb = yb.to(Space::host, stream);
  double md = 0;
  for (int64_t i = 0; i < 4 * 32; ++i) md = std::max(md, double(std::fabs(ha.data_as<float>()[i] - hb.data_as<float>()[i])));
  CHECK(md < 1e-4);
}

TEST_CASE("linear: K = 0 gives zeros, empty M / N do nothing") {
  Stream stream;
  Tensor x = Tensor::empty(DType::bf16, {3, 0}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::bf16, {5, 0}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::f32, {3, 5}, Space::cuda, stream);
  for (GemmBackend b : kBackends) {
    poison(y, stream);
    cuda::linear<float>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), y.view<float, 2>(), stream, b);
    Tensor h = y.to(Space::host, stream);
    for (int64_t i = 0; i < 15; ++i) CHECK(h.data_as<float>()[i] == 0.0f);
  }
  Tensor x0 = Tensor::empty(DType::bf16, {0, 8}, Space::cuda, stream);
  Tensor y0 = Tensor::empty(DType::f32, {0, 5}, Space::cuda, stream);
  Tensor w8 = Tensor::empty(DType::bf16, {5, 8}, Space::cuda, stream);
  cuda::linear<float>(x0.view<const bf16, 2>(), w8.view<const bf16, 2>(), y0.view<float, 2>(), stream);
}

TEST_CASE("linear: replays in a CUDA graph (split-K scratch from the stream-ordered pool)") {
  Stream stream;
  const int64_t m = 2, n = 256, k = 8192;
  Tensor xh = random_uniform<bf16>({m, k}, 21), wh = random_uniform<bf16>({n, k}, 22);
  Tensor x = xh.to(Space::cuda, stream), w = wh.to(Space::cuda, stream);
  Tensor y = Tensor::empty(DType::f32, {m, n}, Space::cuda, stream);
  for (GemmBackend b : kBackends) {
    if (b == GemmBackend::cublaslt && skip_cublaslt("linear graph replay")) continue;
    cuda::linear<float>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), y.view<float, 2>(), stream, b);  // warm-up
    stream.sync();
    const CapturedGraph graph(
        stream, [&] { cuda::linear<float>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), y.view<float, 2>(), stream, b); },
        cudaStreamCaptureModeGlobal);
    // new inputs, replay: the graph must compute with them
    Tensor xh2 = random_uniform<bf16>({m, k}, 23);
    x.copy_from(xh2, stream);
    poison(y, stream);
    graph.launch(stream);
    Tensor yh = y.to(Space::host, stream);
    std::vector<double> ref(size_t(m * n));
    auto refv = make_view<2>(ref.data(), {m, n});
    ref::linear(xh2.view<const bf16, 2>(), wh.view<const bf16, 2>(), refv);
    const Compare r = compare<float>(yh.view<const float, 2>(), refv.as_const());
    INFO("backend ", cuda::gemm_backend_name(b), ": ", r.str());
    CHECK(r.nonfinite == 0);
    CHECK(r.rel_norm <= kTolF32);
  }
}

TEST_CASE("linear: bad arguments are r1::Errors") {
  Stream stream;
  Tensor x = Tensor::empty(DType::bf16, {4, 64}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::bf16, {32, 64}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::bf16, {4, 32}, Space::cuda, stream);
  Tensor xh = Tensor::empty(DType::bf16, {4, 64});
  Tensor w_bad = Tensor::empty(DType::bf16, {32, 48}, Space::cuda, stream);
  Tensor y_bad = Tensor::empty(DType::bf16, {4, 31}, Space::cuda, stream);
  for (GemmBackend b : kBackends) {
    CHECK_THROWS_WITH(cuda::linear<bf16>(xh.view<const bf16, 2>(), w.view<const bf16, 2>(), y.view<bf16, 2>(), stream, b),
                      doctest::Contains("x must be in cuda memory"));
    CHECK_THROWS_WITH(cuda::linear<bf16>(x.view<const bf16, 2>(), w_bad.view<const bf16, 2>(), y.view<bf16, 2>(), stream, b),
                      doctest::Contains("input features"));
    CHECK_THROWS_WITH(cuda::linear<bf16>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), y_bad.view<bf16, 2>(), stream, b),
                      doctest::Contains("y has 31 columns"));
    View<const bf16, 2> xt = x.view<const bf16, 2>();
    xt.stride[1] = 2;
    xt.shape[1] = 32;
    CHECK_THROWS_WITH(cuda::linear<bf16>(xt, w_bad.view<const bf16, 2>().slice(1, 0, 32), y.view<bf16, 2>(), stream, b),
                      doctest::Contains("unit-stride rows"));
  }
}
