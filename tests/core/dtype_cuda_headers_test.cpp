// SPDX-License-Identifier: MIT
// Host conversions against CUDA's own host implementations (cuda_bf16.h, cuda_fp16.h, cuda_fp8.h,
// compiled here by the host compiler): bit-identical over every code, over every float whose low
// mantissa bits take the patterns that decide rounding (all 2^20 sign/exponent/top-mantissa
// combinations x 6 tails), and over 10^6 random floats.
#include <doctest/doctest.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstring>
#include <random>

#include "r1/core/dtype.hpp"

using namespace r1;

namespace {
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
uint16_t cuda_bf16_bits(float x) {
  __nv_bfloat16 b = __float2bfloat16_rn(x);
  uint16_t u;
  std::memcpy(&u, &b, 2);
  return u;
}
uint16_t cuda_fp16_bits(float x) {
  __half h = __float2half_rn(x);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
int compare_all(float x) {
  int bad = 0;
  bad += fp8_e4m3(x).bits != __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
  bad += fp8_e4m3(x, Saturate::none).bits != __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E4M3);
  bad += fp8_e5m2(x).bits != __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2);
  bad += fp8_e5m2(x, Saturate::none).bits != __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E5M2);
  bad += bf16(x).bits != cuda_bf16_bits(x);
  bad += fp16(x).bits != cuda_fp16_bits(x);
  return bad;
}
}  // namespace

TEST_CASE("decode of every fp8, bf16 and fp16 code is bit-identical to CUDA's") {
  for (int c = 0; c < 256; ++c) {
    __nv_fp8_e4m3 a;
    a.__x = uint8_t(c);
    __nv_fp8_e5m2 b;
    b.__x = uint8_t(c);
    REQUIRE(bits_of(float(fp8_e4m3::from_bits(uint8_t(c)))) == bits_of(float(a)));
    REQUIRE(bits_of(float(fp8_e5m2::from_bits(uint8_t(c)))) == bits_of(float(b)));
  }
  for (uint32_t c = 0; c < 65536; ++c) {
    __nv_bfloat16_raw br;
    br.x = uint16_t(c);
    __half_raw hr;
    hr.x = uint16_t(c);
    REQUIRE(bits_of(float(bf16::from_bits(uint16_t(c)))) == bits_of(__bfloat162float(__nv_bfloat16(br))));
    REQUIRE(bits_of(float(fp16::from_bits(uint16_t(c)))) == bits_of(__half2float(__half(hr))));
  }
}

TEST_CASE("encode is bit-identical to CUDA's over all rounding patterns") {
  const uint32_t tails[] = {0x000u, 0x001u, 0x7ffu, 0x800u, 0x801u, 0xfffu};
  int bad = 0;
  for (uint32_t hi = 0; hi < (1u << 20); ++hi) {
    for (uint32_t t : tails) bad += compare_all(from_bits((hi << 12) | t));
  }
  // bf16 and fp16 round at bit 16 / bit 13: sweep those tails too.
  for (uint32_t hi = 0; hi < (1u << 16); ++hi) {
    for (uint32_t t : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) {
      bad += compare_all(from_bits((hi << 16) | t));
    }
  }
  std::mt19937 rng(2024);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 1000000; ++i) bad += compare_all(from_bits(any_bits(rng)));
  CHECK(bad == 0);
}
