// SPDX-License-Identifier: MIT
// The harness every r1 kernel benchmark uses (see docs/benchmarks.md):
//  - the two ceilings, measured once per process in the same run as the kernels: device copy
//    bandwidth (a 1 GiB device-to-device copy, bytes read + written) and the matrix rate (cuBLASLt
//    bf16 GEMM, 8192^3, random data); the FP8 rate is taken as twice the bf16 rate (Hopper's FP8
//    tensor cores do twice the bf16 work per clock);
//  - timing: CUDA events around each run, L2 flushed before each run by reading a buffer twice the
//    L2 size (outside the timed region), median over the runs;
//  - report(): the counters of a row (µs, GB/s, TFLOP/s, % of roofline, where the roofline time is
//    max(bytes / copy bandwidth, flops / matrix rate)) and its label, which names the kernel, the
//    shape, the backend and the row of tools/peer_baselines.py it compares with. bench/report.py
//    reads those labels to build the ratio table.
// Benchmarks register their rows in a function passed to R1_BENCH_MAIN.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/kernels/cuda/cublaslt.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1::bench {

// ---------------------------------------------------------------------------------------------
// Device data

namespace detail {
__device__ __forceinline__ uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
__device__ __forceinline__ float uniform(uint64_t seed, uint64_t i) {  // [-1, 1)
  return float(int64_t(mix(seed + i) >> 11) - (int64_t(1) << 52)) * (1.0f / float(int64_t(1) << 52));
}
template <class T>
__global__ void fill_uniform_kernel(T* p, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = T(scale * uniform(seed, uint64_t(i)));
  }
}
__global__ void fill_e4m3_kernel(uint8_t* p, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint8_t c = uint8_t(mix(seed + uint64_t(i)) % 254);
    p[i] = c >= 0x7f ? uint8_t(c + 1) : c;  // finite codes only
  }
}
__global__ void fill_scale_kernel(float* p, int64_t n, uint64_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = exp2f(lo + (hi - lo) * 0.5f * (uniform(seed, uint64_t(i)) + 1.0f));
  }
}
/// Reads the buffer (so L2 holds it, clean, instead of the benchmark's data); the write never
/// happens but keeps the loads alive.
__global__ void l2_flush_kernel(const uint4* p, int64_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}
inline unsigned fill_blocks(int64_t n) { return unsigned(std::min<int64_t>((n + 255) / 256, 4096)); }
}  // namespace detail

/// A device tensor of uniform values in [-scale, scale) (f32 or bf16), filled on the device.
inline Tensor random_device(DType dtype, const Shape& shape, uint64_t seed, float scale = 1.0f) {
  Tensor t = Tensor::empty(dtype, shape, Space::cuda);
  const int64_t n = t.numel();
  if (n == 0) return t;
  if (dtype == DType::bf16) {
    detail::fill_uniform_kernel<bf16><<<detail::fill_blocks(n), 256>>>(t.data_as<bf16>(), n, seed, scale);
  } else if (dtype == DType::f32) {
    detail::fill_uniform_kernel<float><<<detail::fill_blocks(n), 256>>>(t.data_as<float>(), n, seed, scale);
  } else if (dtype == DType::f8_e4m3) {
    detail::fill_e4m3_kernel<<<detail::fill_blocks(n), 256>>>(static_cast<uint8_t*>(t.data()), n, seed);
  } else {
    fail("bench.random_device", "unsupported dtype ", dtype_name(dtype));
  }
  R1_CUDA_CHECK_LAUNCH();
  return t;
}

/// Positive f32 scales 2^u, u uniform in [lo, hi), on the device.
inline Tensor random_scales_device(const Shape& shape, uint64_t seed, float lo = -10.0f, float hi = -6.0f) {
  Tensor t = Tensor::empty(DType::f32, shape, Space::cuda);
  const int64_t n = t.numel();
  if (n > 0) {
    detail::fill_scale_kernel<<<detail::fill_blocks(n), 256>>>(t.data_as<float>(), n, seed, lo, hi);
    R1_CUDA_CHECK_LAUNCH();
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Timing

/// Times device work with CUDA events on one stream, flushing L2 before every timed run.
class Timer {
 public:
  Timer() {
    int dev = 0, l2 = 0;
    R1_CUDA_CHECK(cudaGetDevice(&dev));
    R1_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    flush_ = Tensor::zeros(DType::u8, {std::max<int64_t>(2 * int64_t(l2), 64 << 20)}, Space::cuda);
    sink_ = Tensor::zeros(DType::u8, {16}, Space::cuda);
    R1_CUDA_CHECK(cudaDeviceSynchronize());
  }
  stream_t stream() const { return stream_; }

  void flush_l2() {
    const int64_t n = flush_.numel() / 16;
    detail::l2_flush_kernel<<<detail::fill_blocks(n), 256, 0, stream_>>>(
        static_cast<const uint4*>(flush_.data()), n, static_cast<uint32_t*>(sink_.data()));
    R1_CUDA_CHECK_LAUNCH();
  }

  /// Median seconds of fn() (which enqueues its work on stream()): two warm-up runs, then as many
  /// timed runs as fit in `budget_s` (at least min_reps, at most max_reps).
  double median(const std::function<void()>& fn, double budget_s = 0.1, int min_reps = 5, int max_reps = 30) {
    // Inputs may have been filled or allocated on other streams (the legacy default stream).
    R1_CUDA_CHECK(cudaDeviceSynchronize());
    fn();
    fn();
    R1_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<double> t;
    double spent = 0;
    while (int(t.size()) < max_reps && (int(t.size()) < min_reps || spent < budget_s)) {
      flush_l2();
      start_.record(stream_);
      fn();
      stop_.record(stream_);
      const double s = double(stop_.ms_since(start_)) * 1e-3;
      t.push_back(s);
      spent += s + 50e-6;  // the flush and the host round trip count against the budget too
    }
    std::sort(t.begin(), t.end());
    const size_t n = t.size();
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  }

 private:
  Stream stream_;
  Event start_, stop_;
  Tensor flush_, sink_;
};

/// The harness's timer (one per process: its flush buffer is large).
inline Timer& timer() {
  static Timer t;
  return t;
}

// ---------------------------------------------------------------------------------------------
// Ceilings

struct Ceilings {
  std::string device;
  int sms = 0;
  double copy_gbps = 0;    ///< device-to-device copy: (bytes read + bytes written) / s / 1e9
  double bf16_tflops = 0;  ///< cuBLASLt bf16 GEMM 8192^3 on random data
  double fp8_tflops() const { return 2.0 * bf16_tflops; }
};

/// Measures the two ceilings on the current device (about 0.1 s).
inline Ceilings measure_ceilings() {
  Ceilings c;
  int dev = 0;
  R1_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  R1_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  c.device = prop.name;
  c.sms = prop.multiProcessorCount;
  Timer& tm = timer();
  {
    const int64_t bytes = int64_t(1) << 30;
    Tensor src = random_device(DType::bf16, {bytes / 2}, 1), dst = Tensor::empty(DType::bf16, {bytes / 2}, Space::cuda);
    R1_CUDA_CHECK(cudaDeviceSynchronize());
    const double s = tm.median(
        [&] {
          R1_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), size_t(bytes), cudaMemcpyDeviceToDevice, tm.stream()));
        },
        0.05, 10, 10);
    c.copy_gbps = 2.0 * double(bytes) / s / 1e9;
  }
  {
    const int64_t n = 8192;
    Tensor a = random_device(DType::bf16, {n, n}, 2), b = random_device(DType::bf16, {n, n}, 3);
    Tensor y = Tensor::empty(DType::bf16, {n, n}, Space::cuda);
    R1_CUDA_CHECK(cudaDeviceSynchronize());
    const double s = tm.median(
        [&] {
          cuda::cublaslt::linear<bf16>(a.view<const bf16, 2>(), b.view<const bf16, 2>(), y.view<bf16, 2>(), tm.stream());
        },
        0.05, 10, 10);
    c.bf16_tflops = 2.0 * double(n) * double(n) * double(n) / s / 1e12;
  }
  return c;
}

/// The ceilings of this process's device, measured on first use.
inline const Ceilings& ceilings() {
  static const Ceilings c = measure_ceilings();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Rows

/// What a row moves and computes: bytes of every input read once and every output written once,
/// and 2 * M * N * K flops per GEMM. fp8 selects the FP8 matrix rate for the roofline.
struct Work {
  double bytes = 0;
  double flops = 0;
  bool fp8 = false;
};

/// The descriptive fields of a row. `peer` names the row of tools/peer_baselines.py measuring the
/// same shape ("" for none); bench/report.py pairs rows by (kernel, shape) and peers by name.
struct Row {
  std::string kernel;   // e.g. "linear_bf16"
  std::string shape;    // e.g. "m1 n2112 k7168"
  std::string backend;  // e.g. "own", "cublaslt"
  std::string peer;
};

/// Records one row: the median time as the iteration time, and the counters / label report.py reads.
inline void report(benchmark::State& st, double seconds, const Work& w, const Row& row) {
  const Ceilings& c = ceilings();
  const double t_mem = w.bytes / (c.copy_gbps * 1e9);
  const double t_mat = w.flops / ((w.fp8 ? c.fp8_tflops() : c.bf16_tflops) * 1e12);
  const double roof = std::max(t_mem, t_mat);
  st.SetIterationTime(seconds);
  st.counters["us"] = seconds * 1e6;
  st.counters["GB/s"] = w.bytes / seconds / 1e9;
  st.counters["TFLOP/s"] = w.flops / seconds / 1e12;
  st.counters["roofline_us"] = roof * 1e6;
  st.counters["roofline_%"] = 100.0 * roof / seconds;
  st.SetLabel("kernel=" + row.kernel + ";shape=" + row.shape + ";backend=" + row.backend + ";peer=" + row.peer +
              ";bound=" + (t_mem >= t_mat ? "memory" : "matrix"));
}

/// Registers a row: `body(state)` times its work with timer() and calls report().
inline void add_row(const std::string& name, std::function<void(benchmark::State&)> body) {
  benchmark::RegisterBenchmark(name.c_str(), [body](benchmark::State& st) {
    try {
      for (auto _ : st) body(st);
    } catch (const std::exception& e) {
      st.SkipWithError(e.what());
    }
  })
      ->UseManualTime()
      ->Iterations(1)
      ->Unit(benchmark::kMicrosecond);
}

/// main(): skips visibly without a GPU, measures the ceilings, registers the rows, runs them.
inline int run_main(int argc, char** argv, void (*register_rows)()) {
  if (cuda_device_count() == 0) {
    std::printf("SKIPPED: no CUDA device visible; run benchmarks on a GPU machine (scripts/bench.sh)\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  const Ceilings& c = ceilings();
  std::fprintf(stderr, "r1 ceilings on %s (%d SMs): copy %.0f GB/s, bf16 GEMM %.1f TFLOP/s (fp8 taken as %.1f)\n",
               c.device.c_str(), c.sms, c.copy_gbps, c.bf16_tflops, c.fp8_tflops());
  benchmark::AddCustomContext("r1_device", c.device);
  benchmark::AddCustomContext("r1_copy_GBps", std::to_string(c.copy_gbps));
  benchmark::AddCustomContext("r1_bf16_TFLOPs", std::to_string(c.bf16_tflops));
  benchmark::AddCustomContext("r1_fp8_TFLOPs", std::to_string(c.fp8_tflops()));
  register_rows();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace r1::bench

#define R1_BENCH_MAIN(register_rows) \
  int main(int argc, char** argv) { return ::r1::bench::run_main(argc, argv, register_rows); }
