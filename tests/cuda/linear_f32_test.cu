// SPDX-License-Identifier: MIT
// r1::cuda::linear_f32 and grouped_linear_f32 (the fp32 GEMMs of the precise activation policy: warp,
// tiled and three-part tensor-core paths, each taken by the sizes below)
// against their ref twins in fp64 on the same inputs: ref::linear (bf16 weight),
// ref::linear_fp8_dequant<128, 128> and ref::linear_fp8_native<128, 128>, at odd sizes (ragged K
// and N, K = 1), padded and unaligned operands (vector and element loaders), transposed scale
// layouts, strided outputs with untouched padding, more than 65535 row tiles; grouped: empty
// experts, all rows on one expert, rows past offsets[E], out-of-range offsets, stacked and
// pointer-table weights; the three-part path's row chunks and non-finite inputs; CUDA-graph replay
// with new inputs and routing; the argument errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "gemm_test_util.hpp"
#include "grouped_test_util.hpp"
#include "r1/kernels/cuda/act_quant.hpp"
#include "r1/kernels/cuda/linear_f32.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

// fp32 FMA accumulation in another order than the fp64 reference, and one f32 rounding, measured
// against the size of the products: every error is relative to |x| . |w| (the same GEMM on
// absolute values, `abs_of`), not to |x . w|, which cancellation can make arbitrarily small (a
// single K = 384 dot product came out at 7.6e-5 of its own value). A wrong expert, scale or K
// block errs by about |x . w| ~ |x| . |w| / sqrt(K), thousands of times these bounds.
constexpr double kTol = 1e-5, kTolMax = 1e-5;

/// The three operand forms.
enum class Variant { bf16, fp8_dequant, fp8_native };

const char* variant_name(Variant v) {
  return v == Variant::bf16 ? "bf16" : v == Variant::fp8_dequant ? "fp8 dequant" : "fp8 native";
}

/// A host [rows, cols] matrix copied to the device with row stride cols + pad, starting `offset`
/// elements into its buffer (offset 1 misaligns the rows: the element-wise loader runs). Padding
/// bytes are 0xff (NaN for f32 and e4m3), so a kernel reading past a row shows in its output.
template <class T>
struct DevMatrix {
  Tensor buf;
  View<const T, 2> v;
  DevMatrix(const Tensor& host, int64_t pad, int64_t offset, stream_t stream) {
    const int64_t rows = host.size(0), cols = host.size(1), ld = cols + pad;
    Tensor flat = Tensor::empty(dtype_v<T>, {rows * ld + offset + 1});
    flat.fill_bytes(0xff);
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(flat.data_as<T>() + offset + r * ld, host.data_as<T>() + r * cols, size_t(cols) * sizeof(T));
    }
    buf = flat.to(Space::cuda, stream);
    v.data = buf.data_as<T>() + offset;
    v.space = Space::cuda;
    v.shape[0] = rows;
    v.shape[1] = cols;
    v.stride[0] = ld;
    v.stride[1] = 1;
  }
};

/// f32 scales [a, b] on the device, row-major or transposed (strides {1, a}: for activation scales
/// the MN-major layout of mn_major_scales).
struct DevScales {
  Tensor buf;
  View<const float, 2> v;
  DevScales(const Tensor& host, bool transposed, stream_t stream) {
    const int64_t a = host.size(0), b = host.size(1);
    if (!transposed) {
      buf = host.to(Space::cuda, stream);
      v = buf.view<const float, 2>();
      return;
    }
    Tensor t = Tensor::empty(DType::f32, {b, a});
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j) t.data_as<float>()[j * a + i] = host.data_as<float>()[i * b + j];
    buf = t.to(Space::cuda, stream);
    v = cuda::mn_major_scales(buf.data_as<float>(), a, b);
  }
};

/// Host activations of one variant: f32 x [M, K], or x quantized 1 x 128 (ref::act_quant) with
/// rows of very different magnitude (scales differ by 2^6).
struct Acts {
  Tensor x;       // [M, K] f32 (bf16, fp8 dequant)
  Tensor xq, xs;  // [M, K] e4m3, [M, K / 128] f32 (fp8 native)
  Acts(Variant v, int64_t m, int64_t k, uint64_t seed) {
    x = random_uniform<float>({m, k}, seed);
    if (v != Variant::fp8_native) return;
    float* px = x.data_as<float>();
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < k; ++j) px[r * k + j] *= std::exp2(float(r % 7) - 3.0f);
    xq = Tensor::empty(DType::f8_e4m3, {m, k});
    xs = Tensor::empty(DType::f32, {m, k / 128});
    ref::act_quant<128>(x.view<const float, 2>(), xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
  }
};

/// Host weights of E experts [E, N, K] (bf16, or e4m3 codes with scales [E, ceil(N/128), ceil(K/128)]).
struct HostWeights {
  Tensor w, ws;
  HostWeights(Variant v, int64_t experts, int64_t n, int64_t k, uint64_t seed) {
    if (v == Variant::bf16) {
      w = random_uniform<bf16>({experts, n, k}, seed, 0.5f);
    } else {
      w = random_e4m3({experts, n, k}, seed);
      ws = random_scales({experts, (n + 127) / 128, (k + 127) / 128}, seed + 1, -8.0f, -4.0f);
    }
  }
};

/// out = the ref twin of variant v on activation rows [lo, hi) and expert `e`'s weight.
void reference(Variant v, const Acts& a, const HostWeights& hw, int64_t e, int64_t lo, int64_t hi,
               View<double, 2> out) {
  switch (v) {
    case Variant::bf16:
      ref::linear(a.x.view<const float, 2>().slice(0, lo, hi), hw.w.view<const bf16, 3>().select(0, e), out);
      break;
    case Variant::fp8_dequant:
      ref::linear_fp8_dequant<128, 128>(a.x.view<const float, 2>().slice(0, lo, hi),
                                        hw.w.view<const fp8_e4m3, 3>().select(0, e),
                                        hw.ws.view<const float, 3>().select(0, e), out);
      break;
    case Variant::fp8_native:
      ref::linear_fp8_native<128, 128>(a.xq.view<const fp8_e4m3, 2>().slice(0, lo, hi),
                                       a.xs.view<const float, 2>().slice(0, lo, hi),
                                       hw.w.view<const fp8_e4m3, 3>().select(0, e),
                                       hw.ws.view<const float, 3>().select(0, e), out);
      break;
  }
}

/// A copy of a host tensor with every element's sign cleared (f32, bf16, e4m3: the top bit).
Tensor abs_copy(const Tensor& t) {
  Tensor c = Tensor::empty(t.dtype(), t.shape());
  c.copy_from(t);
  const int64_t es = int64_t(dtype_size(c.dtype()));
  auto* b = static_cast<uint8_t*>(c.data());
  for (int64_t i = 0; i < c.numel(); ++i) b[i * es + es - 1] &= 0x7f;  // little-endian: the sign byte is last
  return c;
}
Acts abs_of(const Acts& a) {
  Acts r = a;
  r.x = abs_copy(a.x);
  if (a.xq.defined()) r.xq = abs_copy(a.xq);  // (fp8 native only; xs: scales are positive)
  return r;
}
HostWeights abs_of(const HostWeights& w) {
  HostWeights r = w;
  r.w = abs_copy(w.w);
  return r;
}

/// Errors of `out` against `ref` relative to `mag` (the same GEMM on absolute values): rel_norm =
/// ||out - ref|| / ||mag||, max_rel = max over elements of |out - ref| / mag.
Compare compare_to_magnitude(View<const float, 2> out, View<const double, 2> ref, View<const double, 2> mag) {
  Compare c;
  double num = 0, den = 0;
  for (int64_t i = 0; i < ref.shape[0]; ++i) {
    for (int64_t j = 0; j < ref.shape[1]; ++j) {
      const double o = double(out(i, j)), e = std::fabs(o - ref(i, j)), m = mag(i, j);
      if (!std::isfinite(o)) {
        ++c.nonfinite;
        continue;
      }
      num += e * e;
      den += m * m;
      const double rel = m > 0 ? e / m : e;
      if (rel > c.max_rel) {
        c.max_rel = rel;
        c.worst = i * ref.shape[1] + j;
      }
    }
  }
  c.rel_norm = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return c;
}

/// Device activations: x (or xq) padded / offset as DevMatrix, xs row-major or MN-major.
struct DevActs {
  std::vector<DevMatrix<float>> x;
  std::vector<DevMatrix<fp8_e4m3>> xq;
  std::vector<DevScales> xs;
  DevActs(Variant v, const Acts& a, int64_t pad, int64_t offset, bool mn_major, stream_t stream) {
    if (v == Variant::fp8_native) {
      xq.emplace_back(a.xq, pad, offset, stream);
      xs.emplace_back(a.xs, mn_major, stream);
    } else {
      x.emplace_back(a.x, pad, offset, stream);
    }
  }
};

struct Case {
  int64_t m, n, k;
  int64_t x_pad = 0, w_pad = 0;  // extra elements per row of x and of w
  int64_t y_pad = 0;             // y is a column slice of a [M, N + y_pad] buffer
  int64_t offset = 0;            // x and w start this many elements into their buffers
  bool transposed_scales = false;  // xs MN-major, ws stored transposed
};

/// One dense call against its ref twin.
void run_dense(Variant v, const Case& c, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(c.m), uint64_t(c.n), uint64_t(c.k), 10 + uint64_t(v));
  const Acts a(v, c.m, c.k, seed);
  const HostWeights hw(v, 1, c.n, c.k, seed + 7);
  std::vector<double> ref(size_t(c.m * c.n));
  auto refv = make_view<2>(ref.data(), {c.m, c.n});  // [M, N]
  reference(v, a, hw, 0, 0, c.m, refv);
  std::vector<double> mag(ref.size());
  auto magv = make_view<2>(mag.data(), {c.m, c.n});  // [M, N] |x| . |w|
  reference(v, abs_of(a), abs_of(hw), 0, 0, c.m, magv);

  const DevActs xa(v, a, c.x_pad, c.offset, c.transposed_scales, stream);
  Tensor y = Tensor::empty(DType::f32, {c.m, c.n + c.y_pad}, Space::cuda, stream);
  poison(y, stream);
  const View<float, 2> yv = y.view<float, 2>().slice(1, 0, c.n);
  if (v == Variant::bf16) {
    const DevMatrix<bf16> w(hw.w.select(0, 0), c.w_pad, c.offset, stream);
    cuda::linear_f32(xa.x[0].v, w.v, yv, stream);
  } else {
    const DevMatrix<fp8_e4m3> wq(hw.w.select(0, 0), c.w_pad, c.offset, stream);
    const DevScales ws(hw.ws.select(0, 0), c.transposed_scales, stream);
    if (v == Variant::fp8_dequant) {
      cuda::linear_f32(xa.x[0].v, wq.v, ws.v, yv, stream);
    } else {
      cuda::linear_f32(xa.xq[0].v, xa.xs[0].v, wq.v, ws.v, yv, stream);
    }
  }
  Tensor yh = y.to(Space::host, stream);
  const Compare r = compare_to_magnitude(yh.view<const float, 2>().slice(1, 0, c.n), refv.as_const(), magv.as_const());
  const std::string vname = variant_name(v);  // INFO keeps references: no temporaries
  INFO(vname, " M=", c.m, " N=", c.n, " K=", c.k, " x_pad=", c.x_pad, " w_pad=", c.w_pad,
       " y_pad=", c.y_pad, " offset=", c.offset, " transposed scales=", c.transposed_scales, ": ", r.str());
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= kTol);
  CHECK(r.max_rel <= kTolMax);
  CHECK(touched_padding(yh, c.n) == 0);
}

/// The odd-size grid of one variant, cycling through padding, offsets and scale layouts.
void run_odd_sizes(Variant v, const std::vector<int64_t>& ks, Stream& stream) {
  int i = 0;
  for (int64_t m : {1, 2, 7, 127, 129}) {
    for (int64_t n : {1, 7, 129, 300}) {
      for (int64_t k : ks) {
        Case c{m, n, k};
        c.x_pad = (i % 2) * 4;
        c.w_pad = ((i / 2) % 2) * 4;
        c.y_pad = ((i / 3) % 2) * 3;
        c.offset = i % 5 == 4 ? 1 : 0;
        c.transposed_scales = (i / 4) % 2 == 1;
        run_dense(v, c, stream);
        ++i;
      }
    }
  }
}

/// Bytes of rows [lo, hi) of a host [rows, ld] tensor that are not the 0xff poison.
int64_t touched_rows(const Tensor& host, int64_t lo, int64_t hi) {
  const int64_t row_bytes = host.size(1) * int64_t(dtype_size(host.dtype()));
  const auto* b = static_cast<const uint8_t*>(host.data());
  int64_t n = 0;
  for (int64_t i = lo * row_bytes; i < hi * row_bytes; ++i) n += b[i] != 0xff;
  return n;
}


/// Expert weights on the device as one stacked tensor or as a shuffled pointer table.
struct DevExperts {
  Tensor w, ws;
  std::vector<PointerTable> tw, ts;
  bool pointers;
  DevExperts(const HostWeights& hw, bool pointers_, uint64_t seed, stream_t stream) : pointers(pointers_) {
    w = hw.w.to(Space::cuda, stream);
    const int64_t experts = hw.w.size(0);
    if (pointers) tw.emplace_back(w, experts, hw.w.size(1) * hw.w.size(2) * int64_t(dtype_size(hw.w.dtype())), seed, stream);
    if (hw.ws.rank() == 3) {  // FP8: the scale grids
      ws = hw.ws.to(Space::cuda, stream);
      if (pointers) ts.emplace_back(ws, experts, hw.ws.size(1) * hw.ws.size(2) * 4, seed, stream);  // same permutation
    }
  }
  int64_t slot(int64_t e) const { return pointers ? tw[0].perm[size_t(e)] : e; }
  template <class T>
  cuda::ExpertWeights<T> weights() const {
    if (pointers) return cuda::ExpertWeights<T>::pointers(tw[0].ptr<T>(), w.size(0), w.size(1), w.size(2), w.size(2));
    return cuda::ExpertWeights<T>::stacked(w.view<const T, 3>());
  }
  cuda::ExpertWeights<float> scales() const {
    if (pointers) return cuda::ExpertWeights<float>::pointers(ts[0].ptr<float>(), ws.size(0), ws.size(1), ws.size(2), ws.size(2));
    return cuda::ExpertWeights<float>::stacked(ws.view<const float, 3>());
  }
};

/// Enqueues the grouped call of variant v.
void call_grouped(Variant v, const DevActs& xa, const Tensor& offsets, const DevExperts& we, View<float, 2> y,
                  stream_t stream) {
  const auto off = offsets.view<const int32_t, 1>();
  switch (v) {
    case Variant::bf16: cuda::grouped_linear_f32(xa.x[0].v, off, we.weights<bf16>(), y, stream); break;
    case Variant::fp8_dequant:
      cuda::grouped_linear_f32(xa.x[0].v, off, we.weights<fp8_e4m3>(), we.scales(), y, stream);
      break;
    case Variant::fp8_native:
      cuda::grouped_linear_f32(xa.xq[0].v, xa.xs[0].v, off, we.weights<fp8_e4m3>(), we.scales(), y, stream);
      break;
  }
}

/// The rows each expert owns under `off`, clamped into [0, rows] as the kernels clamp them.
std::vector<int64_t> clamped(const std::vector<int32_t>& off, int64_t rows) {
  std::vector<int64_t> c(off.size());
  for (size_t e = 0; e < off.size(); ++e) {
    c[e] = std::min<int64_t>(std::max<int64_t>(off[e], e == 0 ? 0 : c[e - 1]), rows);
  }
  return c;
}

/// Checks a grouped output (host copy of the [R, N + pad] buffer) against the ref twin run expert
/// by expert; rows no expert owns must still hold the poison.
void check_grouped_output(Variant v, const Acts& a, const HostWeights& hw, const DevExperts& we,
                          const std::vector<int32_t>& off, const Tensor& yh, int64_t n, const char* what) {
  const int64_t rows = yh.size(0), experts = int64_t(off.size()) - 1;
  const std::vector<int64_t> c = clamped(off, rows);
  std::vector<double> ref(size_t(rows * n), 0.0), mag(size_t(rows * n), 0.0);
  auto refv = make_view<2>(ref.data(), {rows, n});  // [R, N]
  auto magv = make_view<2>(mag.data(), {rows, n});  // [R, N] |x| . |w|
  const Acts abs_a = abs_of(a);
  const HostWeights abs_w = abs_of(hw);
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t r0 = c[size_t(e)], r1 = c[size_t(e) + 1];
    if (r0 >= r1) continue;
    reference(v, a, hw, we.slot(e), r0, r1, refv.slice(0, r0, r1));
    reference(v, abs_a, abs_w, we.slot(e), r0, r1, magv.slice(0, r0, r1));
  }
  const int64_t lo = c.front(), hi = c.back();
  const Compare r = compare_to_magnitude(yh.view<const float, 2>().slice(0, lo, hi).slice(1, 0, n),
                                         refv.as_const().slice(0, lo, hi), magv.as_const().slice(0, lo, hi));
  const std::string vname = variant_name(v);  // INFO keeps references: no temporaries
  INFO(vname, " ", what, " E=", experts, " R=", rows, " N=", n, " K=", hw.w.size(2),
       " owned rows [", lo, ", ", hi, ") pointers=", we.pointers, ": ", r.str());
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= kTol);
  CHECK(r.max_rel <= kTolMax);
  CHECK(touched_padding(yh.slice(0, lo, hi), n) == 0);
  CHECK(touched_rows(yh, 0, lo) == 0);
  CHECK(touched_rows(yh, hi, rows) == 0);
}

/// One grouped call with the given offsets (host values; may leave rows unowned or be out of range).
void run_grouped(Variant v, int64_t experts, int64_t rows, int64_t n, int64_t k, const std::vector<int32_t>& off,
                 bool pointers, int64_t x_pad, int64_t y_pad, Stream& stream, const char* what) {
  const uint64_t seed = case_seed(uint64_t(experts), uint64_t(rows), uint64_t(n * 131 + k), 20 + uint64_t(v));
  const Acts a(v, rows, k, seed);
  const HostWeights hw(v, experts, n, k, seed + 3);
  const DevActs xa(v, a, x_pad, 0, rows % 2 == 1, stream);
  const DevExperts we(hw, pointers, seed + 5, stream);
  Tensor od = device_offsets(off, stream);
  Tensor y = Tensor::empty(DType::f32, {rows, n + y_pad}, Space::cuda, stream);
  poison(y, stream);
  call_grouped(v, xa, od, we, y.view<float, 2>().slice(1, 0, n), stream);
  check_grouped_output(v, a, hw, we, off, y.to(Space::host, stream), n, what);
}

void run_routed(Variant v, int64_t experts, int64_t rows, int64_t n, int64_t k, Route route, bool pointers,
                Stream& stream, int64_t y_pad = 0) {
  const std::vector<int32_t> off = make_offsets(experts, rows, route, case_seed(uint64_t(rows), uint64_t(route)));
  run_grouped(v, experts, rows, n, k, off, pointers, (rows % 3) * 4, y_pad, stream, "routed");
}

const Variant kVariants[] = {Variant::bf16, Variant::fp8_dequant, Variant::fp8_native};

}  // namespace

TEST_CASE("linear_f32 bf16 weight: odd sizes, padded and unaligned operands, strided y") {
  Stream stream;
  run_odd_sizes(Variant::bf16, {1, 127, 128, 129, 384}, stream);
}

TEST_CASE("linear_f32 FP8 weight dequantized: odd sizes, ragged K and N, both scale layouts") {
  Stream stream;
  run_odd_sizes(Variant::fp8_dequant, {1, 127, 128, 129, 384}, stream);
}

TEST_CASE("linear_f32 FP8 native: odd sizes, row-major and MN-major activation scales") {
  Stream stream;
  run_odd_sizes(Variant::fp8_native, {128, 384}, stream);
}

TEST_CASE("linear_f32: longer K (R1's kv_a: N = 576, a ragged scale block) and many row tiles") {
  Stream stream;
  for (Variant v : kVariants) {
    run_dense(v, Case{5, 576, 7168}, stream);
    run_dense(v, Case{33, 200, 2048, 0, 0, 5, 0, true}, stream);
  }
  // more than 65535 row tiles of 8: the grid strides over them
  run_dense(Variant::bf16, Case{65535 * 8 + 77, 3, 5, 0, 0, 1}, stream);
}

TEST_CASE("linear_f32: few column tiles and K of 8+ chunks split K across the block's warps") {
  // (the launcher's KSPLIT choice: fewer than 2 x SMs blocks of 32 columns and >= 8 chunks of 128)
  Stream stream;
  for (Variant v : kVariants) {
    const bool native = v == Variant::fp8_native;  // native needs K % 128 == 0
    run_dense(v, Case{3, 40, native ? 1152 : 1100}, stream);           // 9 chunks, ragged last
    run_dense(v, Case{9, 129, native ? 2048 : 2047, 4, 0, 3, 1, true}, stream);
    run_routed(v, 8, 7, 129, native ? 1152 : 1100, Route::random, false, stream, 0);
    run_routed(v, 4, 20, 33, 2048, Route::random, true, stream, 3);
  }
}

TEST_CASE("linear_f32 bf16 weight from 8 rows (x in three bf16 parts on the tensor cores): chunks, infinities") {
  Stream stream;
  // 7 rows stay on the CUDA cores, 8 take the three-part GEMM; the same bound either way
  run_dense(Variant::bf16, Case{7, 300, 1000, 3, 5, 2, 1}, stream);
  run_dense(Variant::bf16, Case{8, 300, 1000, 3, 5, 2, 1}, stream);
  // Rows in chunks within the 256 MiB scratch: N = 16384 (a row's three f32 outputs take 192 KiB:
  // 2048 rows are chunks of 1365 + 683), and K = 20000 (its three bf16 parts take 117 KiB: 2300
  // rows are 2236 + 64).
  run_dense(Variant::bf16, Case{2048, 16384, 8, 0, 0, 3}, stream);
  run_dense(Variant::bf16, Case{2300, 3, 20000}, stream);
  // An infinite activation stays infinite (its parts are inf, 0, 0; inf - inf would make NaN), a
  // NaN stays NaN, a finite one past bf16's largest stays finite, and the other rows are untouched.
  const int64_t m = 9, n = 5, k = 64;
  Tensor x = Tensor::from_vector(std::vector<float>(size_t(m * k), 0.25f), {m, k});
  x.data_as<float>()[2 * k + 3] = std::numeric_limits<float>::infinity();
  x.data_as<float>()[5 * k + 7] = -std::numeric_limits<float>::infinity();
  x.data_as<float>()[6 * k + 1] = std::numeric_limits<float>::quiet_NaN();
  x.data_as<float>()[7 * k + 9] = 3.4e38f;  // finite, but it rounds to bf16 infinity
  Tensor w = Tensor::from_vector(std::vector<bf16>(size_t(n * k), bf16(0.5f)), {n, k});
  Tensor xd = x.to(Space::cuda, stream), wd = w.to(Space::cuda, stream);
  Tensor y = Tensor::empty(DType::f32, {m, n}, Space::cuda, stream);
  poison(y, stream);
  cuda::linear_f32(xd.view<const float, 2>(), wd.view<const bf16, 2>(), y.view<float, 2>(), stream);
  const Tensor yh = y.to(Space::host, stream);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      CAPTURE(r);
      CAPTURE(c);
      const float v = yh.data_as<float>()[r * n + c];
      if (r == 2) CHECK(v == std::numeric_limits<float>::infinity());
      else if (r == 5) CHECK(v == -std::numeric_limits<float>::infinity());
      else if (r == 6) CHECK(std::isnan(v));
      else if (r == 7) CHECK(v == doctest::Approx(0.5 * 3.4e38).epsilon(1e-6));  // finite: h is bf16's largest
      else CHECK(v == 0.25f * 0.5f * float(k));
    }
  }
}

TEST_CASE("linear_f32: K = 0 writes zeros; M = 0 and N = 0 do nothing") {
  Stream stream;
  Tensor x = Tensor::empty(DType::f32, {3, 0}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::bf16, {5, 0}, Space::cuda, stream);
  Tensor wq = Tensor::empty(DType::f8_e4m3, {5, 0}, Space::cuda, stream);
  Tensor ws = Tensor::empty(DType::f32, {1, 0}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::f32, {3, 5}, Space::cuda, stream);
  for (int form = 0; form < 2; ++form) {
    poison(y, stream);
    if (form == 0) {
      cuda::linear_f32(x.view<const float, 2>(), w.view<const bf16, 2>(), y.view<float, 2>(), stream);
    } else {
      cuda::linear_f32(x.view<const float, 2>(), wq.view<const fp8_e4m3, 2>(), ws.view<const float, 2>(),
                       y.view<float, 2>(), stream);
    }
    Tensor yh = y.to(Space::host, stream);
    for (int64_t i = 0; i < yh.numel(); ++i) CHECK(yh.data_as<float>()[i] == 0.0f);
  }
  // grouped, K = 0: owned rows are zeros
  Tensor wg = Tensor::empty(DType::bf16, {2, 5, 0}, Space::cuda, stream);
  Tensor od = device_offsets({0, 1, 2}, stream);
  poison(y, stream);
  cuda::grouped_linear_f32(x.view<const float, 2>(), od.view<const int32_t, 1>(),
                           cuda::ExpertWeights<bf16>::stacked(wg.view<const bf16, 3>()), y.view<float, 2>(), stream);
  Tensor yh = y.to(Space::host, stream);
  for (int64_t i = 0; i < 2 * 5; ++i) CHECK(yh.data_as<float>()[i] == 0.0f);
  CHECK(touched_rows(yh, 2, 3) == 0);
  // M = 0, N = 0
  Tensor x0 = Tensor::empty(DType::f32, {0, 64}, Space::cuda, stream);
  Tensor w64 = Tensor::empty(DType::bf16, {5, 64}, Space::cuda, stream);
  Tensor y0 = Tensor::empty(DType::f32, {0, 5}, Space::cuda, stream);
  cuda::linear_f32(x0.view<const float, 2>(), w64.view<const bf16, 2>(), y0.view<float, 2>(), stream);
  Tensor x3 = Tensor::empty(DType::f32, {3, 64}, Space::cuda, stream);
  Tensor wn0 = Tensor::empty(DType::bf16, {0, 64}, Space::cuda, stream);
  Tensor yn0 = Tensor::empty(DType::f32, {3, 0}, Space::cuda, stream);
  cuda::linear_f32(x3.view<const float, 2>(), wn0.view<const bf16, 2>(), yn0.view<float, 2>(), stream);
  Tensor we = Tensor::empty(DType::bf16, {4, 5, 64}, Space::cuda, stream);
  Tensor oz = device_offsets({0, 0, 0, 0, 0}, stream);
  cuda::grouped_linear_f32(x0.view<const float, 2>(), oz.view<const int32_t, 1>(),
                           cuda::ExpertWeights<bf16>::stacked(we.view<const bf16, 3>()), y0.view<float, 2>(), stream);
  stream.sync();
}

TEST_CASE("grouped_linear_f32: routings, sizes, weight layouts (all three forms)") {
  Stream stream;
  for (Variant v : kVariants) {
    const bool native = v == Variant::fp8_native;
    const int64_t nks[][2] = {{7, native ? 128 : 127}, {129, 128}, {300, native ? 384 : 129}, {1, 384}};
    int i = 0;
    for (int64_t rows : {1, 7, 129, 300}) {
      for (const auto& nk : nks) {
        run_routed(v, 8, rows, nk[0], nk[1], Route::random, i % 2 == 1, stream, (i % 3 == 2) ? 3 : 0);
        ++i;
      }
    }
    for (Route r : {Route::one_expert, Route::first, Route::last}) {
      run_routed(v, 8, 129, 129, native ? 256 : 129, r, r == Route::last, stream);
    }
    run_routed(v, 256, 64, 72, native ? 128 : 200, Route::random, false, stream, 1);  // decode: few rows, many experts
    run_routed(v, 256, 300, 40, 128, Route::random, true, stream);
  }
}

TEST_CASE("grouped_linear_f32: rows past offsets[E], out-of-range offsets, no owned rows") {
  Stream stream;
  for (Variant v : kVariants) {
    const int64_t k = v == Variant::fp8_native ? 256 : 130;
    // the last 9 rows belong to no expert (they stay poisoned)
    std::vector<int32_t> off = make_offsets(6, 120, Route::random, case_seed(5));
    run_grouped(v, 6, 129, 33, k, off, false, 0, 2, stream, "rows past offsets[E]");
    run_grouped(v, 6, 129, 33, k, off, true, 4, 0, stream, "rows past offsets[E]");
    // values outside [0, R] are clamped: expert 0 owns [0, 5), expert 2 owns [5, 10)
    run_grouped(v, 3, 10, 70, k, {-3, 5, 5, 1000}, false, 0, 0, stream, "clamped offsets");
    // every expert empty: nothing is written
    run_grouped(v, 4, 16, 20, k, {0, 0, 0, 0, 0}, false, 0, 0, stream, "no rows routed");
    // rows before offsets[0] are not owned either
    run_grouped(v, 2, 20, 20, k, {3, 10, 17}, true, 0, 1, stream, "rows before offsets[0]");
  }
}

TEST_CASE("linear_f32: a captured CUDA graph replays with new inputs and routing") {
  Stream stream;
  const int64_t m = 37, n = 150, k = 256, experts = 8, rows = 70;
  // dense bf16 and grouped FP8 native in one graph
  const Acts a0(Variant::bf16, m, k, case_seed(41)), a1(Variant::bf16, m, k, case_seed(42));
  const HostWeights hw(Variant::bf16, 1, n, k, case_seed(43));
  Tensor xd = a0.x.to(Space::cuda, stream), wd = hw.w.select(0, 0).to(Space::cuda, stream);
  Tensor y = Tensor::empty(DType::f32, {m, n}, Space::cuda, stream);
  const Acts g0(Variant::fp8_native, rows, k, case_seed(44)), g1(Variant::fp8_native, rows, k, case_seed(45));
  const HostWeights gw(Variant::fp8_native, experts, n, k, case_seed(46));
  const DevExperts gwe(gw, false, 0, stream);
  Tensor xqd = g0.xq.to(Space::cuda, stream), xsd = g0.xs.to(Space::cuda, stream);
  const std::vector<int32_t> off_a = make_offsets(experts, rows, Route::random, case_seed(47));
  const std::vector<int32_t> off_b = make_offsets(experts, rows - 6, Route::one_expert, 0);
  Tensor od = device_offsets(off_a, stream);
  Tensor yg = Tensor::empty(DType::f32, {rows, n}, Space::cuda, stream);
  auto enqueue = [&] {
    cuda::linear_f32(xd.view<const float, 2>(), wd.view<const bf16, 2>(), y.view<float, 2>(), stream);
    cuda::grouped_linear_f32(xqd.view<const fp8_e4m3, 2>(), xsd.view<const float, 2>(), od.view<const int32_t, 1>(),
                             gwe.weights<fp8_e4m3>(), gwe.scales(), yg.view<float, 2>(), stream);
  };
  enqueue();  // eager run first (module loading happens outside the capture)
  stream.sync();
  const CapturedGraph graph(stream, enqueue, cudaStreamCaptureModeGlobal);
  for (int replay = 0; replay < 2; ++replay) {
    const Acts& a = replay == 0 ? a1 : a0;
    const Acts& g = replay == 0 ? g1 : g0;
    const std::vector<int32_t>& off = replay == 0 ? off_b : off_a;
    xd.copy_from(a.x, stream);
    xqd.copy_from(g.xq, stream);
    xsd.copy_from(g.xs, stream);
    od.copy_from(Tensor::from_vector(off, {experts + 1}), stream);
    poison(y, stream);
    poison(yg, stream);
    graph.launch(stream);
    Tensor yh = y.to(Space::host, stream);
    std::vector<double> ref(size_t(m * n));
    auto refv = make_view<2>(ref.data(), {m, n});
    reference(Variant::bf16, a, hw, 0, 0, m, refv);
    std::vector<double> mag(size_t(m * n));
    auto magv = make_view<2>(mag.data(), {m, n});  // [M, N] |x| . |w|
    reference(Variant::bf16, abs_of(a), abs_of(hw), 0, 0, m, magv);
    const Compare r = compare_to_magnitude(yh.view<const float, 2>(), refv.as_const(), magv.as_const());
    INFO("replay ", replay, " dense: ", r.str());
    CHECK(r.nonfinite == 0);
    CHECK(r.rel_norm <= kTol);
    check_grouped_output(Variant::fp8_native, g, gw, gwe, off, yg.to(Space::host, stream), n, "graph replay");
  }
}

TEST_CASE("linear_f32: R1_LINEAR_F32_KERNEL takes automatic, warp or tiled; anything else is an error") {
  using cuda::detail::LinearF32Kernel;
  using cuda::detail::parse_linear_f32_kernel;
  CHECK(parse_linear_f32_kernel(nullptr) == LinearF32Kernel::automatic);
  CHECK(parse_linear_f32_kernel("") == LinearF32Kernel::automatic);
  CHECK(parse_linear_f32_kernel("automatic") == LinearF32Kernel::automatic);
  CHECK(parse_linear_f32_kernel("warp") == LinearF32Kernel::warp);
  CHECK(parse_linear_f32_kernel("tiled") == LinearF32Kernel::tiled);
  CHECK_THROWS_WITH(parse_linear_f32_kernel("Tiled"), doctest::Contains("R1_LINEAR_F32_KERNEL=Tiled is not a kernel choice"));
  CHECK_THROWS_WITH(parse_linear_f32_kernel("0"), doctest::Contains("(automatic, warp, tiled)"));
}

TEST_CASE("linear_f32: bad arguments are r1::Errors naming the op") {
  Stream stream;
  const int64_t m = 4, n = 256, k = 384;
  Tensor x = Tensor::empty(DType::f32, {m, k}, Space::cuda, stream);
  Tensor w = Tensor::empty(DType::bf16, {n, k}, Space::cuda, stream);
  Tensor xq = Tensor::empty(DType::f8_e4m3, {m, k}, Space::cuda, stream);
  Tensor xs = Tensor::empty(DType::f32, {m, k / 128}, Space::cuda, stream);
  Tensor wq = Tensor::empty(DType::f8_e4m3, {n, k}, Space::cuda, stream);
  Tensor ws = Tensor::empty(DType::f32, {n / 128, k / 128}, Space::cuda, stream);
  Tensor y = Tensor::empty(DType::f32, {m, n}, Space::cuda, stream);
  const auto xv = x.view<const float, 2>();
  const auto wv = w.view<const bf16, 2>();
  const auto xqv = xq.view<const fp8_e4m3, 2>();
  const auto xsv = xs.view<const float, 2>();
  const auto wqv = wq.view<const fp8_e4m3, 2>();
  const auto wsv = ws.view<const float, 2>();
  const auto yv = y.view<float, 2>();
  using doctest::Contains;
  // memory space, shapes, strides
  Tensor xh = Tensor::empty(DType::f32, {m, k});
  CHECK_THROWS_WITH(cuda::linear_f32(xh.view<const float, 2>(), wv, yv, stream),
                    Contains("cuda.linear_f32: x must be in cuda memory"));
  CHECK_THROWS_WITH(cuda::linear_f32(xv.slice(1, 0, 100), wv, yv, stream),
                    Contains("cuda.linear_f32: x has 100 input features, weight has 384"));
  CHECK_THROWS_WITH(cuda::linear_f32(xv, wv, yv.slice(1, 0, 100), stream),
                    Contains("cuda.linear_f32: y has 100 columns"));
  CHECK_THROWS_WITH(cuda::linear_f32(xv, wv, yv.slice(0, 0, 3), stream), Contains("cuda.linear_f32: y has 3 rows"));
  View<float, 2> ycol = yv;  // a transposed view: rows not unit-stride
  ycol.stride[0] = 1;
  ycol.stride[1] = m;
  ycol.shape[0] = m;
  ycol.shape[1] = m;
  CHECK_THROWS_WITH(cuda::linear_f32(xv, wv.slice(0, 0, m), ycol, stream), Contains("unit-stride rows"));
  // FP8 scale grids
  CHECK_THROWS_WITH(cuda::linear_f32(xv, wqv, wsv.slice(0, 0, 1), yv, stream),
                    Contains("cuda.linear_f32: weight_scale_inv has shape [1, 3], expected [2, 3]"));
  Tensor wsh = Tensor::empty(DType::f32, {n / 128, k / 128});
  CHECK_THROWS_WITH(cuda::linear_f32(xv, wqv, wsh.view<const float, 2>(), yv, stream), Contains("cuda memory"));
  CHECK_THROWS_WITH(cuda::linear_f32(xqv, xsv.slice(1, 0, 2), wqv, wsv, yv, stream),
                    Contains("cuda.linear_f32: x scale has 2 groups"));
  CHECK_THROWS_WITH(cuda::linear_f32(xqv.slice(1, 0, 320), xsv.slice(1, 0, 2), wqv.slice(1, 0, 320),
                                     wsv, yv, stream),
                    Contains("not a multiple of the 128"));
  // 32-bit coordinates (views of nothing: the check precedes any access)
  View<const float, 2> xbig = xv;
  xbig.shape[1] = int64_t(1) << 31;
  View<const bf16, 2> wbig = wv;
  wbig.shape[1] = int64_t(1) << 31;
  wbig.stride[0] = int64_t(1) << 31;
  xbig.stride[0] = int64_t(1) << 31;
  CHECK_THROWS_WITH(cuda::linear_f32(xbig, wbig, yv, stream), Contains("does not fit the kernel's 32-bit"));

  // grouped
  Tensor od = device_offsets({0, 1, 1, 3, 4}, stream);
  Tensor oh = Tensor::from_vector(std::vector<int32_t>{0, 1, 1, 3, 4}, {5});
  Tensor we = Tensor::empty(DType::bf16, {4, n, k}, Space::cuda, stream);
  Tensor wqe = Tensor::empty(DType::f8_e4m3, {4, n, k}, Space::cuda, stream);
  Tensor wse = Tensor::empty(DType::f32, {4, n / 128, k / 128}, Space::cuda, stream);
  const auto ew = cuda::ExpertWeights<bf16>::stacked(we.view<const bf16, 3>());
  const auto eq = cuda::ExpertWeights<fp8_e4m3>::stacked(wqe.view<const fp8_e4m3, 3>());
  const auto es = cuda::ExpertWeights<float>::stacked(wse.view<const float, 3>());
  const auto odv = od.view<const int32_t, 1>();
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xv, oh.view<const int32_t, 1>(), ew, yv, stream),
                    Contains("cuda.grouped_linear_f32: offsets must be in cuda memory"));
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xv, odv.slice(0, 0, 1), ew, yv, stream),
                    Contains("it needs experts + 1 >= 2"));
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xv, odv.slice(0, 0, 4), ew, yv, stream),
                    Contains("cuda.grouped_linear_f32: expert weights are 4 x [256, 384], expected 3 x [256, 384]"));
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xv, odv, ew, yv.slice(1, 0, 128), stream),
                    Contains("expected 4 x [128, 384]"));
  Tensor obig = Tensor::empty(DType::i32, {1026}, Space::cuda, stream);
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xv, obig.view<const int32_t, 1>(), ew, yv, stream),
                    Contains("1025 experts exceed the supported 1024"));
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xv, odv, eq, cuda::ExpertWeights<float>::stacked(
                                                 wse.view<const float, 3>().slice(2, 0, 2)), yv, stream),
                    Contains("cuda.grouped_linear_f32: expert weight scales are 4 x [2, 2], expected 4 x [2, 3]"));
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xqv, xsv.slice(0, 0, 3), odv, eq, es, yv, stream),
                    Contains("cuda.grouped_linear_f32: x scale has 3 rows"));
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xqv.slice(1, 0, 320), xsv.slice(1, 0, 2), odv,
                                             cuda::ExpertWeights<fp8_e4m3>::stacked(
                                                 wqe.view<const fp8_e4m3, 3>().slice(2, 0, 320)),
                                             es, yv, stream),
                    Contains("not a multiple of the 128"));
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xh.view<const float, 2>(), odv, ew, yv, stream),
                    Contains("cuda.grouped_linear_f32: x must be in cuda memory"));
  cuda::ExpertWeights<bf16> none = ew;
  none.data = nullptr;
  CHECK_THROWS_WITH(cuda::grouped_linear_f32(xv, odv, none, yv, stream), Contains("holds no weights"));
}
