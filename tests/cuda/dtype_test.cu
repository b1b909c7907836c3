// SPDX-License-Identifier: MIT
// Device conversions (CUDA's intrinsics: cvt.rn.satfinite.e4m3x2.f32 etc. on sm_89+) against r1's
// host conversions, bit for bit, over every code, every rounding pattern and 10^6 random floats.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <vector>

#include "r1/core/cuda.hpp"
#include "r1/core/dtype.hpp"
#include "r1/tensor/tensor.hpp"

using namespace r1;

namespace {
// out[i] = {e4m3 sat, e4m3 nosat, e5m2 sat, e5m2 nosat, bf16 lo, bf16 hi, fp16 lo, fp16 hi}
__global__ void encode_kernel(const float* in, uint8_t* out, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float x = in[i];
  uint8_t* o = out + i * 8;
  o[0] = fp8_e4m3(x).bits;
  o[1] = fp8_e4m3(x, Saturate::none).bits;
  o[2] = fp8_e5m2(x).bits;
  o[3] = fp8_e5m2(x, Saturate::none).bits;
  const uint16_t b = bf16(x).bits, h = fp16(x).bits;
  o[4] = uint8_t(b);
  o[5] = uint8_t(b >> 8);
  o[6] = uint8_t(h);
  o[7] = uint8_t(h >> 8);
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
  Tensor out = Tensor::empty(DType::u8, {n, 8}, Space::cuda);
  out.fill_bytes(0xa5);  // poison
  encode_kernel<<<unsigned((n + 255) / 256), 256>>>(in.data_as<float>(), out.data_as<uint8_t>(), n);
  R1_CUDA_CHECK_LAUNCH();
  Tensor h = out.to(Space::host);
  auto o = h.view<const uint8_t, 2>();
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = xs[size_t(i)];
    const uint16_t b = bf16(x).bits, f = fp16(x).bits;
    const uint8_t expect[8] = {fp8_e4m3(x).bits, fp8_e4m3(x, Saturate::none).bits, fp8_e5m2(x).bits,
                               fp8_e5m2(x, Saturate::none).bits, uint8_t(b), uint8_t(b >> 8),
                               uint8_t(f), uint8_t(f >> 8)};
    for (int k = 0; k < 8; ++k) {
      if (o(i, k) != expect[k] && ++bad <= 8) {
        MESSAGE("x bits 0x" << std::hex << bits_of(x) << " slot " << k << " device 0x" << int(o(i, k))
                            << " host 0x" << int(expect[k]));
      }
    }
  }
  CHECK(bad == 0);
}
