// SPDX-License-Identifier: MIT
// r1::cuda MLA attention against the ref twins (ref/mla.hpp) computed in fp64 on the same inputs
// (bf16, or f32), outputs poisoned with NaN before every run:
//  - mla_attention_expanded (prefill): odd token counts, q_start offsets (chunked prefill), the
//    small-dims and R1 tensor-core kernels, unaligned dims (element loader), dims beyond both
//    (fallback kernel), strided q / kv slices as the layer passes them;
//  - mla_attention_absorbed (decode, batched over sequences with device lengths, T = 1 and 2, page
//    sizes 3 / 16 / 64, lengths 1 .. 8192 incl. the split-K path, R1 dims and fixture dims); the
//    single-sequence overload; replays with new device lengths inside a CUDA graph; zeros for
//    sequences shorter than their queries, NaN for a bad page index;
//  - mla_absorb_q / mla_v_up against the ref, and the expanded and absorbed forms agreeing on
//    the same latents (as the host layer test does);
//  - bad arguments as r1::Errors;
//  - the same ops with f32 activations, cache and kv_b weight (T = float: the fallback kernels, no
//    tensor cores, no cuBLASLt) at the fixture, odd, tiny-r1-mtp (4 heads, nope 128, rope 64,
//    v 128, kv_lora 128) and R1 dims, dims whose fp32 staging needs more than 48 KB of shared
//    memory, the same zero / NaN semantics and graph replays.
// Tolerances, bf16: outputs are bf16 (relative rounding 2^-9) and the kernels round P to bf16
// before P.V (another 2^-9 per term, averaging over the keys), with fp32 sums; so the relative norm
// of the error must stay within 1e-2 (about 2.5 bf16 ulps of 2^-8) and the largest element error
// within 3e-2 of the largest |ref| value. A wrong mask, a missed key tile or a wrong split merge
// moves rows by O(1/keys) to O(1), far above that.
// Tolerances, f32: inputs are exact in both, only fp32 rounding of the sums, exp2 and the online
// softmax's rescaling remains: about 2^-24 x sqrt(keys), 1.4e-6 relative norm and 3e-6 largest
// element error at 4096 keys (simulated), so 1e-5 and 2e-5. A single bf16 rounding anywhere (of
// q_lat, P, an output: 2^-9 relative, 1.5e-3 in norm) or a TF32 / fp16 one (2^-11) fails them by
// two orders of magnitude.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include <cuda_runtime.h>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/mla.hpp"
#include "r1/kernels/ref/kv_cache.hpp"
#include "r1/kernels/ref/mla.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

constexpr double kRelNorm = 1e-2, kMaxRel = 3e-2;
constexpr double kRelNormF32 = 1e-5, kMaxRelF32 = 2e-5;  // see the top of the file

/// Error bounds of the attention outputs, and the name, of activation dtype T (bf16 or float).
template <class T>
constexpr double rel_norm_bound = std::is_same_v<T, float> ? kRelNormF32 : kRelNorm;
template <class T>
constexpr double max_rel_bound = std::is_same_v<T, float> ? kMaxRelF32 : kMaxRel;
template <class T>
constexpr const char* kName = std::is_same_v<T, float> ? "f32" : "bf16";

/// Compares a device tensor of T [..., D] with a host fp64 reference of the same element count.
template <class T = bf16>
Compare compare_dev(const Tensor& dev, const std::vector<double>& ref, int64_t d, Stream& stream) {
  Tensor h = dev.to(Space::host, stream);
  const int64_t rows = h.numel() / d;
  auto hv = make_view<2>(static_cast<const T*>(h.data()), {rows, d});
  auto rv = make_view<2>(ref.data(), {rows, d});
  return compare<T>(hv, rv);
}

/// The output of activation dtype T is finite and within T's bounds.
#define R1_CHECK_CLOSE(T, r)                    \
  do {                                          \
    const Compare c_ = (r);                     \
    INFO(c_.str());                             \
    CHECK(c_.nonfinite == 0);                   \
    CHECK(c_.rel_norm <= rel_norm_bound<T>);    \
    CHECK(c_.max_rel <= max_rel_bound<T>);      \
  } while (0)

// ---------------------------------------------------------------------------------------------
// expanded

template <class T = bf16>
void check_expanded(int64_t tokens, int64_t heads, int64_t dn, int64_t dr, int64_t dv, int64_t q_start,
                    Stream& stream) {
  INFO("expanded ", kName<T>, ": tokens ", tokens, " heads ", heads, " dn ", dn, " dr ", dr, " dv ", dv, " q_start ",
       q_start);
  const int64_t keys = q_start + tokens + 0;
  const uint64_t seed = case_seed(uint64_t(tokens), uint64_t(heads), uint64_t(dn * 1000 + dr * 10 + dv), uint64_t(q_start));
  // q as the layer has it: one [T, H, dn + dr] tensor; k_nope / v slices of one [S, H, dn + dv]
  Tensor q = random_uniform<T>({tokens, heads, dn + dr}, seed, 1.0f);     // [T, H, dn + dr]
  Tensor kv = random_uniform<T>({keys, heads, dn + dv}, seed + 1, 1.0f);  // [S, H, dn + dv]
  Tensor kpe = random_uniform<T>({keys, dr}, seed + 2, 1.0f);            // [S, dr]
  const double scale = 1.0 / std::sqrt(double(dn + dr));
  std::vector<double> ref(static_cast<size_t>(tokens * heads * dv));  // [T, H, dv]
  {
    auto qv = q.view<const T, 3>(), kvv = kv.view<const T, 3>();
    ref::mla_attention_expanded(qv.slice(2, 0, dn), qv.slice(2, dn, dn + dr), kvv.slice(2, 0, dn),
                                kpe.view<const T, 2>(), kvv.slice(2, dn, dn + dv), scale, q_start,
                                make_view<3>(ref.data(), {tokens, heads, dv}));
  }
  Tensor qd = q.to(Space::cuda, stream), kvd = kv.to(Space::cuda, stream), kped = kpe.to(Space::cuda, stream);
  Tensor out = Tensor::empty(dtype_v<T>, {tokens, heads, dv}, Space::cuda, stream);
  poison(out, stream);
  auto qv = qd.view<const T, 3>(), kvv = kvd.view<const T, 3>();
  cuda::mla_attention_expanded<T>(qv.slice(2, 0, dn), qv.slice(2, dn, dn + dr), kvv.slice(2, 0, dn),
                                  kped.view<const T, 2>(), kvv.slice(2, dn, dn + dv), scale, q_start,
                                  out.view<T, 3>(), stream);
  R1_CHECK_CLOSE(T, compare_dev<T>(out, ref, dv, stream));
}

// ---------------------------------------------------------------------------------------------
// absorbed

struct Cache {
  Tensor pages;                 // host [P, page, L + dr]
  Tensor tables;                // host [B, max_blocks] int32
  std::vector<int32_t> lens;    // [B]
  int64_t max_blocks = 0;
};

/// A fragmented pool of T: the sequences' pages are a shuffled permutation of all pages.
template <class T = bf16>
Cache make_cache(const std::vector<int32_t>& lens, int64_t page, int64_t width, int64_t extra_blocks, uint64_t seed) {
  Cache c;
  c.lens = lens;
  int64_t max_len = 1;
  for (int32_t l : lens) max_len = std::max<int64_t>(max_len, l);
  c.max_blocks = (max_len + page - 1) / page + extra_blocks;
  const int64_t b = int64_t(lens.size()), num_pages = b * c.max_blocks + 1;
  std::vector<int32_t> perm(static_cast<size_t>(num_pages));
  std::iota(perm.begin(), perm.end(), 0);
  for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[size_t(mix(seed + i) % i)]);
  std::vector<int32_t> tab(static_cast<size_t>(b * c.max_blocks));
  for (size_t i = 0; i < tab.size(); ++i) tab[i] = perm[i];
  c.tables = Tensor::from_vector(tab, {b, c.max_blocks});
  c.pages = random_uniform<T>({num_pages, page, width}, seed + 3, 1.0f);
  return c;
}

/// Ref of the batched decode: each sequence through ref::mla_attention_absorbed (q_start = len - T).
template <class T = bf16>
std::vector<double> ref_absorbed(const Tensor& q_lat, const Tensor& q_pe, const Cache& c, double scale) {
  const int64_t b = q_lat.size(0), t = q_lat.size(1), h = q_lat.size(2), l = q_lat.size(3);
  std::vector<double> out(size_t(b * t * h * l), 0.0);  // [B, T, H, L]
  for (int64_t i = 0; i < b; ++i) {
    const int64_t len = c.lens[size_t(i)];
    if (len < t) continue;  // rows that see no key: the kernel writes zeros
    ref::mla_attention_absorbed(q_lat.view<const T, 4>().select(0, i), q_pe.view<const T, 4>().select(0, i),
                                c.pages.view<const T, 3>(), c.tables.view<const int32_t, 2>().select(0, i), len,
                                scale, len - t, make_view<3>(out.data() + i * t * h * l, {t, h, l}));
  }
  return out;
}

template <class T = bf16>
void check_absorbed(const std::vector<int32_t>& lens, int64_t tokens, int64_t heads, int64_t lat, int64_t dr,
                    int64_t page, Stream& stream) {
  INFO("absorbed ", kName<T>, ": batch ", lens.size(), " first len ", lens[0], " tokens ", tokens, " heads ", heads,
       " L ", lat, " dr ", dr, " page ", page);
  const int64_t b = int64_t(lens.size());
  const uint64_t seed = case_seed(uint64_t(b * 100000 + lens[0]), uint64_t(tokens * 1000 + heads),
                                  uint64_t(lat * 100 + dr), uint64_t(page));
  const Cache c = make_cache<T>(lens, page, lat + dr, 1, seed);
  Tensor q_lat = random_uniform<T>({b, tokens, heads, lat}, seed + 1, 1.0f);  // [B, T, H, L]
  Tensor q_pe = random_uniform<T>({b, tokens, heads, dr}, seed + 2, 1.0f);    // [B, T, H, dr]
  const double scale = 1.0 / std::sqrt(double(lat + dr));
  const std::vector<double> ref = ref_absorbed<T>(q_lat, q_pe, c, scale);

  Tensor ql = q_lat.to(Space::cuda, stream), qp = q_pe.to(Space::cuda, stream);
  Tensor pages = c.pages.to(Space::cuda, stream), tables = c.tables.to(Space::cuda, stream);
  Tensor lens_d = Tensor::from_vector(c.lens, {b}).to(Space::cuda, stream);
  Tensor out = Tensor::empty(dtype_v<T>, {b, tokens, heads, lat}, Space::cuda, stream);
  poison(out, stream);
  cuda::mla_attention_absorbed<T>(ql.view<const T, 4>(), qp.view<const T, 4>(), pages.view<const T, 3>(),
                                  tables.view<const int32_t, 2>(), lens_d.view<const int32_t, 1>(), scale,
                                  out.view<T, 4>(), stream);
  R1_CHECK_CLOSE(T, compare_dev<T>(out, ref, lat, stream));
}

/// The single-sequence overload (host key count and q_start, block table on the device).
template <class T = bf16>
void check_absorbed_single(int64_t keys, int64_t q_start, int64_t t, int64_t h, int64_t lat, int64_t dr, int64_t page,
                           Stream& stream) {
  INFO("single sequence ", kName<T>, ": keys ", keys, " q_start ", q_start, " tokens ", t, " heads ", h, " L ", lat,
       " dr ", dr, " page ", page);
  const Cache c = make_cache<T>({int32_t(keys)}, page, lat + dr, 2, case_seed(uint64_t(keys), uint64_t(q_start)));
  Tensor q_lat = random_uniform<T>({t, h, lat}, case_seed(3, uint64_t(keys)), 1.0f);
  Tensor q_pe = random_uniform<T>({t, h, dr}, case_seed(4, uint64_t(keys)), 1.0f);
  const double scale = 1.0 / std::sqrt(double(lat + dr));
  std::vector<double> ref(static_cast<size_t>(t * h * lat));
  auto table_h = c.tables.view<const int32_t, 2>().select(0, 0);
  ref::mla_attention_absorbed(q_lat.view<const T, 3>(), q_pe.view<const T, 3>(), c.pages.view<const T, 3>(), table_h,
                              keys, scale, q_start, make_view<3>(ref.data(), {t, h, lat}));
  Tensor ql = q_lat.to(Space::cuda, stream), qp = q_pe.to(Space::cuda, stream);
  Tensor pages = c.pages.to(Space::cuda, stream), table = c.tables.to(Space::cuda, stream);
  Tensor out = Tensor::empty(dtype_v<T>, {t, h, lat}, Space::cuda, stream);
  poison(out, stream);
  cuda::mla_attention_absorbed<T>(ql.view<const T, 3>(), qp.view<const T, 3>(), pages.view<const T, 3>(),
                                  table.view<const int32_t, 2>().select(0, 0), keys, scale, q_start, out.view<T, 3>(),
                                  stream);
  R1_CHECK_CLOSE(T, compare_dev<T>(out, ref, lat, stream));
}

}  // namespace

TEST_CASE("mla_attention_expanded matches the ref twin") {
  Stream stream;
  SUBCASE("fixture dims, tensor-core kernel for small heads") {
    for (int64_t t : {1, 2, 7, 127, 128, 129}) {
      check_expanded(t, 3, 16, 8, 16, 0, stream);
      check_expanded(t, 2, 32, 16, 64, t % 2 ? 5 : 64, stream);
    }
    check_expanded(7, 4, 64, 32, 64, 1000, stream);
  }
  SUBCASE("unaligned dims: element loads") {
    check_expanded(7, 3, 20, 12, 24, 3, stream);
    check_expanded(65, 2, 21, 5, 9, 60, stream);
  }
  SUBCASE("R1 dims") {
    check_expanded(1, 128, 128, 64, 128, 0, stream);
    check_expanded(64, 128, 128, 64, 128, 0, stream);
    check_expanded(129, 16, 128, 64, 128, 0, stream);
    check_expanded(128, 8, 128, 64, 128, 1000, stream);  // chunked prefill: a cached prefix
    check_expanded(2, 128, 128, 64, 128, 4000, stream);
    // several 128-query / 128-key tiles (the sm_90a kernel's), partial last tiles, diagonal tiles
    // that do not start at a tile edge (q_start % 128 != 0)
    check_expanded(300, 3, 128, 64, 128, 0, stream);
    check_expanded(200, 2, 128, 64, 128, 777, stream);
    check_expanded(1024, 1, 128, 64, 128, 0, stream);
  }
  SUBCASE("R1 dims, more work items (query tile, head) than SMs: persistent blocks take several") {
    // back to back: each launch must find its work counter zeroed by the one before
    check_expanded(129, 128, 128, 64, 128, 0, stream);    // 256 items
    check_expanded(300, 64, 128, 64, 128, 0, stream);     // 192 items of 3 tile heights
    check_expanded(200, 96, 128, 64, 128, 777, stream);   // 192 items after a cached prefix
  }
  SUBCASE("R1 dims, one block per item (R1_MLA_PREFILL_PERSISTENT=0)") {
    ::setenv("R1_MLA_PREFILL_PERSISTENT", "0", 1);
    check_expanded(1, 128, 128, 64, 128, 0, stream);
    check_expanded(129, 128, 128, 64, 128, 0, stream);
    check_expanded(200, 2, 128, 64, 128, 777, stream);
    ::unsetenv("R1_MLA_PREFILL_PERSISTENT");
  }
  SUBCASE("dims beyond the tensor-core kernels: fallback") {
    check_expanded(9, 2, 192, 64, 160, 4, stream);
    check_expanded(3, 2, 2048, 64, 1024, 2, stream);  // 16 x 3136 bytes of fp32 staging: past 48 KB
  }
}

TEST_CASE("mla_attention_expanded: empty input is a no-op, bad arguments are r1::Errors") {
  Stream stream;
  Tensor q = Tensor::empty(DType::bf16, {4, 2, 24}, Space::cuda, stream);
  Tensor kv = Tensor::empty(DType::bf16, {6, 2, 32}, Space::cuda, stream);
  Tensor kpe = Tensor::empty(DType::bf16, {6, 8}, Space::cuda, stream);
  Tensor out = Tensor::empty(DType::bf16, {4, 2, 16}, Space::cuda, stream);
  auto qv = q.view<const bf16, 3>(), kvv = kv.view<const bf16, 3>();
  const auto call = [&](int64_t q_start, View<bf16, 3> o, View<const bf16, 2> kp) {
    cuda::mla_attention_expanded<bf16>(qv.slice(2, 0, 16), qv.slice(2, 16, 24), kvv.slice(2, 0, 16), kp,
                                       kvv.slice(2, 16, 32), 0.1, q_start, o, stream);
  };
  CHECK_NOTHROW(call(2, out.view<bf16, 3>(), kpe.view<const bf16, 2>()));
  CHECK_THROWS_WITH(call(3, out.view<bf16, 3>(), kpe.view<const bf16, 2>()), doctest::Contains("need at least 7 keys"));
  CHECK_THROWS_WITH(call(-1, out.view<bf16, 3>(), kpe.view<const bf16, 2>()), doctest::Contains("starting at position"));
  CHECK_THROWS_WITH(call(0, out.view<bf16, 3>().slice(2, 0, 8), kpe.view<const bf16, 2>()),
                    doctest::Contains("out has 8 v dims"));
  CHECK_THROWS_WITH(call(0, out.view<bf16, 3>(), kpe.view<const bf16, 2>().slice(1, 0, 4)),
                    doctest::Contains("k_pe has 4 rope dims"));
  Tensor out_h = Tensor::empty(DType::bf16, {4, 2, 16});
  CHECK_THROWS_WITH(call(0, out_h.view<bf16, 3>(), kpe.view<const bf16, 2>()),
                    doctest::Contains("out must be in cuda memory"));
  Tensor q0 = Tensor::empty(DType::bf16, {0, 2, 24}, Space::cuda, stream);
  Tensor o0 = Tensor::empty(DType::bf16, {0, 2, 16}, Space::cuda, stream);
  auto q0v = q0.view<const bf16, 3>();
  CHECK_NOTHROW(cuda::mla_attention_expanded<bf16>(q0v.slice(2, 0, 16), q0v.slice(2, 16, 24), kvv.slice(2, 0, 16),
                                                   kpe.view<const bf16, 2>(), kvv.slice(2, 16, 32), 0.1, 0,
                                                   o0.view<bf16, 3>(), stream));
  stream.sync();
}

TEST_CASE("mla_attention_absorbed (batched, device lengths) matches the ref twin") {
  Stream stream;
  SUBCASE("fixture dims, pages 3 / 16 / 64") {
    for (int64_t page : {3, 16, 64}) {
      for (int64_t t : {1, 2}) {
        check_absorbed({int32_t(t)}, t, 4, 32, 8, page, stream);
        check_absorbed({63, 64, 65, int32_t(t), 200, 7, 1000, 2}, t, 4, 32, 8, page, stream);
        check_absorbed({1000}, t, 8, 128, 32, page, stream);
      }
    }
    check_absorbed({65, 3, 300}, 2, 16, 64, 16, 16, stream);
  }
  SUBCASE("unaligned dims: element loads") {
    check_absorbed({37, 1, 130}, 1, 3, 20, 4, 3, stream);
    check_absorbed({37, 5, 130}, 2, 5, 100, 12, 16, stream);
  }
  SUBCASE("R1 dims") {
    check_absorbed({1}, 1, 128, 512, 64, 64, stream);
    check_absorbed({4096}, 1, 128, 512, 64, 64, stream);
    check_absorbed({8192}, 2, 128, 512, 64, 64, stream);
    check_absorbed({1000, 1, 64, 65, 2047}, 1, 128, 512, 64, 64, stream);
    check_absorbed({1000, 2, 129}, 2, 128, 512, 64, 64, stream);
    check_absorbed({3000, 17}, 1, 16, 512, 64, 64, stream);
  }
  SUBCASE("dims beyond the tensor-core kernels: fallback") {
    check_absorbed({70, 3}, 2, 2, 640, 64, 16, stream);
    check_absorbed({41, 5}, 2, 2, 1600, 64, 16, stream);  // 16 x 3264 bytes of fp32 staging: past 48 KB
  }
}

namespace {

/// Sequence 0 has no key, sequence 1 a bad page under its keys, sequence 2 one key for two queries.
template <class T>
void check_empty_rows_and_bad_pages(Stream& stream) {
  const int64_t t = 2, h = 4, lat = 32, dr = 8, page = 16;
  const Cache c = make_cache<T>({0, 40, 1}, page, lat + dr, 0, case_seed(77));
  Tensor ql = random_uniform<T>({3, t, h, lat}, case_seed(78), 1.0f).to(Space::cuda, stream);
  Tensor qp = random_uniform<T>({3, t, h, dr}, case_seed(79), 1.0f).to(Space::cuda, stream);
  Tensor pages = c.pages.to(Space::cuda, stream);
  Tensor tab_h = c.tables;
  tab_h.data_as<int32_t>()[1 * c.max_blocks + 1] = int32_t(c.pages.size(0)) + 5;  // sequence 1, keys 16..31
  Tensor tables = tab_h.to(Space::cuda, stream);
  Tensor lens = Tensor::from_vector(c.lens, {3}).to(Space::cuda, stream);
  Tensor out = Tensor::empty(dtype_v<T>, {3, t, h, lat}, Space::cuda, stream);
  poison(out, stream);
  cuda::mla_attention_absorbed<T>(ql.view<const T, 4>(), qp.view<const T, 4>(), pages.view<const T, 3>(),
                                  tables.view<const int32_t, 2>(), lens.view<const int32_t, 1>(), 0.2, out.view<T, 4>(),
                                  stream);
  Tensor o = out.to(Space::host, stream);
  const T* p = o.data_as<T>();
  int64_t zeros_ok = 0, nan_ok = 0, n = t * h * lat;
  for (int64_t i = 0; i < n; ++i) zeros_ok += float(p[i]) == 0.0f;            // sequence 0: length 0
  for (int64_t i = 0; i < n; ++i) nan_ok += std::isnan(float(p[n + i]));      // sequence 1: a bad page
  // sequence 2: length 1 < 2 tokens: query 0 sits at position -1 and sees nothing, query 1 sees key 0
  int64_t finite_ok = 0;
  for (int64_t i = 0; i < n / t; ++i) zeros_ok += float(p[2 * n + i]) == 0.0f;
  for (int64_t i = n / t; i < n; ++i) finite_ok += std::isfinite(float(p[2 * n + i])) && float(p[2 * n + i]) != 0.0f;
  CHECK(zeros_ok == n + n / t);
  CHECK(finite_ok == n / t);
  CHECK(nan_ok == n);
}

/// Captures one batched call (R1's latent dims, 16 heads) and replays it with new device lengths.
template <class T>
void check_graph_replay(Stream& stream) {
  const int64_t b = 3, t = 1, h = 16, lat = 512, dr = 64, page = 64;
  const Cache c0 = make_cache<T>({4000, 4096, 4096}, page, lat + dr, 0, case_seed(55));
  Tensor q_lat = random_uniform<T>({b, t, h, lat}, case_seed(56), 1.0f);
  Tensor q_pe = random_uniform<T>({b, t, h, dr}, case_seed(57), 1.0f);
  Tensor ql = q_lat.to(Space::cuda, stream), qp = q_pe.to(Space::cuda, stream);
  Tensor pages = c0.pages.to(Space::cuda, stream), tables = c0.tables.to(Space::cuda, stream);
  Tensor lens = Tensor::from_vector(c0.lens, {b}).to(Space::cuda, stream);
  Tensor out = Tensor::empty(dtype_v<T>, {b, t, h, lat}, Space::cuda, stream);
  const double scale = 0.0416;
  const auto call = [&] {
    cuda::mla_attention_absorbed<T>(ql.view<const T, 4>(), qp.view<const T, 4>(), pages.view<const T, 3>(),
                                    tables.view<const int32_t, 2>(), lens.view<const int32_t, 1>(), scale,
                                    out.view<T, 4>(), stream);
  };
  call();  // first call outside the capture: kernel attributes are set once
  stream.sync();
  const CapturedGraph graph(stream, call);
  for (const std::vector<int32_t>& l : {std::vector<int32_t>{1, 4096, 77}, std::vector<int32_t>{3000, 64, 65}}) {
    Cache c = c0;
    c.lens = l;
    Tensor lh = Tensor::from_vector(l, {b});
    lens.copy_from(lh, stream);
    poison(out, stream);
    graph.launch(stream);
    R1_CHECK_CLOSE(T, compare_dev<T>(out, ref_absorbed<T>(q_lat, q_pe, c, scale), lat, stream));
  }
}

}  // namespace

TEST_CASE("mla_attention_absorbed: sequences shorter than their queries get zeros, bad pages NaN") {
  Stream stream;
  SUBCASE("bf16") { check_empty_rows_and_bad_pages<bf16>(stream); }
  SUBCASE("f32: the fallback kernel, same semantics") { check_empty_rows_and_bad_pages<float>(stream); }
}

TEST_CASE("mla_attention_absorbed replays in a CUDA graph with new device lengths") {
  Stream stream;
  SUBCASE("bf16") { check_graph_replay<bf16>(stream); }
  SUBCASE("f32: the fallback kernel") { check_graph_replay<float>(stream); }
}

TEST_CASE("mla_attention_absorbed, single-sequence overload, matches the ref twin") {
  Stream stream;
  for (const auto& [keys, q_start, t, lat, dr, page] :
       std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {1, 0, 1, 512, 64, 64}, {1000, 999, 1, 512, 64, 64}, {1000, 500, 7, 512, 64, 64},
           {130, 100, 2, 32, 8, 3}, {64, 0, 64, 48, 16, 16}}) {
    check_absorbed_single<bf16>(keys, q_start, t, lat == 512 ? 128 : 4, lat, dr, page, stream);
  }
}

TEST_CASE("mla_attention_absorbed: bad arguments are r1::Errors") {
  Stream stream;
  Tensor ql = Tensor::empty(DType::bf16, {2, 1, 4, 32}, Space::cuda, stream);
  Tensor qp = Tensor::empty(DType::bf16, {2, 1, 4, 8}, Space::cuda, stream);
  Tensor pages = Tensor::empty(DType::bf16, {4, 16, 40}, Space::cuda, stream);
  Tensor pages_bad = Tensor::empty(DType::bf16, {4, 16, 48}, Space::cuda, stream);
  Tensor tables = Tensor::zeros(DType::i32, {2, 2}, Space::cuda, stream);
  Tensor tables3 = Tensor::zeros(DType::i32, {3, 2}, Space::cuda, stream);
  Tensor lens = Tensor::zeros(DType::i32, {2}, Space::cuda, stream);
  Tensor out = Tensor::empty(DType::bf16, {2, 1, 4, 32}, Space::cuda, stream);
  const auto call = [&](const Tensor& pg, const Tensor& tb) {
    cuda::mla_attention_absorbed<bf16>(ql.view<const bf16, 4>(), qp.view<const bf16, 4>(), pg.view<const bf16, 3>(),
                                       tb.view<const int32_t, 2>(), lens.view<const int32_t, 1>(), 0.1,
                                       out.view<bf16, 4>(), stream);
  };
  CHECK_NOTHROW(call(pages, tables));
  CHECK_THROWS_WITH(call(pages_bad, tables), doctest::Contains("row width"));
  CHECK_THROWS_WITH(call(pages, tables3), doctest::Contains("block_tables has 3 sequences"));
  // single-sequence form: too many keys for the table, q_start past keys - T
  auto q3 = ql.view<const bf16, 4>().select(0, 0);
  auto p3 = qp.view<const bf16, 4>().select(0, 0);
  auto o3 = out.view<bf16, 4>().select(0, 0);
  auto tb1 = tables.view<const int32_t, 2>().select(0, 0);
  CHECK_THROWS_WITH(cuda::mla_attention_absorbed<bf16>(q3, p3, pages.view<const bf16, 3>(), tb1, 33, 0.1, 32, o3, stream),
                    doctest::Contains("the block table has 2"));
  CHECK_THROWS_WITH(cuda::mla_attention_absorbed<bf16>(q3, p3, pages.view<const bf16, 3>(), tb1, 20, 0.1, 20, o3, stream),
                    doctest::Contains("need at least 21 keys"));
  stream.sync();
}

namespace {

/// mla_absorb_q and mla_v_up on one shape against the ref twins (q_nope a slice of [T, H, dn + 64]).
template <class T>
void check_per_head_gemms(int64_t t, int64_t h, int64_t dn, int64_t dv, int64_t lat, Stream& stream) {
  INFO(kName<T>, ": tokens ", t, " heads ", h, " dn ", dn, " dv ", dv, " L ", lat);
  const uint64_t seed = case_seed(uint64_t(t), uint64_t(h), uint64_t(dn), uint64_t(lat));
  Tensor w = random_uniform<T>({h * (dn + dv), lat}, seed, 0.1f);  // [H * (dn + dv), L]
  Tensor q = random_uniform<T>({t, h, dn + 64}, seed + 1, 1.0f);  // [T, H, dn + dr]: q_nope is a slice
  Tensor ol = random_uniform<T>({t, h, lat}, seed + 2, 1.0f);     // [T, H, L]
  std::vector<double> ref_q(static_cast<size_t>(t * h * lat)), ref_o(size_t(t * h * dv));
  ref::mla_absorb_q(q.view<const T, 3>().slice(2, 0, dn), w.view<const T, 2>(), int(dv),
                    make_view<3>(ref_q.data(), {t, h, lat}));
  ref::mla_v_up(ol.view<const T, 3>(), w.view<const T, 2>(), int(dn), make_view<3>(ref_o.data(), {t, h, dv}));
  Tensor wd = w.to(Space::cuda, stream), qd = q.to(Space::cuda, stream), old = ol.to(Space::cuda, stream);
  Tensor q_lat = Tensor::empty(dtype_v<T>, {t, h, lat}, Space::cuda, stream);
  Tensor out = Tensor::empty(dtype_v<T>, {t, h, dv}, Space::cuda, stream);
  poison(q_lat, stream);
  poison(out, stream);
  cuda::mla_absorb_q<T>(qd.view<const T, 3>().slice(2, 0, dn), wd.view<const T, 2>(), int(dv), q_lat.view<T, 3>(),
                        stream);
  cuda::mla_v_up<T>(old.view<const T, 3>(), wd.view<const T, 2>(), int(dn), out.view<T, 3>(), stream);
  const Compare rq = compare_dev<T>(q_lat, ref_q, lat, stream), ro = compare_dev<T>(out, ref_o, dv, stream);
  INFO("absorb_q ", rq.str(), "; v_up ", ro.str());
  CHECK(rq.nonfinite == 0);
  CHECK(ro.nonfinite == 0);
  if constexpr (std::is_same_v<T, float>) {
    // fp32 sums only (the plain kernel: no cuBLASLt, no TF32): the f32 bounds of the attention
    CHECK(rq.rel_norm <= kRelNormF32);
    CHECK(ro.rel_norm <= kRelNormF32);
    CHECK(rq.max_rel <= kMaxRelF32);
    CHECK(ro.max_rel <= kMaxRelF32);
  } else {
    // fp32 sums of at most 512 products, one bf16 rounding: well inside a bf16 ulp
    CHECK(rq.rel_norm <= 4e-3);
    CHECK(ro.rel_norm <= 4e-3);
  }
}

/// Prefill's expanded form and decode's absorbed form (absorb_q, attention over pages, v_up) on the
/// same latent rows; k_nope / v expanded on the host in fp32 and stored as T.
template <class T>
void check_forms_agree(int64_t t, int64_t h, int64_t dn, int64_t dr, int64_t dv, int64_t lat, int64_t prefix,
                       Stream& stream) {
  INFO(kName<T>, ": tokens ", t, " heads ", h, " L ", lat, " prefix ", prefix);
  const int64_t keys = prefix + t, page = 16;
  const uint64_t seed = case_seed(uint64_t(t), uint64_t(h), uint64_t(lat), 9);
  Tensor w = random_uniform<T>({h * (dn + dv), lat}, seed, 0.1f);     // [H * (dn + dv), L]
  Tensor rows = random_uniform<T>({keys, lat + dr}, seed + 1, 1.0f);  // [S, L + dr] latent rows
  Tensor q = random_uniform<T>({t, h, dn + dr}, seed + 2, 1.0f);     // [T, H, dn + dr]
  const double scale = 1.0 / std::sqrt(double(dn + dr));
  // expanded keys and values on the host: kv[s, h] = W_kvb[h] c_kv[s], rounded to T
  Tensor kv = Tensor::empty(dtype_v<T>, {keys, h, dn + dv});  // [S, H, dn + dv]
  {
    const T* wp = w.data_as<T>();
    const T* rp = rows.data_as<T>();
    T* kp = kv.data_as<T>();
    for (int64_t s = 0; s < keys; ++s)
      for (int64_t r = 0; r < h * (dn + dv); ++r) {
        float acc = 0;
        for (int64_t c = 0; c < lat; ++c) acc += float(wp[r * lat + c]) * float(rp[s * (lat + dr) + c]);
        kp[s * h * (dn + dv) + r] = T(acc);
      }
  }
  Tensor kpe = Tensor::empty(dtype_v<T>, {keys, dr});
  for (int64_t s = 0; s < keys; ++s)
    for (int64_t d = 0; d < dr; ++d) kpe.data_as<T>()[s * dr + d] = rows.data_as<T>()[s * (lat + dr) + lat + d];
  Tensor qd = q.to(Space::cuda, stream), kvd = kv.to(Space::cuda, stream), kped = kpe.to(Space::cuda, stream);
  Tensor wd = w.to(Space::cuda, stream), rowsd = rows.to(Space::cuda, stream);
  Tensor expanded = Tensor::empty(dtype_v<T>, {t, h, dv}, Space::cuda, stream);
  poison(expanded, stream);
  auto qv = qd.view<const T, 3>(), kvv = kvd.view<const T, 3>();
  cuda::mla_attention_expanded<T>(qv.slice(2, 0, dn), qv.slice(2, dn, dn + dr), kvv.slice(2, 0, dn),
                                  kped.view<const T, 2>(), kvv.slice(2, dn, dn + dv), scale, prefix,
                                  expanded.view<T, 3>(), stream);
  // absorbed: identity-mapped pages holding the latent rows
  const int64_t blocks = (keys + page - 1) / page;
  Tensor pages = Tensor::zeros(dtype_v<T>, {blocks, page, lat + dr}, Space::cuda, stream);
  std::vector<int32_t> tab(static_cast<size_t>(blocks));
  std::iota(tab.begin(), tab.end(), 0);
  Tensor table = Tensor::from_vector(tab, {blocks}).to(Space::cuda, stream);
  R1_CUDA_CHECK(cudaMemcpyAsync(pages.data(), rowsd.data(), size_t(keys * (lat + dr)) * sizeof(T),
                                cudaMemcpyDeviceToDevice, stream));
  Tensor q_lat = Tensor::empty(dtype_v<T>, {t, h, lat}, Space::cuda, stream);
  Tensor o_lat = Tensor::empty(dtype_v<T>, {t, h, lat}, Space::cuda, stream);
  Tensor absorbed = Tensor::empty(dtype_v<T>, {t, h, dv}, Space::cuda, stream);
  poison(absorbed, stream);
  cuda::mla_absorb_q<T>(qv.slice(2, 0, dn), wd.view<const T, 2>(), int(dv), q_lat.view<T, 3>(), stream);
  Tensor q_pe = qd.slice(2, dn, dn + dr);
  cuda::mla_attention_absorbed<T>(q_lat.view<const T, 3>(), q_pe.view<const T, 3>(), pages.view<const T, 3>(),
                                  table.view<const int32_t, 1>(), keys, scale, prefix, o_lat.view<T, 3>(), stream);
  cuda::mla_v_up<T>(o_lat.view<const T, 3>(), wd.view<const T, 2>(), int(dn), absorbed.view<T, 3>(), stream);
  Tensor eh = expanded.to(Space::host, stream);
  std::vector<double> e(static_cast<size_t>(t * h * dv));
  for (size_t i = 0; i < e.size(); ++i) e[i] = double(float(eh.data_as<T>()[i]));
  // both forms round intermediates (k_nope / v vs q_lat / o_lat) to T: bf16, a few ulps apart;
  // f32, only fp32 sums in different orders apart
  const Compare r = compare_dev<T>(absorbed, e, dv, stream);
  INFO(r.str());
  CHECK(r.nonfinite == 0);
  CHECK(r.rel_norm <= (std::is_same_v<T, float> ? kRelNormF32 : 2e-2));
}

/// R1's latent dims: empty sequences, a bad page, one key for two queries, through short sequences
/// and long ones (bf16: the tensor-core kernels unsplit and split + combine; f32: the fallback).
template <class T>
void check_r1_empty_rows_and_bad_pages(Stream& stream) {
  const int64_t t = 2, h = 128, lat = 512, dr = 64, page = 64;
  for (const int32_t long_len : {130, 4000}) {
    INFO(kName<T>, ": longest sequence ", long_len);
    const std::vector<int32_t> lens = {0, long_len, 1, long_len - 7};
    const int64_t b = int64_t(lens.size());
    const Cache c = make_cache<T>(lens, page, lat + dr, 0, case_seed(91, uint64_t(long_len)));
    Tensor ql = random_uniform<T>({b, t, h, lat}, case_seed(92), 1.0f).to(Space::cuda, stream);  // [B, T, H, L]
    Tensor qp = random_uniform<T>({b, t, h, dr}, case_seed(93), 1.0f).to(Space::cuda, stream);   // [B, T, H, dr]
    Tensor pages = c.pages.to(Space::cuda, stream);                                              // [P, page, L + dr]
    Tensor tab_h = c.tables;                                                                     // [B, max_blocks]
    tab_h.data_as<int32_t>()[1 * c.max_blocks + 1] = -3;  // sequence 1, keys 64..127: seen by every query
    Tensor tables = tab_h.to(Space::cuda, stream);
    Tensor lens_d = Tensor::from_vector(lens, {b}).to(Space::cuda, stream);
    Tensor out = Tensor::empty(dtype_v<T>, {b, t, h, lat}, Space::cuda, stream);  // [B, T, H, L]
    poison(out, stream);
    cuda::mla_attention_absorbed<T>(ql.view<const T, 4>(), qp.view<const T, 4>(), pages.view<const T, 3>(),
                                    tables.view<const int32_t, 2>(), lens_d.view<const int32_t, 1>(), 0.04,
                                    out.view<T, 4>(), stream);
    Tensor o = out.to(Space::host, stream);
    const T* p = o.data_as<T>();
    const int64_t n = t * h * lat;
    int64_t zeros0 = 0, nan1 = 0, zeros2 = 0, finite2 = 0, finite3 = 0;
    for (int64_t i = 0; i < n; ++i) zeros0 += float(p[i]) == 0.0f;
    for (int64_t i = 0; i < n; ++i) nan1 += std::isnan(float(p[n + i]));
    for (int64_t i = 0; i < n / t; ++i) zeros2 += float(p[2 * n + i]) == 0.0f;
    for (int64_t i = n / t; i < n; ++i) finite2 += std::isfinite(float(p[2 * n + i])) && float(p[2 * n + i]) != 0.0f;
    for (int64_t i = 0; i < n; ++i) finite3 += std::isfinite(float(p[3 * n + i]));
    CHECK(zeros0 == n);
    CHECK(nan1 == n);
    CHECK(zeros2 == n / t);
    CHECK(finite2 > n / t * 9 / 10);  // key 0's latent row: a few of its values may be bf16 zeros
    CHECK(finite3 == n);
  }
}

}  // namespace

TEST_CASE("mla_absorb_q and mla_v_up match the ref twins") {
  Stream stream;
  for (const auto& [t, h, dn, dv, lat] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {1, 4, 16, 16, 32}, {7, 3, 24, 20, 40}, {5, 2, 13, 7, 9}, {1, 128, 128, 128, 512}, {129, 128, 128, 128, 512}}) {
    check_per_head_gemms<bf16>(t, h, dn, dv, lat, stream);
  }
  Tensor w = Tensor::empty(DType::bf16, {4 * 32, 32}, Space::cuda, stream);
  Tensor q = Tensor::empty(DType::bf16, {2, 4, 16}, Space::cuda, stream);
  Tensor ql = Tensor::empty(DType::bf16, {2, 4, 32}, Space::cuda, stream);
  CHECK_THROWS_WITH(cuda::mla_absorb_q<bf16>(q.view<const bf16, 3>(), w.view<const bf16, 2>(), 8, ql.view<bf16, 3>(), stream),
                    doctest::Contains("kv_b weight has shape"));
  CHECK_NOTHROW(cuda::mla_absorb_q<bf16>(q.view<const bf16, 3>(), w.view<const bf16, 2>(), 16, ql.view<bf16, 3>(), stream));
  stream.sync();
}

TEST_CASE("expanded and absorbed forms agree on the same latents") {
  Stream stream;
  for (const auto& [t, h, dn, dr, dv, lat, prefix] :
       std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {5, 4, 16, 8, 16, 32, 11}, {4, 16, 128, 64, 128, 512, 300}}) {
    check_forms_agree<bf16>(t, h, dn, dr, dv, lat, prefix, stream);
  }
}

TEST_CASE("mla_attention_absorbed, R1 dims: zeros for rows without keys, NaN for bad pages, split and unsplit") {
  Stream stream;
  check_r1_empty_rows_and_bad_pages<bf16>(stream);
}

// ---------------------------------------------------------------------------------------------
// f32 activations, cache and weight (the precise policy): the fallback kernels against the fp64
// ref at the f32 bounds (top of the file), outputs poisoned before every run.

TEST_CASE("mla_attention_expanded, f32: the fallback kernel matches the ref twin tightly") {
  Stream stream;
  SUBCASE("fixture dims") {
    for (int64_t t : {1, 2, 7, 129}) {
      check_expanded<float>(t, 3, 16, 8, 16, 0, stream);
      check_expanded<float>(t, 2, 32, 16, 64, t % 2 ? 5 : 64, stream);
    }
    check_expanded<float>(7, 4, 64, 32, 64, 1000, stream);
  }
  SUBCASE("unaligned dims") {
    check_expanded<float>(7, 3, 20, 12, 24, 3, stream);
    check_expanded<float>(65, 2, 21, 5, 9, 60, stream);
  }
  SUBCASE("tiny-r1-mtp dims (4 heads, nope 128, rope 64, v 128)") {
    for (int64_t t : {1, 2, 7, 129}) {
      check_expanded<float>(t, 4, 128, 64, 128, 0, stream);
      check_expanded<float>(t, 4, 128, 64, 128, 37, stream);  // causal with a cached prefix
    }
  }
  SUBCASE("R1 dims") {
    check_expanded<float>(1, 128, 128, 64, 128, 0, stream);
    check_expanded<float>(129, 16, 128, 64, 128, 0, stream);
    check_expanded<float>(2, 128, 128, 64, 128, 1000, stream);
    check_expanded<float>(200, 2, 128, 64, 128, 777, stream);
  }
  SUBCASE("dims beyond bf16's tensor-core kernels, and past 48 KB of shared memory") {
    check_expanded<float>(9, 2, 192, 64, 160, 4, stream);
    check_expanded<float>(3, 2, 2048, 64, 1024, 2, stream);  // 16 x 3136 bytes of fp32 staging: past 48 KB
  }
}

TEST_CASE("mla_attention_absorbed (batched), f32: the fallback kernel matches the ref twin tightly") {
  Stream stream;
  SUBCASE("fixture dims, pages 3 / 16 / 64") {
    for (int64_t page : {3, 16, 64}) {
      for (int64_t t : {1, 2}) {
        check_absorbed<float>({int32_t(t)}, t, 4, 32, 8, page, stream);
        check_absorbed<float>({63, 64, 65, int32_t(t), 200, 7, 1000, 2}, t, 4, 32, 8, page, stream);
      }
    }
    check_absorbed<float>({65, 3, 300}, 2, 16, 64, 16, 16, stream);
  }
  SUBCASE("unaligned dims") {
    check_absorbed<float>({37, 1, 130}, 1, 3, 20, 4, 3, stream);
    check_absorbed<float>({37, 5, 130}, 2, 5, 100, 12, 16, stream);
  }
  SUBCASE("tiny-r1-mtp dims (4 heads, kv_lora 128, rope 64)") {
    for (int64_t page : {3, 16, 64}) {
      for (int64_t t : {1, 2, 7}) check_absorbed<float>({int32_t(t), 129, 1000, 8, 65}, t, 4, 128, 64, page, stream);
    }
    check_absorbed<float>({129, 130, 517}, 129, 4, 128, 64, 16, stream);
  }
  SUBCASE("R1 dims") {
    check_absorbed<float>({1}, 1, 128, 512, 64, 64, stream);
    check_absorbed<float>({1000, 1, 64, 65, 2047}, 1, 128, 512, 64, 64, stream);
    check_absorbed<float>({1000, 2, 129}, 2, 128, 512, 64, 64, stream);
    check_absorbed<float>({3000, 17}, 1, 16, 512, 64, 64, stream);
  }
  SUBCASE("dims beyond bf16's tensor-core kernels, and past 48 KB of shared memory") {
    check_absorbed<float>({70, 3}, 2, 2, 640, 64, 16, stream);
    check_absorbed<float>({41, 5}, 2, 2, 1600, 64, 16, stream);  // 16 x 3264 bytes of fp32 staging: past 48 KB
  }
}

TEST_CASE("mla_attention_absorbed, single-sequence overload, f32: matches the ref twin tightly") {
  Stream stream;
  for (const auto& [keys, q_start, t, h, lat, dr, page] :
       std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {1, 0, 1, 128, 512, 64, 64}, {1000, 999, 1, 128, 512, 64, 64}, {1000, 500, 7, 128, 512, 64, 64},
           {130, 100, 2, 4, 32, 8, 3}, {64, 0, 64, 4, 48, 16, 16},
           // tiny-r1-mtp: 4 heads, kv_lora 128, rope 64
           {1, 0, 1, 4, 128, 64, 16}, {9, 7, 2, 4, 128, 64, 3}, {300, 293, 7, 4, 128, 64, 16},
           {129, 0, 129, 4, 128, 64, 64}, {517, 388, 129, 4, 128, 64, 16}}) {
    check_absorbed_single<float>(keys, q_start, t, h, lat, dr, page, stream);
  }
}

TEST_CASE("mla_absorb_q and mla_v_up, f32 weight and activations: match the ref twins tightly") {
  Stream stream;
  for (const auto& [t, h, dn, dv, lat] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {1, 4, 16, 16, 32}, {7, 3, 24, 20, 40}, {5, 2, 13, 7, 9},           // fixture and odd dims
           {1, 4, 128, 128, 128}, {2, 4, 128, 128, 128}, {129, 4, 128, 128, 128},  // tiny-r1-mtp
           {1, 128, 128, 128, 512}, {129, 128, 128, 128, 512}}) {               // R1
    check_per_head_gemms<float>(t, h, dn, dv, lat, stream);
  }
}

TEST_CASE("f32: expanded and absorbed forms agree on the same latents") {
  Stream stream;
  for (const auto& [t, h, dn, dr, dv, lat, prefix] :
       std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {5, 4, 16, 8, 16, 32, 11}, {7, 4, 128, 64, 128, 128, 129}, {4, 16, 128, 64, 128, 512, 300}}) {
    check_forms_agree<float>(t, h, dn, dr, dv, lat, prefix, stream);
  }
}

TEST_CASE("mla_attention_absorbed, f32, R1 dims: zeros for rows without keys, NaN for bad pages") {
  Stream stream;
  check_r1_empty_rows_and_bad_pages<float>(stream);
}

TEST_CASE("MLA f32: head dims past the device's shared memory are r1::Errors naming them") {
  Stream stream;
  const int64_t dn = 20000, dr = 8, dv = 8;  // 16 x 20016 bytes of fp32 staging: past any GPU's opt-in limit
  Tensor q = Tensor::zeros(DType::f32, {1, 1, dn + dr}, Space::cuda, stream);
  Tensor kv = Tensor::zeros(DType::f32, {1, 1, dn + dv}, Space::cuda, stream);
  Tensor kpe = Tensor::zeros(DType::f32, {1, dr}, Space::cuda, stream);
  Tensor out = Tensor::empty(DType::f32, {1, 1, dv}, Space::cuda, stream);
  auto qv = q.view<const float, 3>(), kvv = kv.view<const float, 3>();
  CHECK_THROWS_WITH(cuda::mla_attention_expanded<float>(qv.slice(2, 0, dn), qv.slice(2, dn, dn + dr),
                                                        kvv.slice(2, 0, dn), kpe.view<const float, 2>(),
                                                        kvv.slice(2, dn, dn + dv), 0.1, 0, out.view<float, 3>(),
                                                        stream),
                    doctest::Contains("head dims nope 20000 + rope 8 + v 8 need"));
  const int64_t lat = 10000;  // 16 x 20008 bytes
  Tensor ql = Tensor::zeros(DType::f32, {1, 1, lat}, Space::cuda, stream);
  Tensor qp = Tensor::zeros(DType::f32, {1, 1, dr}, Space::cuda, stream);
  Tensor pages = Tensor::zeros(DType::f32, {1, 4, lat + dr}, Space::cuda, stream);
  Tensor table = Tensor::zeros(DType::i32, {1}, Space::cuda, stream);
  Tensor ol = Tensor::empty(DType::f32, {1, 1, lat}, Space::cuda, stream);
  CHECK_THROWS_WITH(cuda::mla_attention_absorbed<float>(ql.view<const float, 3>(), qp.view<const float, 3>(),
                                                        pages.view<const float, 3>(), table.view<const int32_t, 1>(), 1,
                                                        0.1, 0, ol.view<float, 3>(), stream),
                    doctest::Contains("kv_lora_rank 10000 and rope dims 8 need"));
  stream.sync();
}
