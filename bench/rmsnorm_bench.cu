// SPDX-License-Identifier: MIT
// RMSNorm family (r1::cuda::rmsnorm, add_rmsnorm with an f32 residual stream, rmsnorm_quant_fp8)
// on R1's normalized widths (hidden 7168, q_lora 1536, kv_lora 512), decode and prefill token
// counts. Memory-bound: bytes are every input read once and every output written once.
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/rmsnorm.hpp"

namespace {

using namespace r1;

void add(int64_t t, int64_t d) {
  const std::string shape = "T" + std::to_string(t) + " d" + std::to_string(d);
  bench::add_row("rmsnorm/own/" + shape, [=](benchmark::State& st) {
    Tensor x = bench::random_device(DType::bf16, {t, d}, 1, 4.0f);  // [T, d]
    Tensor w = bench::random_device(DType::bf16, {d}, 2);           // [d]
    Tensor y = Tensor::empty(DType::bf16, {t, d}, Space::cuda);    // [T, d]
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::rmsnorm<bf16, bf16, bf16>(x.view<const bf16, 2>(), w.view<const bf16, 1>(), 1e-6f, y.view<bf16, 2>(),
                                      tm.stream());
    });
    bench::Work work;
    work.bytes = 2.0 * double(t * d) * 2 + 2.0 * double(d);
    work.flops = 4.0 * double(t * d);
    bench::report(st, s, work, {"rmsnorm", shape, "own", d == 7168 && (t == 1 || t == 4096) ? "F.rms_norm T" + std::to_string(t) : ""});
  });
  bench::add_row("add_rmsnorm/own/" + shape, [=](benchmark::State& st) {
    Tensor r = bench::random_device(DType::f32, {t, d}, 3, 4.0f);  // [T, d] f32 residual stream
    Tensor x = bench::random_device(DType::bf16, {t, d}, 4, 1.0f);  // [T, d]
    Tensor w = bench::random_device(DType::bf16, {d}, 2);           // [d]
    Tensor y = Tensor::empty(DType::bf16, {t, d}, Space::cuda);    // [T, d]
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::add_rmsnorm<float, bf16, bf16, bf16>(r.view<float, 2>(), x.view<const bf16, 2>(), w.view<const bf16, 1>(),
                                                 1e-6f, y.view<bf16, 2>(), tm.stream());
    });
    bench::Work work;
    work.bytes = double(t * d) * (4 + 2 + 4 + 2) + 2.0 * double(d);  // residual read + write, x, y
    work.flops = 5.0 * double(t * d);
    bench::report(st, s, work, {"add_rmsnorm", shape, "own", d == 7168 ? "torch add_rmsnorm " + shape : ""});
  });
  if (d % 128 == 0) {
    bench::add_row("rmsnorm_quant_fp8/own/" + shape, [=](benchmark::State& st) {
      Tensor x = bench::random_device(DType::f32, {t, d}, 5, 4.0f);  // [T, d] f32 residual stream
      Tensor w = bench::random_device(DType::bf16, {d}, 2);          // [d]
      Tensor q = Tensor::empty(DType::f8_e4m3, {t, d}, Space::cuda);  // [T, d]
      Tensor sc = Tensor::empty(DType::f32, {d / 128, t}, Space::cuda);  // [d / 128, T]
      const View<float, 2> sv = cuda::mn_major_scales(sc.data_as<float>(), t, d / 128);
      bench::Timer& tm = bench::timer();
      const double s = tm.median([&] {
        cuda::rmsnorm_quant_fp8<128, float, bf16>(x.view<const float, 2>(), w.view<const bf16, 1>(), 1e-6f,
                                                  q.view<fp8_e4m3, 2>(), sv, tm.stream());
      });
      bench::Work work;
      work.bytes = double(t * d) * (4 + 1) + 4.0 * double(t * (d / 128)) + 2.0 * double(d);
      work.flops = 6.0 * double(t * d);
      bench::report(st, s, work, {"rmsnorm_quant_fp8", shape, "own", ""});
    });
  }
}

void register_rows() {
  for (int64_t d : {7168, 1536, 512})
    for (int64_t t : {1, 64, 4096}) add(t, d);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
