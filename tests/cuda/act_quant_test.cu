// SPDX-License-Identifier: MIT
// r1::cuda::act_quant against ref::act_quant, bit for bit (codes and scales), from bf16 and f32
// activations, with values that hit e4m3 rounding ties, saturation, subnormals and all-zero groups,
// into row-major and MN-major scale layouts; then the quantizer feeding the FP8 GEMM on the device.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/linear_fp8.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

/// Activations with hard cases mixed in: exact e4m3 grid points and midpoints after scaling, an
/// all-zero group, huge and tiny magnitudes, negative zero.
template <class TX>
Tensor hard_activations(int64_t rows, int64_t k, uint64_t seed) {
  Tensor x = random_uniform<float>({rows, k}, seed, 3.0f);
  float* p = x.data_as<float>();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = p + r * k;
    const float mag = std::exp2(float(int(mix(seed + uint64_t(r)) % 40)) - 20.0f);  // 2^-20 .. 2^19
    for (int64_t j = 0; j < k; ++j) row[j] *= mag;
    if (k >= 256 && r % 3 == 0) std::fill(row + 128, row + 256, 0.0f);  // an all-zero group
    if (r % 4 == 1) {
      // group 0: amax 448 * 2^e makes the scale a power of two, so x / s lands on the e4m3 grid
      // and on midpoints between grid points (round-to-nearest-even ties)
      const float s = std::exp2(float(int(r % 9) - 4));
      row[0] = 448.0f * s;
      for (int64_t j = 1; j < 128; ++j) {
        const float grid = float(fp8_e4m3::from_bits(uint8_t(mix(seed + uint64_t(j)) % 0x7e)));
        const float next = float(fp8_e4m3::from_bits(uint8_t(mix(seed + uint64_t(j)) % 0x7e + 1)));
        row[j] = (j % 2 ? grid : 0.5f * (grid + next)) * s * (j % 3 ? 1.0f : -1.0f);
      }
    }
    if (r % 5 == 2) row[k - 1] = -0.0f;
    if (r % 7 == 3) row[k / 2] = 1e-30f;  // quantizes to a subnormal or zero code
  }
  if constexpr (std::is_same_v<TX, float>) {
    return x;
  } else {
    Tensor t = Tensor::empty(DType::bf16, {rows, k});
    for (int64_t i = 0; i < rows * k; ++i) t.data_as<bf16>()[i] = bf16(p[i]);
    return t;
  }
}

template <class TX>
void check_act_quant(int64_t rows, int64_t k, bool mn_major, int64_t x_pad, Stream& stream) {
  const int64_t g = k / 128, ldx = k + x_pad;
  Tensor xfull = hard_activations<TX>(rows, ldx, case_seed(uint64_t(rows), uint64_t(k), uint64_t(x_pad)));
  const View<const TX, 2> xh = xfull.view<const TX, 2>().slice(1, 0, k);
  Tensor qr = Tensor::empty(DType::f8_e4m3, {rows, k}), sr = Tensor::empty(DType::f32, {rows, g});
  ref::act_quant<128>(xh, qr.view<fp8_e4m3, 2>(), sr.view<float, 2>());

  Tensor xd = xfull.to(Space::cuda, stream);
  Tensor qd = Tensor::empty(DType::f8_e4m3, {rows, k}, Space::cuda, stream);
  Tensor sd = Tensor::empty(DType::f32, {rows * g}, Space::cuda, stream);
  poison(qd, stream);
  poison(sd, stream);
  const View<float, 2> sv = mn_major ? cuda::mn_major_scales(sd.data_as<float>(), rows, g)
                                     : make_view<2>(sd.data_as<float>(), {rows, g}, Space::cuda);
  cuda::act_quant<128, TX>(xd.view<const TX, 2>().slice(1, 0, k), qd.view<fp8_e4m3, 2>(), sv, stream);
  Tensor qh = qd.to(Space::host, stream), sh = sd.to(Space::host, stream);
  int64_t bad_q = 0, bad_s = 0;
  for (int64_t i = 0; i < rows * k; ++i) bad_q += qh.data_as<fp8_e4m3>()[i].bits != qr.data_as<fp8_e4m3>()[i].bits;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < g; ++j) {
      const float dev = sh.data_as<float>()[mn_major ? j * rows + r : r * g + j];
      bad_s += bits(dev) != bits(sr.data_as<float>()[r * g + j]);
    }
  }
  INFO("rows=", rows, " K=", k, " x_pad=", x_pad, " ", sizeof(TX) == 2 ? "bf16" : "f32", " scales ",
       mn_major ? "MN-major" : "row-major");
  CHECK(bad_q == 0);
  CHECK(bad_s == 0);
}

}  // namespace

TEST_CASE("act_quant: bit-identical to the ref twin") {
  Stream stream;
  for (int64_t rows : {1, 2, 7, 127, 128, 129, 300}) {
    for (int64_t k : {128, 384, 7168}) {
      check_act_quant<bf16>(rows, k, rows % 2 == 0, 0, stream);
      check_act_quant<float>(rows, k, rows % 2 == 1, 0, stream);
    }
  }
  // odd row strides: the element-wise loader
  check_act_quant<bf16>(7, 256, true, 1, stream);
  check_act_quant<float>(9, 512, false, 3, stream);
  // R1's inputs of the FP8 linears: hidden, q_lora, kv_lora, heads x v_head, dense and expert inter
  for (int64_t k : {7168, 1536, 512, 16384, 18432, 2048}) check_act_quant<bf16>(3, k, true, 0, stream);
}

TEST_CASE("act_dequant: bit-identical to the ref twin (fake quantization round trip)") {
  Stream stream;
  for (int64_t rows : {1, 7, 129}) {
    for (int64_t k : {128, 384}) {
      for (int64_t y_pad : {0, 5}) {
        CAPTURE(rows);
        CAPTURE(k);
        CAPTURE(y_pad);
        const int64_t g = k / 128;
        Tensor xh = hard_activations<float>(rows, k, case_seed(uint64_t(rows), uint64_t(k), 77));
        Tensor qh = Tensor::empty(DType::f8_e4m3, {rows, k}), sh = Tensor::empty(DType::f32, {rows, g});
        ref::act_quant<128>(xh.view<const float, 2>(), qh.view<fp8_e4m3, 2>(), sh.view<float, 2>());
        Tensor want = Tensor::empty(DType::f32, {rows, k});  // [rows, K]
        ref::act_dequant<128>(qh.view<const fp8_e4m3, 2>(), sh.view<const float, 2>(), want.view<float, 2>());
        Tensor qd = qh.to(Space::cuda, stream);
        // scales MN-major on the device, as the model keeps them
        Tensor st = Tensor::empty(DType::f32, {g, rows});
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < g; ++j) st.data_as<float>()[j * rows + r] = sh.data_as<float>()[r * g + j];
        Tensor sd = st.to(Space::cuda, stream);
        Tensor yd = Tensor::empty(DType::f32, {rows, k + y_pad}, Space::cuda, stream);  // padded rows
        poison(yd, stream);
        cuda::act_dequant<128>(qd.view<const fp8_e4m3, 2>(),
                               cuda::mn_major_scales(sd.data_as<float>(), rows, g).as_const(),
                               yd.view<float, 2>().slice(1, 0, k), stream);
        Tensor yh = yd.to(Space::host, stream);
        int64_t bad = 0, pad_touched = 0;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < k; ++j)
            bad += bits(yh.data_as<float>()[r * (k + y_pad) + j]) != bits(want.data_as<float>()[r * k + j]);
          for (int64_t j = k; j < k + y_pad; ++j) pad_touched += !std::isnan(yh.data_as<float>()[r * (k + y_pad) + j]);
        }
        CHECK(bad == 0);
        CHECK(pad_touched == 0);
      }
    }
  }
  Tensor q = Tensor::empty(DType::f8_e4m3, {2, 100}, Space::cuda, stream);
  Tensor sc = Tensor::empty(DType::f32, {2, 1}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::f32, {2, 100}, Space::cuda, stream);
  CHECK_THROWS_WITH(cuda::act_dequant<128>(q.view<const fp8_e4m3, 2>(), sc.view<const float, 2>(), y.view<float, 2>(),
                                           stream),
                    doctest::Contains("K = 100 is not a multiple"));
}

TEST_CASE("act_quant feeding linear_fp8_native on the device matches the host pipeline") {
  Stream stream;
  const int64_t m = 9, n = 576, k = 1024;
  Tensor x = random_uniform<bf16>({m, k}, case_seed(5), 2.0f);
  Tensor wq = random_e4m3({n, k}, case_seed(6));
  Tensor ws = random_scales({(n + 127) / 128, k / 128}, case_seed(7), -10.0f, -6.0f);
  Tensor xq = Tensor::empty(DType::f8_e4m3, {m, k}), xs = Tensor::empty(DType::f32, {m, k / 128});
  ref::act_quant<128>(x.view<const bf16, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
  std::vector<double> ref(size_t(m * n));
  auto refv = make_view<2>(ref.data(), {m, n});
  ref::linear_fp8_native<128, 128>(xq.view<const fp8_e4m3, 2>(), xs.view<const float, 2>(),
                                   wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(), refv);
  Tensor xd = x.to(Space::cuda, stream), wqd = wq.to(Space::cuda, stream), wsd = ws.to(Space::cuda, stream);
  Tensor xqd = Tensor::empty(DType::f8_e4m3, {m, k}, Space::cuda, stream);
  Tensor xsd = Tensor::empty(DType::f32, {k / 128, m}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::bf16, {m, n}, Space::cuda, stream);
  const View<float, 2> xsv = cuda::mn_major_scales(xsd.data_as<float>(), m, k / 128);
  for (cuda::GemmBackend b : {cuda::GemmBackend::own, cuda::GemmBackend::automatic}) {
    poison(y, stream);
    cuda::act_quant<128, bf16>(xd.view<const bf16, 2>(), xqd.view<fp8_e4m3, 2>(), xsv, stream);
    cuda::linear_fp8_native<128, 128>(xqd.view<const fp8_e4m3, 2>(), xsv, wqd.view<const fp8_e4m3, 2>(),
                                      wsd.view<const float, 2>(), y.view<bf16, 2>(), stream, b);
    Tensor yh = y.to(Space::host, stream);
    const Compare r = compare<bf16>(yh.view<const bf16, 2>(), refv.as_const());
    INFO(cuda::gemm_backend_name(b), ": ", r.str());
    CHECK(r.nonfinite == 0);
    CHECK(r.rel_norm <= 4e-3);
  }
}

TEST_CASE("act_quant: bad arguments are r1::Errors") {
  Stream stream;
  Tensor x = Tensor::empty(DType::bf16, {4, 200}, Space::cuda, stream);
  Tensor q = Tensor::empty(DType::f8_e4m3, {4, 200}, Space::cuda, stream);
  Tensor s = Tensor::empty(DType::f32, {4, 1}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::act_quant<128, bf16>(x.view<const bf16, 2>(), q.view<fp8_e4m3, 2>(), s.view<float, 2>(), stream)),
                    doctest::Contains("not a multiple of the 128"));
  Tensor xh = Tensor::empty(DType::bf16, {4, 256});
  Tensor q2 = Tensor::empty(DType::f8_e4m3, {4, 256}, Space::cuda, stream);
  Tensor s2 = Tensor::empty(DType::f32, {4, 2}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::act_quant<128, bf16>(xh.view<const bf16, 2>(), q2.view<fp8_e4m3, 2>(), s2.view<float, 2>(), stream)),
                    doctest::Contains("x must be in cuda memory"));
  Tensor x2 = Tensor::empty(DType::bf16, {4, 256}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::act_quant<128, bf16>(x2.view<const bf16, 2>(), q2.view<fp8_e4m3, 2>(),
                                                s2.view<float, 2>().slice(1, 0, 1), stream)),
                    doctest::Contains("scale has 1 groups"));
}
