// SPDX-License-Identifier: MIT
// Device conversions (CUDA's intrinsics: cvt.rn.satfinite.e4m3x2.f32 etc. on sm_89+) against r1's
// host conversions, bit for bit, over every code, every rounding pattern and 10^6 random floats.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/tensor/tensor.hpp"

using namespace r1;

namespace {
// f8[i] = {e4m3 sat, e4m3 nosat, e5m2 sat, e5m2 nosat}; f16[i] = {bf16 bits, fp16 bits}
__global__ void encode_kernel(const float* in, uint8_t* f8, uint16_t* f16, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float x = in[i];
  f8[i * 4 + 0] = fp8_e4m3(x).bits;
  f8[i * 4 + 1] = fp8_e4m3(x, Saturate::none).bits;
  f8[i * 4 + 2] = fp8_e5m2(x).bits;
  f8[i * 4 + 3] = fp8_e5m2(x, Saturate::none).bits;
  f16[i * 2 + 0] = bf16(x).bits;
  f16[i * 2 + 1] = fp16(x).bits;
}
// out[c] = float of code c under each format
__global__ void decode_kernel(float* out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= 65536) return;
  out[c * 4 + 0] = float(bf16::from_bits(uint16_t(c)));
  out[c * 4 + 1] = float(fp16::from_bits(uint16_t(c)));
  out[c * 4 + 2] = c < 256 ? float(fp8_e4m3::from_bits(uint8_t(c))) : 0.0f;
  out[c * 4 + 3] = c < 256 ? float(fp8_e5m2::from_bits(uint8_t(c))) : 0.0f;
}
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

TEST_CASE("device decode of every code equals the host decode") {
  Tensor d = Tensor::empty(DType::f32, {65536, 4}, Space::cuda);
  d.fill_bytes(0xff);  // poison
  decode_kernel<<<256, 256>>>(d.data_as<float>());
  R1_CUDA_CHECK_LAUNCH();
  Tensor h = d.to(Space::host);
  auto v = h.view<const float, 2>();
  int bad = 0;
  for (int c = 0; c < 65536; ++c) {
    bad += bits_of(v(c, 0)) != bits_of(float(bf16::from_bits(uint16_t(c))));
    bad += bits_of(v(c, 1)) != bits_of(float(fp16::from_bits(uint16_t(c))));
    if (c < 256) {
      bad += bits_of(v(c, 2)) != bits_of(float(fp8_e4m3::from_bits(uint8_t(c))));
      bad += bits_of(v(c, 3)) != bits_of(float(fp8_e5m2::from_bits(uint8_t(c))));
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("device encode equals the host encode, bit for bit") {
  std::vector<float> xs;
  const uint32_t tails[] = {0x000u, 0x001u, 0x7ffu, 0x800u, 0x801u, 0xfffu};
  for (uint32_t hi = 0; hi < (1u << 20); ++hi)
    for (uint32_t t : tails) xs.push_back(from_bits((hi << 12) | t));
  for (uint32_t hi = 0; hi < (1u << 16); ++hi)
    for (uint32_t t : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) xs.push_back(from_bits((hi << 16) | t));
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 1000000; ++i) xs.push_back(from_bits(any_bits(rng)));
  const int64_t n = int64_t(xs.size());

  Tensor in = Tensor::from_vector(xs, {n}).to(Space::cuda);
  Tensor out8 = Tensor::empty(DType::u8, {n, 4}, Space::cuda);
  Tensor out16 = Tensor::empty(DType::i16, {n, 2}, Space::cuda);
  out8.fill_bytes(0xa5);  // poison
  out16.fill_bytes(0xa5);
  encode_kernel<<<unsigned((n + 255) / 256), 256>>>(in.data_as<float>(), out8.data_as<uint8_t>(),
                                                    reinterpret_cast<uint16_t*>(out16.data()), n);
  R1_CUDA_CHECK_LAUNCH();
  Tensor h8 = out8.to(Space::host), h16 = out16.to(Space::host);
  auto o8 = h8.view<const uint8_t, 2>();     // [n, 4]
  auto o16 = h16.view<const int16_t, 2>();   // [n, 2]
  // Mismatches per output slot and input class, with a few examples each, so a difference between
  // the hardware conversion and CUDA's host emulation is reported precisely.
  const char* slots[6] = {"e4m3 sat", "e4m3 nosat", "e5m2 sat", "e5m2 nosat", "bf16", "fp16"};
  const char* classes[5] = {"zero", "subnormal", "normal", "inf", "nan"};
  int64_t counts[6][5] = {};
  int shown[6][5] = {};
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = xs[size_t(i)];
    const uint32_t u = bits_of(x) & 0x7fffffffu;
    const int cls = u == 0 ? 0 : u < 0x00800000u ? 1 : u < 0x7f800000u ? 2 : u == 0x7f800000u ? 3 : 4;
    const uint32_t expect[6] = {fp8_e4m3(x).bits, fp8_e4m3(x, Saturate::none).bits, fp8_e5m2(x).bits,
                                fp8_e5m2(x, Saturate::none).bits, bf16(x).bits, fp16(x).bits};
    for (int k = 0; k < 6; ++k) {
      const uint32_t got = k < 4 ? uint32_t(o8(i, k)) : uint32_t(uint16_t(o16(i, k - 4)));
      if (got == expect[k]) continue;
      ++bad;
      ++counts[k][cls];
      if (shown[k][cls]++ < 3) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "%-10s %-9s x=0x%08x (%g): device 0x%04x, host 0x%04x", slots[k],
                      classes[cls], bits_of(x), double(x), got, expect[k]);
        MESSAGE(buf);
      }
    }
  }
  for (int k = 0; k < 6; ++k)
    for (int c = 0; c < 5; ++c)
      if (counts[k][c]) MESSAGE(std::string(slots[k]) << " / " << std::string(classes[c]) << ": " << counts[k][c] << " mismatches");
  CHECK(bad == 0);
}
