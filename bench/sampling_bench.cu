// SPDX-License-Identifier: MIT
// r1::cuda::argmax (greedy) and sample (R1's recommended temperature 0.6, top-p 0.95) over R1's
// vocabulary (129280), f32 logits, batches of 1, 64 and 256 rows, and at batch 1 top-k 20 with
// top-p 0.9 (all three descents: the longest launch sequence, no peer). Bytes are one read of the
// logits (a draw reads each row 5 to 9 times, from L2 after the first pass; argmax once). Small
// batches split each row over many blocks (kernels/cuda/sampling.cuh).
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/sampling.hpp"

namespace {

using namespace r1;

/// A row: greedy, or temperature / top_k / top_p sampling; `peer` names its PyTorch row ("" for none).
void add(int64_t b, const std::string& kernel, float temperature, int top_k, float top_p, const std::string& peer) {
  const int64_t vocab = 129280;
  const std::string shape = "B" + std::to_string(b) + " V" + std::to_string(vocab);
  bench::add_row(kernel + "/own/" + shape, [=](benchmark::State& st) {
    Tensor logits = bench::random_device(DType::f32, {b, vocab}, 1, 8.0f);  // [B, vocab]
    Tensor out = Tensor::empty(DType::i32, {b}, Space::cuda);                // [B]
    ref::SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    uint64_t step = 0;
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::sample<float>(logits.view<const float, 2>(), p, 1234, step++, out.view<int32_t, 1>(), tm.stream());
    });
    bench::Work work;
    work.bytes = 4.0 * double(b * vocab) + 4.0 * double(b);
    bench::report(st, s, work, {kernel, shape, "own", peer});
  });
}

void register_rows() {
  for (int64_t b : {1, 64, 256}) add(b, "argmax", 0.0f, 0, 1.0f, "torch sampling greedy B" + std::to_string(b));
  for (int64_t b : {1, 64, 256}) {
    add(b, "sample_t0.6_p0.95", 0.6f, 0, 0.95f, "torch sampling top-p B" + std::to_string(b));
  }
  add(1, "sample_t0.7_k20_p0.9", 0.7f, 20, 0.9f, "");
}

}  // namespace

R1_BENCH_MAIN(register_rows)
