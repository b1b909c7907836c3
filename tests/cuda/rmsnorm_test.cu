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
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <type_traits>
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
template <class T>
Tensor activations(int64_t rows, int64_t ld, uint64_t seed, bool exact) {
  Tensor t = Tensor::empty(dtype_v<T>, {rows, ld});
  T* p = t.data_as<T>();
  for (int64_t i = 0; i < rows * ld; ++i) {
    const float v = exact ? float(int(mix(seed + uint64_t(i)) % 33) - 16) / 8.0f : 2.0f * uniform(seed, uint64_t(i));
    p[i] = T(v);
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

template <class TR, class TX, class TY>
void check_add_rmsnorm(int64_t rows, int64_t dim, int64_t pad, bool exact, Stream& stream) {
  const int64_t ld = dim + pad;
  const uint64_t seed = case_seed(2, uint64_t(rows), uint64_t(dim), uint64_t(pad) * 2 + exact);
  Tensor res = activations<TR>(rows, ld, seed, exact);
  Tensor x = activations<TX>(rows, ld, seed + 1000003, exact);
  Tensor w = weights(dim, seed + 7);
  Tensor res_ref = Tensor::empty(dtype_v<TR>, {rows, dim});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) res_ref.data_as<TR>()[r * dim + i] = res.data_as<TR>()[r * ld + i];
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
  int64_t res_bad = 0, pad_changed = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < ld; ++i) {
      const TR g = res_got.data_as<TR>()[r * ld + i];
      const TR e = i < dim ? res_ref.data_as<TR>()[r * dim + i] : res.data_as<TR>()[r * ld + i];
      (i < dim ? res_bad : pad_changed) += std::memcmp(&g, &e, sizeof(TR)) != 0;
    }
  }
  const Diff d = diff_outputs<TY>(got, y32, y64, rows, dim);
  INFO("add_rmsnorm rows=", rows, " dim=", dim, " pad=", pad, std::string(exact ? " exact" : " random"), " residual ",
       std::string(sizeof(TR) == 2 ? "bf16" : "f32"), ": residual mismatches ", res_bad, ", y differ ", d.differ, " bad ", d.bad);
  CHECK(res_bad == 0);  // one fp32 addition rounded to TR: bit-identical
  CHECK(pad_changed == 0);
  check_diff(d, exact, rows * dim, std::is_same_v<TY, float>);
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
  Tensor xd = x.to(Space::cuda, stream), wd = w.to(Space::cuda, stream);
  Tensor qd = Tensor::empty(DType::f8_e4m3, {rows, dim}, Space::cuda, stream);
  Tensor sd = Tensor::empty(DType::f32, {rows * g}, Space::cuda, stream);
  poison(qd, stream);
  poison(sd, stream);
  const View<float, 2> sv = mn_major ? cuda::mn_major_scales(sd.data_as<float>(), rows, g)
                                     : make_view<2>(sd.data_as<float>(), {rows, g}, Space::cuda);
  cuda::rmsnorm_quant_fp8<128, TX, bf16>(xd.view<const TX, 2>().slice(1, 0, dim), wd.view<const bf16, 1>(), kEps,
                                         qd.view<fp8_e4m3, 2>(), sv, stream);
  Tensor qh = qd.to(Space::host, stream), sh = sd.to(Space::host, stream);
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
      const float a = sh.data_as<float>()[mn_major ? j * rows + r : r * g + j], b = sr.data_as<float>()[r * g + j];
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
