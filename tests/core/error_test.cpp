// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include "r1/core/cuda.hpp"
#include "r1/core/error.hpp"

TEST_CASE("R1_CHECK throws r1::Error naming the operation") {
  auto f = [](int v) { R1_CHECK(v > 0, "demo.op", "value ", v, " must be positive"); };
  CHECK_NOTHROW(f(1));
  try {
    f(-3);
    FAIL("expected an exception");
  } catch (const r1::Error& e) {
    CHECK(e.op() == "demo.op");
    CHECK(std::string(e.what()) == "demo.op: value -3 must be positive");
  }
}

TEST_CASE("device count is zero, not an error, without a GPU or CUDA") {
  CHECK(r1::cuda_device_count() >= 0);
}
