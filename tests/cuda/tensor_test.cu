// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <vector>

#include "r1/core/cuda.hpp"
#include "r1/tensor/tensor.hpp"

using namespace r1;

TEST_CASE("host -> device -> host round trip, pooled allocations") {
  Stream stream;
  std::vector<float> vals(1000);
  for (size_t i = 0; i < vals.size(); ++i) vals[i] = float(i) * 0.5f;
  Tensor h = Tensor::from_vector(vals, {10, 100});
  const auto before = device_memory_stats();
  {
    Tensor d = h.to(Space::cuda, stream);
    CHECK(d.space() == Space::cuda);
    CHECK(device_memory_stats().bytes_in_use == before.bytes_in_use + 4000);
    Tensor d2 = Tensor::empty(DType::f32, {10, 100}, Space::cuda, stream);
    d2.fill_bytes(0xff, stream);
    d2.copy_from(d, stream);  // device -> device
    Tensor back = d2.slice(0, 2, 5).to(Space::host, stream);
    CHECK(back.view<float, 2>()(2, 99) == vals[4 * 100 + 99]);
  }
  stream.sync();
  CHECK(device_memory_stats().bytes_in_use == before.bytes_in_use);
}

TEST_CASE("device copies of non-contiguous tensors are refused clearly") {
  Tensor d = Tensor::zeros(DType::f32, {4, 4}, Space::cuda);
  Tensor dst = Tensor::empty(DType::f32, {4, 2}, Space::cuda);
  CHECK_THROWS_WITH(dst.copy_from(d.slice(1, 0, 2)), doctest::Contains("contiguous"));
}

TEST_CASE("an impossible allocation is an r1::Error with the sizes") {
  CHECK_THROWS_WITH(Tensor::empty(DType::f32, {int64_t(1) << 40}, Space::cuda),
                    doctest::Contains("cannot allocate"));
}
