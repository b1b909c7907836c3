// SPDX-License-Identifier: MIT
// The paged latent cache's writes (slot mapping, decode and prefill row counts) and gathers on R1's
// rows (576 bf16 values, pages of 64). Memory-bound: bytes are each row read once and written once.
#include <numeric>
#include <string>
#include <vector>

#include "bench_common.cuh"
#include "r1/kernels/cuda/kv_cache.hpp"

namespace {

using namespace r1;

constexpr int64_t W = 576, PAGE = 64;

void add(int64_t n) {
  const std::string shape = "n" + std::to_string(n) + " w" + std::to_string(W);
  const int64_t pages = (n + PAGE - 1) / PAGE + 1;
  bench::add_row("kv_cache_write/own/" + shape, [=](benchmark::State& st) {
    Tensor rows = bench::random_device(DType::bf16, {n, W}, 1);                  // [N, 576]
    Tensor cache = Tensor::zeros(DType::bf16, {pages, PAGE, W}, Space::cuda);   // [P, 64, 576]
    std::vector<int32_t> slots(static_cast<size_t>(n));
    std::iota(slots.begin(), slots.end(), int32_t(PAGE / 2));  // straddles page boundaries
    Tensor slot_d = Tensor::from_vector(slots, {n}).to(Space::cuda);             // [N]
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::kv_cache_write<bf16>(rows.view<const bf16, 2>(), cache.view<bf16, 3>(), slot_d.view<const int32_t, 1>(),
                                 tm.stream());
    });
    bench::Work w;
    w.bytes = 2.0 * 2.0 * double(n * W) + 4.0 * double(n);
    bench::report(st, s, w, {"kv_cache_write", shape, "own", ""});
  });
  bench::add_row("kv_cache_gather/own/" + shape, [=](benchmark::State& st) {
    Tensor cache = bench::random_device(DType::bf16, {pages, PAGE, W}, 2);      // [P, 64, 576]
    std::vector<int32_t> tab(static_cast<size_t>(pages));
    std::iota(tab.rbegin(), tab.rend(), 0);  // pages in reverse order
    Tensor table = Tensor::from_vector(tab, {pages}).to(Space::cuda);           // [P]
    Tensor out = Tensor::empty(DType::bf16, {n, W}, Space::cuda);               // [N, 576]
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::kv_cache_gather<bf16>(cache.view<const bf16, 3>(), table.view<const int32_t, 1>(), out.view<bf16, 2>(),
                                  tm.stream());
    });
    bench::Work w;
    w.bytes = 2.0 * 2.0 * double(n * W);
    bench::report(st, s, w, {"kv_cache_gather", shape, "own", ""});
  });
}

void register_rows() {
  for (int64_t n : {1, 128, 4096, 32768}) add(n);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
