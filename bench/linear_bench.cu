// SPDX-License-Identifier: MIT
// bf16 linear (r1::cuda::linear) on R1's projection shapes, each row on both backends: decode
// (M = 1, 8, 64, 128, 256 tokens) and prefill (M = 4096), plus the shapes tools/peer_baselines.py
// measures with PyTorch. The LM head writes f32 logits; every other row writes bf16.
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/linear.hpp"

namespace {

using namespace r1;
using cuda::GemmBackend;

std::string shape_name(int64_t m, int64_t n, int64_t k) {
  return "m" + std::to_string(m) + " n" + std::to_string(n) + " k" + std::to_string(k);
}

/// The peer_baselines.py row with this shape, if it measures one.
std::string peer_of(int64_t m, int64_t n, int64_t k) {
  const int64_t peers[][3] = {{8192, 8192, 8192}, {4096, 7168, 2048}, {4096, 2048, 7168}, {128, 7168, 2048}, {64, 24576, 1536}};
  for (const auto& p : peers) {
    if (p[0] == m && p[1] == n && p[2] == k) return "bf16 gemm " + shape_name(m, n, k);
  }
  return "";
}

template <class TY>
void add(int64_t m, int64_t n, int64_t k, GemmBackend backend) {
  const std::string shape = shape_name(m, n, k);
  const std::string kernel = std::is_same_v<TY, float> ? "linear_bf16_f32out" : "linear_bf16";
  bench::add_row(kernel + "/" + cuda::gemm_backend_name(backend) + "/" + shape, [=](benchmark::State& st) {
    Tensor x = bench::random_device(DType::bf16, {m, k}, 1);
    Tensor w = bench::random_device(DType::bf16, {n, k}, 2, 0.05f);
    Tensor y = Tensor::empty(dtype_v<TY>, {m, n}, Space::cuda);
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      cuda::linear<TY>(x.view<const bf16, 2>(), w.view<const bf16, 2>(), y.view<TY, 2>(), tm.stream(), backend);
    });
    bench::Work work;
    work.bytes = 2.0 * double(m * k + n * k) + double(sizeof(TY)) * double(m * n);
    work.flops = 2.0 * double(m) * double(n) * double(k);
    bench::report(st, s, work, {kernel, shape, cuda::gemm_backend_name(backend), peer_of(m, n, k)});
  });
}

void register_rows() {
  // (N, K): q_a + kv_a, q_b, kv_b, o_proj, expert gate + up, expert down, dense gate, LM head
  const int64_t nks[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384},
                            {4096, 7168}, {7168, 2048},  {18432, 7168}, {129280, 7168}};
  const int64_t ms[] = {1, 8, 64, 128, 256, 4096};
  for (const auto& nk : nks) {
    for (int64_t m : ms) {
      for (GemmBackend b : {GemmBackend::own, GemmBackend::cublaslt}) {
        if (nk[0] == 129280) {
          add<float>(m, nk[0], nk[1], b);
        } else {
          add<bf16>(m, nk[0], nk[1], b);
        }
      }
    }
  }
  // shapes only the peers measure
  for (GemmBackend b : {GemmBackend::own, GemmBackend::cublaslt}) {
    add<bf16>(4096, 2048, 7168, b);
    add<bf16>(8192, 8192, 8192, b);
  }
  // r1's Hopper bf16 kernel (own_wgmma: the grouped TMA + wgmma kernel over one expert) at prefill
  for (const auto& nk : nks) {
    if (nk[0] != 129280) add<bf16>(4096, nk[0], nk[1], GemmBackend::own_wgmma);
  }
  add<bf16>(4096, 2048, 7168, GemmBackend::own_wgmma);
  add<bf16>(8192, 8192, 8192, GemmBackend::own_wgmma);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
