// SPDX-License-Identifier: MIT
// doctest main for GPU tests: without a CUDA device it prints why and exits with 77, which CTest
// reports as "Skipped" (SKIP_RETURN_CODE), so a GPU-less CI run shows the skip instead of hiding it.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "r1/core/cuda.hpp"

int main(int argc, char** argv) {
  if (r1::cuda_device_count() == 0) {
    std::printf("SKIPPED: no CUDA device visible; GPU tests run on a GPU machine "
                "(scripts/gpu-test.sh runs ctest -L gpu there)\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
