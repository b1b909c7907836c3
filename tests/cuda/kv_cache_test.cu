// SPDX-License-Identifier: MIT
// r1::cuda::kv_cache_write / kv_cache_gather against the ref twins, bit for bit (they only move
// values): vLLM slot mappings with padding (-1) and rows in any order, the ref-shaped block-table
// write, gathers, page sizes 3 / 16 / 64, R1's 576-wide rows (16-byte path) and odd widths
// (element path); untouched cache rows must keep their poison; bad arguments throw. bf16 caches,
// and f32 ones (the precise policy: the same kernels, 4 values per 16-byte access).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "gemm_test_util.hpp"
#include "r1/kernels/cuda/kv_cache.hpp"
#include "r1/kernels/ref/kv_cache.hpp"

using namespace r1;
using namespace r1::gpu_test;

namespace {

/// A shuffled list of all pages (a fragmented pool), seeded.
std::vector<int32_t> shuffled_pages(int64_t pages, uint64_t seed) {
  std::vector<int32_t> v(static_cast<size_t>(pages));
  std::iota(v.begin(), v.end(), 0);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(mix(seed + i) % i)]);
  return v;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data(), b.data(), size_t(a.numel()) * dtype_size(a.dtype())) == 0;
}

Tensor poisoned_host(DType dt, const Shape& s) {
  Tensor t = Tensor::empty(dt, s);
  t.fill_bytes(0xff);
  return t;
}

template <class T = bf16>
void check_slot_write(int64_t n, int64_t width, int64_t page, int64_t num_pages, Stream& stream) {
  INFO(dtype_size(dtype_v<T>) * 8, "-bit values: rows ", n, " width ", width, " page ", page, " pages ", num_pages);
  const uint64_t seed = case_seed(uint64_t(n), uint64_t(width), uint64_t(page));
  Tensor rows = random_uniform<T>({n, width}, seed, 2.0f);
  // distinct slots in random order, every 5th row padding
  std::vector<int32_t> all(static_cast<size_t>(num_pages * page));
  std::iota(all.begin(), all.end(), 0);
  for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[size_t(mix(seed + 7 * i) % i)]);
  std::vector<int32_t> slots(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) slots[size_t(i)] = i % 5 == 3 ? -1 : all[size_t(i)];
  // expected: poison everywhere but the written rows
  Tensor expect = poisoned_host(dtype_v<T>, {num_pages, page, width});
  for (int64_t i = 0; i < n; ++i) {
    if (slots[size_t(i)] < 0) continue;
    std::memcpy(expect.data_as<T>() + int64_t(slots[size_t(i)]) * width, rows.data_as<T>() + i * width,
                size_t(width) * sizeof(T));
  }
  Tensor rows_d = rows.to(Space::cuda, stream);
  Tensor slots_d = Tensor::from_vector(slots, {n}).to(Space::cuda, stream);
  Tensor pages_d = Tensor::empty(dtype_v<T>, {num_pages, page, width}, Space::cuda, stream);
  poison(pages_d, stream);
  cuda::kv_cache_write<T>(rows_d.view<const T, 2>(), pages_d.view<T, 3>(), slots_d.view<const int32_t, 1>(), stream);
  CHECK(same_bytes(pages_d.to(Space::host, stream), expect));
}

template <class T = bf16>
void check_table_write_gather(int64_t start, int64_t n, int64_t width, int64_t page, Stream& stream) {
  INFO(dtype_size(dtype_v<T>) * 8, "-bit values: start ", start, " rows ", n, " width ", width, " page ", page);
  const uint64_t seed = case_seed(uint64_t(start), uint64_t(n), uint64_t(width), uint64_t(page));
  const int64_t blocks = (start + n + page - 1) / page + 1, num_pages = blocks + 3;
  std::vector<int32_t> perm = shuffled_pages(num_pages, seed);
  perm.resize(size_t(blocks));
  Tensor table = Tensor::from_vector(perm, {blocks});
  Tensor rows = random_uniform<T>({n, width}, seed, 2.0f);
  Tensor prefix = random_uniform<T>({start, width}, seed + 1, 2.0f);
  Tensor expect = poisoned_host(dtype_v<T>, {num_pages, page, width});
  ref::kv_cache_write(prefix.view<const T, 2>(), expect.view<T, 3>(), table.view<const int32_t, 1>(), 0);
  ref::kv_cache_write(rows.view<const T, 2>(), expect.view<T, 3>(), table.view<const int32_t, 1>(), start);

  Tensor table_d = table.to(Space::cuda, stream);
  Tensor pages_d = Tensor::empty(dtype_v<T>, {num_pages, page, width}, Space::cuda, stream);
  poison(pages_d, stream);
  if (start > 0) {
    Tensor prefix_d = prefix.to(Space::cuda, stream);
    cuda::kv_cache_write<T>(prefix_d.view<const T, 2>(), pages_d.view<T, 3>(), table_d.view<const int32_t, 1>(), 0,
                            stream);
  }
  Tensor rows_d = rows.to(Space::cuda, stream);
  cuda::kv_cache_write<T>(rows_d.view<const T, 2>(), pages_d.view<T, 3>(), table_d.view<const int32_t, 1>(), start,
                          stream);
  CHECK(same_bytes(pages_d.to(Space::host, stream), expect));

  const int64_t total = start + n;
  Tensor g_ref = Tensor::empty(dtype_v<T>, {total, width});
  ref::kv_cache_gather(expect.view<const T, 3>(), table.view<const int32_t, 1>(), g_ref.view<T, 2>());
  Tensor g_d = Tensor::empty(dtype_v<T>, {total, width}, Space::cuda, stream);
  poison(g_d, stream);
  cuda::kv_cache_gather<T>(pages_d.view<const T, 3>(), table_d.view<const int32_t, 1>(), g_d.view<T, 2>(), stream);
  CHECK(same_bytes(g_d.to(Space::host, stream), g_ref));
}

}  // namespace

TEST_CASE("kv_cache_write with a slot mapping: bit-identical, padding skipped, other rows untouched") {
  Stream stream;
  for (int64_t page : {3, 16, 64}) {
    for (int64_t width : {576, 40, 20, 13}) {
      for (int64_t n : {1, 2, 7, 65, 300}) check_slot_write(n, width, page, (n + page - 1) / page + 2, stream);
    }
  }
  check_slot_write(0, 576, 64, 2, stream);  // no rows: a no-op
}

TEST_CASE("kv_cache_write at a start position and kv_cache_gather match the ref twins") {
  Stream stream;
  for (int64_t page : {3, 64}) {
    for (int64_t width : {576, 20}) {
      for (int64_t start : {0, 1, 63, 64, 65, 1000}) {
        for (int64_t n : {1, 2, 129}) check_table_write_gather(start, n, width, page, stream);
      }
    }
  }
}

TEST_CASE("kv_cache_gather from a page index outside the cache yields NaN rows") {
  Stream stream;
  const int64_t page = 4, width = 24;
  Tensor pages = random_uniform<bf16>({3, page, width}, case_seed(91), 1.0f).to(Space::cuda, stream);
  Tensor table = Tensor::from_vector(std::vector<int32_t>{1, 7}, {2}).to(Space::cuda, stream);
  Tensor out = Tensor::zeros(DType::bf16, {6, width}, Space::cuda, stream);
  cuda::kv_cache_gather<bf16>(pages.view<const bf16, 3>(), table.view<const int32_t, 1>(), out.view<bf16, 2>(), stream);
  Tensor h = out.to(Space::host, stream);
  for (int64_t s = 0; s < 6; ++s) {
    const float v = float(h.data_as<bf16>()[s * width]);
    CHECK((s < page ? std::isfinite(v) : std::isnan(v)));
  }
}

TEST_CASE("kv_cache, f32 rows and pages: write and gather round trip bit for bit") {
  Stream stream;
  // widths: R1's 576 and tiny-r1-mtp's 192 (kv_lora 128 + rope 64), 16-byte path; 20 (80 bytes,
  // still 16-byte), 13 and 18 (element path)
  for (int64_t page : {3, 16, 64}) {
    for (int64_t width : {576, 192, 20, 13, 18}) {
      for (int64_t n : {1, 2, 7, 129}) check_slot_write<float>(n, width, page, (n + page - 1) / page + 2, stream);
    }
  }
  for (int64_t page : {3, 64}) {
    for (int64_t width : {576, 192, 13}) {
      for (int64_t start : {0, 1, 63, 64, 65, 1000}) {
        for (int64_t n : {1, 2, 7, 129}) check_table_write_gather<float>(start, n, width, page, stream);
      }
    }
  }
}

TEST_CASE("kv_cache_gather, f32: a page index outside the cache yields NaN rows") {
  Stream stream;
  const int64_t page = 4, width = 24;
  Tensor pages = random_uniform<float>({3, page, width}, case_seed(92), 1.0f).to(Space::cuda, stream);
  Tensor table = Tensor::from_vector(std::vector<int32_t>{1, 7}, {2}).to(Space::cuda, stream);
  Tensor out = Tensor::zeros(DType::f32, {6, width}, Space::cuda, stream);
  cuda::kv_cache_gather<float>(pages.view<const float, 3>(), table.view<const int32_t, 1>(), out.view<float, 2>(),
                               stream);
  Tensor h = out.to(Space::host, stream);
  for (int64_t s = 0; s < 6; ++s) {
    for (int64_t c = 0; c < width; ++c) {
      const float v = h.data_as<float>()[s * width + c];
      CHECK((s < page ? std::isfinite(v) : std::isnan(v)));
    }
  }
}

TEST_CASE("kv_cache: bad arguments are r1::Errors") {
  Stream stream;
  Tensor rows = Tensor::empty(DType::bf16, {4, 576}, Space::cuda, stream);
  Tensor pages = Tensor::empty(DType::bf16, {2, 64, 576}, Space::cuda, stream);
  Tensor slots = Tensor::zeros(DType::i32, {4}, Space::cuda, stream);
  Tensor slots3 = Tensor::zeros(DType::i32, {3}, Space::cuda, stream);
  Tensor narrow = Tensor::empty(DType::bf16, {4, 512}, Space::cuda, stream);
  Tensor table = Tensor::zeros(DType::i32, {1}, Space::cuda, stream);
  Tensor rows_h = Tensor::empty(DType::bf16, {4, 576});
  CHECK_THROWS_WITH(cuda::kv_cache_write<bf16>(narrow.view<const bf16, 2>(), pages.view<bf16, 3>(),
                                               slots.view<const int32_t, 1>(), stream),
                    doctest::Contains("row width"));
  CHECK_THROWS_WITH(cuda::kv_cache_write<bf16>(rows.view<const bf16, 2>(), pages.view<bf16, 3>(),
                                               slots3.view<const int32_t, 1>(), stream),
                    doctest::Contains("slot_mapping has 3"));
  CHECK_THROWS_WITH(cuda::kv_cache_write<bf16>(rows_h.view<const bf16, 2>(), pages.view<bf16, 3>(),
                                               slots.view<const int32_t, 1>(), stream),
                    doctest::Contains("rows must be in cuda memory"));
  CHECK_THROWS_WITH(cuda::kv_cache_write<bf16>(rows.view<const bf16, 2>(), pages.view<bf16, 3>(),
                                               table.view<const int32_t, 1>(), 62, stream),
                    doctest::Contains("need 2 pages"));
  CHECK_THROWS_WITH(cuda::kv_cache_write<bf16>(rows.view<const bf16, 2>(), pages.view<bf16, 3>(),
                                               table.view<const int32_t, 1>(), -1, stream),
                    doctest::Contains("negative"));
  Tensor out = Tensor::empty(DType::bf16, {65, 576}, Space::cuda, stream);
  CHECK_THROWS_WITH(cuda::kv_cache_gather<bf16>(pages.view<const bf16, 3>(), table.view<const int32_t, 1>(),
                                                out.view<bf16, 2>(), stream),
                    doctest::Contains("need 2 pages"));
}
