// SPDX-License-Identifier: MIT
// dtype conversions against an oracle that shares no code with them: for every input the nearest
// representable value is searched in double precision over the whole code table, ties to the even
// code, with the formats' overflow conventions. Exhaustive over every code and every midpoint
// between neighbouring codes, plus >= 10^6 random floats and the edge values.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "r1/core/dispatch.hpp"
#include "r1/core/dtype.hpp"

using namespace r1;

namespace {

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

// Value of a magnitude code (0..0x7f) of an fp8 format, in double; the code just above the largest
// finite value (e4m3's 0x7f, e5m2's 0x7c) gets the value it would have as a normal number, which
// is where round-to-nearest-even decides between saturation and overflow.
double fp8_magnitude(int code, int man_bits, int bias) {
  const int e = code >> man_bits, m = code & ((1 << man_bits) - 1);
  if (e == 0) return std::ldexp(double(m), 1 - bias - man_bits);
  return std::ldexp(1.0 + double(m) / (1 << man_bits), e - bias);
}

struct Fp8Oracle {
  int man_bits, bias;
  int max_code;       // largest finite magnitude code
  bool has_inf;
  std::vector<double> values;  // magnitudes of codes 0..max_code+1
  Fp8Oracle(int man, int b, int maxc, bool inf) : man_bits(man), bias(b), max_code(maxc), has_inf(inf) {
    for (int c = 0; c <= max_code + 1; ++c) values.push_back(fp8_magnitude(c, man_bits, bias));
  }
  uint8_t encode(float x, Saturate sat) const {
    if (std::isnan(x)) return 0x7f;
    const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
    const uint8_t overflow = sat == Saturate::finite ? uint8_t(max_code) : has_inf ? uint8_t(0x7c) : uint8_t(0x7f);
    const double a = std::fabs(double(x));
    if (std::isinf(x) || a > values.back()) return overflow | sign;
    int best = 0;
    double best_d = std::numeric_limits<double>::infinity();
    for (int c = 0; c <= max_code + 1; ++c) {
      const double d = std::fabs(a - values[c]);
      if (d < best_d || (d == best_d && (c & 1) == 0)) {
        best = c;
        best_d = d;
      }
    }
    if (best > max_code) return overflow | sign;
    return uint8_t(best) | sign;
  }
};

const Fp8Oracle e4m3_oracle(3, 7, 0x7e, false);
const Fp8Oracle e5m2_oracle(2, 15, 0x7b, true);

uint16_t bf16_oracle(float x) {
  if (std::isnan(x)) return 0x7fff;
  const uint32_t u = bits_of(x);
  const uint16_t lo = uint16_t(u >> 16);  // truncation toward zero
  const uint16_t hi = uint16_t(lo + 1);
  const double vlo = double(from_bits(uint32_t(lo) << 16));
  if ((lo & 0x7f80) == 0x7f80) return lo;  // ±inf stays
  const double vhi = (hi & 0x7f80) == 0x7f80 ? std::copysign(std::ldexp(1.0, 128), double(x))
                                             : double(from_bits(uint32_t(hi) << 16));
  const double dl = std::fabs(double(x) - vlo), dh = std::fabs(double(x) - vhi);
  if (dl < dh || (dl == dh && (lo & 1) == 0)) return lo;
  return hi;
}

std::vector<float> edge_floats() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 448.0f, -448.0f, 464.0f, -464.0f, 465.0f,
                          480.0f, 57344.0f, -57344.0f, 61440.0f, 61439.99f, 65504.0f, 65520.0f,
                          1e-10f, 1.953125e-3f /* e4m3 min subnormal */, 9.765625e-4f, 9.7656e-4f,
                          1.52587890625e-5f /* e5m2 min subnormal */, 7.62939453125e-6f,
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
                          std::numeric_limits<float>::min(), std::numeric_limits<float>::max(),
                          -std::numeric_limits<float>::max(), from_bits(0x7f800001u), from_bits(0xffc00001u)};
  // Every fp8 value and every midpoint between neighbours, and their float neighbours.
  for (const Fp8Oracle* o : {&e4m3_oracle, &e5m2_oracle}) {
    for (std::size_t c = 0; c + 1 < o->values.size(); ++c) {
      for (double base : {o->values[c], 0.5 * (o->values[c] + o->values[c + 1])}) {
        const float f = float(base);
        for (float g : {f, std::nextafter(f, 0.0f), std::nextafter(f, 1e30f)}) {
          v.push_back(g);
          v.push_back(-g);
        }
      }
    }
  }
  return v;
}

}  // namespace

TEST_CASE("fp8 e4m3 decode: every code") {
  for (int c = 0; c < 256; ++c) {
    const float f = float(fp8_e4m3::from_bits(uint8_t(c)));
    if ((c & 0x7f) == 0x7f) {
      CHECK(bits_of(f) == 0x7fffffffu);  // canonical NaN, sign discarded (as CUDA)
      continue;
    }
    const double expect = (c & 0x80 ? -1 : 1) * fp8_magnitude(c & 0x7f, 3, 7);
    CHECK(double(f) == expect);
    CHECK(std::signbit(f) == bool(c & 0x80));
    // Round trip in both modes.
    CHECK(fp8_e4m3(f).bits == c);
    CHECK(fp8_e4m3(f, Saturate::none).bits == c);
  }
  CHECK(float(fp8_e4m3::from_bits(0x7e)) == 448.0f);
  CHECK(float(fp8_e4m3::from_bits(0x01)) == 0.001953125f);
}

TEST_CASE("fp8 e5m2 decode: every code") {
  for (int c = 0; c < 256; ++c) {
    const float f = float(fp8_e5m2::from_bits(uint8_t(c)));
    const int m = c & 0x7f;
    if (m > 0x7c) {
      CHECK(bits_of(f) == 0x7fffffffu);
      continue;
    }
    if (m == 0x7c) {
      CHECK(std::isinf(f));
      CHECK(std::signbit(f) == bool(c & 0x80));
      continue;
    }
    const double expect = (c & 0x80 ? -1 : 1) * fp8_magnitude(m, 2, 15);
    CHECK(double(f) == expect);
    CHECK(fp8_e5m2(f).bits == c);
    CHECK(fp8_e5m2(f, Saturate::none).bits == c);
  }
  CHECK(float(fp8_e5m2::from_bits(0x7b)) == 57344.0f);
}

TEST_CASE("fp8 encode: edges, midpoints and 10^6 random floats against the oracle") {
  std::vector<float> xs = edge_floats();
  std::mt19937 rng(12345);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int i = 0; i < 400000; ++i) xs.push_back(from_bits(any_bits(rng)));  // every magnitude
  for (int i = 0; i < 400000; ++i) xs.push_back(normal(rng) * 100.0f);     // activations
  for (int i = 0; i < 300000; ++i) xs.push_back(normal(rng) * 0.01f);      // near subnormals
  int bad = 0;
  for (float x : xs) {
    for (Saturate s : {Saturate::finite, Saturate::none}) {
      const uint8_t a = fp8_e4m3(x, s).bits, b = e4m3_oracle.encode(x, s);
      const uint8_t c = fp8_e5m2(x, s).bits, d = e5m2_oracle.encode(x, s);
      if ((a != b || c != d) && ++bad <= 10) {
        INFO("x=" << x << " bits=0x" << std::hex << bits_of(x) << " e4m3 " << int(a) << " vs " << int(b)
                  << " e5m2 " << int(c) << " vs " << int(d));
        CHECK(false);
      }
    }
  }
  CHECK(bad == 0);
  CHECK(xs.size() >= 1000000);
}

TEST_CASE("fp8 saturation conventions") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(fp8_e4m3(inf).bits == 0x7e);  // +inf saturates to 448: check finiteness before quantizing
  CHECK(fp8_e4m3(-inf).bits == 0xfe);
  CHECK(fp8_e4m3(inf, Saturate::none).bits == 0x7f);
  CHECK(fp8_e4m3(-1e6f, Saturate::none).bits == 0xff);
  CHECK(fp8_e4m3(464.0f).bits == 0x7e);  // tie between 448 and "480": to even (448)
  CHECK(fp8_e4m3(464.1f, Saturate::none).bits == 0x7f);
  CHECK(fp8_e5m2(inf, Saturate::none).bits == 0x7c);
  CHECK(fp8_e5m2(61440.0f, Saturate::none).bits == 0x7c);  // tie rounds up to inf
  CHECK(fp8_e5m2(61440.0f).bits == 0x7b);
  CHECK(fp8_e4m3(std::nanf("")).bits == 0x7f);
  CHECK(fp8_e4m3(-std::nanf("")).bits == 0x7f);
  CHECK(fp8_e4m3(-0.0f).bits == 0x80);
  CHECK(fp8_e4m3(-1e-30f).bits == 0x80);
}

TEST_CASE("bf16: every code decodes and round-trips; encode matches the oracle") {
  for (uint32_t c = 0; c < 65536; ++c) {
    const float f = float(bf16::from_bits(uint16_t(c)));
    CHECK_EQ(bits_of(f), c << 16);  // decode is a shift, NaN payloads included
    if (!std::isnan(f)) {
      REQUIRE(bf16(f).bits == c);
      // The midpoint to the next code rounds to the even one of the pair.
      const float mid = from_bits((c << 16) | 0x8000u);
      if (!std::isnan(mid)) {
        REQUIRE(bf16(mid).bits == bf16_oracle(mid));
        REQUIRE(bf16(std::nextafter(mid, 0.0f)).bits == bf16_oracle(std::nextafter(mid, 0.0f)));
      }
    } else {
      CHECK(bf16(f).bits == 0x7fff);
    }
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> any_bits;
  int bad = 0;
  for (int i = 0; i < 1000000; ++i) {
    const float x = from_bits(any_bits(rng));
    if (bf16(x).bits != bf16_oracle(x)) ++bad;
  }
  for (float x : edge_floats()) {
    if (bf16(x).bits != bf16_oracle(x)) ++bad;
  }
  CHECK(bad == 0);
  CHECK(bf16(std::numeric_limits<float>::max()).bits == 0x7f80);  // rounds to inf, as CUDA
}

#if defined(__FLT16_MAX__)
TEST_CASE("fp16: encode and decode agree with the compiler's _Float16") {
  for (uint32_t c = 0; c < 65536; ++c) {
    _Float16 h;
    const uint16_t c16 = uint16_t(c);
    std::memcpy(&h, &c16, 2);
    const float f = float(fp16::from_bits(c16));
    if (std::isnan(float(h))) {
      CHECK(bits_of(f) == 0x7fffffffu);
      continue;
    }
    REQUIRE(bits_of(f) == bits_of(float(h)));
    REQUIRE(fp16(f).bits == c16);
  }
  std::mt19937 rng(9);
  std::uniform_int_distribution<uint32_t> any_bits;
  int bad = 0;
  for (int i = 0; i < 1000000; ++i) {
    const float x = from_bits(any_bits(rng));
    if (std::isnan(x)) {
      if (fp16(x).bits != 0x7fff) ++bad;
      continue;
    }
    const _Float16 h = static_cast<_Float16>(x);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    if (fp16(x).bits != hb) ++bad;
  }
  CHECK(bad == 0);
}
#endif

TEST_CASE("int4x2 packing") {
  for (int lo = -8; lo <= 7; ++lo) {
    for (int hi = -8; hi <= 7; ++hi) {
      int4x2 p = int4x2::pack(lo, hi);
      CHECK(p.get(0) == lo);
      CHECK(p.get(1) == hi);
      p.set(1, lo);
      p.set(0, hi);
      CHECK(p.get(0) == hi);
      CHECK(p.get(1) == lo);
    }
  }
  CHECK(int4x2::pack(1, -1).bits == 0xf1);  // element 0 in the low nibble
}

TEST_CASE("dtype names and sizes") {
  for (DType d : all_dtypes) {
    DType back;
    REQUIRE(parse_dtype(dtype_name(d), back));
    CHECK(back == d);
  }
  DType d;
  CHECK_FALSE(parse_dtype("F8_E4M3FNUZ", d));
  CHECK_FALSE(parse_dtype("", d));
  CHECK(dtype_size(DType::bf16) == 2);
  CHECK(dtype_size(DType::f8_e4m3) == 1);
  CHECK(dtype_size(DType::i64) == 8);
}

TEST_CASE("dispatch_dtype picks the type and names the supported set on failure") {
  auto name = [](DType d) {
    return dispatch_dtype(TypeList<float, bf16>{}, d, "test.op",
                          [&]<class T>() { return int(sizeof(T)); });
  };
  CHECK(name(DType::f32) == 4);
  CHECK(name(DType::bf16) == 2);
  try {
    name(DType::f8_e4m3);
    CHECK(false);
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "test.op: unsupported dtype F8_E4M3 (supported: F32, BF16)");
  }
  int seen = 0;
  dispatch_int<64, 128>(128, "test.op", "head dim", [&]<int V>() { seen = V; });
  CHECK(seen == 128);
  auto bad = [] { dispatch_int<64, 128>(96, "test.op", "head dim", []<int V>() {}); };
  CHECK_THROWS_WITH(bad(), "test.op: unsupported head dim 96 (supported: 64, 128)");
}
