// SPDX-License-Identifier: MIT
// Expert routings for the grouped-GEMM tests (grouped_gemm_test, grouped_gemm_wgmma_test,
// linear_f32_test): row offsets per expert for random routing with empty experts, all rows on one
// expert, or on the first or last expert; and shuffled per-expert pointer tables.
#pragma once

#include <cstdint>
#include <numeric>
#include <utility>
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

/// A device array of per-expert pointers into a stacked device tensor, in a shuffled order:
/// expert e uses stacked slot perm[e], so a kernel that ignored the table would read the wrong weights.
struct PointerTable {
  Tensor table;  // [E] device pointers
  std::vector<int64_t> perm;
  PointerTable(const Tensor& stacked_dev, int64_t experts, int64_t per_expert_bytes, uint64_t seed, stream_t stream)
      : perm(size_t(experts)) {
    std::iota(perm.begin(), perm.end(), int64_t(0));
    for (int64_t i = experts - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[size_t(mix(seed + uint64_t(i)) % uint64_t(i + 1))]);
    std::vector<int64_t> ptrs(size_t(experts), 0);
    const int64_t base = int64_t(reinterpret_cast<uintptr_t>(stacked_dev.data()));
    for (size_t e = 0; e < ptrs.size(); ++e) ptrs[e] = base + perm[e] * per_expert_bytes;
    table = Tensor::from_vector(ptrs, {experts}).to(Space::cuda, stream);
  }
  template <class T>
  const T* const* ptr() const {
    return reinterpret_cast<const T* const*>(table.data());
  }
};

}  // namespace r1::gpu_test
