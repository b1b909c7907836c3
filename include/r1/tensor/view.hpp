// SPDX-License-Identifier: MIT
// View<T, Rank>: a non-owning, trivially copyable window onto memory, usable in device code and
// passed to kernels by value. Rank and element type are static; extents and strides (in elements)
// are run-time values. Host-side helpers (slice, select, reshape) check their arguments and throw;
// element access is unchecked and works on host and device.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "r1/core/config.hpp"
#include "r1/core/error.hpp"

namespace r1 {

/// Where memory lives.
enum class Space : uint8_t { host, cuda };

inline const char* space_name(Space s) { return s == Space::host ? "host" : "cuda"; }

template <class T, int Rank>
struct View {
  static_assert(Rank >= 1 && Rank <= 8, "View rank must be 1..8");
  using element_type = T;
  static constexpr int rank = Rank;

  T* data = nullptr;
  int64_t shape[Rank] = {};
  int64_t stride[Rank] = {};  // in elements
  Space space = Space::host;

  R1_HD int64_t size(int d) const { return shape[d]; }
  R1_HD int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < Rank; ++i) n *= shape[i];
    return n;
  }
  R1_HD bool empty() const { return numel() == 0; }

  template <class... I>
  R1_HD int64_t offset(I... idx) const {
    static_assert(sizeof...(I) == Rank, "index count must equal the view's rank");
    const int64_t ids[Rank] = {int64_t(idx)...};
    int64_t off = 0;
    for (int i = 0; i < Rank; ++i) off += ids[i] * stride[i];
    return off;
  }
  template <class... I>
  R1_HD T& operator()(I... idx) const {
    return data[offset(idx...)];
  }
  template <class... I>
  R1_HD T* ptr(I... idx) const {
    return data + offset(idx...);
  }

  /// Row-major contiguous (size-1 dimensions may have any stride).
  R1_HD bool is_contiguous() const {
    int64_t expect = 1;
    for (int i = Rank - 1; i >= 0; --i) {
      if (shape[i] != 1 && stride[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }
  /// The last dimension is unit-stride (rows may be padded).
  R1_HD bool rows_contiguous() const { return shape[Rank - 1] <= 1 || stride[Rank - 1] == 1; }

  View() = default;
  /// View<T> converts implicitly to View<const T>.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  R1_HD View(const View<U, Rank>& o) : data(o.data), space(o.space) {
    for (int i = 0; i < Rank; ++i) {
      shape[i] = o.shape[i];
      stride[i] = o.stride[i];
    }
  }
  View<const T, Rank> as_const() const { return View<const T, Rank>(*this); }

  /// Elements [begin, end) of dimension `dim`.
  View slice(int dim, int64_t begin, int64_t end) const {
    R1_CHECK(dim >= 0 && dim < Rank, "view.slice", "dimension ", dim, " out of range for rank ", Rank);
    R1_CHECK(0 <= begin && begin <= end && end <= shape[dim], "view.slice", "range [", begin, ", ",
             end, ") out of bounds for extent ", shape[dim], " of dimension ", dim);
    View v = *this;
    v.data = data + begin * stride[dim];
    v.shape[dim] = end - begin;
    return v;
  }

  /// Index `i` of dimension `dim`, dropping that dimension.
  View<T, (Rank > 1 ? Rank - 1 : 1)> select(int dim, int64_t i) const
    requires(Rank > 1)
  {
    R1_CHECK(dim >= 0 && dim < Rank, "view.select", "dimension ", dim, " out of range for rank ",
             Rank);
    R1_CHECK(0 <= i && i < shape[dim], "view.select", "index ", i, " out of bounds for extent ",
             shape[dim], " of dimension ", dim);
    View<T, Rank - 1> v;
    v.data = data + i * stride[dim];
    v.space = space;
    for (int s = 0, d = 0; s < Rank; ++s) {
      if (s == dim) continue;
      v.shape[d] = shape[s];
      v.stride[d] = stride[s];
      ++d;
    }
    return v;
  }

  /// Same elements under another row-major shape; the view must be contiguous.
  template <int R2>
  View<T, R2> reshape(const int64_t (&dims)[R2]) const {
    R1_CHECK(is_contiguous(), "view.reshape", "view is not contiguous");
    View<T, R2> v;
    v.data = data;
    v.space = space;
    int64_t n = 1;
    for (int i = R2 - 1; i >= 0; --i) {
      R1_CHECK(dims[i] >= 0, "view.reshape", "negative extent ", dims[i]);
      v.shape[i] = dims[i];
      v.stride[i] = n;
      n *= dims[i];
    }
    R1_CHECK(n == numel(), "view.reshape", "cannot reshape ", numel(), " elements into ", n);
    return v;
  }
};

/// A row-major contiguous view over `data` with the given extents.
template <int Rank, class T>
View<T, Rank> make_view(T* data, const int64_t (&dims)[Rank], Space space = Space::host) {
  View<T, Rank> v;
  v.data = data;
  v.space = space;
  int64_t n = 1;
  for (int i = Rank - 1; i >= 0; --i) {
    R1_CHECK(dims[i] >= 0, "make_view", "negative extent ", dims[i]);
    v.shape[i] = dims[i];
    v.stride[i] = n;
    n *= dims[i];
  }
  return v;
}

/// Throws unless `v` lives in `space`; `op` names the caller in the message.
template <class T, int R>
void require_space(const View<T, R>& v, Space space, const char* op, const char* name) {
  R1_CHECK(v.space == space, op, name, " must be in ", space_name(space), " memory, got ",
           space_name(v.space));
}

/// Throws unless `v` has exactly the given extents.
template <class T, int R>
void require_shape(const View<T, R>& v, const int64_t (&dims)[R], const char* op, const char* name) {
  bool ok = true;
  for (int i = 0; i < R; ++i) ok = ok && v.shape[i] == dims[i];
  if (!ok) {
    std::string got = "[", want = "[";
    for (int i = 0; i < R; ++i) {
      if (i) {
        got += ", ";
        want += ", ";
      }
      got += std::to_string(v.shape[i]);
      want += std::to_string(dims[i]);
    }
    fail(op, name, " has shape ", got, "], expected ", want, "]");
  }
}

}  // namespace r1
