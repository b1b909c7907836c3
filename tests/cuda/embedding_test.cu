// SPDX-License-Identifier: MIT
// r1::cuda::embedding against ref::embedding, bit for bit (a bf16 row converted exactly to bf16,
// f32 or f64): int32 and int64 ids, odd token counts, R1's vocabulary (129280 rows) and hidden size
// (7168), padded output rows (element-wise path), outputs poisoned first; out-of-range ids give NaN
// rows and read nothing. f64 output: the f32 activation policy's f64 residual stream.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/embedding.hpp"
#include "r1/kernels/ref/embedding.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

template <class TI, class TY>
void check_embedding(int64_t tokens, int64_t vocab, int64_t dim, int64_t out_pad, bool bad_ids, Stream& stream) {
  const uint64_t seed = case_seed(uint64_t(tokens), uint64_t(vocab), uint64_t(dim), uint64_t(out_pad) + bad_ids);
  Tensor table = random_uniform<bf16>({vocab, dim}, seed, 1.0f);
  Tensor ids = Tensor::empty(dtype_v<TI>, {tokens});
  std::vector<bool> invalid(size_t(tokens), false);
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t id = int64_t(mix(seed + 99 + uint64_t(t)) % uint64_t(vocab));
    if (t == 0) id = vocab - 1;
    if (bad_ids && t % 3 == 1) {
      const int64_t bad[] = {-1, vocab, vocab + 1000, int64_t(std::numeric_limits<TI>::min()),
                             int64_t(std::numeric_limits<TI>::max())};
      id = bad[(t / 3) % 5];
      invalid[size_t(t)] = true;
    }
    ids.data_as<TI>()[t] = TI(id);
  }
  // ref on the valid ids only (it throws on the others, as it should)
  Tensor expect = Tensor::empty(dtype_v<TY>, {tokens, dim});
  for (int64_t t = 0; t < tokens; ++t) {
    if (invalid[size_t(t)]) continue;
    ref::embedding(ids.view<const TI, 1>().slice(0, t, t + 1), table.view<const bf16, 2>(),
                   expect.view<TY, 2>().slice(0, t, t + 1));
  }
  Tensor td = table.to(Space::cuda, stream), idd = ids.to(Space::cuda, stream);
  Tensor od = Tensor::empty(dtype_v<TY>, {tokens, dim + out_pad}, Space::cuda, stream);
  poison(od, stream);
  cuda::embedding<TI, bf16, TY>(idd.view<const TI, 1>(), td.view<const bf16, 2>(),
                                od.view<TY, 2>().slice(1, 0, dim), stream);
  Tensor got = od.to(Space::host, stream);
  int64_t wrong = 0, not_nan = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < dim; ++i) {
      const TY g = got.data_as<TY>()[t * (dim + out_pad) + i];
      if (invalid[size_t(t)]) {
        not_nan += !std::isnan(float(g));
      } else {
        const TY e = expect.data_as<TY>()[t * dim + i];
        wrong += std::memcmp(&g, &e, sizeof(TY)) != 0;
      }
    }
  }
  INFO("embedding tokens=", tokens, " vocab=", vocab, " dim=", dim, " pad=", out_pad, " ids int", sizeof(TI) * 8,
       " out ", sizeof(TY) == 2 ? "bf16" : sizeof(TY) == 4 ? "f32" : "f64", bad_ids ? " with bad ids" : "",
       ": wrong ", wrong, ", invalid rows not NaN ", not_nan);
  CHECK(wrong == 0);
  CHECK(not_nan == 0);
  if (out_pad > 0) CHECK(touched_padding(got, dim) == 0);
}

}  // namespace

TEST_CASE("embedding matches the ref twin") {
  Stream stream;
  for (int64_t tokens : {1, 2, 7, 127, 128, 129}) {
    check_embedding<int32_t, bf16>(tokens, 1000, 7168, 0, false, stream);
    check_embedding<int64_t, float>(tokens, 1000, 7168, 0, false, stream);
    check_embedding<int32_t, float>(tokens, 129280, 64, 0, false, stream);  // R1's vocabulary
    check_embedding<int64_t, bf16>(tokens, 33, 7, 0, false, stream);       // odd width: element-wise
  }
  check_embedding<int32_t, bf16>(4096, 3000, 512, 0, false, stream);
  check_embedding<int32_t, bf16>(9, 100, 7168, 3, false, stream);  // padded output rows
  check_embedding<int64_t, float>(5, 100, 200, 1, false, stream);
  check_embedding<int32_t, bf16>(0, 100, 7168, 0, false, stream);  // no tokens: a no-op
}

TEST_CASE("embedding into an f64 residual stream matches the ref twin") {
  Stream stream;
  for (int64_t tokens : {1, 7, 129}) {
    check_embedding<int32_t, double>(tokens, 1000, 7168, 0, false, stream);
    check_embedding<int64_t, double>(tokens, 1000, 256, 0, false, stream);
    check_embedding<int32_t, double>(tokens, 129280, 128, 0, false, stream);  // R1's vocabulary
    check_embedding<int64_t, double>(tokens, 33, 7, 0, false, stream);       // odd width: element-wise
  }
  check_embedding<int32_t, double>(9, 100, 7168, 3, false, stream);  // padded output rows: element-wise
  check_embedding<int64_t, double>(16, 1000, 7168, 0, true, stream);  // out-of-range ids: NaN rows
  check_embedding<int32_t, double>(16, 50, 7, 0, true, stream);
}

TEST_CASE("embedding: out-of-range ids give NaN rows without reading out of bounds") {
  Stream stream;
  check_embedding<int32_t, bf16>(16, 1000, 7168, 0, true, stream);
  check_embedding<int64_t, float>(16, 129280, 512, 0, true, stream);
  check_embedding<int64_t, bf16>(16, 50, 7, 0, true, stream);
}

TEST_CASE("embedding: bad arguments are r1::Errors") {
  Stream stream;
  Tensor table = Tensor::empty(DType::bf16, {100, 64}, Space::cuda, stream);
  Tensor ids = Tensor::empty(DType::i32, {4}, Space::cuda, stream);
  Tensor idh = Tensor::empty(DType::i32, {4});
  Tensor out = Tensor::empty(DType::bf16, {4, 64}, Space::cuda, stream);
  Tensor out3 = Tensor::empty(DType::bf16, {3, 64}, Space::cuda, stream);
  CHECK_THROWS_WITH((cuda::embedding<int32_t, bf16, bf16>(ids.view<const int32_t, 1>(), table.view<const bf16, 2>(),
                                                          out3.view<bf16, 2>(), stream)),
                    doctest::Contains("out has 3 rows"));
  CHECK_THROWS_WITH((cuda::embedding<int32_t, bf16, bf16>(ids.view<const int32_t, 1>(), table.view<const bf16, 2>(),
                                                          out.view<bf16, 2>().slice(1, 0, 63), stream)),
                    doctest::Contains("out has 63 columns"));
  CHECK_THROWS_WITH((cuda::embedding<int32_t, bf16, bf16>(idh.view<const int32_t, 1>(), table.view<const bf16, 2>(),
                                                          out.view<bf16, 2>(), stream)),
                    doctest::Contains("ids must be in cuda memory"));
}
