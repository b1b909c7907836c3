// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "r1/tensor/tensor.hpp"

using namespace r1;

TEST_CASE("host tensors: create, view, slice, copy") {
  Tensor t = Tensor::zeros(DType::f32, {4, 5});
  CHECK(t.numel() == 20);
  CHECK(t.nbytes() == 80);
  CHECK(t.space() == Space::host);
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % kHostAlignment == 0);
  auto v = t.view<float, 2>();  // [4, 5]
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j) v(i, j) = float(i * 10 + j);

  Tensor col = t.slice(1, 2, 4);  // [4, 2], shares storage, not contiguous
  CHECK_FALSE(col.is_contiguous());
  Tensor c = col.contiguous();
  CHECK(c.is_contiguous());
  auto cv = c.view<const float, 2>();
  CHECK(cv(3, 1) == 33.0f);
  v(3, 3) = -1.0f;  // the copy is independent
  CHECK(cv(3, 1) == 33.0f);
  CHECK(col.view<float, 2>()(3, 1) == -1.0f);  // the slice is not

  Tensor row = t.select(0, 2);  // [5]
  CHECK(row.rank() == 1);
  CHECK(row.view<float, 1>()(4) == 24.0f);

  Tensor r = t.reshape({2, 10});
  CHECK(r.view<float, 2>()(1, 0) == 20.0f);

  Tensor dst = Tensor::empty(DType::f32, {4, 2});
  dst.copy_from(col);
  CHECK(dst.view<float, 2>()(3, 1) == -1.0f);
}

TEST_CASE("tensor errors name the problem") {
  Tensor t = Tensor::zeros(DType::bf16, {2, 3});
  CHECK_THROWS_WITH((t.view<float, 2>()), "tensor.view: tensor holds BF16, requested F32");
  CHECK_THROWS_WITH((t.view<bf16, 3>()), "tensor.view: tensor has rank 2 ([2, 3]), requested rank 3");
  CHECK_THROWS_WITH(t.reshape({4, 2}), "tensor.reshape: cannot reshape [2, 3] into [4, 2]");
  CHECK_THROWS_WITH(t.slice(0, 1, 3), "tensor.slice: range [1, 3) out of bounds for extent 2");
  Tensor other = Tensor::zeros(DType::bf16, {3, 2});
  CHECK_THROWS_WITH(other.copy_from(t), "tensor.copy: shape mismatch: destination [3, 2], source [2, 3]");
  CHECK_THROWS_WITH(Tensor::empty(DType::f32, {int64_t(1) << 40, int64_t(1) << 40}),
                    doctest::Contains("overflows"));
  CHECK_THROWS_WITH(Shape({-1}), "shape: negative extent -1");
  CHECK_THROWS((Tensor().view<float, 1>()));
}

TEST_CASE("from_vector and borrow") {
  Tensor t = Tensor::from_vector(std::vector<int32_t>{1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.dtype() == DType::i32);
  CHECK(t.view<int32_t, 2>()(1, 2) == 6);
  CHECK_THROWS(Tensor::from_vector(std::vector<int32_t>{1, 2}, {3}));

  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3});
  Tensor b = Tensor::borrow(owner->data(), DType::f32, {3}, Space::host, owner);
  std::weak_ptr<std::vector<float>> weak = owner;
  owner.reset();
  CHECK_FALSE(weak.expired());  // the tensor keeps the memory alive
  CHECK(b.view<float, 1>()(2) == 3.0f);
  b = Tensor();
  CHECK(weak.expired());
}

TEST_CASE("device memory without a GPU fails clearly") {
  if (cuda_device_count() > 0) return;  // covered by the GPU tests
  CHECK_THROWS_AS(Tensor::empty(DType::f32, {4}, Space::cuda), Error);
}
