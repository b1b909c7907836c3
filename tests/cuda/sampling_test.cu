// SPDX-License-Identifier: MIT
// r1::cuda::argmax and sample against ref::argmax and ref::sampling_distribution, on R1's vocabulary
// (129280) and small odd ones, f32 and bf16 logits, with rows built to stress the cut points: smooth
// random logits, a peaked row, rows made of a few repeated values (tie groups of thousands of
// tokens cut by top-k, top-p and the draw), -inf entries, NaN rows, all -inf rows. Batches of 1, 2
// and 7 split each row over many blocks (up to 256 ranges of a few hundred tokens; vocab 4097 ends
// in a range of one token; vocabularies up to 32 take one range); 300 rows run as a group of 256
// rows in 4 ranges each and a group of 44 in 24 or 5; argmax over 1100 rows takes one block per
// row. Outputs are poisoned with 0x7f7f7f7f (not -1, the NaN rows' token).
//
// Every draw is checked exactly: the test recomputes the GPU's uniform with the host-callable
// cuda::sampling_uniform(seed, row, step) and picks the ref's token by inverse CDF over
// ref::sampling_distribution with that u. The GPU's masses are fp32 exp summed exactly in 64-bit
// fixed point where the ref uses double exp (and sums in double), so a different token is accepted only when u lies
// within 1e-5 of that token's interval in the ref's CDF, i.e. next to a CDF boundary (counted, and
// required to be rare: at most 2% of the draws of a case; tie rows of 129280 tokens have intervals
// of ~1e-5, where a 1e-7 mass error moves about 1% of their draws by one token).
#include <doctest/doctest.h>
#include <cuda_runtime.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/sampling.hpp"
#include "r1/kernels/ref/sampling.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

enum class RowKind { smooth, peaked, ties, with_inf, nan, all_inf };

RowKind kind_of(int64_t b) {
  switch (b % 9) {
    case 0: case 3: case 6: return RowKind::smooth;
    case 1: return RowKind::peaked;
    case 2: case 5: return RowKind::ties;
    case 4: return RowKind::with_inf;
    case 7: return b % 2 ? RowKind::nan : RowKind::smooth;
    default: return b % 4 == 0 ? RowKind::all_inf : RowKind::ties;
  }
}

/// [batch, vocab] host logits of type T; row b is of kind kind_of(kind0 + b) with special_rows.
template <class T>
Tensor make_logits(int64_t batch, int64_t vocab, uint64_t seed, bool special_rows, int64_t kind0 = 0) {
  Tensor t = Tensor::empty(dtype_v<T>, {batch, vocab});
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < batch; ++b) {
    const RowKind k = special_rows ? kind_of(kind0 + b) : RowKind::smooth;
    for (int64_t i = 0; i < vocab; ++i) {
      const float u = uniform(seed + uint64_t(b) * 1000003u, uint64_t(i));
      float v = 6.0f * u;
      if (k == RowKind::peaked && i == vocab / 3) v = 30.0f;
      if (k == RowKind::ties) v = std::round(2.0f * u) + (i % 17 == 0 ? 1.0f : 0.0f);  // a few levels
      if (k == RowKind::with_inf && i % 5 == 0) v = -inf;
      if (k == RowKind::nan && i == vocab / 2) v = std::numeric_limits<float>::quiet_NaN();
      if (k == RowKind::all_inf) v = -inf;
      t.data_as<T>()[b * vocab + i] = T(v);
    }
  }
  return t;
}

struct Tally {
  int64_t draws = 0, boundary = 0;
};

/// The ref's token for one row with uniform u (-1 where the ref throws). When `gpu` differs from it,
/// `near` says whether u lies within 1e-5 of the CDF interval of the GPU's token in the ref's
/// distribution (a fp32-vs-fp64 rounding of the cumulative masses, not a different token choice).
template <class T>
int32_t ref_pick(View<const T, 1> row, const ref::SamplingParams& p, double u, int32_t gpu, bool& near) {
  near = false;
  try {
    if (p.temperature <= 0) return ref::argmax(row);
    const ref::TokenDistribution dist = ref::sampling_distribution(row, p);
    double cum = 0;
    int32_t pick = -1;
    for (const auto& [id, prob] : dist) {
      const double lo = cum;
      cum += prob;
      if (pick < 0 && u < cum) pick = id;
      if (id == gpu && lo - 1e-5 <= u && u < cum + 1e-5) near = true;
    }
    return pick >= 0 ? pick : dist.back().first;
  } catch (const Error&) {
    return -1;
  }
}

template <class T>
void compare_rows(const Tensor& logits, const std::vector<int32_t>& got, const ref::SamplingParams& p, uint64_t seed,
                  uint64_t step, Tally& tally, const char* what) {
  const int64_t batch = logits.size(0), vocab = logits.size(1);
  for (int64_t b = 0; b < batch; ++b) {
    const View<const T, 1> row = logits.view<const T, 2>().select(0, b);
    const double u = cuda::sampling_uniform(seed, uint64_t(b), step);
    bool near = false;
    const int32_t expect = ref_pick(row, p, u, got[size_t(b)], near);
    ++tally.draws;
    if (got[size_t(b)] == expect) continue;
    INFO(what, ": row ", b, " (vocab ", vocab, ") temperature ", p.temperature, " top_k ", p.top_k, " top_p ", p.top_p,
         " step ", step, ": GPU token ", got[size_t(b)], ", ref token ", expect, ", u = ", u,
         near ? " (within 1e-5 of the GPU token's CDF interval)" : "");
    CHECK((near && expect >= 0));
    ++tally.boundary;
  }
}

/// Fills a token output with 0x7f7f7f7f: neither a token id nor -1, so a row the kernels never
/// write is caught (the shared poison(), 0xff bytes, reads as -1, a NaN row's token).
void poison_ids(Tensor& out, stream_t stream) { out.fill_bytes(0x7f, stream); }

template <class T>
void check_sample(int64_t batch, int64_t vocab, const ref::SamplingParams& p, bool special_rows, Stream& stream,
                  int64_t kind0 = 0) {
  const uint64_t seed = case_seed(uint64_t(batch), uint64_t(vocab), uint64_t(p.top_k), uint64_t(p.top_p * 1000)) +
                        uint64_t(kind0);
  Tensor logits = make_logits<T>(batch, vocab, seed, special_rows, kind0);  // [batch, vocab]
  Tensor ld = logits.to(Space::cuda, stream);                              // [batch, vocab]
  Tensor out = Tensor::empty(DType::i32, {batch}, Space::cuda, stream);    // [batch]
  Tally tally;
  for (uint64_t step : {uint64_t(0), uint64_t(7), uint64_t(123456789)}) {
    poison_ids(out, stream);
    if (p.temperature <= 0 && step == 0) {
      cuda::argmax<T>(ld.view<const T, 2>(), out.view<int32_t, 1>(), stream);
    } else {
      cuda::sample<T>(ld.view<const T, 2>(), p, seed, step, out.view<int32_t, 1>(), stream);
    }
    Tensor oh = out.to(Space::host, stream);
    std::vector<int32_t> got(oh.data_as<int32_t>(), oh.data_as<int32_t>() + batch);
    compare_rows<T>(logits, got, p, seed, step, tally, sizeof(T) == 2 ? "bf16" : "f32");
  }
  INFO("batch ", batch, " vocab ", vocab, " kind0 ", kind0, " temperature ", p.temperature, " top_k ", p.top_k,
       " top_p ", p.top_p, ": ", tally.boundary, " of ", tally.draws, " draws differ near a CDF boundary");
  CHECK(tally.boundary <= tally.draws / 50 + 1);
}

ref::SamplingParams params(float t, int k, float p) {
  ref::SamplingParams s;
  s.temperature = t;
  s.top_k = k;
  s.top_p = p;
  return s;
}

}  // namespace

TEST_CASE("uniforms are reproducible on the host and well spread") {
  double sum = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    const double u = cuda::sampling_uniform(42, i % 100, i / 100);
    CHECK((u >= 0 && u < 1));
    sum += u;
  }
  CHECK(std::fabs(sum / 10000 - 0.5) < 0.02);
  CHECK(cuda::sampling_uniform(1, 2, 3) != cuda::sampling_uniform(1, 2, 4));
  CHECK(cuda::sampling_uniform(1, 2, 3) != cuda::sampling_uniform(1, 3, 3));
}

TEST_CASE("argmax and greedy sample match ref::argmax (lowest index on ties, -1 for NaN rows)") {
  Stream stream;
  for (int64_t vocab : {int64_t(129280), int64_t(1), int64_t(2), int64_t(7), int64_t(1000)}) {
    check_sample<float>(64, vocab, params(0, 0, 1), true, stream);
    check_sample<bf16>(19, vocab, params(0, 0, 1), true, stream);
  }
}

TEST_CASE("sample draws the ref's token: top-p, top-k, temperature, ties") {
  Stream stream;
  const ref::SamplingParams sets[] = {
      params(0.6f, 0, 0.95f),  // R1's recommended setting
      params(1.0f, 0, 1.0f),   // plain softmax
      params(1.0f, 50, 1.0f),  // top-k only
      params(0.7f, 20, 0.9f),  // both
      params(1.3f, 1, 1.0f),   // top-k 1: argmax through the sampler
      params(0.5f, 0, 0.05f),  // a tiny nucleus
      params(1.0f, 200000, 0.5f),  // top-k beyond the vocabulary
      params(2.0f, 3000, 0.99f),
  };
  for (const ref::SamplingParams& p : sets) {
    check_sample<float>(64, 129280, p, true, stream);
    check_sample<bf16>(9, 129280, p, true, stream);
    check_sample<float>(27, 7, p, true, stream);
    check_sample<float>(27, 1000, p, false, stream);
    check_sample<bf16>(18, 4097, p, true, stream);
  }
  check_sample<float>(1, 1, params(1.0f, 0, 0.9f), false, stream);
  check_sample<float>(0, 129280, params(1.0f, 0, 0.9f), false, stream);  // no rows: a no-op
}

TEST_CASE("rows split over many blocks: odd vocabularies, batches 1, 2 and 7, every row kind") {
  Stream stream;
  const ref::SamplingParams sets[] = {
      params(0, 0, 1),         // argmax
      params(0.6f, 0, 0.95f),  // top-p: max, level 0, top-p 1-2, draw 1-2, tie
      params(1.0f, 0, 1.0f),   // the draw alone
      params(0.7f, 20, 0.9f),  // all three descents
      params(1.3f, 1, 1.0f),   // top-k 1
      params(0.5f, 0, 1e-6f),  // a nucleus of one token
      params(2.0f, 5, 1.0f),   // top-k then the draw
  };
  // kind_of(kind0) for one row: smooth, peaked, ties, -inf entries, NaN, all -inf
  const int64_t single_kinds[] = {0, 1, 2, 4, 7, 8};
  for (int64_t vocab : {int64_t(1), int64_t(7), int64_t(127), int64_t(129), int64_t(4097), int64_t(129280)}) {
    for (const ref::SamplingParams& p : sets) {
      for (int64_t k0 : single_kinds) {
        if (vocab == 129280) {
          check_sample<float>(1, vocab, p, true, stream, k0);
        } else {
          check_sample<bf16>(1, vocab, p, true, stream, k0);
        }
      }
      check_sample<float>(2, vocab, p, true, stream, 1);  // peaked, ties
      check_sample<bf16>(2, vocab, p, true, stream, 7);   // NaN, all -inf
      check_sample<float>(7, vocab, p, true, stream, 0);
      check_sample<float>(7, vocab, p, true, stream, 4);
    }
  }
}

TEST_CASE("many rows: groups of rows, and one block per row") {
  Stream stream;
  // 300 rows: rows 0-255 in 4 ranges each, rows 256-299 (their own launches) in 24 (vocab 4097) or 5
  for (const ref::SamplingParams& p : {params(0.6f, 0, 0.95f), params(0.7f, 20, 0.9f), params(1.0f, 0, 1.0f)}) {
    check_sample<float>(300, 4097, p, true, stream);
    check_sample<bf16>(300, 129, p, true, stream);
  }
  check_sample<float>(300, 129280, params(0, 0, 1), true, stream);  // argmax: 4 ranges per row
  check_sample<float>(1100, 129, params(0, 0, 1), true, stream);    // argmax: one block per row
  check_sample<bf16>(1100, 4097, params(0, 0, 1), true, stream);
}

TEST_CASE("sample in a CUDA graph: seed and step on the device, advanced by sampling_advance_step") {
  Stream stream;
  const int64_t vocab = 129280;
  struct Case {
    int64_t batch;
    ref::SamplingParams p;
  };
  // 16 rows of 64 ranges; one row of 256 ranges through all three descents; 3 rows, no cuts
  for (const Case& cs : {Case{16, params(0.6f, 0, 0.95f)}, Case{1, params(0.7f, 20, 0.9f)}, Case{3, params(1, 0, 1)}}) {
    const int64_t batch = cs.batch;
    const ref::SamplingParams& p = cs.p;
    const uint64_t seed = case_seed(99, uint64_t(batch));
    Tensor logits = make_logits<float>(batch, vocab, seed, false);        // [batch, vocab]
    Tensor ld = logits.to(Space::cuda, stream);                           // [batch, vocab]
    Tensor out = Tensor::empty(DType::i32, {batch}, Space::cuda, stream);  // [batch]
    const std::vector<int64_t> ss = {int64_t(seed), 5};
    Tensor seed_step = Tensor::from_vector(ss, {2}).to(Space::cuda, stream);  // [2] {seed, step}
    R1_CUDA_CHECK(cudaStreamSynchronize(stream));
    const CapturedGraph graph(stream, [&] {
      cuda::sample<float>(ld.view<const float, 2>(), p, seed_step.view<const int64_t, 1>(), out.view<int32_t, 1>(),
                          stream);
      cuda::sampling_advance_step(seed_step.view<int64_t, 1>(), stream);
    });
    Tally tally;
    for (uint64_t step = 5; step < 8; ++step) {
      poison_ids(out, stream);
      graph.launch(stream);
      Tensor oh = out.to(Space::host, stream);
      std::vector<int32_t> got(oh.data_as<int32_t>(), oh.data_as<int32_t>() + batch);
      compare_rows<float>(logits, got, p, seed, step, tally, "graph");
    }
    Tensor sh = seed_step.to(Space::host, stream);
    CHECK(sh.data_as<int64_t>()[1] == 8);
    CHECK(tally.boundary <= 1);
  }
}

TEST_CASE("sampling: bad arguments are r1::Errors") {
  Stream stream;
  Tensor l = Tensor::empty(DType::f32, {4, 100}, Space::cuda, stream);
  Tensor out = Tensor::empty(DType::i32, {4}, Space::cuda, stream);
  Tensor out3 = Tensor::empty(DType::i32, {3}, Space::cuda, stream);
  Tensor lh = Tensor::empty(DType::f32, {4, 100});
  CHECK_THROWS_WITH((cuda::sample<float>(l.view<const float, 2>(), params(1, 0, 0), 1, 0, out.view<int32_t, 1>(), stream)),
                    doctest::Contains("top_p"));
  CHECK_THROWS_WITH((cuda::sample<float>(l.view<const float, 2>(), params(-1, 0, 1), 1, 0, out.view<int32_t, 1>(), stream)),
                    doctest::Contains("temperature"));
  CHECK_THROWS_WITH((cuda::argmax<float>(l.view<const float, 2>(), out3.view<int32_t, 1>(), stream)),
                    doctest::Contains("out has 3 entries"));
  CHECK_THROWS_WITH((cuda::argmax<float>(lh.view<const float, 2>(), out.view<int32_t, 1>(), stream)),
                    doctest::Contains("logits must be in cuda memory"));
  Tensor ss = Tensor::empty(DType::i64, {3}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::sample<float>(l.view<const float, 2>(), params(1, 0, 1), ss.view<const int64_t, 1>(),
                                         out.view<int32_t, 1>(), stream)),
                    doctest::Contains("seed_step"));
}
