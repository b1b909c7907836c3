// SPDX-License-Identifier: MIT
// r1::cuda::embedding on R1's table ([129280, 7168] bf16) into the f32 residual stream, decode and
// prefill token counts. Memory-bound: the looked-up rows are read and the output written once.
#include <string>
#include <vector>

#include "bench_common.cuh"
#include "r1/kernels/cuda/embedding.hpp"

namespace {

using namespace r1;

void add(int64_t t, bool f32_out) {
  const int64_t vocab = 129280, d = 7168;
  const std::string shape = "T" + std::to_string(t) + " d" + std::to_string(d) + (f32_out ? " f32" : " bf16");
  bench::add_row("embedding/own/" + shape, [=](benchmark::State& st) {
    Tensor table = bench::random_device(DType::bf16, {vocab, d}, 1);  // [vocab, d]
    std::vector<int32_t> ids(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) ids[size_t(i)] = int32_t((i * 7919) % vocab);
    Tensor idd = Tensor::from_vector(ids, {t}).to(Space::cuda);  // [T]
    Tensor out = Tensor::empty(f32_out ? DType::f32 : DType::bf16, {t, d}, Space::cuda);  // [T, d]
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      if (f32_out) {
        cuda::embedding<int32_t, bf16, float>(idd.view<const int32_t, 1>(), table.view<const bf16, 2>(),
                                              out.view<float, 2>(), tm.stream());
      } else {
        cuda::embedding<int32_t, bf16, bf16>(idd.view<const int32_t, 1>(), table.view<const bf16, 2>(),
                                             out.view<bf16, 2>(), tm.stream());
      }
    });
    bench::Work work;
    work.bytes = double(t * d) * (2.0 + (f32_out ? 4.0 : 2.0)) + 4.0 * double(t);
    bench::report(st, s, work, {"embedding", shape, "own", !f32_out && d == 7168 ? "torch embedding T" + std::to_string(t) : ""});
  });
}

void register_rows() {
  for (int64_t t : {1, 4096}) {
    add(t, true);
    add(t, false);
  }
}

}  // namespace

R1_BENCH_MAIN(register_rows)
