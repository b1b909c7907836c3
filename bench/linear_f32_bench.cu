// SPDX-License-Identifier: MIT
// fp32 GEMMs of the f32 activation policy (r1::cuda::linear_f32: CUDA-core FMA; a bf16 weight from 8
// rows as tensor-core GEMMs of x's three exact bf16 parts) on
// R1's projection shapes at decode sizes (M = 1, 8, 64): f32 activations against a bf16 weight,
// an FP8 weight dequantized in the kernel, and FP8 native (codes x codes). f32 output. The peer is
// PyTorch's fp32 matmul with TF32 off against the weight upcast to fp32 (bench/peers_extra.py,
// "fp32 gemm m.. n.. k.."), what a PyTorch user would run for an fp32 reference path. The
// roofline is the in-run copy bandwidth for the bytes below (weights read once): at these sizes the
// kernels are memory-bound; the bf16 tensor-core rate is not a ceiling the CUDA-core kernels can reach.
#include <string>

#include "bench_common.cuh"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/linear_f32.hpp"

namespace {

using namespace r1;

enum class Form { bf16, fp8_dequant, fp8_native };

const char* form_name(Form f) {
  return f == Form::bf16 ? "bf16_weight" : f == Form::fp8_dequant ? "fp8_dequant" : "fp8_native";
}

std::string shape_name(int64_t m, int64_t n, int64_t k) {
  return "m" + std::to_string(m) + " n" + std::to_string(n) + " k" + std::to_string(k);
}

void add(Form form, int64_t m, int64_t n, int64_t k) {
  const std::string shape = shape_name(m, n, k);
  bench::add_row(std::string("linear_f32/") + form_name(form) + "/" + shape, [=](benchmark::State& st) {
    const int64_t nb = (n + 127) / 128, kb = (k + 127) / 128;
    Tensor x = bench::random_device(DType::f32, {m, k}, 1);                // [M, K]
    Tensor xq = bench::random_device(DType::f8_e4m3, {m, k}, 2);           // [M, K]
    Tensor xs = bench::random_scales_device({kb, m}, 3);                   // [K / 128, M] MN-major
    Tensor w = bench::random_device(DType::bf16, {n, k}, 4, 0.05f);        // [N, K]
    Tensor wq = bench::random_device(DType::f8_e4m3, {n, k}, 5);           // [N, K]
    Tensor ws = bench::random_scales_device({nb, kb}, 6);                  // [N / 128, K / 128]
    Tensor y = Tensor::empty(DType::f32, {m, n}, Space::cuda);             // [M, N]
    const View<float, 2> xsv = cuda::mn_major_scales(xs.data_as<float>(), m, kb);
    bench::Timer& tm = bench::timer();
    const double s = tm.median([&] {
      switch (form) {
        case Form::bf16:
          cuda::linear_f32(x.view<const float, 2>(), w.view<const bf16, 2>(), y.view<float, 2>(), tm.stream());
          break;
        case Form::fp8_dequant:
          cuda::linear_f32(x.view<const float, 2>(), wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(),
                           y.view<float, 2>(), tm.stream());
          break;
        case Form::fp8_native:
          cuda::linear_f32(xq.view<const fp8_e4m3, 2>(), xsv.as_const(), wq.view<const fp8_e4m3, 2>(),
                           ws.view<const float, 2>(), y.view<float, 2>(), tm.stream());
          break;
      }
    });
    const double w_bytes = form == Form::bf16 ? 2.0 * double(n * k) : double(n * k) + 4.0 * double(nb * kb);
    const double x_bytes = form == Form::fp8_native ? double(m * k) + 4.0 * double(m * kb) : 4.0 * double(m * k);
    bench::Work work;
    work.bytes = w_bytes + x_bytes + 4.0 * double(m * n);
    work.flops = 2.0 * double(m) * double(n) * double(k);
    bench::report(st, s, work, {std::string("linear_f32_") + form_name(form), shape, "own", "fp32 gemm " + shape});
  });
}

void register_rows() {
  // (N, K): q_a + kv_a, o_proj, expert down, LM head
  const int64_t nks[][2] = {{2112, 7168}, {7168, 16384}, {7168, 2048}, {129280, 7168}};
  for (const auto& nk : nks) {
    for (int64_t m : {1, 8, 64}) {
      for (Form f : {Form::bf16, Form::fp8_dequant, Form::fp8_native}) {
        if (nk[0] == 129280 && f != Form::bf16) continue;  // the LM head is bf16 in every checkpoint
        add(f, m, nk[0], nk[1]);
      }
    }
  }
}

}  // namespace

R1_BENCH_MAIN(register_rows)
