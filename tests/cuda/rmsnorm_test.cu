// SPDX-License-Identifier: MIT
// r1::cuda::rmsnorm, add_rmsnorm and rmsnorm_quant_fp8 against their ref twins on odd shapes and
// R1's widths (hidden 7168, q_lora 1536, kv_lora 512), bf16 and f32 activations / residuals /
// outputs, aligned (16-byte vector) and padded (element-wise) rows, outputs poisoned with NaN.
//
// Tolerances. The kernel performs the ref's operations in the ref's order except the sum of
// squares (a tree instead of a left-to-right loop). So:
//  - "exact" inputs (multiples of 1/8 in [-2, 2]: every partial sum of squares is exact in fp32 in
//    any order) must give bit-identical outputs, scales and e4m3 codes;
//  - random inputs: a bf16 output may differ from the ref by at most one bf16 ulp (the two inverse
//    norms differ by a few fp32 ulps, which moves a bf16 rounding only near a tie), rarely (< 1%);
//    an f32 output is compared with the fp64 ref: relative error <= 4e-6 (sum error about
//    (14 + log2(512)) * 2^-24 ~ 1.4e-6, plus four roundings);
//  - FP8: codes within one e4m3 step of the ref's, scales within 1e-5 relative, mismatches rare.
// The fp64 paths (an f64 residual or input, fp64 arithmetic, f32 outputs; the f32 activation
// policy's residual stream; and rmsnorm_quant_fp8 computing in fp64 from an f32 input, compared
// with the ref on the input converted to double) are compared with the ref computing in fp64 too
// (double operands):
//  - "exact" inputs: outputs, residuals, codes and scales bit-identical;
//  - random inputs (full fp64 mantissas): the updated residual bit-identical (one fp64 addition);
//    the f32 outputs and scales within one f32 ulp of the ref's and almost always equal: the GPU's
//    fp64 sum of squares differs from the ref's by ~1e-16..1e-14 relative (another order), which
//    moves an f32 rounding only for a value that close to a rounding boundary (~1e-7 of them; the
//    test allows 1 in 10^5 + 2); the e4m3 codes bit-identical (the quotient y / s does not depend
//    on the norm, which cancels, beyond a few fp64 roundings: a code could move only if those
//    straddled an fp32 rounding boundary next to an e4m3 one, ~1e-14 per element);
//  - exact e4m3 rounding ties (the reason for the fp64 path) round to even, as the ref's.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/rmsnorm.hpp"
#include "r1/kernels/ref/rmsnorm.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

constexpr float kEps = 1e-6f;

/// [rows, ld] host tensor of T: random in [-2, 2), or multiples of 1/8 in [-2, 2] when `exact`.
/// Random f64 values get low bits below fp32's too (an f64 residual holds sums of f32 terms).
template <class T>
Tensor activations(int64_t rows, int64_t ld, uint64_t seed, bool exact) {
  Tensor t = Tensor::empty(dtype_v<T>, {rows, ld});
  T* p = t.data_as<T>();
  for (int64_t i = 0; i < rows * ld; ++i) {
    const float v = exact ? float(int(mix(seed + uint64_t(i)) % 33) - 16) / 8.0f : 2.0f * uniform(seed, uint64_t(i));
    if constexpr (std::is_same_v<T, double>) {
      p[i] = exact ? double(v) : double(v) + std::ldexp(double(uniform(seed + 1, uint64_t(i))), -24);
    } else {
      p[i] = T(v);
    }
  }
  return t;
}

/// Norm weights around 1 (as trained RMSNorm weights are), bf16.
Tensor weights(int64_t dim, uint64_t seed) {
  Tensor t = Tensor::empty(DType::bf16, {dim});
  for (int64_t i = 0; i < dim; ++i) t.data_as<bf16>()[i] = bf16(1.0f + 0.5f * uniform(seed, uint64_t(i)));
  return t;
}

double ulp_bf16(double v) {
  const double a = std::fabs(v);
  return a < 1e-38 ? 1e-40 : std::exp2(std::floor(std::log2(a)) - 7);
}

struct Diff {
  int64_t differ = 0;  // elements not bit-identical to the ref
  int64_t bad = 0;     // elements outside the tolerance
  int64_t nonfinite = 0;
};

/// GPU output (host copy, [rows, dim] in a [rows, ld] tensor) against the ref computed in fp32
/// (`ref32`, same type) and fp64 (`ref64`).
template <class TY>
Diff diff_outputs(const Tensor& got, const Tensor& ref32, const std::vector<double>& ref64, int64_t rows, int64_t dim) {
  Diff d;
  const int64_t ld = got.size(1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < dim; ++i) {
      const TY g = got.data_as<TY>()[r * ld + i], e = ref32.data_as<TY>()[r * dim + i];
      const double gv = double(float(g)), ev = double(float(e)), e64 = ref64[size_t(r * dim + i)];
      if (!std::isfinite(gv)) {
        ++d.nonfinite;
        continue;
      }
      if (std::memcmp(&g, &e, sizeof(TY)) != 0) ++d.differ;
      if constexpr (std::is_same_v<TY, bf16>) {
        if (std::fabs(gv - ev) > ulp_bf16(ev) * 1.0001) ++d.bad;
      } else {
        if (std::fabs(gv - e64) > 4e-6 * std::fabs(e64) + 1e-30) ++d.bad;
      }
    }
  }
  return d;
}

/// `f32_out`: with random inputs an f32 output differs from the fp32 ref in the last bits almost
/// everywhere (the GPU sums the squares in another order), so only the fp64 bound (`bad`) applies;
/// a bf16 output must round to the ref's value except for a few elements near a rounding boundary.
void check_diff(const Diff& d, bool exact, int64_t n, bool f32_out) {
  CHECK(d.nonfinite == 0);
  CHECK(d.bad == 0);
  if (exact) {
    CHECK(d.differ == 0);
  } else if (!f32_out) {
    CHECK(d.differ <= n / 100 + 1);
  }
}

template <class TX, class TY>
void check_rmsnorm(int64_t rows, int64_t dim, int64_t pad, bool exact, bool alias, Stream& stream) {
  const int64_t ld = dim + pad;
  const uint64_t seed = case_seed(1, uint64_t(rows), uint64_t(dim), uint64_t(pad) * 2 + exact);
  Tensor x = activations<TX>(rows, ld, seed, exact);
  Tensor w = weights(dim, seed + 7);
  const View<const TX, 2> xv = x.view<const TX, 2>().slice(1, 0, dim);
  Tensor y32 = Tensor::empty(dtype_v<TY>, {rows, dim});
  ref::rmsnorm(xv, w.view<const bf16, 1>(), kEps, y32.view<TY, 2>());
  std::vector<double> xd(size_t(rows * dim)), wd(static_cast<size_t>(dim)), y64(size_t(rows * dim));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) xd[size_t(r * dim + i)] = double(float(xv(r, i)));
  for (int64_t i = 0; i < dim; ++i) wd[size_t(i)] = double(float(w.data_as<bf16>()[i]));
  ref::rmsnorm(make_view<2>(xd.data(), {rows, dim}).as_const(), make_view<1>(wd.data(), {dim}).as_const(), kEps,
               make_view<2>(y64.data(), {rows, dim}));

  Tensor xd_dev = x.to(Space::cuda, stream), wd_dev = w.to(Space::cuda, stream);
  Tensor yd = Tensor::empty(dtype_v<TY>, {rows, ld}, Space::cuda, stream);
  poison(yd, stream);
  View<TY, 2> yv = yd.view<TY, 2>().slice(1, 0, dim);
  if constexpr (std::is_same_v<TX, TY>) {
    if (alias) yv = xd_dev.view<TY, 2>().slice(1, 0, dim);  // in place: y aliases x
  }
  cuda::rmsnorm<TX, bf16, TY>(xd_dev.view<const TX, 2>().slice(1, 0, dim), wd_dev.view<const bf16, 1>(), kEps, yv,
                              stream);
  Tensor got = (alias && std::is_same_v<TX, TY> ? xd_dev : yd).to(Space::host, stream);
  const Diff d = diff_outputs<TY>(got, y32, y64, rows, dim);
  INFO("rmsnorm rows=", rows, " dim=", dim, " pad=", pad, std::string(exact ? " exact" : " random"), std::string(alias ? " in place" : ""),
       " x ", std::string(sizeof(TX) == 2 ? "bf16" : "f32"), " y ", std::string(sizeof(TY) == 2 ? "bf16" : "f32"), ": differ ", d.differ,
       " bad ", d.bad, " non-finite ", d.nonfinite);
  check_diff(d, exact, rows * dim, std::is_same_v<TY, float>);
  if (!alias && pad > 0) CHECK(touched_padding(got, dim) == 0);
}

/// The GPU's residual after add_rmsnorm (res_got [rows, ld]) against the ref's (res_ref [rows,
/// dim]) bit for bit, and its padding columns against the input's (res_in [rows, ld]): counts of
/// mismatching elements {inside, padding}.
template <class TR>
std::pair<int64_t, int64_t> residual_mismatches(const Tensor& res_got, const Tensor& res_ref, const Tensor& res_in,
                                                int64_t rows, int64_t dim, int64_t ld) {
  int64_t bad = 0, pad_changed = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < ld; ++i) {
      const TR g = res_got.data_as<TR>()[r * ld + i];
      const TR e = i < dim ? res_ref.data_as<TR>()[r * dim + i] : res_in.data_as<TR>()[r * ld + i];
      (i < dim ? bad : pad_changed) += std::memcmp(&g, &e, sizeof(TR)) != 0;
    }
  }
  return {bad, pad_changed};
}

template <class TR, class TX, class TY>
void check_add_rmsnorm(int64_t rows, int64_t dim, int64_t pad, bool exact, Stream& stream) {
  const int64_t ld = dim + pad;
  const uint64_t seed = case_seed(2, uint64_t(rows), uint64_t(dim), uint64_t(pad) * 2 + exact);
  Tensor res = activations<TR>(rows, ld, seed, exact);
  Tensor x = activations<TX>(rows, ld, seed + 1000003, exact);
  Tensor w = weights(dim, seed + 7);
  Tensor res_ref = Tensor::empty(dtype_v<TR>, {rows, dim});  // [rows, dim] updated by the ref
  res_ref.copy_from(res.slice(1, 0, dim));
  Tensor y32 = Tensor::empty(dtype_v<TY>, {rows, dim});
  ref::add_rmsnorm(res_ref.view<TR, 2>(), x.view<const TX, 2>().slice(1, 0, dim), w.view<const bf16, 1>(), kEps,
                   y32.view<TY, 2>());
  // fp64 ref from the updated (stored) residual, which is what the norm reads
  std::vector<double> rd(size_t(rows * dim)), wd(static_cast<size_t>(dim)), y64(size_t(rows * dim));
  for (int64_t i = 0; i < rows * dim; ++i) rd[size_t(i)] = double(float(res_ref.data_as<TR>()[i]));
  for (int64_t i = 0; i < dim; ++i) wd[size_t(i)] = double(float(w.data_as<bf16>()[i]));
  ref::rmsnorm(make_view<2>(rd.data(), {rows, dim}).as_const(), make_view<1>(wd.data(), {dim}).as_const(), kEps,
               make_view<2>(y64.data(), {rows, dim}));

  Tensor resd = res.to(Space::cuda, stream), xd = x.to(Space::cuda, stream), wdv = w.to(Space::cuda, stream);
  Tensor yd = Tensor::empty(dtype_v<TY>, {rows, ld}, Space::cuda, stream);
  poison(yd, stream);
  cuda::add_rmsnorm<TR, TX, bf16, TY>(resd.view<TR, 2>().slice(1, 0, dim), xd.view<const TX, 2>().slice(1, 0, dim),
                                      wdv.view<const bf16, 1>(), kEps, yd.view<TY, 2>().slice(1, 0, dim), stream);
  Tensor got = yd.to(Space::host, stream), res_got = resd.to(Space::host, stream);
  const std::pair<int64_t, int64_t> mism = residual_mismatches<TR>(res_got, res_ref, res, rows, dim, ld);
  const int64_t res_bad = mism.first, pad_changed = mism.second;
  const Diff d = diff_outputs<TY>(got, y32, y64, rows, dim);
  INFO("add_rmsnorm rows=", rows, " dim=", dim, " pad=", pad, std::string(exact ? " exact" : " random"), " residual ",
       std::string(sizeof(TR) == 2 ? "bf16" : "f32"), ": residual mismatches ", res_bad, ", y differ ", d.differ, " bad ", d.bad);
  CHECK(res_bad == 0);  // one fp32 addition rounded to TR: bit-identical
  CHECK(pad_changed == 0);
  check_diff(d, exact, rows * dim, std::is_same_v<TY, float>);
}

/// Runs cuda::rmsnorm_quant_fp8 computing in TC (float, or double: fp64 arithmetic on an f32 or
/// f64 x) on host x [rows, ld] of TX (columns [0, dim)) and weight w, into poisoned outputs with
/// row-major or MN-major scales; returns codes [rows, dim] and scales [rows, dim / 128] (row-major)
/// on the host.
template <class TX, class TC>
std::pair<Tensor, Tensor> quant_gpu(const Tensor& x, const Tensor& w, int64_t dim, bool mn_major, Stream& stream) {
  const int64_t rows = x.size(0), g = dim / 128;
  Tensor xd = x.to(Space::cuda, stream), wd = w.to(Space::cuda, stream);
  Tensor qd = Tensor::empty(DType::f8_e4m3, {rows, dim}, Space::cuda, stream);
  Tensor sd = Tensor::empty(DType::f32, {rows * g}, Space::cuda, stream);
  poison(qd, stream);
  poison(sd, stream);
  const View<float, 2> sv = mn_major ? cuda::mn_major_scales(sd.data_as<float>(), rows, g)
                                     : make_view<2>(sd.data_as<float>(), {rows, g}, Space::cuda);
  cuda::rmsnorm_quant_fp8<128, TX, bf16, TC>(xd.view<const TX, 2>().slice(1, 0, dim), wd.view<const bf16, 1>(), kEps,
                                             qd.view<fp8_e4m3, 2>(), sv, stream);
  Tensor qh = qd.to(Space::host, stream), sh = sd.to(Space::host, stream);
  Tensor s = Tensor::empty(DType::f32, {rows, g});  // [rows, groups] row-major
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < g; ++j) {
      s.data_as<float>()[r * g + j] = sh.data_as<float>()[mn_major ? j * rows + r : r * g + j];
    }
  }
  return {qh, s};
}

template <class TX>
void check_quant(int64_t rows, int64_t dim, int64_t pad, bool exact, bool mn_major, Stream& stream) {
  const int64_t ld = dim + pad, g = dim / 128;
  const uint64_t seed = case_seed(3, uint64_t(rows), uint64_t(dim), uint64_t(pad) * 2 + exact);
  Tensor x = activations<TX>(rows, ld, seed, exact);
  Tensor w = weights(dim, seed + 7);
  Tensor qr = Tensor::empty(DType::f8_e4m3, {rows, dim}), sr = Tensor::empty(DType::f32, {rows, g});
  ref::rmsnorm_quant_fp8<128>(x.view<const TX, 2>().slice(1, 0, dim), w.view<const bf16, 1>(), kEps,
                              qr.view<fp8_e4m3, 2>(), sr.view<float, 2>());
  const std::pair<Tensor, Tensor> got = quant_gpu<TX, float>(x, w, dim, mn_major, stream);
  const Tensor &qh = got.first, &sh = got.second;  // [rows, dim] codes, [rows, groups] scales
  int64_t q_differ = 0, q_bad = 0, s_differ = 0, s_bad = 0;
  for (int64_t i = 0; i < rows * dim; ++i) {
    const uint8_t a = qh.data_as<fp8_e4m3>()[i].bits, b = qr.data_as<fp8_e4m3>()[i].bits;
    if (a == b) continue;
    ++q_differ;
    // one e4m3 step: same sign, adjacent magnitude codes (NaN codes 0x7f / 0xff are never adjacent)
    const bool adjacent = (a & 0x80) == (b & 0x80) && std::abs(int(a & 0x7f) - int(b & 0x7f)) == 1 &&
                          (a & 0x7f) != 0x7f && (b & 0x7f) != 0x7f;
    q_bad += !adjacent;
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < g; ++j) {
      const float a = sh.data_as<float>()[r * g + j], b = sr.data_as<float>()[r * g + j];
      s_differ += std::memcmp(&a, &b, 4) != 0;
      s_bad += !(std::fabs(double(a) - double(b)) <= 1e-5 * double(b));
    }
  }
  INFO("rmsnorm_quant_fp8 rows=", rows, " dim=", dim, " pad=", pad, std::string(exact ? " exact" : " random"),
       std::string(mn_major ? " MN-major" : " row-major"), ": codes differ ", q_differ, " (bad ", q_bad, "), scales differ ",
       s_differ, " (bad ", s_bad, ")");
  CHECK(q_bad == 0);
  CHECK(s_bad == 0);
  if (exact) {
    CHECK(q_differ == 0);
    CHECK(s_differ == 0);
  } else {
    CHECK(q_differ <= rows * dim / 100 + 1);
  }
}

// ---------------------------------------------------------------------------------------------
// fp64 paths: f64 residual / input, fp64 arithmetic, f32 outputs

double ulp_f32(double v) {
  const double a = std::fabs(v);
  return a < 0x1p-126 ? 0x1p-149 : std::exp2(std::floor(std::log2(a)) - 23);
}

/// GPU f32 output (host copy, [rows, dim] in a [rows, ld] tensor) against the ref's f32 output
/// computed in fp64 (double operands): `bad` counts elements more than one f32 ulp away.
Diff diff_f64_path(const Tensor& got, const Tensor& ref, int64_t rows, int64_t dim) {
  Diff d;
  const int64_t ld = got.size(1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < dim; ++i) {
      const float g = got.data_as<float>()[r * ld + i], e = ref.data_as<float>()[r * dim + i];
      if (!std::isfinite(g)) {
        ++d.nonfinite;
        continue;
      }
      if (std::memcmp(&g, &e, 4) != 0) ++d.differ;
      if (std::fabs(double(g) - double(e)) > ulp_f32(e)) ++d.bad;
    }
  }
  return d;
}

/// Exact inputs: bit for bit; random ones: within one f32 ulp, rarely different (file comment).
void check_diff_f64(const Diff& d, bool exact, int64_t n) {
  CHECK(d.nonfinite == 0);
  CHECK(d.bad == 0);
  CHECK(d.differ <= (exact ? 0 : n / 100000 + 2));
}

void check_rmsnorm_f64(int64_t rows, int64_t dim, int64_t pad, bool exact, Stream& stream) {
  const int64_t ld = dim + pad;
  const uint64_t seed = case_seed(4, uint64_t(rows), uint64_t(dim), uint64_t(pad) * 2 + exact);
  Tensor x = activations<double>(rows, ld, seed, exact);
  Tensor w = weights(dim, seed + 7);
  Tensor yr = Tensor::empty(DType::f32, {rows, dim});  // the ref in fp64, rounded to f32 once
  ref::rmsnorm(x.view<const double, 2>().slice(1, 0, dim), w.view<const bf16, 1>(), kEps, yr.view<float, 2>());
  Tensor xd = x.to(Space::cuda, stream), wd = w.to(Space::cuda, stream);
  Tensor yd = Tensor::empty(DType::f32, {rows, ld}, Space::cuda, stream);
  poison(yd, stream);
  cuda::rmsnorm<double, bf16, float>(xd.view<const double, 2>().slice(1, 0, dim), wd.view<const bf16, 1>(), kEps,
                                     yd.view<float, 2>().slice(1, 0, dim), stream);
  Tensor got = yd.to(Space::host, stream);
  const Diff d = diff_f64_path(got, yr, rows, dim);
  INFO("rmsnorm f64 -> f32 rows=", rows, " dim=", dim, " pad=", pad, std::string(exact ? " exact" : " random"),
       ": differ ", d.differ, " bad ", d.bad, " non-finite ", d.nonfinite);
  check_diff_f64(d, exact, rows * dim);
  if (pad > 0) CHECK(touched_padding(got, dim) == 0);
}

void check_add_rmsnorm_f64(int64_t rows, int64_t dim, int64_t pad, bool exact, Stream& stream) {
  const int64_t ld = dim + pad;
  const uint64_t seed = case_seed(5, uint64_t(rows), uint64_t(dim), uint64_t(pad) * 2 + exact);
  Tensor res = activations<double>(rows, ld, seed, exact);
  Tensor x = activations<float>(rows, ld, seed + 1000003, exact);
  Tensor w = weights(dim, seed + 7);
  Tensor res_ref = Tensor::empty(DType::f64, {rows, dim});  // [rows, dim] updated by the ref
  res_ref.copy_from(res.slice(1, 0, dim));
  Tensor yr = Tensor::empty(DType::f32, {rows, dim});
  ref::add_rmsnorm(res_ref.view<double, 2>(), x.view<const float, 2>().slice(1, 0, dim), w.view<const bf16, 1>(),
                   kEps, yr.view<float, 2>());
  Tensor resd = res.to(Space::cuda, stream), xd = x.to(Space::cuda, stream), wd = w.to(Space::cuda, stream);
  Tensor yd = Tensor::empty(DType::f32, {rows, ld}, Space::cuda, stream);
  poison(yd, stream);
  cuda::add_rmsnorm<double, float, bf16, float>(resd.view<double, 2>().slice(1, 0, dim),
                                                xd.view<const float, 2>().slice(1, 0, dim), wd.view<const bf16, 1>(),
                                                kEps, yd.view<float, 2>().slice(1, 0, dim), stream);
  Tensor got = yd.to(Space::host, stream), res_got = resd.to(Space::host, stream);
  const std::pair<int64_t, int64_t> mism = residual_mismatches<double>(res_got, res_ref, res, rows, dim, ld);
  const int64_t res_bad = mism.first, pad_changed = mism.second;
  const Diff d = diff_f64_path(got, yr, rows, dim);
  INFO("add_rmsnorm f64 residual + f32 -> f32 rows=", rows, " dim=", dim, " pad=", pad,
       std::string(exact ? " exact" : " random"), ": residual mismatches ", res_bad, ", y differ ", d.differ, " bad ",
       d.bad, " non-finite ", d.nonfinite);
  CHECK(res_bad == 0);  // one fp64 addition: bit-identical
  CHECK(pad_changed == 0);
  check_diff_f64(d, exact, rows * dim);
  if (pad > 0) CHECK(touched_padding(got, dim) == 0);
}

/// TX = double: x f64; TX = float: x f32, which the GPU reads into fp64 and the ref gets converted.
template <class TX>
void check_quant_f64(int64_t rows, int64_t dim, int64_t pad, bool exact, bool mn_major, Stream& stream) {
  const int64_t ld = dim + pad, g = dim / 128;
  const uint64_t seed = case_seed(6, uint64_t(rows), uint64_t(dim), uint64_t(pad) * 4 + exact * 2 + sizeof(TX) / 8);
  Tensor x = activations<TX>(rows, ld, seed, exact);
  Tensor w = weights(dim, seed + 7);
  std::vector<double> xd(size_t(rows * dim));  // [rows, dim] x in f64 (exact)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) xd[size_t(r * dim + i)] = double(x.data_as<TX>()[r * ld + i]);
  // The ref with double scales: scale, quotient and its fp32 rounding as the oracle's simulation.
  Tensor qr = Tensor::empty(DType::f8_e4m3, {rows, dim}), sr = Tensor::empty(DType::f64, {rows, g});
  ref::rmsnorm_quant_fp8<128>(make_view<2>(xd.data(), {rows, dim}).as_const(), w.view<const bf16, 1>(), kEps,
                              qr.view<fp8_e4m3, 2>(), sr.view<double, 2>());
  const std::pair<Tensor, Tensor> got = quant_gpu<TX, double>(x, w, dim, mn_major, stream);
  const Tensor &qh = got.first, &sh = got.second;  // [rows, dim] codes, [rows, groups] scales
  int64_t q_differ = 0, s_differ = 0, s_bad = 0;
  for (int64_t i = 0; i < rows * dim; ++i) q_differ += qh.data_as<fp8_e4m3>()[i].bits != qr.data_as<fp8_e4m3>()[i].bits;
  for (int64_t i = 0; i < rows * g; ++i) {
    const float a = sh.data_as<float>()[i], b = float(sr.data_as<double>()[i]);  // the GPU stores float(s)
    s_differ += std::memcmp(&a, &b, 4) != 0;
    s_bad += !(std::fabs(double(a) - double(b)) <= ulp_f32(b));
  }
  INFO("rmsnorm_quant_fp8 fp64 x ", std::string(sizeof(TX) == 8 ? "f64" : "f32"), " rows=", rows, " dim=", dim,
       " pad=", pad, std::string(exact ? " exact" : " random"),
       std::string(mn_major ? " MN-major" : " row-major"), ": codes differ ", q_differ, ", scales differ ", s_differ,
       " (bad ", s_bad, ")");
  CHECK(q_differ == 0);
  CHECK(s_bad == 0);
  CHECK(s_differ <= (exact ? 0 : rows * g / 100000 + 2));
}

/// Rows built on exact e4m3 rounding ties, the case the fp64 path exists for (docs/model.md, "FP8
/// native with f32 activations"): weight 1, each 128-group holds one +-7 (its amax, so the scale is
/// 7 inv / 448 = inv / 64) and otherwise +-m / 64 for e4m3 midpoints m (5 significant bits: exact
/// in bf16, and so in the model's normalized embeddings). y / s = m up to a few fp64 roundings,
/// which the fp32 rounding of the quotient removes: every such element is a tie and must round to
/// the even code, as in the ref. (The ref in fp32, on the same rows as f32 values, rounds about 12%
/// of them the other way: fp32's own roundings of y and s move the quotient off the tie.)
void check_quant_ties(int64_t rows, int64_t dim, Stream& stream) {
  const uint64_t seed = case_seed(7, uint64_t(rows), uint64_t(dim));
  Tensor x = Tensor::empty(DType::f64, {rows, dim});
  Tensor w = Tensor::empty(DType::bf16, {dim});
  std::vector<uint8_t> expect(size_t(rows * dim), 0);  // [rows, dim] the tie rounded to even
  for (int64_t i = 0; i < dim; ++i) w.data_as<bf16>()[i] = bf16(1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < dim; ++i) {
      const uint64_t h = mix(seed + uint64_t(r * dim + i));
      const bool amax = i % 128 == int64_t((uint64_t(r) * 37 + uint64_t(i / 128) * 11) % 128);
      const uint8_t sign = (h >> 8) & 1 ? 0x80 : 0;
      double v = 7.0;
      uint8_t code = 0x7e;  // 7 / (7 / 448) = 448
      if (!amax) {
        const int k = int(h % 0x7e);  // codes k, k + 1 in [0, 0x7e]: 0 .. 448
        const double lo = double(float(fp8_e4m3::from_bits(uint8_t(k))));
        const double hi = double(float(fp8_e4m3::from_bits(uint8_t(k + 1))));
        v = (lo + hi) / 128.0;  // the midpoint m over 64
        code = uint8_t(k % 2 == 0 ? k : k + 1);
      }
      x.data_as<double>()[r * dim + i] = sign ? -v : v;
      expect[size_t(r * dim + i)] = uint8_t(code | sign);
    }
  }
  Tensor qr = Tensor::empty(DType::f8_e4m3, {rows, dim}), sr = Tensor::empty(DType::f64, {rows, dim / 128});
  ref::rmsnorm_quant_fp8<128>(x.view<const double, 2>(), w.view<const bf16, 1>(), kEps, qr.view<fp8_e4m3, 2>(),
                              sr.view<double, 2>());
  const Tensor qh = quant_gpu<double, double>(x, w, dim, false, stream).first;
  int64_t ref_off = 0, gpu_off = 0;
  for (int64_t i = 0; i < rows * dim; ++i) {
    ref_off += qr.data_as<fp8_e4m3>()[i].bits != expect[size_t(i)];
    gpu_off += qh.data_as<fp8_e4m3>()[i].bits != expect[size_t(i)];
  }
  INFO("rmsnorm_quant_fp8 f64 on e4m3 ties rows=", rows, " dim=", dim, ": codes not rounded to even: ref ", ref_off,
       ", GPU ", gpu_off);
  CHECK(ref_off == 0);  // the premise: the ref keeps every tie
  CHECK(gpu_off == 0);
}

}  // namespace

TEST_CASE("rmsnorm matches the ref twin") {
  Stream stream;
  for (int64_t rows : {1, 2, 7, 127, 128, 129}) {
    for (int64_t dim : {7168, 1536, 512, 64, 200, 7, 129}) {
      for (bool exact : {true, false}) {
        check_rmsnorm<bf16, bf16>(rows, dim, 0, exact, false, stream);
        check_rmsnorm<float, bf16>(rows, dim, 0, exact, false, stream);
      }
    }
  }
  for (bool exact : {true, false}) {
    check_rmsnorm<float, float>(9, 7168, 0, exact, false, stream);
    check_rmsnorm<bf16, float>(9, 1536, 0, exact, false, stream);
    check_rmsnorm<bf16, bf16>(5, 7168, 3, exact, false, stream);  // padded rows: the element-wise path
    check_rmsnorm<float, bf16>(5, 512, 1, exact, false, stream);
    check_rmsnorm<bf16, bf16>(7, 7168, 0, exact, true, stream);  // y aliases x
    check_rmsnorm<bf16, bf16>(3, 7, 0, exact, true, stream);
  }
  check_rmsnorm<bf16, bf16>(0, 7168, 0, false, false, stream);  // no tokens: a no-op
}

TEST_CASE("add_rmsnorm matches the ref twin and updates the residual") {
  Stream stream;
  for (int64_t rows : {1, 2, 7, 127, 128, 129}) {
    for (int64_t dim : {7168, 1536, 512, 7}) {
      for (bool exact : {true, false}) {
        check_add_rmsnorm<bf16, bf16, bf16>(rows, dim, 0, exact, stream);
        check_add_rmsnorm<float, bf16, bf16>(rows, dim, 0, exact, stream);
      }
    }
  }
  for (bool exact : {true, false}) {
    check_add_rmsnorm<float, float, bf16>(9, 7168, 0, exact, stream);
    check_add_rmsnorm<float, float, float>(9, 7168, 0, exact, stream);
    check_add_rmsnorm<float, bf16, bf16>(5, 7168, 5, exact, stream);
    check_add_rmsnorm<bf16, bf16, bf16>(5, 200, 1, exact, stream);
  }
}

TEST_CASE("rmsnorm_quant_fp8 matches the ref twin") {
  Stream stream;
  for (int64_t rows : {1, 2, 7, 127, 128, 129}) {
    for (int64_t dim : {7168, 1536, 512, 128}) {
      for (bool exact : {true, false}) {
        check_quant<bf16>(rows, dim, 0, exact, rows % 2 == 0, stream);
        check_quant<float>(rows, dim, 0, exact, rows % 2 == 1, stream);
      }
    }
  }
  for (bool exact : {true, false}) {
    check_quant<bf16>(5, 7168, 8, exact, true, stream);  // padded rows that stay 16-byte aligned
    check_quant<bf16>(5, 1536, 3, exact, false, stream);  // the element-wise loader
    check_quant<float>(4, 512, 1, exact, true, stream);
  }
}

TEST_CASE("fp64 paths (f64 residual or input, or fp64 arithmetic; f32 outputs) match the ref twins in fp64") {
  Stream stream;
  for (int64_t rows : {1, 7, 129}) {
    for (int64_t dim : {7168, 256, 128, 7}) {  // 7: odd width, the element-wise path
      for (bool exact : {true, false}) {
        check_rmsnorm_f64(rows, dim, 0, exact, stream);
        check_add_rmsnorm_f64(rows, dim, 0, exact, stream);
        if (dim % 128 == 0) {
          check_quant_f64<double>(rows, dim, 0, exact, rows % 2 == 1, stream);
          check_quant_f64<float>(rows, dim, 0, exact, rows % 2 == 0, stream);  // f32 read into fp64
        }
      }
    }
  }
  for (bool exact : {true, false}) {
    check_rmsnorm_f64(5, 7168, 3, exact, stream);  // padded rows: the element-wise path
    check_rmsnorm_f64(3, 129, 0, exact, stream);
    check_add_rmsnorm_f64(5, 7168, 5, exact, stream);
    check_add_rmsnorm_f64(4, 256, 2, exact, stream);  // f64 rows 16-byte aligned, f32 ones not
    check_quant_f64<double>(5, 7168, 8, exact, true, stream);  // padded rows that stay 16-byte aligned
    check_quant_f64<double>(5, 256, 3, exact, false, stream);  // the element-wise loader
    check_quant_f64<float>(9, 1536, 0, exact, true, stream);  // R1's q_lora and kv_lora widths
    check_quant_f64<float>(9, 512, 0, exact, false, stream);
    check_quant_f64<float>(5, 256, 3, exact, true, stream);
  }
  check_rmsnorm_f64(0, 7168, 0, false, stream);  // no tokens: a no-op
}

TEST_CASE("rmsnorm_quant_fp8 in fp64 rounds exact e4m3 ties to even, as the ref") {
  Stream stream;
  for (int64_t rows : {1, 7, 129}) {
    for (int64_t dim : {128, 256, 7168}) check_quant_ties(rows, dim, stream);
  }
}

TEST_CASE("rmsnorm family: bad arguments are r1::Errors") {
  Stream stream;
  Tensor x = Tensor::empty(DType::bf16, {4, 256}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::bf16, {4, 256}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::bf16, {256}, Space::cuda, stream);
  Tensor w2 = Tensor::empty(DType::bf16, {255}, Space::cuda, stream);
  Tensor xh = Tensor::empty(DType::bf16, {4, 256});
  CHECK_THROWS_WITH((cuda::rmsnorm<bf16, bf16, bf16>(x.view<const bf16, 2>(), w2.view<const bf16, 1>(), kEps,
                                                     y.view<bf16, 2>(), stream)),
                    doctest::Contains("weight has 255 elements"));
  CHECK_THROWS_WITH((cuda::rmsnorm<bf16, bf16, bf16>(xh.view<const bf16, 2>(), w.view<const bf16, 1>(), kEps,
                                                     y.view<bf16, 2>(), stream)),
                    doctest::Contains("x must be in cuda memory"));
  CHECK_THROWS_WITH((cuda::rmsnorm<bf16, bf16, bf16>(x.view<const bf16, 2>(), w.view<const bf16, 1>(), kEps,
                                                     y.view<bf16, 2>().slice(0, 0, 3), stream)),
                    doctest::Contains("y has 3 rows"));
  CHECK_THROWS_WITH((cuda::add_rmsnorm<bf16, bf16, bf16, bf16>(x.view<bf16, 2>(), y.view<const bf16, 2>(),
                                                               w.view<const bf16, 1>(), kEps, x.view<bf16, 2>(), stream)),
                    doctest::Contains("must not alias"));
  CHECK_THROWS_WITH((cuda::add_rmsnorm<bf16, bf16, bf16, bf16>(x.view<bf16, 2>(), y.view<const bf16, 2>().slice(1, 0, 128),
                                                               w.view<const bf16, 1>(), kEps, y.view<bf16, 2>(), stream)),
                    doctest::Contains("x has 128 columns"));
  Tensor q = Tensor::empty(DType::f8_e4m3, {4, 200}, Space::cuda, stream);
  Tensor s = Tensor::empty(DType::f32, {4, 2}, Space::cuda, stream);
  Tensor x200 = Tensor::empty(DType::bf16, {4, 200}, Space::cuda, stream);
  Tensor w200 = Tensor::empty(DType::bf16, {200}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::rmsnorm_quant_fp8<128, bf16, bf16>(x200.view<const bf16, 2>(), w200.view<const bf16, 1>(),
                                                              kEps, q.view<fp8_e4m3, 2>(), s.view<float, 2>(), stream)),
                    doctest::Contains("not a multiple of the 128"));
  Tensor q2 = Tensor::empty(DType::f8_e4m3, {4, 256}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::rmsnorm_quant_fp8<128, bf16, bf16>(x.view<const bf16, 2>(), w.view<const bf16, 1>(), kEps,
                                                              q2.view<fp8_e4m3, 2>(), s.view<float, 2>().slice(1, 0, 1),
                                                              stream)),
                    doctest::Contains("scale has 1 groups"));
}
