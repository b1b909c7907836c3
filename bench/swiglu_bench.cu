// SPDX-License-Identifier: MIT
// r1::cuda::swiglu (bf16 out) and swiglu_quant_fp8 (e4m3 + MN-major scales, the FP8 down
// projection's input) on R1's FFN widths: moe_inter 2048 (expert rows, 8 .. 32768 routed tokens)
// and the dense layers' 18432. gate and up are the halves of one [R, 2I] GEMM output.
// Memory-bound: gate and up read once, the output written once.
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/swiglu.hpp"

namespace {

using namespace r1;

void add(int64_t r, int64_t i) {
  const std::string shape = "R" + std::to_string(r) + " I" + std::to_string(i);
  bench::add_row("swiglu/own/" + shape, [=](benchmark::State& st) {
    Tensor h = bench::random_device(DType::bf16, {r, 2 * i}, 1, 4.0f);  // [R, 2I] gate | up
    Tensor y = Tensor::empty(DType::bf16, {r, i}, Space::cuda);          // [R, I]
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::swiglu<bf16, bf16, bf16>(h.view<const bf16, 2>().slice(1, 0, i), h.view<const bf16, 2>().slice(1, i, 2 * i),
                                     y.view<bf16, 2>(), tm.stream());
    });
    bench::Work work;
    work.bytes = 3.0 * 2.0 * double(r * i);
    work.flops = 5.0 * double(r * i);
    bench::report(st, s, work, {"swiglu", shape, "own", "torch swiglu R" + std::to_string(r) + " i" + std::to_string(i)});
  });
  bench::add_row("swiglu_quant_fp8/own/" + shape, [=](benchmark::State& st) {
    Tensor h = bench::random_device(DType::bf16, {r, 2 * i}, 1, 4.0f);  // [R, 2I] gate | up
    Tensor q = Tensor::empty(DType::f8_e4m3, {r, i}, Space::cuda);       // [R, I]
    Tensor sc = Tensor::empty(DType::f32, {i / 128, r}, Space::cuda);   // [I / 128, R]
    const View<float, 2> sv = cuda::mn_major_scales(sc.data_as<float>(), r, i / 128);
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::swiglu_quant_fp8<128, bf16, bf16>(h.view<const bf16, 2>().slice(1, 0, i),
                                              h.view<const bf16, 2>().slice(1, i, 2 * i), q.view<fp8_e4m3, 2>(), sv,
                                              tm.stream());
    });
    bench::Work work;
    work.bytes = 2.0 * 2.0 * double(r * i) + double(r * i) + 4.0 * double(r * (i / 128));
    work.flops = 7.0 * double(r * i);
    bench::report(st, s, work, {"swiglu_quant_fp8", shape, "own", ""});
  });
}

void register_rows() {
  for (int64_t r : {8, 256, 4096, 32768}) add(r, 2048);
  for (int64_t r : {8, 256, 4096}) add(r, 18432);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
