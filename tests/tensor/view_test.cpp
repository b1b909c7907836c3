// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <type_traits>
#include <vector>

#include "r1/tensor/view.hpp"

using namespace r1;

static_assert(std::is_trivially_copyable_v<View<float, 3>>, "View must be POD-like for kernels");
static_assert(std::is_standard_layout_v<View<float, 3>>);

TEST_CASE("view indexing, slicing and selecting") {
  std::vector<int> buf(2 * 3 * 4);
  for (int i = 0; i < 24; ++i) buf[i] = i;
  View<int, 3> v = make_view(buf.data(), {2, 3, 4});  // [2, 3, 4]
  CHECK(v.numel() == 24);
  CHECK(v.is_contiguous());
  CHECK(v(1, 2, 3) == 23);
  CHECK(v(0, 1, 2) == 6);

  View<int, 3> s = v.slice(2, 1, 3);  // [2, 3, 2]
  CHECK(s.shape[2] == 2);
  CHECK_FALSE(s.is_contiguous());
  CHECK(s.rows_contiguous());
  CHECK(s(1, 1, 0) == 17);

  View<int, 2> row = v.select(0, 1);  // [3, 4]
  CHECK(row(0, 0) == 12);
  View<int, 2> col = v.select(2, 3);  // [2, 3]
  CHECK(col(1, 2) == 23);
  CHECK_FALSE(col.rows_contiguous());

  View<const int, 3> c = v;  // implicit to-const
  CHECK(c(1, 0, 0) == 12);

  View<int, 2> flat = v.reshape<2>({6, 4});
  CHECK(flat(5, 3) == 23);
}

TEST_CASE("view helpers reject bad arguments with clear errors") {
  std::vector<float> buf(12);
  View<float, 2> v = make_view(buf.data(), {3, 4});
  CHECK_THROWS_WITH(v.slice(1, 2, 5), "view.slice: range [2, 5) out of bounds for extent 4 of dimension 1");
  CHECK_THROWS_WITH(v.slice(2, 0, 1), "view.slice: dimension 2 out of range for rank 2");
  CHECK_THROWS_WITH(v.select(0, 3), "view.select: index 3 out of bounds for extent 3 of dimension 0");
  CHECK_THROWS_WITH(v.reshape<2>({5, 2}), "view.reshape: cannot reshape 12 elements into 10");
  CHECK_THROWS_WITH(v.slice(1, 0, 2).reshape<1>({6}), "view.reshape: view is not contiguous");
  CHECK_THROWS_WITH(require_shape(v, {3, 5}, "op", "x"), "op: x has shape [3, 4], expected [3, 5]");
  CHECK_THROWS_WITH(require_space(v, Space::cuda, "op", "x"), "op: x must be in cuda memory, got host");
  CHECK_NOTHROW(require_space(v, Space::host, "op", "x"));
}

TEST_CASE("empty extents are valid") {
  View<float, 2> v = make_view(static_cast<float*>(nullptr), {0, 7});
  CHECK(v.numel() == 0);
  CHECK(v.empty());
  CHECK(v.is_contiguous());
}
