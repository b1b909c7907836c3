// SPDX-License-Identifier: MIT
// Activation quantization (r1::cuda::act_quant<128>, bf16 in, e4m3 + MN-major f32 scales out) on
// the inputs of R1's FP8 linears, decode and prefill token counts. Memory-bound: bytes are the bf16
// read plus the e4m3 and scale writes.
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/act_quant.hpp"

namespace {

using namespace r1;

void add(int64_t m, int64_t k) {
  const std::string shape = "m" + std::to_string(m) + " k" + std::to_string(k);
  bench::add_row("act_quant/own/" + shape, [=](benchmark::State& st) {
    Tensor x = bench::random_device(DType::bf16, {m, k}, 1, 4.0f);
    Tensor xq = Tensor::empty(DType::f8_e4m3, {m, k}, Space::cuda);
    Tensor xs = Tensor::empty(DType::f32, {k / 128, m}, Space::cuda);
    const View<float, 2> xsv = cuda::mn_major_scales(xs.data_as<float>(), m, k / 128);
    bench::Timer& tm = bench::timer();
    const double s = tm.median(
        [&] { cuda::act_quant<128, bf16>(x.view<const bf16, 2>(), xq.view<fp8_e4m3, 2>(), xsv, tm.stream()); });
    bench::Work work;
    work.bytes = 2.0 * double(m * k) + double(m * k) + 4.0 * double(m * (k / 128));
    bench::report(st, s, work, {"act_quant", shape, "own", "torch act_quant " + shape});
  });
}

void register_rows() {
  for (int64_t k : {7168, 16384, 2048})
    for (int64_t m : {1, 128, 4096}) add(m, k);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
