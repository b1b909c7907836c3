// SPDX-License-Identifier: MIT
// Helpers for the GPU kernel tests: seeded random host tensors (fast enough for R1-sized weights),
// device copies, NaN poisoning, and the error metrics the tests assert on (relative norm, largest
// element error, non-finite count, untouched padding), the device's architecture, and a captured
// CUDA graph.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1::gpu_test {

/// The run's base seed: R1_TEST_SEED if set, else fresh; printed once so a failure can be replayed.
inline uint64_t base_seed() {
  static const uint64_t s = [] {
    const char* e = std::getenv("R1_TEST_SEED");
    const uint64_t v = e && *e ? std::strtoull(e, nullptr, 0) : (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    std::printf("gpu test seed: R1_TEST_SEED=%llu\n", static_cast<unsigned long long>(v));
    return v;
  }();
  return s;
}

/// A seed for one case: the run seed mixed with the case's numbers.
inline uint64_t case_seed(uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0) {
  uint64_t h = base_seed() ^ 0x9e3779b97f4a7c15ull;
  for (uint64_t v : {a, b, c, d}) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  }
  return h;
}

/// splitmix64: a counter-based generator, cheap enough for 10^9 elements.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
/// Uniform in [-1, 1) from element index i.
inline float uniform(uint64_t seed, uint64_t i) {
  return float(int64_t(mix(seed + i) >> 11) - (int64_t(1) << 52)) * (1.0f / float(int64_t(1) << 52));
}

/// Host tensor of dtype T (float or bf16) with uniform entries in [-scale, scale).
template <class T>
Tensor random_uniform(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  Tensor t = Tensor::empty(dtype_v<T>, shape);
  T* p = t.data_as<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = T(scale * uniform(seed, uint64_t(i)));
  return t;
}

/// Host e4m3 tensor of random finite codes (every finite code equally likely, NaN codes excluded).
inline Tensor random_e4m3(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(DType::f8_e4m3, shape);
  auto* p = t.data_as<fp8_e4m3>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint8_t c = uint8_t(mix(seed + uint64_t(i)) % 254);  // 0..253
    if (c >= 0x7f) ++c;                                   // skip 0x7f: 0..0x7e, 0x80..0xfe
    p[i] = fp8_e4m3::from_bits(c);
  }
  return t;
}

/// Host f32 tensor of positive scales 2^u, u uniform in [lo, hi).
inline Tensor random_scales(const Shape& shape, uint64_t seed, float lo, float hi) {
  Tensor t = Tensor::empty(DType::f32, shape);
  float* p = t.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::exp2(lo + (hi - lo) * 0.5f * (uniform(seed, uint64_t(i)) + 1.0f));
  return t;
}

/// Fills every byte with 0xff: NaN for f32, bf16 and e4m3, so unwritten outputs show.
inline void poison(Tensor& t, stream_t stream = nullptr) { t.fill_bytes(0xff, stream); }

/// Result of comparing an output with its reference.
struct Compare {
  double rel_norm = 0;     ///< ||out - ref|| / ||ref||
  double max_rel = 0;      ///< max |out - ref| / max |ref|
  int64_t nonfinite = 0;   ///< NaN / inf elements in out (unwritten or overflowed)
  int64_t worst = -1;      ///< index of the largest error
  std::string str() const {
    char b[160];
    std::snprintf(b, sizeof(b), "rel_norm %.3e, max_rel %.3e, non-finite %lld, worst at %lld", rel_norm, max_rel,
                  static_cast<long long>(nonfinite), static_cast<long long>(worst));
    return b;
  }
};

/// Compares the [rows, cols] output `out` (host view, bf16 or f32) with `ref` (host, double).
template <class T>
Compare compare(View<const T, 2> out, View<const double, 2> ref) {
  Compare c;
  double num = 0, den = 0, max_err = 0, max_ref = 0;
  for (int64_t i = 0; i < ref.shape[0]; ++i) {
    for (int64_t j = 0; j < ref.shape[1]; ++j) {
      const double o = double(float(out(i, j))), r = ref(i, j);
      if (!std::isfinite(o)) {
        ++c.nonfinite;
        continue;
      }
      const double e = std::fabs(o - r);
      num += e * e;
      den += r * r;
      if (e > max_err) {
        max_err = e;
        c.worst = i * ref.shape[1] + j;
      }
      max_ref = std::max(max_ref, std::fabs(r));
    }
  }
  c.rel_norm = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  c.max_rel = max_ref > 0 ? max_err / max_ref : max_err;
  return c;
}

/// Counts bytes of a host tensor that are not 0xff (the poison), e.g. row padding a kernel must
/// not touch, over elements [row, cols..ld) of a [rows, ld] tensor.
inline int64_t touched_padding(const Tensor& host, int64_t cols) {
  const int64_t rows = host.size(0), ld = host.size(1), es = int64_t(dtype_size(host.dtype()));
  const auto* b = static_cast<const uint8_t*>(host.data());
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = cols * es; j < ld * es; ++j) n += b[r * ld * es + j] != 0xff;
  return n;
}

/// True on a Hopper GPU (compute capability 9.x: the wgmma/TMA kernels run there).
inline bool hopper() {
  int major = 0;
  R1_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  return major == 9;
}

/// True when this run leaves cuBLASLt's GEMMs out: R1_TEST_SKIP_CUBLASLT=1, which scripts/gpu-test.sh
/// sets under racecheck (the sanitizer fails with "Internal Sanitizer Error: failed to handle a
/// hardware exception" on some of cuBLASLt's Hopper nvjet kernels even when told to skip them;
/// racecheck is there for r1's kernels, and memcheck still runs cuBLASLt's). The caller skips its
/// cuBLASLt case; the skip is reported, so it is visible in the log.
inline bool skip_cublaslt(const char* what) {
  static const bool skip = [] {
    const char* e = std::getenv("R1_TEST_SKIP_CUBLASLT");
    return e != nullptr && e[0] == '1';
  }();
  if (skip) MESSAGE("R1_TEST_SKIP_CUBLASLT=1: cuBLASLt case skipped: ", what);
  return skip;
}

/// The work `enqueue` puts on `stream`, captured once as a CUDA graph and instantiated; launch()
/// replays it. Destroys both when it goes out of scope (also when a REQUIRE throws).
class CapturedGraph {
 public:
  template <class Fn>
  CapturedGraph(stream_t stream, Fn&& enqueue, cudaStreamCaptureMode mode = cudaStreamCaptureModeThreadLocal) {
    R1_CUDA_CHECK(cudaStreamBeginCapture(stream, mode));
    enqueue();
    R1_CUDA_CHECK(cudaStreamEndCapture(stream, &graph_));
    R1_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  }
  ~CapturedGraph() {
    if (exec_) (void)cudaGraphExecDestroy(exec_);
    if (graph_) (void)cudaGraphDestroy(graph_);
  }
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;
  void launch(stream_t stream) const { R1_CUDA_CHECK(cudaGraphLaunch(exec_, stream)); }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace r1::gpu_test
