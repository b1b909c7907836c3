// SPDX-License-Identifier: MIT
// r1::cuda::rope_interleaved against ref::rope_interleaved: q_pe as the last 64 columns of a
// [tokens, 128, 192] query (the vector path, strided heads), k_pe as the last 64 columns of a
// [tokens, 576] latent row with one head, an element-wise path (innermost stride 2), bf16 and f32,
// int32 and int64 positions up to 163840, R1's YaRN table (attention factor 1) and a table whose
// attention factor is not 1. The columns outside the rotated slice must be untouched.
//
// Tolerance: the kernel does the ref's fp32 operations in the ref's order, and evaluates cos/sin in
// double rounded to fp32 like the ref; CUDA's double cos/sin (<= 1 ulp in double) and the host's
// can round to different floats only for values within 2^-29 relative of a float rounding
// boundary. So the outputs must be bit-identical except, at most, a couple of elements per case,
// and those within one ulp of the output type.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "../support/r1_testing.hpp"
#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/rope.hpp"
#include "r1/kernels/ref/rope.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

using testing::r1_yarn;

template <class TP>
Tensor positions(int64_t tokens, uint64_t seed) {
  Tensor p = Tensor::empty(dtype_v<TP>, {tokens});
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t v = int64_t(mix(seed + uint64_t(t)) % 163841);  // 0 .. 163840
    if (t == 0) v = 0;
    if (t == 1) v = 163840;
    if (t == 2) v = 163839;
    p.data_as<TP>()[t] = TP(v);
  }
  return p;
}

/// Rotates columns [c0, c0 + rope) of the heads of a [tokens, heads, width] tensor (innermost
/// stride `inner`: the rotated view takes every inner-th column) on the host and on the device, and
/// compares every element of the tensor.
template <class T, class TP>
void check_rope(int64_t tokens, int64_t heads, int64_t width, int64_t c0, int64_t inner, const ref::RopeTable& table,
                Stream& stream) {
  const int64_t rope = table.dim();
  const uint64_t seed = case_seed(uint64_t(tokens), uint64_t(heads), uint64_t(width), uint64_t(c0 + inner));
  Tensor x = random_uniform<T>({tokens, heads, width}, seed, 4.0f);
  Tensor pos = positions<TP>(tokens, seed + 11);
  auto rotated = [&](View<T, 3> full) {
    View<T, 3> v = full.slice(2, c0, c0 + rope * inner);
    v.shape[2] = rope;
    v.stride[2] = full.stride[2] * inner;
    return v;
  };
  Tensor xr = Tensor::empty(dtype_v<T>, {tokens, heads, width});
  std::memcpy(xr.data(), x.data(), x.nbytes());
  ref::rope_interleaved(rotated(xr.view<T, 3>()), pos.view<const TP, 1>(),
                        make_view<1>(table.inv_freq.data(), {int64_t(table.inv_freq.size())}), table.attention_factor);

  Tensor xd = x.to(Space::cuda, stream), pd = pos.to(Space::cuda, stream);
  Tensor fd = Tensor::from_vector(table.inv_freq, {int64_t(table.inv_freq.size())}).to(Space::cuda, stream);
  cuda::rope_interleaved<T, TP>(rotated(xd.view<T, 3>()), pd.view<const TP, 1>(), fd.view<const float, 1>(),
                                table.attention_factor, stream);
  Tensor got = xd.to(Space::host, stream);
  int64_t differ = 0, bad = 0;
  const int64_t n = tokens * heads * width;
  for (int64_t i = 0; i < n; ++i) {
    const T g = got.data_as<T>()[i], e = xr.data_as<T>()[i];
    if (std::memcmp(&g, &e, sizeof(T)) == 0) continue;
    ++differ;
    const double gv = double(float(g)), ev = double(float(e));
    const double ulp = std::exp2(std::floor(std::log2(std::fabs(ev) + 1e-38)) - (sizeof(T) == 2 ? 7 : 23));
    bad += !(std::fabs(gv - ev) <= ulp * 1.0001);
  }
  INFO("rope tokens=", tokens, " heads=", heads, " width=", width, " cols ", c0, "+", rope, "x", inner, " ",
       sizeof(T) == 2 ? "bf16" : "f32", " positions int", sizeof(TP) * 8, " factor ", table.attention_factor,
       ": differ ", differ, ", beyond one ulp ", bad);
  CHECK(bad == 0);
  CHECK(differ <= 2);
}

}  // namespace

TEST_CASE("rope_interleaved matches the ref twin") {
  Stream stream;
  const ref::YarnParams y = r1_yarn();
  const ref::RopeTable r1t = ref::make_rope_table(64, 10000, &y);
  CHECK(r1t.attention_factor == 1.0f);
  ref::YarnParams y2 = y;
  y2.mscale_all_dim = 0;  // attention factor mscale(40) = 1.3689
  const ref::RopeTable scaled = ref::make_rope_table(64, 10000, &y2);
  const ref::RopeTable plain16 = ref::make_rope_table(16, 10000, nullptr);
  for (int64_t tokens : {1, 2, 7, 127, 128, 129}) {
    check_rope<bf16, int32_t>(tokens, 128, 192, 128, 1, r1t, stream);  // q_pe
    check_rope<bf16, int64_t>(tokens, 1, 576, 512, 1, r1t, stream);    // k_pe
    check_rope<bf16, int64_t>(tokens, 3, 64, 0, 1, scaled, stream);
    check_rope<float, int32_t>(tokens, 5, 130, 1, 2, r1t, stream);    // strided innermost: element-wise
  }
  check_rope<float, int64_t>(9, 128, 192, 128, 1, scaled, stream);
  check_rope<bf16, int32_t>(17, 16, 20, 2, 1, plain16, stream);  // 8 pairs, unaligned heads: element-wise
  check_rope<bf16, int32_t>(4096, 4, 192, 128, 1, r1t, stream);  // a prefill's worth of tokens
  check_rope<bf16, int32_t>(0, 128, 192, 128, 1, r1t, stream);   // no tokens: a no-op
}

TEST_CASE("rope_interleaved: bad arguments are r1::Errors") {
  Stream stream;
  Tensor x = Tensor::empty(DType::bf16, {4, 2, 64}, Space::cuda, stream);
  Tensor p = Tensor::empty(DType::i32, {4}, Space::cuda, stream);
  Tensor p3 = Tensor::empty(DType::i32, {3}, Space::cuda, stream);
  Tensor f = Tensor::empty(DType::f32, {32}, Space::cuda, stream);
  Tensor f31 = Tensor::empty(DType::f32, {31}, Space::cuda, stream);
  Tensor fh = Tensor::empty(DType::f32, {32});
  CHECK_THROWS_WITH((cuda::rope_interleaved<bf16, int32_t>(x.view<bf16, 3>(), p3.view<const int32_t, 1>(),
                                                           f.view<const float, 1>(), 1.0f, stream)),
                    doctest::Contains("positions has 3 entries"));
  CHECK_THROWS_WITH((cuda::rope_interleaved<bf16, int32_t>(x.view<bf16, 3>(), p.view<const int32_t, 1>(),
                                                           f31.view<const float, 1>(), 1.0f, stream)),
                    doctest::Contains("does not match 31 frequencies"));
  CHECK_THROWS_WITH((cuda::rope_interleaved<bf16, int32_t>(x.view<bf16, 3>(), p.view<const int32_t, 1>(),
                                                           fh.view<const float, 1>(), 1.0f, stream)),
                    doctest::Contains("inv_freq must be in cuda memory"));
}
