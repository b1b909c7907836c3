// SPDX-License-Identifier: MIT
// Run-time value -> compile-time type or constant, through small closed sets. Anything outside the
// set is an r1::Error that lists what is supported, never a silent fallback.
#pragma once

#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"

namespace r1 {

/// A compile-time list of types, used to name the dtypes an op instantiates.
template <class... Ts>
struct TypeList {};

namespace detail {
template <class... Ts>
std::string dtype_list_names() {
  std::string s;
  ((s += (s.empty() ? "" : ", "), s += std::string(dtype_name(dtype_v<Ts>))), ...);
  return s;
}
}  // namespace detail

/// dispatch_dtype(TypeList<float, bf16>{}, d, "op", [&]<class T>() { ... }) calls the lambda with
/// T equal to the C++ type of run-time dtype `d`, or throws "op: unsupported dtype X (supported:
/// F32, BF16)".
template <class... Ts, class F>
decltype(auto) dispatch_dtype(TypeList<Ts...>, DType d, const char* op, F&& f) {
  using R = decltype(f.template operator()<typename std::tuple_element<0, std::tuple<Ts...>>::type>());
  if constexpr (std::is_void_v<R>) {
    bool done = ((d == dtype_v<Ts> ? (f.template operator()<Ts>(), true) : false) || ...);
    if (!done) {
      fail(op, "unsupported dtype ", dtype_name(d), " (supported: ", detail::dtype_list_names<Ts...>(),
           ")");
    }
  } else {
    R out{};
    bool done = ((d == dtype_v<Ts> ? (out = f.template operator()<Ts>(), true) : false) || ...);
    if (!done) {
      fail(op, "unsupported dtype ", dtype_name(d), " (supported: ", detail::dtype_list_names<Ts...>(),
           ")");
    }
    return out;
  }
}

/// dispatch_int<64, 128, 192>(v, "op", "what", [&]<int V>() { ... }): a run-time int that sizes
/// registers or tiles, turned into a template constant from a closed set.
template <int... Vs, class F>
void dispatch_int(int v, const char* op, const char* what, F&& f) {
  bool done = ((v == Vs ? (f.template operator()<Vs>(), true) : false) || ...);
  if (!done) {
    std::string list;
    ((list += (list.empty() ? "" : ", "), list += std::to_string(Vs)), ...);
    fail(op, "unsupported ", what, " ", v, " (supported: ", list, ")");
  }
}

}  // namespace r1
