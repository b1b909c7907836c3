// SPDX-License-Identifier: MIT
// Shapes of type-erased tensors: a rank of at most 8 and int64 extents, with overflow-checked
// element and byte counts (file-driven shapes go through these before anything is allocated).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "r1/core/error.hpp"

namespace r1 {

inline constexpr int kMaxRank = 8;

/// a * b for non-negative int64, or false on overflow.
constexpr bool mul_overflow(int64_t a, int64_t b, int64_t& out) {
  if (a < 0 || b < 0) return true;
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return true;
  out = a * b;
  return false;
}

struct Shape {
  int rank = 0;
  int64_t dims[kMaxRank] = {};

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    R1_CHECK(d.size() <= kMaxRank, "shape", "rank ", d.size(), " exceeds the maximum ", kMaxRank);
    for (int64_t v : d) {
      R1_CHECK(v >= 0, "shape", "negative extent ", v);
      dims[rank++] = v;
    }
  }
  template <class It>
  static Shape from_range(It begin, It end) {
    Shape s;
    for (It it = begin; it != end; ++it) {
      R1_CHECK(s.rank < kMaxRank, "shape", "rank exceeds the maximum ", kMaxRank);
      R1_CHECK(*it >= 0, "shape", "negative extent ", int64_t(*it));
      s.dims[s.rank++] = int64_t(*it);
    }
    return s;
  }

  int64_t operator[](int i) const { return dims[i]; }
  int64_t& operator[](int i) { return dims[i]; }

  /// Product of the extents; throws on int64 overflow.
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) {
      R1_CHECK(!mul_overflow(n, dims[i], n), "shape", "element count of ", str(),
               " overflows int64");
    }
    return n;
  }

  bool operator==(const Shape& o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i) {
      if (dims[i] != o.dims[i]) return false;
    }
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  /// "[2, 3, 4]"
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims[i]);
    }
    return s + "]";
  }
};

}  // namespace r1
