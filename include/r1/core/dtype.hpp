// SPDX-License-Identifier: MIT
// Storage dtypes (bf16, fp16, fp8 e4m3fn / e5m2, packed int4) and their conversions.
//
// The host conversions are our own integer/float code, written to be bit-identical to CUDA's
// (cuda_bf16.h, cuda_fp16.h, cuda_fp8.h): round-to-nearest-even, canonical NaNs, and CUDA's
// saturating (__NV_SATFINITE) and non-saturating (__NV_NOSAT) fp8 modes. In the device pass of
// nvcc the same functions call CUDA's intrinsics, so device code gets the hardware instructions.
// tests/core/dtype_test.cpp checks the host side against CUDA's headers exhaustively over every
// code; tests/cuda/dtype_test.cu checks the device side on the GPU.
//
// Note: the saturating e4m3 conversion maps +inf to 448 (and NaN to NaN), so code that must
// reject non-finite input checks for it *before* quantizing.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "r1/core/config.hpp"

#if R1_DEVICE_PASS || defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#endif

namespace r1 {

namespace detail {
R1_HD uint32_t f32_bits(float f) {
#if R1_DEVICE_PASS
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
R1_HD float bits_f32(uint32_t u) {
#if R1_DEVICE_PASS
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
}  // namespace detail

/// What an fp8 conversion does with values beyond the format's largest finite value.
enum class Saturate : uint8_t {
  finite,  ///< clamp to ±max finite (CUDA __NV_SATFINITE; +inf -> 448 for e4m3)
  none,    ///< overflow to NaN (e4m3, which has no inf) or ±inf (e5m2) (CUDA __NV_NOSAT)
};

// ---------------------------------------------------------------------------------------------
// bf16

/// bfloat16 storage: 1 sign, 8 exponent, 7 mantissa bits. Trivially copyable, 2 bytes.
struct bf16 {
  uint16_t bits;
  bf16() = default;
  R1_HD static bf16 from_bits(uint16_t b) {
    bf16 r;
    r.bits = b;
    return r;
  }
  /// Round-to-nearest-even; NaN -> canonical 0x7FFF (as __float2bfloat16_rn).
  R1_HD explicit bf16(float f) {
#if R1_DEVICE_PASS
    bits = __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
    const uint32_t u = detail::f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = 0x7fffu;
    } else {
      // Adding 0x7fff plus the lowest kept bit rounds half to even; carries into the exponent
      // give inf on overflow, which is what CUDA does.
      bits = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
#endif
  }
  R1_HD explicit operator float() const { return detail::bits_f32(uint32_t(bits) << 16); }
};

// ---------------------------------------------------------------------------------------------
// fp16

/// IEEE binary16 storage.
struct fp16 {
  uint16_t bits;
  fp16() = default;
  R1_HD static fp16 from_bits(uint16_t b) {
    fp16 r;
    r.bits = b;
    return r;
  }
  /// Round-to-nearest-even; NaN -> 0x7FFF; overflow -> ±inf (as __float2half_rn).
  R1_HD explicit fp16(float f) {
#if R1_DEVICE_PASS
    bits = __half_as_ushort(__float2half_rn(f));
#else
    const uint32_t x = detail::f32_bits(f);
    const uint32_t u = x & 0x7fffffffu;
    const uint32_t sign = (x >> 16) & 0x8000u;
    if (u >= 0x7f800000u) {
      bits = static_cast<uint16_t>(u == 0x7f800000u ? (sign | 0x7c00u) : 0x7fffu);
      return;
    }
    if (u > 0x477fefffu) {  // rounds to beyond 65504
      bits = static_cast<uint16_t>(sign | 0x7c00u);
      return;
    }
    uint32_t result, remainder;
    if (u >= 0x38800000u) {  // normal half
      remainder = u << 19;
      result = sign | ((u - 0x38000000u) >> 13);
    } else if (u < 0x33000001u) {  // rounds to ±0
      remainder = u;
      result = sign;
    } else {  // subnormal half
      const uint32_t shift = 0x7eu - (u >> 23);
      const uint32_t mant = (u & 0x7fffffu) | 0x800000u;
      remainder = mant << (32u - shift);
      result = sign | (mant >> shift);
    }
    if (remainder > 0x80000000u || (remainder == 0x80000000u && (result & 1u))) ++result;
    bits = static_cast<uint16_t>(result);
#endif
  }
  R1_HD explicit operator float() const {
#if R1_DEVICE_PASS
    return __half2float(__ushort_as_half(bits));
#else
    const uint32_t sign = uint32_t(bits & 0x8000u) << 16;
    uint32_t exp = (bits >> 10) & 0x1fu;
    uint32_t mant = bits & 0x3ffu;
    if (exp == 0x1fu) {
      // CUDA discards the sign of a NaN and returns the canonical 0x7fffffff.
      return detail::bits_f32(mant ? 0x7fffffffu : (sign | 0x7f800000u));
    }
    if (exp == 0) {
      if (mant == 0) return detail::bits_f32(sign);
      exp = 0x71u;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      return detail::bits_f32(sign | (exp << 23) | (mant << 13));
    }
    return detail::bits_f32(sign | ((exp + 0x70u) << 23) | (mant << 13));
#endif
  }
};

// ---------------------------------------------------------------------------------------------
// fp8

namespace detail {
/// Format description of an 8-bit float. E4M3 ("fn": finite, one NaN pattern per sign) and E5M2
/// (IEEE-like, with inf) are the two OCP formats DeepSeek checkpoints and Hopper use.
template <int ExpBits, int ManBits, bool HasInf>
struct Fp8Format {
  static constexpr int exp_bits = ExpBits, man_bits = ManBits;
  static constexpr int bias = (1 << (ExpBits - 1)) - 1;
  static constexpr int emin = 1 - bias;  // exponent of the smallest normal
  static constexpr bool has_inf = HasInf;
  static constexpr uint8_t max_finite = HasInf ? 0x7b : 0x7e;  // 57344 / 448
  static constexpr uint8_t nan_code = 0x7f;                     // CUDA's canonical NaN
};
using E4M3 = Fp8Format<4, 3, false>;
using E5M2 = Fp8Format<5, 2, true>;

/// float -> fp8 bits, round-to-nearest-even, with CUDA's NaN / overflow conventions.
template <class F>
R1_HD uint8_t float_to_fp8(float x, Saturate sat) {
  const uint32_t u = f32_bits(x);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return F::nan_code;  // CUDA canonicalizes NaN to positive first
  const uint8_t overflow = sat == Saturate::finite ? F::max_finite
                           : F::has_inf            ? uint8_t(0x7c)
                                                   : uint8_t(0x7f);
  if (au == 0x7f800000u) return overflow | sign;
  const int e32 = int(au >> 23) - 127;
  if (e32 < F::emin - F::man_bits - 2) return sign;  // below half the smallest subnormal
  // Quantum of the fp8 grid at this magnitude; scaling by a power of two is exact.
  const int e = e32 < F::emin ? F::emin : e32;
  const int qe = e - F::man_bits;
  const float scaled = bits_f32(au) * bits_f32(uint32_t(127 - qe) << 23);
  const uint32_t r = static_cast<uint32_t>(rintf(scaled));  // RNE in the default FP mode
  if (r == 0) return sign;
  int ecode;
  uint32_t mcode;
  constexpr uint32_t hidden = 1u << F::man_bits;
  if (e32 < F::emin) {  // subnormal range; r == hidden means it rounded up to the min normal
    ecode = r >= hidden ? 1 : 0;
    mcode = r & (hidden - 1);
  } else if (r >= 2 * hidden) {  // rounded up into the next binade
    ecode = e + 1 + F::bias;
    mcode = 0;
  } else {
    ecode = e + F::bias;
    mcode = r - hidden;
  }
  const uint32_t code = (uint32_t(ecode) << F::man_bits) | mcode;
  if (code > F::max_finite) return overflow | sign;
  return static_cast<uint8_t>(code | sign);
}

/// fp8 bits -> float (exact). NaN -> canonical positive 0x7fffffff, as CUDA's conversion does.
template <class F>
R1_HD float fp8_to_float(uint8_t b) {
  const uint32_t sign = uint32_t(b & 0x80u) << 24;
  const uint32_t a = b & 0x7fu;
  const uint32_t ecode = a >> F::man_bits;
  const uint32_t mcode = a & ((1u << F::man_bits) - 1);
  if constexpr (F::has_inf) {
    if (ecode == (1u << F::exp_bits) - 1) {
      return bits_f32(mcode ? 0x7fffffffu : (sign | 0x7f800000u));
    }
  } else {
    if (a == 0x7fu) return bits_f32(0x7fffffffu);
  }
  if (ecode == 0) {
    // Subnormal: mcode * 2^(emin - man_bits), exact in float.
    const float v = float(mcode) * bits_f32(uint32_t(127 + F::emin - F::man_bits) << 23);
    return bits_f32(f32_bits(v) | sign);
  }
  const uint32_t e32 = ecode - F::bias + 127;
  return bits_f32(sign | (e32 << 23) | (mcode << (23 - F::man_bits)));
}
}  // namespace detail

/// fp8 e4m3fn storage (no inf; ±448 max; 0x7f/0xff NaN).
struct fp8_e4m3 {
  uint8_t bits;
  fp8_e4m3() = default;
  R1_HD static fp8_e4m3 from_bits(uint8_t b) {
    fp8_e4m3 r;
    r.bits = b;
    return r;
  }
  R1_HD explicit fp8_e4m3(float f, Saturate sat = Saturate::finite) {
#if R1_DEVICE_PASS
    bits = __nv_cvt_float_to_fp8(f, sat == Saturate::finite ? __NV_SATFINITE : __NV_NOSAT,
                                 __NV_E4M3);
#else
    bits = detail::float_to_fp8<detail::E4M3>(f, sat);
#endif
  }
  R1_HD explicit operator float() const {
#if R1_DEVICE_PASS
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(bits, __NV_E4M3)));
#else
    return detail::fp8_to_float<detail::E4M3>(bits);
#endif
  }
  static constexpr float max_finite = 448.0f;
};

/// fp8 e5m2 storage (has ±inf; ±57344 max).
struct fp8_e5m2 {
  uint8_t bits;
  fp8_e5m2() = default;
  R1_HD static fp8_e5m2 from_bits(uint8_t b) {
    fp8_e5m2 r;
    r.bits = b;
    return r;
  }
  R1_HD explicit fp8_e5m2(float f, Saturate sat = Saturate::finite) {
#if R1_DEVICE_PASS
    bits = __nv_cvt_float_to_fp8(f, sat == Saturate::finite ? __NV_SATFINITE : __NV_NOSAT,
                                 __NV_E5M2);
#else
    bits = detail::float_to_fp8<detail::E5M2>(f, sat);
#endif
  }
  R1_HD explicit operator float() const {
#if R1_DEVICE_PASS
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(bits, __NV_E5M2)));
#else
    return detail::fp8_to_float<detail::E5M2>(bits);
#endif
  }
  static constexpr float max_finite = 57344.0f;
};

/// Two signed 4-bit integers in one byte: element 0 in the low nibble, element 1 in the high
/// nibble (the GPTQ/AWQ packing order). Range [-8, 7].
struct int4x2 {
  uint8_t bits;
  int4x2() = default;
  R1_HD static int4x2 pack(int lo, int hi) {
    int4x2 r;
    r.bits = static_cast<uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
    return r;
  }
  R1_HD int get(int i) const {
    const int nib = (bits >> (i ? 4 : 0)) & 0xf;
    return nib >= 8 ? nib - 16 : nib;  // sign-extend
  }
  R1_HD void set(int i, int v) {
    const int shift = i ? 4 : 0;
    bits = static_cast<uint8_t>((bits & ~(0xf << shift)) | ((v & 0xf) << shift));
  }
};

static_assert(sizeof(bf16) == 2 && sizeof(fp16) == 2 && sizeof(fp8_e4m3) == 1 &&
              sizeof(fp8_e5m2) == 1 && sizeof(int4x2) == 1);

/// Generic value conversion used by reference kernels: `to_f32(x)` for any storage type.
template <class T>
R1_HD float to_f32(T x) {
  return static_cast<float>(x);
}
/// `from_f32<T>(f)`: round a float to storage type T (saturating for fp8, as DeepSeek does).
template <class T>
R1_HD T from_f32(float f) {
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else if constexpr (std::is_same_v<T, double>) {
    return double(f);
  } else {
    return T(f);
  }
}

// ---------------------------------------------------------------------------------------------
// Run-time dtype tags (file formats, type-erased tensors).

enum class DType : uint8_t { f64, f32, f16, bf16, f8_e4m3, f8_e5m2, i64, i32, i16, i8, u8, i4x2, boolean };

inline constexpr DType all_dtypes[] = {DType::f64,  DType::f32,     DType::f16,     DType::bf16,
                                       DType::f8_e4m3, DType::f8_e5m2, DType::i64, DType::i32,
                                       DType::i16,  DType::i8,      DType::u8,      DType::i4x2,
                                       DType::boolean};

/// Bytes per element (i4x2 counts one byte per packed pair).
constexpr std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::f16: case DType::bf16: case DType::i16: return 2;
    default: return 1;
  }
}

/// Names as safetensors spells them ("BF16", "F8_E4M3", ...); "I4X2" is r1's own packed int4.
constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::f64: return "F64";
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::f8_e4m3: return "F8_E4M3";
    case DType::f8_e5m2: return "F8_E5M2";
    case DType::i64: return "I64";
    case DType::i32: return "I32";
    case DType::i16: return "I16";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
    case DType::i4x2: return "I4X2";
    case DType::boolean: return "BOOL";
  }
  return "?";
}

/// Parses a dtype name; returns false for anything unknown.
constexpr bool parse_dtype(std::string_view s, DType& out) {
  for (DType d : all_dtypes) {
    if (dtype_name(d) == s) {
      out = d;
      return true;
    }
  }
  return false;
}

template <class T> struct dtype_of;
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<fp16> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<fp8_e4m3> { static constexpr DType value = DType::f8_e4m3; };
template <> struct dtype_of<fp8_e5m2> { static constexpr DType value = DType::f8_e5m2; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int16_t> { static constexpr DType value = DType::i16; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::i8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<int4x2> { static constexpr DType value = DType::i4x2; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::boolean; };
template <class T>
inline constexpr DType dtype_v = dtype_of<std::remove_const_t<T>>::value;

}  // namespace r1
