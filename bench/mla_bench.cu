// SPDX-License-Identifier: MIT
// MLA attention on R1's shapes (H 128, dn 128, dr 64, dv 128, kv_lora 512, page 64):
//  - decode over the paged latent cache, T = 1, batch 1 / 16 / 64 / 128 / 256 at 4096 keys and
//    batch 1 / 16 at 32768 keys, batch 128 at 8192 keys (+ T = 2, MTP verify). FLOPs as the peer table counts them,
//    B * H * T * S * (2 * (L + dr) + 2 * L); bytes: the latent cache once plus q and o_lat;
//  - prefill (expanded form), T = 4096 causal and T = 512 after a 3584-token prefix: FLOPs
//    2 * H * visible pairs * (dn + dr + dv); bytes: q, k, v once and the output;
//  - the per-head GEMMs mla_absorb_q / mla_v_up at T = 1, 128, 4096.
#include <numeric>
#include <string>
#include <vector>

#include "bench_common.cuh"
#include "r1/kernels/cuda/mla.hpp"

namespace {

using namespace r1;

constexpr int64_t H = 128, DN = 128, DR = 64, DV = 128, L = 512, PAGE = 64;
constexpr double kScale = 0.1352337789;

void add_decode(int64_t b, int64_t s, int64_t t) {
  const std::string shape = "b" + std::to_string(b) + " s" + std::to_string(s) + " t" + std::to_string(t);
  const std::string peer = t == 1 ? "torch MLA decode b" + std::to_string(b) + " s" + std::to_string(s) : "";
  bench::add_row("mla_decode/own/" + shape, [=](benchmark::State& st) {
    const int64_t blocks = (s + PAGE - 1) / PAGE;
    Tensor ql = bench::random_device(DType::bf16, {b, t, H, L}, 1, 1.0f);            // [B, T, H, L]
    Tensor qp = bench::random_device(DType::bf16, {b, t, H, DR}, 2, 1.0f);           // [B, T, H, dr]
    Tensor pages = bench::random_device(DType::bf16, {b * blocks, PAGE, L + DR}, 3);  // [P, page, 576]
    std::vector<int32_t> tab(static_cast<size_t>(b * blocks));
    std::iota(tab.begin(), tab.end(), 0);
    Tensor tables = Tensor::from_vector(tab, {b, blocks}).to(Space::cuda);               // [B, blocks]
    Tensor lens = Tensor::from_vector(std::vector<int32_t>(size_t(b), int32_t(s)), {b}).to(Space::cuda);  // [B]
    Tensor out = Tensor::empty(DType::bf16, {b, t, H, L}, Space::cuda);                  // [B, T, H, L]
    bench::Timer& tm = bench::timer();
    const double sec = tm.median([&] {
      cuda::mla_attention_absorbed<bf16>(ql.view<const bf16, 4>(), qp.view<const bf16, 4>(), pages.view<const bf16, 3>(),
                                         tables.view<const int32_t, 2>(), lens.view<const int32_t, 1>(), kScale,
                                         out.view<bf16, 4>(), tm.stream());
    });
    bench::Work w;
    w.flops = double(b * H * t * s) * double(2 * (L + DR) + 2 * L);
    w.bytes = 2.0 * double(b * s * (L + DR)) + 2.0 * double(b * t * H * (2 * L + DR));
    bench::report(st, sec, w, {"mla_decode", shape, "own", peer});
  });
}

void add_prefill(int64_t t, int64_t prefix) {
  const std::string shape = "t" + std::to_string(t) + " prefix" + std::to_string(prefix) + " h" + std::to_string(H);
  bench::add_row("mla_prefill/own/" + shape, [=](benchmark::State& st) {
    const int64_t s = prefix + t;
    Tensor q = bench::random_device(DType::bf16, {t, H, DN + DR}, 1, 1.0f);   // [T, H, 192]
    Tensor kv = bench::random_device(DType::bf16, {s, H, DN + DV}, 2, 1.0f);  // [S, H, 256] kv_b output
    Tensor kpe = bench::random_device(DType::bf16, {s, DR}, 3, 1.0f);         // [S, 64]
    Tensor out = Tensor::empty(DType::bf16, {t, H, DV}, Space::cuda);          // [T, H, 128]
    auto qv = q.view<const bf16, 3>(), kvv = kv.view<const bf16, 3>();
    bench::Timer& tm = bench::timer();
    const double sec = tm.median([&] {
      cuda::mla_attention_expanded<bf16>(qv.slice(2, 0, DN), qv.slice(2, DN, DN + DR), kvv.slice(2, 0, DN),
                                         kpe.view<const bf16, 2>(), kvv.slice(2, DN, DN + DV), kScale, prefix,
                                         out.view<bf16, 3>(), tm.stream());
    });
    const double pairs = double(t) * double(prefix) + double(t) * double(t + 1) / 2.0;
    bench::Work w;
    w.flops = 2.0 * double(H) * pairs * double(DN + DR + DV);
    w.bytes = 2.0 * (double(t * H * (DN + DR)) + double(s * H * (DN + DV)) + double(s * DR) + double(t * H * DV));
    const std::string peer = prefix == 0 && (t == 4096 || t == 1024) ? "torch SDPA MLA prefill T" + std::to_string(t) : "";
    bench::report(st, sec, w, {"mla_prefill", shape, "own", peer});
  });
}

void add_gemms(int64_t t) {
  const std::string shape = "t" + std::to_string(t) + " h" + std::to_string(H);
  bench::add_row("mla_absorb_q/own/" + shape, [=](benchmark::State& st) {
    Tensor q = bench::random_device(DType::bf16, {t, H, DN + DR}, 1, 1.0f);      // [T, H, 192]
    Tensor w = bench::random_device(DType::bf16, {H * (DN + DV), L}, 2, 0.05f);  // [H * 256, 512]
    Tensor ql = Tensor::empty(DType::bf16, {t, H, L}, Space::cuda);              // [T, H, 512]
    bench::Timer& tm = bench::timer();
    const double sec = tm.median([&] {
      cuda::mla_absorb_q<bf16>(q.view<const bf16, 3>().slice(2, 0, DN), w.view<const bf16, 2>(), int(DV),
                               ql.view<bf16, 3>(), tm.stream());
    });
    bench::Work wk;
    wk.flops = 2.0 * double(t * H * DN * L);
    wk.bytes = 2.0 * (double(t * H * DN) + double(H * DN * L) + double(t * H * L));
    bench::report(st, sec, wk, {"mla_absorb_q", shape, "own", ""});
  });
  bench::add_row("mla_v_up/own/" + shape, [=](benchmark::State& st) {
    Tensor ol = bench::random_device(DType::bf16, {t, H, L}, 1, 1.0f);           // [T, H, 512]
    Tensor w = bench::random_device(DType::bf16, {H * (DN + DV), L}, 2, 0.05f);  // [H * 256, 512]
    Tensor out = Tensor::empty(DType::bf16, {t, H, DV}, Space::cuda);            // [T, H, 128]
    bench::Timer& tm = bench::timer();
    const double sec = tm.median([&] {
      cuda::mla_v_up<bf16>(ol.view<const bf16, 3>(), w.view<const bf16, 2>(), int(DN), out.view<bf16, 3>(), tm.stream());
    });
    bench::Work wk;
    wk.flops = 2.0 * double(t * H * DV * L);
    wk.bytes = 2.0 * (double(t * H * L) + double(H * DV * L) + double(t * H * DV));
    bench::report(st, sec, wk, {"mla_v_up", shape, "own", ""});
  });
}

void register_rows() {
  for (int64_t b : {1, 16, 64, 128, 256}) add_decode(b, 4096, 1);
  add_decode(1, 32768, 1);
  add_decode(16, 32768, 1);
  add_decode(128, 4096, 2);
  add_decode(128, 8192, 1);
  add_decode(128, 8192, 2);
  add_prefill(4096, 0);
  add_prefill(1024, 0);
  add_prefill(512, 3584);
  for (int64_t t : {1, 128, 4096}) add_gemms(t);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
