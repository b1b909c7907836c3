// SPDX-License-Identifier: MIT
// r1::cuda::swiglu against ref::swiglu, and swiglu_quant_fp8 against the unfused pipeline it
// replaces (swiglu with a bf16 output, then ref::act_quant), on odd row counts, R1's intermediate
// widths (moe_inter 2048, dense inter 18432), gate and up as the two halves of one [rows, 2 width]
// GEMM output, padded rows (element-wise path), in place, outputs poisoned first.
//
// Tolerances: the kernel computes g / (1 + exp(-g)) * u in fp32 in the ref's order, with CUDA's
// expf (<= 2 ulp) instead of the host's std::exp, so results differ by a few fp32 ulps: an f32
// output within 1e-6 relative of the ref; a bf16 output either bit-identical or one bf16 ulp away
// (a rounding moved by those ulps: < 0.5% of elements). The fused quantizer reads the GPU's own
// bf16 product, so it must be bit-identical to act_quant of cuda::swiglu's output.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/swiglu.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/swiglu.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

template <class TI, class TY>
void check_swiglu(int64_t rows, int64_t width, int64_t pad, bool in_place, Stream& stream) {
  const int64_t ld = 2 * width + pad;
  const uint64_t seed = case_seed(uint64_t(rows), uint64_t(width), uint64_t(pad), in_place);
  Tensor h = random_uniform<TI>({rows, ld}, seed, 8.0f);  // [rows, gate | up | pad]
  const View<const TI, 2> g = h.view<const TI, 2>().slice(1, 0, width), u = h.view<const TI, 2>().slice(1, width, 2 * width);
  Tensor expect = Tensor::empty(dtype_v<TY>, {rows, width});
  ref::swiglu(g, u, expect.view<TY, 2>());
  Tensor hd = h.to(Space::cuda, stream);
  Tensor od = Tensor::empty(dtype_v<TY>, {rows, width + pad}, Space::cuda, stream);
  poison(od, stream);
  View<TY, 2> ov = od.view<TY, 2>().slice(1, 0, width);
  if constexpr (std::is_same_v<TI, TY>) {
    if (in_place) ov = hd.view<TY, 2>().slice(1, 0, width);  // out aliases gate
  }
  cuda::swiglu<TI, TI, TY>(hd.view<const TI, 2>().slice(1, 0, width), hd.view<const TI, 2>().slice(1, width, 2 * width),
                           ov, stream);
  const bool aliased = in_place && std::is_same_v<TI, TY>;
  Tensor got = (aliased ? hd : od).to(Space::host, stream);
  const int64_t gld = got.size(1);
  int64_t differ = 0, bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < width; ++i) {
      const TY a = got.data_as<TY>()[r * gld + i], b = expect.data_as<TY>()[r * width + i];
      if (std::memcmp(&a, &b, sizeof(TY)) == 0) continue;
      ++differ;
      const double av = double(float(a)), bv = double(float(b));
      const double tol = sizeof(TY) == 2 ? std::exp2(std::floor(std::log2(std::fabs(bv) + 1e-38)) - 7) * 1.0001
                                         : 1e-6 * std::fabs(bv) + 1e-37;
      bad += !(std::fabs(av - bv) <= tol);
    }
  }
  INFO("swiglu rows=", rows, " width=", width, " pad=", pad, in_place ? " in place" : "", " in ",
       sizeof(TI) == 2 ? "bf16" : "f32", " out ", sizeof(TY) == 2 ? "bf16" : "f32", ": differ ", differ, ", bad ", bad);
  CHECK(bad == 0);
  if (sizeof(TY) == 2) CHECK(differ <= rows * width / 200 + 1);
  if (!aliased && pad > 0) CHECK(touched_padding(got, width) == 0);
}

void check_swiglu_quant(int64_t rows, int64_t width, int64_t pad, bool mn_major, Stream& stream) {
  const int64_t ld = 2 * width + pad, groups = width / 128;
  const uint64_t seed = case_seed(7, uint64_t(rows), uint64_t(width), uint64_t(pad));
  Tensor h = random_uniform<bf16>({rows, ld}, seed, 8.0f);
  // scale some rows down so scales cover the amax floor and subnormal codes
  for (int64_t r = 0; r < rows; r += 3)
    for (int64_t i = 0; i < ld; ++i) h.data_as<bf16>()[r * ld + i] = bf16(float(h.data_as<bf16>()[r * ld + i]) * 1e-3f);
  Tensor hd = h.to(Space::cuda, stream);
  const View<const bf16, 2> g = hd.view<const bf16, 2>().slice(1, 0, width);
  const View<const bf16, 2> u = hd.view<const bf16, 2>().slice(1, width, 2 * width);
  // the unfused pipeline: the GPU's swiglu in bf16, then the ref quantizer on the host
  Tensor yd = Tensor::empty(DType::bf16, {rows, width}, Space::cuda, stream);
  cuda::swiglu<bf16, bf16, bf16>(g, u, yd.view<bf16, 2>(), stream);
  Tensor yh = yd.to(Space::host, stream);
  Tensor qr = Tensor::empty(DType::f8_e4m3, {rows, width}), sr = Tensor::empty(DType::f32, {rows, groups});
  ref::act_quant<128>(yh.view<const bf16, 2>(), qr.view<fp8_e4m3, 2>(), sr.view<float, 2>());

  Tensor qd = Tensor::empty(DType::f8_e4m3, {rows, width}, Space::cuda, stream);
  Tensor sd = Tensor::empty(DType::f32, {rows * groups}, Space::cuda, stream);
  poison(qd, stream);
  poison(sd, stream);
  const View<float, 2> sv = mn_major ? cuda::mn_major_scales(sd.data_as<float>(), rows, groups)
                                     : make_view<2>(sd.data_as<float>(), {rows, groups}, Space::cuda);
  cuda::swiglu_quant_fp8<128, bf16, bf16>(g, u, qd.view<fp8_e4m3, 2>(), sv, stream);
  Tensor qh = qd.to(Space::host, stream), sh = sd.to(Space::host, stream);
  int64_t bad_q = 0, bad_s = 0;
  for (int64_t i = 0; i < rows * width; ++i) bad_q += qh.data_as<fp8_e4m3>()[i].bits != qr.data_as<fp8_e4m3>()[i].bits;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < groups; ++j) {
      const float a = sh.data_as<float>()[mn_major ? j * rows + r : r * groups + j], b = sr.data_as<float>()[r * groups + j];
      bad_s += std::memcmp(&a, &b, 4) != 0;
    }
  }
  INFO("swiglu_quant_fp8 rows=", rows, " width=", width, " pad=", pad, mn_major ? " MN-major" : " row-major",
       ": codes differ ", bad_q, ", scales differ ", bad_s);
  CHECK(bad_q == 0);
  CHECK(bad_s == 0);
}

}  // namespace

TEST_CASE("swiglu matches the ref twin") {
  Stream stream;
  for (int64_t rows : {1, 2, 7, 127, 128, 129}) {
    for (int64_t width : {2048, 18432, 128, 200, 7}) {
      check_swiglu<bf16, bf16>(rows, width, 0, false, stream);
    }
    check_swiglu<float, float>(rows, 2048, 0, false, stream);
    check_swiglu<float, bf16>(rows, 2048, 0, false, stream);
  }
  check_swiglu<bf16, bf16>(9, 2048, 3, false, stream);  // padded rows: element-wise
  check_swiglu<float, float>(9, 200, 1, false, stream);
  check_swiglu<bf16, bf16>(7, 2048, 0, true, stream);   // out aliases gate
  check_swiglu<bf16, bf16>(70000, 8, 0, false, stream);  // more rows than a grid's y extent
  check_swiglu<bf16, bf16>(0, 2048, 0, false, stream);  // no rows: a no-op
}

TEST_CASE("swiglu_quant_fp8 equals swiglu then act_quant") {
  Stream stream;
  for (int64_t rows : {1, 2, 7, 127, 128, 129}) {
    for (int64_t width : {2048, 18432, 128}) check_swiglu_quant(rows, width, 0, rows % 2 == 0, stream);
  }
  check_swiglu_quant(9, 2048, 3, true, stream);  // padded rows: the element-wise loader
  check_swiglu_quant(70000, 128, 0, false, stream);
}

TEST_CASE("swiglu: bad arguments are r1::Errors") {
  Stream stream;
  Tensor g = Tensor::empty(DType::bf16, {4, 256}, Space::cuda, stream);
  Tensor u = Tensor::empty(DType::bf16, {4, 200}, Space::cuda, stream);
  Tensor o = Tensor::empty(DType::bf16, {4, 256}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::swiglu<bf16, bf16, bf16>(g.view<const bf16, 2>(), u.view<const bf16, 2>(), o.view<bf16, 2>(), stream)),
                    doctest::Contains("up has 200 columns"));
  Tensor g2 = Tensor::empty(DType::bf16, {4, 200}, Space::cuda, stream);
  Tensor q = Tensor::empty(DType::f8_e4m3, {4, 200}, Space::cuda, stream);
  Tensor s = Tensor::empty(DType::f32, {4, 2}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::swiglu_quant_fp8<128, bf16, bf16>(g2.view<const bf16, 2>(), u.view<const bf16, 2>(),
                                                             q.view<fp8_e4m3, 2>(), s.view<float, 2>(), stream)),
                    doctest::Contains("not a multiple of the 128"));
  Tensor oh = Tensor::empty(DType::bf16, {4, 256});
  CHECK_THROWS_WITH((cuda::swiglu<bf16, bf16, bf16>(g.view<const bf16, 2>(), g.view<const bf16, 2>(), oh.view<bf16, 2>(), stream)),
                    doctest::Contains("out must be in cuda memory"));
}
