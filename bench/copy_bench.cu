// SPDX-License-Identifier: MIT
// Device-to-device copy bandwidth: the memory roofline every other kernel is measured against.
// Bytes counted = bytes read + bytes written. Sizes well past L2 (50-60 MB on H100/H200).
#include <benchmark/benchmark.h>

#include "r1/core/cuda.hpp"
#include "r1/tensor/tensor.hpp"

namespace {

void BM_copy_d2d(benchmark::State& state) {
  const int64_t bytes = state.range(0) << 20;
  r1::Stream stream;
  r1::Tensor src = r1::Tensor::empty(r1::DType::u8, {bytes}, r1::Space::cuda, stream);
  r1::Tensor dst = r1::Tensor::empty(r1::DType::u8, {bytes}, r1::Space::cuda, stream);
  src.fill_bytes(0x5a, stream);
  r1::Event start, stop;
  for (int i = 0; i < 3; ++i) dst.copy_from(src, stream);  // warm up
  for (auto _ : state) {
    start.record(stream);
    dst.copy_from(src, stream);
    stop.record(stream);
    state.SetIterationTime(double(stop.ms_since(start)) / 1e3);
  }
  state.counters["GB/s"] = benchmark::Counter(double(2 * bytes) / 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["MiB"] = double(bytes >> 20);
}

}  // namespace

BENCHMARK(BM_copy_d2d)->Arg(256)->Arg(1024)->Arg(2048)->UseManualTime()->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  if (r1::cuda_device_count() == 0) {
    std::printf("SKIPPED: no CUDA device visible; run benchmarks on a GPU machine (scripts/bench.sh)\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
