// SPDX-License-Identifier: MIT
// r1::cuda::argmax (greedy) and sample (R1's recommended temperature 0.6, top-p 0.95) over R1's
// vocabulary (129280), f32 logits, batches of 1, 64 and 256 rows. Bytes are one read of the logits
// (the sampler reads each row about ten times, from L2 after the first pass).
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/sampling.hpp"

namespace {

using namespace r1;

void add(int64_t b, bool greedy) {
  const int64_t vocab = 129280;
  const std::string shape = "B" + std::to_string(b) + " V" + std::to_string(vocab);
  const std::string kernel = greedy ? "argmax" : "sample_t0.6_p0.95";
  bench::add_row(kernel + "/own/" + shape, [=](benchmark::State& st) {
    Tensor logits = bench::random_device(DType::f32, {b, vocab}, 1, 8.0f);  // [B, vocab]
    Tensor out = Tensor::empty(DType::i32, {b}, Space::cuda);                // [B]
    ref::SamplingParams p;
    p.temperature = greedy ? 0.0f : 0.6f;
    p.top_p = greedy ? 1.0f : 0.95f;
    uint64_t step = 0;
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::sample<float>(logits.view<const float, 2>(), p, 1234, step++, out.view<int32_t, 1>(), tm.stream());
    });
    bench::Work work;
    work.bytes = 4.0 * double(b * vocab) + 4.0 * double(b);
    bench::report(st, s, work, {kernel, shape, "own", std::string(greedy ? "torch sampling greedy B" : "torch sampling top-p B") + std::to_string(b)});
  });
}

void register_rows() {
  for (bool greedy : {true, false})
    for (int64_t b : {1, 64, 256}) add(b, greedy);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
