// SPDX-License-Identifier: MIT
// Expert routings for the grouped-GEMM tests (grouped_gemm_test, grouped_gemm_wgmma_test): row
// offsets per expert for random routing with empty experts, all rows on one expert, or on the
// first or last expert.
#pragma once

#include <cstdint>
#include <vector>

#include "gemm_test_util.hpp"

namespace r1::gpu_test {

/// How the rows are spread over the experts.
enum class Route { random, one_expert, first, last };

/// Row offsets [E + 1] of `rows` rows over E experts; random routing leaves every third expert
/// (from expert 1) empty.
inline std::vector<int32_t> make_offsets(int64_t experts, int64_t rows, Route route, uint64_t seed) {
  std::vector<int32_t> count(size_t(experts), 0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t e = 0;
    switch (route) {
      case Route::random: e = int64_t(mix(seed + uint64_t(r)) % uint64_t(experts)); break;
      case Route::one_expert: e = experts / 2; break;
      case Route::first: e = 0; break;
      case Route::last: e = experts - 1; break;
    }
    ++count[size_t(e)];
  }
  if (route == Route::random && experts > 2) {  // make sure some experts are empty
    for (int64_t e = 1; e < experts; e += 3) {
      count[0] += count[size_t(e)];
      count[size_t(e)] = 0;
    }
  }
  std::vector<int32_t> off(size_t(experts) + 1, 0);
  for (int64_t e = 0; e < experts; ++e) off[size_t(e) + 1] = off[size_t(e)] + count[size_t(e)];
  return off;
}

/// The offsets on the device, [E + 1] i32.
inline Tensor device_offsets(const std::vector<int32_t>& off, stream_t stream) {
  return Tensor::from_vector(off, {int64_t(off.size())}).to(Space::cuda, stream);
}

}  // namespace r1::gpu_test
