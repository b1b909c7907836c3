// SPDX-License-Identifier: MIT
// DeepSeek FP8 block-scaled GEMM (r1::cuda::linear_fp8_native<128, 128>) on R1's FP8 projection
// shapes, each row on both backends (and r1's sm_80 instruction path on two shapes): decode
// (M = 1, 8, 64, 128, 256) and prefill (M = 4096), plus the peers' shapes. Activation scales are
// stored MN-major (the layout act_quant emits for both backends). The GEMM alone is timed; the
// activation quantization is act_quant_bench's.
// Built twice: linear_fp8_wgmma_bench (R1_BENCH_WGMMA=1) times only r1's Hopper kernel
// (own_wgmma) on the same rows, in a process of its own, so that a fault there cannot cost the
// other rows; bench/report.py joins its rows to these by kernel and shape.
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/linear_fp8.hpp"

namespace {

using namespace r1;
using cuda::GemmBackend;

std::string shape_name(int64_t m, int64_t n, int64_t k) {
  return "m" + std::to_string(m) + " n" + std::to_string(n) + " k" + std::to_string(k);
}

std::string peer_of(int64_t m, int64_t n, int64_t k) {
  const int64_t peers[][3] = {{8192, 8192, 8192}, {4096, 7168, 2048}, {4096, 2048, 7168}, {128, 7168, 2048}};
  for (const auto& p : peers) {
    if (p[0] == m && p[1] == n && p[2] == k) return "fp8 blockwise scaled_mm " + shape_name(m, n, k);
  }
  return "";
}

void add(int64_t m, int64_t n, int64_t k, GemmBackend backend) {
  const std::string shape = shape_name(m, n, k);
  bench::add_row(std::string("linear_fp8/") + cuda::gemm_backend_name(backend) + "/" + shape, [=](benchmark::State& st) {
    const int64_t nb = (n + 127) / 128, kb = k / 128;
    Tensor xq = bench::random_device(DType::f8_e4m3, {m, k}, 1);
    Tensor xs = bench::random_scales_device({kb, m}, 2);  // MN-major storage
    Tensor wq = bench::random_device(DType::f8_e4m3, {n, k}, 3);
    Tensor ws = bench::random_scales_device({nb, kb}, 4);
    Tensor y = Tensor::empty(DType::bf16, {m, n}, Space::cuda);
    const View<float, 2> xsv = cuda::mn_major_scales(xs.data_as<float>(), m, kb);
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xsv, wq.view<const fp8_e4m3, 2>(),
                                        ws.view<const float, 2>(), y.view<bf16, 2>(), tm.stream(), backend);
    });
    bench::Work work;
    work.bytes = double(m * k + n * k) + 4.0 * double(m * kb + nb * kb) + 2.0 * double(m * n);
    work.flops = 2.0 * double(m) * double(n) * double(k);
    work.fp8 = true;
    bench::report(st, s, work, {"linear_fp8", shape, cuda::gemm_backend_name(backend), peer_of(m, n, k)});
  });
}

void register_rows() {
  // (N, K): q_a + kv_a, q_b, kv_b, o_proj, expert gate + up, expert down, dense gate
  const int64_t nks[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384},
                            {4096, 7168}, {7168, 2048},  {18432, 7168}};
  const int64_t ms[] = {1, 8, 64, 128, 256, 4096};
#if R1_BENCH_WGMMA
  for (const auto& nk : nks) {
    for (int64_t m : ms) add(m, nk[0], nk[1], GemmBackend::own_wgmma);
  }
  add(4096, 2048, 7168, GemmBackend::own_wgmma);
  add(8192, 8192, 8192, GemmBackend::own_wgmma);
#else
  for (const auto& nk : nks) {
    for (int64_t m : ms) {
      for (GemmBackend b : {GemmBackend::own, GemmBackend::cublaslt}) add(m, nk[0], nk[1], b);
    }
  }
  for (GemmBackend b : {GemmBackend::own, GemmBackend::cublaslt}) {
    add(4096, 2048, 7168, b);
    add(8192, 8192, 8192, b);
  }
  // r1's portable path (what an sm_80 GPU runs) on two shapes, for reference
  for (int64_t m : {int64_t(1), int64_t(4096)}) {
    add(m, 7168, 2048, GemmBackend::own_sm80);
    add(m, 4096, 7168, GemmBackend::own_sm80);
  }
#endif
}

}  // namespace

R1_BENCH_MAIN(register_rows)
