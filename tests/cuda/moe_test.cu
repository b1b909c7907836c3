// SPDX-License-Identifier: MIT
// r1::cuda MoE data movement against the ref twins: moe_permute (offsets and pairs exactly, random
// routing with empty experts, all pairs on one expert, 256 and 1024 experts, out-of-range ids
// dropped after all rows), moe_gather and moe_combine (bit for bit: same fp32 sums in slot order,
// no FMA; vector and scalar paths, with and without the shared output, bf16 and f32 out), and
// moe_routed + moe_experts_swiglu against ref::moe_routed with the ref expert FFN (bf16 and FP8
// weights, small dims and R1's dims), dropped slots, a CUDA graph replayed with new routing, and
// the argument errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/moe.hpp"
#include "r1/kernels/ref/act_quant.hpp"
#include "r1/kernels/ref/linear.hpp"
#include "r1/kernels/ref/linear_fp8.hpp"
#include "r1/kernels/ref/moe.hpp"
#include "r1/kernels/ref/swiglu.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

enum class Route { random, one_expert, sparse };

/// [tokens, k] ids: distinct experts per token (random), all on one expert, or only 3 experts used.
Tensor make_ids(int64_t tokens, int64_t k, int experts, Route route, uint64_t seed) {
  Tensor ids = Tensor::empty(DType::i32, {tokens, k});
  int32_t* p = ids.data_as<int32_t>();
  std::vector<int32_t> perm(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int e = 0; e < experts; ++e) perm[size_t(e)] = e;
    for (int64_t j = 0; j < k; ++j) {
      int32_t e = 0;
      if (route == Route::random && k <= experts) {
        const size_t pick = size_t(j) + size_t(mix(seed + uint64_t(t * k + j)) % uint64_t(experts - j));
        std::swap(perm[size_t(j)], perm[pick]);
        e = perm[size_t(j)];
      } else if (route == Route::one_expert) {
        e = experts / 2;
      } else {
        e = int32_t(mix(seed + uint64_t(t * k + j)) % 3) * (experts / 3);
      }
      p[t * k + j] = e;
    }
  }
  return ids;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

void run_permute(int64_t tokens, int64_t k, int experts, Route route, Stream& stream) {
  Tensor ids = make_ids(tokens, k, experts, route, case_seed(uint64_t(tokens), uint64_t(k), uint64_t(experts), uint64_t(route)));
  Tensor off_ref = Tensor::empty(DType::i32, {experts + 1}), pairs_ref = Tensor::empty(DType::i32, {tokens * k});
  ref::moe_permute(ids.view<const int32_t, 2>(), experts, off_ref.view<int32_t, 1>(), pairs_ref.view<int32_t, 1>());
  Tensor idd = ids.to(Space::cuda, stream);
  Tensor off = Tensor::empty(DType::i32, {experts + 1}, Space::cuda, stream);
  Tensor pairs = Tensor::empty(DType::i32, {tokens * k}, Space::cuda, stream);
  poison(off, stream);
  poison(pairs, stream);
  cuda::moe_permute(idd.view<const int32_t, 2>(), experts, off.view<int32_t, 1>(), pairs.view<int32_t, 1>(), stream);
  INFO("permute T=", tokens, " k=", k, " E=", experts, " route=", int(route));
  CHECK(same_bits(off.to(Space::host, stream), off_ref));
  CHECK(same_bits(pairs.to(Space::host, stream), pairs_ref));
}

template <class T>
void run_gather(int64_t tokens, int64_t k, int64_t dim, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(tokens), uint64_t(k), uint64_t(dim), 5);
  Tensor ids = make_ids(tokens, k, 16, Route::random, seed);
  Tensor off = Tensor::empty(DType::i32, {17}), pairs = Tensor::empty(DType::i32, {tokens * k});
  ref::moe_permute(ids.view<const int32_t, 2>(), 16, off.view<int32_t, 1>(), pairs.view<int32_t, 1>());
  Tensor x = random_uniform<T>({tokens, dim}, seed + 1, 3.0f);
  Tensor xe_ref = Tensor::empty(dtype_v<T>, {tokens * k, dim});
  ref::moe_gather(x.view<const T, 2>(), pairs.view<const int32_t, 1>(), int(k), xe_ref.view<T, 2>());
  Tensor xd = x.to(Space::cuda, stream), pd = pairs.to(Space::cuda, stream);
  Tensor xe = Tensor::empty(dtype_v<T>, {tokens * k, dim}, Space::cuda, stream);
  poison(xe, stream);
  cuda::moe_gather<T>(xd.view<const T, 2>(), pd.view<const int32_t, 1>(), int(k), xe.view<T, 2>(), stream);
  INFO("gather T=", tokens, " k=", k, " dim=", dim, " ", sizeof(T) == 2 ? "bf16" : "f32");
  CHECK(same_bits(xe.to(Space::host, stream), xe_ref));
}

template <class T, class TO>
void run_combine(int64_t tokens, int64_t k, int64_t dim, bool with_shared, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(tokens), uint64_t(k), uint64_t(dim), 6 + uint64_t(with_shared));
  Tensor ids = make_ids(tokens, k, 32, Route::random, seed);
  Tensor off = Tensor::empty(DType::i32, {33}), pairs = Tensor::empty(DType::i32, {tokens * k});
  ref::moe_permute(ids.view<const int32_t, 2>(), 32, off.view<int32_t, 1>(), pairs.view<int32_t, 1>());
  Tensor ye = random_uniform<T>({tokens * k, dim}, seed + 1, 2.0f);
  Tensor w = random_uniform<float>({tokens, k}, seed + 2);
  Tensor sh = with_shared ? random_uniform<T>({tokens, dim}, seed + 3) : Tensor::empty(dtype_v<T>, {0, 0});
  Tensor out_ref = Tensor::empty(dtype_v<TO>, {tokens, dim});
  ref::moe_combine(ye.view<const T, 2>(), pairs.view<const int32_t, 1>(), w.view<const float, 2>(),
                   sh.view<const T, 2>(), out_ref.view<TO, 2>());
  Tensor yd = ye.to(Space::cuda, stream), pd = pairs.to(Space::cuda, stream), wd = w.to(Space::cuda, stream);
  Tensor sd = with_shared ? sh.to(Space::cuda, stream) : Tensor::empty(dtype_v<T>, {0, 0}, Space::cuda, stream);
  Tensor out = Tensor::empty(dtype_v<TO>, {tokens, dim}, Space::cuda, stream);
  poison(out, stream);
  cuda::moe_combine<T, TO>(yd.view<const T, 2>(), pd.view<const int32_t, 1>(), wd.view<const float, 2>(),
                           sd.view<const T, 2>(), out.view<TO, 2>(), stream);
  INFO("combine T=", tokens, " k=", k, " dim=", dim, " shared=", with_shared);
  CHECK(same_bits(out.to(Space::host, stream), out_ref));
}

/// Expert weights of one projection: host copy for the ref, device copy for the kernels.
struct Proj {
  Tensor w, wd;    // bf16 [E, n, k], or e4m3
  Tensor s, sd;    // FP8 only: [E, ceil(n / 128), k / 128]
};
Proj make_proj(int64_t e, int64_t n, int64_t k, bool fp8, uint64_t seed, Stream& stream) {
  Proj p;
  if (fp8) {
    p.w = random_e4m3({e, n, k}, seed);
    p.s = random_scales({e, (n + 127) / 128, k / 128}, seed + 1, -9.0f, -6.0f);
    p.sd = p.s.to(Space::cuda, stream);
  } else {
    // 1 / sqrt(k) keeps activations O(1) through the three projections.
    p.w = random_uniform<bf16>({e, n, k}, seed, 1.7f / std::sqrt(float(k)));
  }
  p.wd = p.w.to(Space::cuda, stream);
  return p;
}

/// The ref expert FFN with the kernels' roundings: gate, up, h and y in bf16; FP8 quantizes x and h.
struct RefExperts {
  const Proj *gate, *up, *down;
  bool fp8;
  void operator()(int e, View<const float, 2> x, View<float, 2> y) const {
    const int64_t rows = x.shape[0], dim = x.shape[1], inter = gate->w.size(1);
    Tensor g = Tensor::empty(DType::bf16, {rows, inter}), u = Tensor::empty(DType::bf16, {rows, inter});
    Tensor yb = Tensor::empty(DType::bf16, {rows, dim});
    if (!fp8) {
      ref::linear(x, gate->w.view<const bf16, 3>().select(0, e), g.view<bf16, 2>());
      ref::linear(x, up->w.view<const bf16, 3>().select(0, e), u.view<bf16, 2>());
      ref::swiglu(g.view<const bf16, 2>(), u.view<const bf16, 2>(), g.view<bf16, 2>());
      ref::linear(g.view<const bf16, 2>(), down->w.view<const bf16, 3>().select(0, e), yb.view<bf16, 2>());
    } else {
      Tensor xq = Tensor::empty(DType::f8_e4m3, {rows, dim}), xs = Tensor::empty(DType::f32, {rows, dim / 128});
      ref::act_quant<128>(x, xq.view<fp8_e4m3, 2>(), xs.view<float, 2>());
      auto lin = [&](const Tensor& q, const Tensor& s, const Proj& p, Tensor& out) {
        ref::linear_fp8_native<128, 128>(q.view<const fp8_e4m3, 2>(), s.view<const float, 2>(),
                                         p.w.view<const fp8_e4m3, 3>().select(0, e),
                                         p.s.view<const float, 3>().select(0, e), out.view<bf16, 2>());
      };
      lin(xq, xs, *gate, g);
      lin(xq, xs, *up, u);
      ref::swiglu(g.view<const bf16, 2>(), u.view<const bf16, 2>(), g.view<bf16, 2>());
      Tensor hq = Tensor::empty(DType::f8_e4m3, {rows, inter}), hs = Tensor::empty(DType::f32, {rows, inter / 128});
      ref::act_quant<128>(g.view<const bf16, 2>(), hq.view<fp8_e4m3, 2>(), hs.view<float, 2>());
      lin(hq, hs, *down, yb);
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < dim; ++i) y(r, i) = float(yb.view<const bf16, 2>()(r, i));
  }
};

/// The ids [tokens, k] the device gets: a copy of `ids` with `drop` slots out of range (-1 and
/// experts + d, alternately), whose weights in w are zeroed (the ref: the slot contributes 0 * y).
Tensor drop_slots(const Tensor& ids, Tensor& w, int drop, int experts, uint64_t seed) {
  const int64_t tokens = ids.size(0), k = ids.size(1);
  Tensor out = Tensor::empty(DType::i32, {tokens, k});
  out.copy_from(ids);
  for (int d = 0; d < drop && d < tokens * k; ++d) {
    const int64_t i = int64_t(mix(seed + 99 + uint64_t(d)) % uint64_t(tokens * k));
    out.data_as<int32_t>()[i] = d % 2 ? -1 : experts + d;
    w.data_as<float>()[i] = 0.0f;
  }
  return out;
}

/// A routed case on the host: ids and weights [tokens, k] (dropped slots' weights zeroed), x and
/// the shared experts' output [tokens, dim] of TX (sh [0, 0] without them), the three expert
/// projections, and the ids the device gets (ids_dev, with the dropped slots out of range).
template <class TX>
struct Routed {
  Tensor ids, w, x, sh;
  Proj gate, up, down;
  Tensor ids_dev;
  Routed(int64_t tokens, int64_t k, int experts, int64_t dim, int64_t inter, bool fp8, bool with_shared, int drop,
         uint64_t seed, Stream& stream)
      : ids(make_ids(tokens, k, experts, Route::random, seed)),
        w(random_uniform<float>({tokens, k}, seed + 1)),
        x(random_uniform<TX>({tokens, dim}, seed + 2, 2.0f)),
        sh(with_shared ? random_uniform<TX>({tokens, dim}, seed + 3) : Tensor::empty(dtype_v<TX>, {0, 0})),
        gate(make_proj(experts, inter, dim, fp8, seed + 10, stream)),
        up(make_proj(experts, inter, dim, fp8, seed + 20, stream)),
        down(make_proj(experts, dim, inter, fp8, seed + 30, stream)),
        ids_dev(drop_slots(ids, w, drop, experts, seed)) {}

  /// moe_routed's expert callback: moe_experts_swiglu over the device projections (`quantize`:
  /// FP8 native, f32 activations only).
  auto experts_fn(bool fp8, bool quantize, Stream& stream) const {
    return [this, fp8, quantize, &stream](View<const TX, 2> xe, View<const int32_t, 1> offsets, View<TX, 2> ye) {
      if (fp8) {
        const auto w8 = [](const Proj& p) { return cuda::ExpertWeights<fp8_e4m3>::stacked(p.wd.view<const fp8_e4m3, 3>()); };
        const auto sc = [](const Proj& p) { return cuda::ExpertWeights<float>::stacked(p.sd.view<const float, 3>()); };
        if constexpr (std::is_same_v<TX, float>) {
          cuda::moe_experts_swiglu(xe, offsets, w8(gate), sc(gate), w8(up), sc(up), w8(down), sc(down), ye, stream,
                                   quantize);
        } else {
          cuda::moe_experts_swiglu(xe, offsets, w8(gate), sc(gate), w8(up), sc(up), w8(down), sc(down), ye, stream);
        }
      } else {
        const auto w16 = [](const Proj& p) { return cuda::ExpertWeights<bf16>::stacked(p.wd.view<const bf16, 3>()); };
        cuda::moe_experts_swiglu(xe, offsets, w16(gate), w16(up), w16(down), ye, stream);
      }
    };
  }
};

/// moe_routed + moe_experts_swiglu against ref::moe_routed with RefExperts. `drop` slots get id -1
/// on the device and weight 0 in the ref (they must contribute nothing).
void run_routed(int64_t tokens, int64_t k, int experts, int64_t dim, int64_t inter, bool fp8, bool with_shared,
                int drop, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(tokens), uint64_t(experts), uint64_t(dim * 7 + inter), 50 + uint64_t(fp8));
  const Routed<bf16> in(tokens, k, experts, dim, inter, fp8, with_shared, drop, seed, stream);
  std::vector<double> ref_out(static_cast<size_t>(tokens * dim));
  auto refv = make_view<2>(ref_out.data(), {tokens, dim});  // [tokens, dim]
  const RefExperts rx{&in.gate, &in.up, &in.down, fp8};
  ref::moe_routed(in.x.view<const bf16, 2>(), in.ids.view<const int32_t, 2>(), in.w.view<const float, 2>(), experts,
                  rx, in.sh.view<const bf16, 2>(), refv);

  Tensor xd = in.x.to(Space::cuda, stream), idd = in.ids_dev.to(Space::cuda, stream), wd = in.w.to(Space::cuda, stream);
  Tensor sd = with_shared ? in.sh.to(Space::cuda, stream) : Tensor::empty(DType::bf16, {0, 0}, Space::cuda, stream);
  Tensor out = Tensor::empty(DType::bf16, {tokens, dim}, Space::cuda, stream);
  poison(out, stream);
  const auto expert_fn = in.experts_fn(fp8, false, stream);
  cuda::moe_routed<bf16>(xd.view<const bf16, 2>(), idd.view<const int32_t, 2>(), wd.view<const float, 2>(), experts,
                         expert_fn, sd.view<const bf16, 2>(), out.view<bf16, 2>(), stream);
  Tensor oh = out.to(Space::host, stream);
  const Compare c = compare<bf16>(oh.view<const bf16, 2>(), refv.as_const());
  INFO("routed ", fp8 ? "fp8" : "bf16", " T=", tokens, " k=", k, " E=", experts, " dim=", dim, " inter=", inter,
       " shared=", with_shared, " dropped=", drop, ": ", c.str());
  // The ref rounds gate, up, h and y to bf16 like the kernels; what differs is the order of the GEMMs'
  // fp32 sums, which flips a bf16 rounding (2^-9 relative) here and there (and then an e4m3 code
  // in FP8), plus the final bf16 rounding of out (the ref's is double).
  CHECK(c.nonfinite == 0);
  CHECK(c.rel_norm <= (fp8 ? 2e-2 : 1e-2));
}

/// The f32 expert FFN of the f32 activation policy in fp64 (x and every intermediate unrounded; FP8
/// weights dequantized as code * scale in fp32, as the kernels do). `quantize`: x and h quantized
/// 1 x 128 (fp8 native), from the f64 values (the kernels quantize their fp32 ones).
struct RefExpertsF32 {
  const Proj *gate, *up, *down;
  bool fp8, quantize;
  Tensor dense(const Proj& p, int e) const {  // [n, k] f32
    const int64_t n = p.w.size(1), k = p.w.size(2);
    Tensor w = Tensor::empty(DType::f32, {n, k});
    if (fp8) {
      ref::dequant_fp8_block<128, 128>(p.w.view<const fp8_e4m3, 3>().select(0, e), p.s.view<const float, 3>().select(0, e),
                                       w.view<float, 2>());
    } else {
      for (int64_t i = 0; i < n * k; ++i) w.data_as<float>()[i] = float(p.w.data_as<bf16>()[e * n * k + i]);
    }
    return w;
  }
  void operator()(int e, View<const double, 2> x, View<double, 2> y) const {
    const int64_t rows = x.shape[0], dim = x.shape[1], inter = gate->w.size(1);
    std::vector<double> xin(size_t(rows * dim)), g(size_t(rows * inter)), u(size_t(rows * inter));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < dim; ++i) xin[size_t(r * dim + i)] = x(r, i);
    auto fake_quant = [&](std::vector<double>& v, int64_t k) {  // act_quant + act_dequant in fp64
      if (!quantize) return;
      const int64_t n = int64_t(v.size()) / k;
      Tensor q = Tensor::empty(DType::f8_e4m3, {n, k}), sc = Tensor::empty(DType::f64, {n, k / 128});
      auto vv = make_view<2>(v.data(), {n, k});
      ref::act_quant<128>(vv.as_const(), q.view<fp8_e4m3, 2>(), sc.view<double, 2>());
      ref::act_dequant<128>(q.view<const fp8_e4m3, 2>(), sc.view<const double, 2>(), vv);
    };
    fake_quant(xin, dim);
    const Tensor wg = dense(*gate, e), wu = dense(*up, e), wdn = dense(*down, e);
    ref::linear(make_view<2>(xin.data(), {rows, dim}).as_const(), wg.view<const float, 2>(),
                make_view<2>(g.data(), {rows, inter}));
    ref::linear(make_view<2>(xin.data(), {rows, dim}).as_const(), wu.view<const float, 2>(),
                make_view<2>(u.data(), {rows, inter}));
    ref::swiglu(make_view<2>(g.data(), {rows, inter}).as_const(), make_view<2>(u.data(), {rows, inter}).as_const(),
                make_view<2>(g.data(), {rows, inter}));
    fake_quant(g, inter);
    ref::linear(make_view<2>(g.data(), {rows, inter}).as_const(), wdn.view<const float, 2>(), y);
  }
};

/// moe_routed<float> + the f32 moe_experts_swiglu (bf16 weights, FP8 dequant, FP8 native) against
/// ref::moe_routed with RefExpertsF32; f32 output, `drop` slots as in run_routed.
void run_routed_f32(int64_t tokens, int64_t k, int experts, int64_t dim, int64_t inter, bool fp8, bool quantize,
                    bool with_shared, int drop, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(tokens), uint64_t(experts), uint64_t(dim * 5 + inter), 70 + uint64_t(fp8));
  const Routed<float> in(tokens, k, experts, dim, inter, fp8, with_shared, drop, seed, stream);
  std::vector<double> ref_out(static_cast<size_t>(tokens * dim));
  auto refv = make_view<2>(ref_out.data(), {tokens, dim});  // [tokens, dim]
  const RefExpertsF32 rx{&in.gate, &in.up, &in.down, fp8, quantize};
  std::vector<double> x64(in.x.data_as<float>(), in.x.data_as<float>() + tokens * dim);  // the ref computes in fp64
  ref::moe_routed(make_view<2>(x64.data(), {tokens, dim}).as_const(), in.ids.view<const int32_t, 2>(),
                  in.w.view<const float, 2>(), experts, rx, in.sh.view<const float, 2>(), refv);

  Tensor xd = in.x.to(Space::cuda, stream), idd = in.ids_dev.to(Space::cuda, stream), wd = in.w.to(Space::cuda, stream);
  Tensor sd = with_shared ? in.sh.to(Space::cuda, stream) : Tensor::empty(DType::f32, {0, 0}, Space::cuda, stream);
  Tensor out = Tensor::empty(DType::f32, {tokens, dim}, Space::cuda, stream);
  poison(out, stream);
  const auto expert_fn = in.experts_fn(fp8, quantize, stream);
  cuda::moe_routed<float>(xd.view<const float, 2>(), idd.view<const int32_t, 2>(), wd.view<const float, 2>(), experts,
                          expert_fn, sd.view<const float, 2>(), out.view<float, 2>(), stream);
  Tensor oh = out.to(Space::host, stream);
  const Compare c = compare<float>(oh.view<const float, 2>(), refv.as_const());
  INFO("routed f32 ", fp8 ? (quantize ? "fp8 native" : "fp8 dequant") : "bf16 weights", " T=", tokens, " k=", k,
       " E=", experts, " dim=", dim, " inter=", inter, " shared=", with_shared, " dropped=", drop, ": ", c.str());
  CHECK(c.nonfinite == 0);
  // Unquantized: fp32 sums against fp64 (a bf16 rounding anywhere would give ~4e-3). Native: an
  // e4m3 code of x or h can land one step apart where fp32 and fp64 straddle a rounding boundary.
  CHECK(c.rel_norm <= (quantize ? 2e-3 : 2e-5));
}

}  // namespace

TEST_CASE("moe_permute: stable grouping equal to the ref") {
  Stream stream;
  for (int64_t t : {1, 2, 7, 127, 128, 129, 1000, 4096}) {
    run_permute(t, 8, 256, Route::random, stream);
    run_permute(t, 8, 256, Route::one_expert, stream);
    run_permute(t, 6, 64, Route::sparse, stream);  // most experts empty
  }
  run_permute(5, 1, 8, Route::random, stream);
  run_permute(300, 32, 1024, Route::random, stream);
  run_permute(300, 2, 1000, Route::sparse, stream);
  run_permute(16384, 8, 256, Route::random, stream);  // 2^17 pairs: long warp segments
  run_permute(0, 8, 256, Route::random, stream);      // no pairs: offsets all zero
}

TEST_CASE("moe_permute: out-of-range ids are dropped after all rows, never written out of bounds") {
  Stream stream;
  const int64_t tokens = 37, k = 4;
  const int experts = 16;
  Tensor ids = make_ids(tokens, k, experts, Route::random, case_seed(11));
  int32_t* p = ids.data_as<int32_t>();
  p[3] = -1;
  p[50] = experts;
  p[51] = 1 << 30;
  p[tokens * k - 1] = -7;
  std::vector<int32_t> off(size_t(experts) + 1, 0), pairs;
  for (int e = 0; e < experts; ++e) {
    for (int64_t i = 0; i < tokens * k; ++i)
      if (p[i] == e) pairs.push_back(int32_t(i));
    off[size_t(e) + 1] = int32_t(pairs.size());
  }
  for (int64_t i = 0; i < tokens * k; ++i)
    if (p[i] < 0 || p[i] >= experts) pairs.push_back(int32_t(i));
  Tensor idd = ids.to(Space::cuda, stream);
  Tensor offd = Tensor::empty(DType::i32, {experts + 1}, Space::cuda, stream);
  Tensor pd = Tensor::empty(DType::i32, {tokens * k}, Space::cuda, stream);
  poison(offd, stream);
  poison(pd, stream);
  cuda::moe_permute(idd.view<const int32_t, 2>(), experts, offd.view<int32_t, 1>(), pd.view<int32_t, 1>(), stream);
  CHECK(same_bits(offd.to(Space::host, stream), Tensor::from_vector(off, {experts + 1})));
  CHECK(same_bits(pd.to(Space::host, stream), Tensor::from_vector(pairs, {tokens * k})));
  CHECK(off[size_t(experts)] == tokens * k - 4);
}

TEST_CASE("moe_gather and moe_combine: bit for bit equal to the ref") {
  Stream stream;
  for (int64_t t : {1, 2, 7, 127, 128, 129}) {
    run_gather<bf16>(t, 8, 7168, stream);
    run_gather<bf16>(t, 3, 13, stream);  // scalar path
    run_gather<float>(t, 8, 260, stream);
    run_combine<bf16, bf16>(t, 8, 7168, t % 2 == 1, stream);
    run_combine<bf16, bf16>(t, 8, 7168, t % 2 == 0, stream);
    run_combine<bf16, float>(t, 8, 512, true, stream);
    run_combine<bf16, bf16>(t, 3, 13, true, stream);  // scalar path
    run_combine<float, float>(t, 6, 260, false, stream);
  }
  run_gather<bf16>(4096, 8, 7168, stream);
  run_combine<bf16, bf16>(4096, 8, 7168, true, stream);
}

TEST_CASE("moe_gather and moe_combine: bad pairs are zero rows / missing slots, in bounds") {
  Stream stream;
  const int64_t tokens = 3, k = 2, dim = 16;
  Tensor x = random_uniform<bf16>({tokens, dim}, case_seed(12));
  const std::vector<int32_t> pairs = {0, 1, 2, 3, 4, -1};  // pair 5 missing, row 5 invalid
  Tensor xd = x.to(Space::cuda, stream), pd = Tensor::from_vector(pairs, {6}).to(Space::cuda, stream);
  Tensor xe = Tensor::empty(DType::bf16, {6, dim}, Space::cuda, stream);
  poison(xe, stream);
  cuda::moe_gather<bf16>(xd.view<const bf16, 2>(), pd.view<const int32_t, 1>(), int(k), xe.view<bf16, 2>(), stream);
  Tensor xh = xe.to(Space::host, stream);
  for (int64_t i = 0; i < dim; ++i) {
    CHECK(xh.data_as<bf16>()[4 * dim + i].bits == x.data_as<bf16>()[2 * dim + i].bits);
    CHECK(float(xh.data_as<bf16>()[5 * dim + i]) == 0.0f);
  }
  const std::vector<float> w = {1, 1, 1, 1, 1, 1000};
  Tensor wd = Tensor::from_vector(w, {tokens, k}).to(Space::cuda, stream);
  Tensor none = Tensor::empty(DType::bf16, {0, 0}, Space::cuda, stream);
  Tensor out = Tensor::empty(DType::f32, {tokens, dim}, Space::cuda, stream);
  poison(out, stream);
  cuda::moe_combine<bf16, float>(xe.view<const bf16, 2>(), pd.view<const int32_t, 1>(), wd.view<const float, 2>(),
                                 none.view<const bf16, 2>(), out.view<float, 2>(), stream);
  Tensor oh = out.to(Space::host, stream);
  for (int64_t i = 0; i < dim; ++i) {  // token 2: slot 0 (pair 4, row 4) only; slot 1 (pair 5) is missing
    CHECK(oh.data_as<float>()[2 * dim + i] == float(x.data_as<bf16>()[2 * dim + i]));
  }
}

TEST_CASE("moe_routed + moe_experts_swiglu against ref::moe_routed (small dims)") {
  Stream stream;
  for (int64_t t : {1, 2, 7, 129}) {
    run_routed(t, 4, 8, 256, 128, false, t % 2 == 1, 0, stream);
    run_routed(t, 4, 8, 256, 128, true, t % 2 == 0, 0, stream);
  }
  run_routed(128, 8, 64, 384, 256, false, true, 0, stream);
  run_routed(127, 8, 64, 384, 256, true, true, 0, stream);
  run_routed(33, 4, 16, 256, 128, false, true, 7, stream);  // dropped slots
  run_routed(33, 4, 16, 256, 128, true, false, 7, stream);
}

TEST_CASE("moe_routed + moe_experts_swiglu with f32 activations (bf16, FP8 dequant, FP8 native)") {
  Stream stream;
  for (int64_t t : {1, 2, 7, 129}) {
    run_routed_f32(t, 4, 8, 256, 128, false, false, t % 2 == 1, 0, stream);
    run_routed_f32(t, 4, 8, 256, 128, true, false, t % 2 == 0, 0, stream);
    run_routed_f32(t, 4, 8, 256, 128, true, true, t % 2 == 1, 0, stream);
  }
  run_routed_f32(33, 4, 16, 256, 128, true, true, true, 7, stream);  // dropped slots
  run_routed_f32(5, 8, 16, 7168, 256, true, true, true, 0, stream);  // R1's hidden size
}

TEST_CASE("moe_routed + moe_experts_swiglu at R1's dims") {
  Stream stream;
  // Full expert width (hidden 7168, moe_inter 2048) on 16 experts, top-8.
  run_routed(5, 8, 16, 7168, 2048, false, true, 0, stream);
  run_routed(5, 8, 16, 7168, 2048, true, true, 0, stream);
  // 256 experts, top-8, with a small expert width (256 full experts would be 11 GB of host data).
  run_routed(16, 8, 256, 7168, 128, false, true, 0, stream);
  run_routed(16, 8, 256, 7168, 128, true, true, 0, stream);
}

TEST_CASE("moe_routed: a captured CUDA graph replays with new routing written on the device") {
  Stream stream;
  const int64_t tokens = 24, k = 4, dim = 256;
  const int experts = 8;
  Tensor x = random_uniform<bf16>({tokens, dim}, case_seed(40), 2.0f);
  Tensor w = random_uniform<float>({tokens, k}, case_seed(41));
  Tensor ids_a = make_ids(tokens, k, experts, Route::random, case_seed(42));
  Tensor ids_b = make_ids(tokens, k, experts, Route::random, case_seed(43));
  Tensor wd = random_uniform<bf16>({experts, dim, dim}, case_seed(44), 0.1f).to(Space::cuda, stream);
  Tensor xd = x.to(Space::cuda, stream), wtd = w.to(Space::cuda, stream);
  Tensor idd = ids_a.to(Space::cuda, stream), idb = ids_b.to(Space::cuda, stream);
  Tensor none = Tensor::empty(DType::bf16, {0, 0}, Space::cuda, stream);
  Tensor out = Tensor::empty(DType::bf16, {tokens, dim}, Space::cuda, stream);
  Tensor expect = Tensor::empty(DType::bf16, {tokens, dim}, Space::cuda, stream);
  // One linear "expert": the layer's data movement is what the graph must replay.
  auto expert_fn = [&](View<const bf16, 2> xe, View<const int32_t, 1> offsets, View<bf16, 2> ye) {
    cuda::grouped_linear(xe, offsets, cuda::ExpertWeights<bf16>::stacked(wd.view<const bf16, 3>()), ye, stream);
  };
  auto layer = [&](Tensor& dst) {
    cuda::moe_routed<bf16>(xd.view<const bf16, 2>(), idd.view<const int32_t, 2>(), wtd.view<const float, 2>(), experts,
                           expert_fn, none.view<const bf16, 2>(), dst.view<bf16, 2>(), stream);
  };
  layer(expect);  // first use outside the capture: one-time kernel attributes are set here
  stream.sync();
  const CapturedGraph graph(stream, [&] { layer(out); });
  for (const Tensor* ids : {&ids_b, &ids_a}) {
    R1_CUDA_CHECK(cudaMemcpyAsync(idd.data(), (ids == &ids_b ? idb : ids_a.to(Space::cuda, stream)).data(),
                                  idd.nbytes(), cudaMemcpyDeviceToDevice, stream));
    stream.sync();
    poison(out, stream);
    graph.launch(stream);
    layer(expect);  // the same routing, run directly
    CHECK(same_bits(out.to(Space::host, stream), expect.to(Space::host, stream)));
  }
}

TEST_CASE("moe: empty input is a no-op; bad arguments are r1::Errors") {
  Stream stream;
  Tensor ids0 = Tensor::empty(DType::i32, {0, 8}, Space::cuda, stream);
  Tensor x0 = Tensor::empty(DType::bf16, {0, 64}, Space::cuda, stream);
  Tensor w0 = Tensor::empty(DType::f32, {0, 8}, Space::cuda, stream);
  Tensor none = Tensor::empty(DType::bf16, {0, 0}, Space::cuda, stream);
  bool called = false;
  auto fn0 = [&](View<const bf16, 2>, View<const int32_t, 1>, View<bf16, 2>) { called = true; };
  cuda::moe_routed<bf16>(x0.view<const bf16, 2>(), ids0.view<const int32_t, 2>(), w0.view<const float, 2>(), 8, fn0,
                         none.view<const bf16, 2>(), x0.view<bf16, 2>(), stream);
  CHECK(!called);
  stream.sync();

  Tensor ids = Tensor::zeros(DType::i32, {4, 8}, Space::cuda, stream);
  Tensor off = Tensor::empty(DType::i32, {9}, Space::cuda, stream), pairs = Tensor::empty(DType::i32, {32}, Space::cuda, stream);
  CHECK_THROWS_WITH(cuda::moe_permute(ids.view<const int32_t, 2>(), 16, off.view<int32_t, 1>(), pairs.view<int32_t, 1>(), stream),
                    doctest::Contains("offsets has 9 entries"));
  CHECK_THROWS_WITH(cuda::moe_permute(ids.view<const int32_t, 2>(), 8, off.view<int32_t, 1>(),
                                      pairs.view<int32_t, 1>().slice(0, 0, 31), stream),
                    doctest::Contains("pairs has 31 entries"));
  CHECK_THROWS_WITH(cuda::moe_permute(ids.view<const int32_t, 2>(), 0, off.view<int32_t, 1>().slice(0, 0, 1),
                                      pairs.view<int32_t, 1>(), stream),
                    doctest::Contains("n_experts = 0"));
  Tensor idh = Tensor::zeros(DType::i32, {4, 8});
  CHECK_THROWS_WITH(cuda::moe_permute(idh.view<const int32_t, 2>(), 8, off.view<int32_t, 1>(), pairs.view<int32_t, 1>(), stream),
                    doctest::Contains("ids must be in cuda memory"));

  Tensor x = Tensor::empty(DType::bf16, {4, 64}, Space::cuda, stream);
  Tensor xe = Tensor::empty(DType::bf16, {31, 64}, Space::cuda, stream);
  CHECK_THROWS_WITH(cuda::moe_gather<bf16>(x.view<const bf16, 2>(), pairs.view<const int32_t, 1>(), 8, xe.view<bf16, 2>(), stream),
                    doctest::Contains("xe has 31 rows"));
  Tensor ye = Tensor::empty(DType::bf16, {32, 64}, Space::cuda, stream);
  Tensor wt = Tensor::empty(DType::f32, {4, 8}, Space::cuda, stream);
  Tensor sh = Tensor::empty(DType::bf16, {4, 32}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::moe_combine<bf16, bf16>(ye.view<const bf16, 2>(), pairs.view<const int32_t, 1>(),
                                                    wt.view<const float, 2>(), sh.view<const bf16, 2>(), x.view<bf16, 2>(), stream)),
                    doctest::Contains("shared has 32 columns"));
  CHECK_THROWS_WITH((cuda::moe_combine<bf16, bf16>(ye.view<const bf16, 2>(), pairs.view<const int32_t, 1>(),
                                                    wt.view<const float, 2>().slice(1, 0, 7), none.view<const bf16, 2>(),
                                                    x.view<bf16, 2>(), stream)),
                    doctest::Contains("pairs has 32 entries"));
  CHECK_THROWS_WITH(cuda::moe_routed<bf16>(x.view<const bf16, 2>(), ids.view<const int32_t, 2>(), wt.view<const float, 2>(), 0,
                                           fn0, none.view<const bf16, 2>(), x.view<bf16, 2>(), stream),
                    doctest::Contains("n_experts = 0"));
  Tensor g = Tensor::empty(DType::bf16, {8, 128, 64}, Space::cuda, stream);
  Tensor d = Tensor::empty(DType::bf16, {8, 64, 64}, Space::cuda, stream);
  Tensor offs = Tensor::zeros(DType::i32, {9}, Space::cuda, stream);
  const auto gw = cuda::ExpertWeights<bf16>::stacked(g.view<const bf16, 3>());
  CHECK_THROWS_WITH(cuda::moe_experts_swiglu(ye.view<const bf16, 2>(), offs.view<const int32_t, 1>(), gw, gw,
                                             cuda::ExpertWeights<bf16>::stacked(d.view<const bf16, 3>()), ye.view<bf16, 2>(), stream),
                    doctest::Contains("expected [dim = 64, inter = 128]"));
}
