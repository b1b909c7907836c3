// SPDX-License-Identifier: MIT
// r1::cuda::rope_interleaved on R1's q_pe: the last 64 columns of a [T, 128, 192] bf16 query,
// rotated in place, decode and prefill token counts. Memory-bound: the rotated slice is read and
// written once (the positions and the table are noise).
#include <string>
#include <vector>

#include "bench_common.cuh"
#include "r1/kernels/cuda/rope.hpp"
#include "r1/kernels/ref/rope.hpp"

namespace {

using namespace r1;

void add(int64_t t, int64_t heads) {
  const std::string shape = "T" + std::to_string(t) + " h" + std::to_string(heads) + " d64";
  bench::add_row("rope/own/" + shape, [=](benchmark::State& st) {
    Tensor q = bench::random_device(DType::bf16, {t, heads, 192}, 1, 2.0f);  // [T, heads, 192]
    std::vector<int32_t> pos(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) pos[size_t(i)] = int32_t((i * 40) % 163840);
    Tensor pd = Tensor::from_vector(pos, {t}).to(Space::cuda);  // [T]
    ref::YarnParams y;
    y.factor = 40;
    y.mscale_all_dim = 1;
    const ref::RopeTable table = ref::make_rope_table(64, 10000, &y);
    Tensor fd = Tensor::from_vector(table.inv_freq, {32}).to(Space::cuda);  // [32]
    const View<bf16, 3> q_pe = q.view<bf16, 3>().slice(2, 128, 192);        // [T, heads, 64]
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::rope_interleaved<bf16, int32_t>(q_pe, pd.view<const int32_t, 1>(), fd.view<const float, 1>(),
                                            table.attention_factor, tm.stream());
    });
    bench::Work work;
    work.bytes = 2.0 * 2.0 * double(t * heads * 64) + 4.0 * double(t);
    work.flops = 3.0 * double(t * heads * 64);
    bench::report(st, s, work, {"rope", shape, "own", heads == 128 ? "torch rope " + shape : ""});
  });
}

void register_rows() {
  for (int64_t t : {1, 128, 4096}) add(t, 128);
  for (int64_t t : {1, 4096}) add(t, 1);  // k_pe: one head
}

}  // namespace

R1_BENCH_MAIN(register_rows)
