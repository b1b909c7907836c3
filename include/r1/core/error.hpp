// SPDX-License-Identifier: MIT
// r1::Error and the checking macros. Every failure a user can cause (bad file, bad shape, bad
// config value, failed CUDA call) becomes an r1::Error whose message names the operation and the
// offending value; nothing in r1 aborts or returns a silent wrong answer on bad input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "r1/core/config.hpp"

namespace r1 {

/// The one exception type r1 throws. `op()` is the operation that failed ("safetensors.open",
/// "linear", "cuda.malloc"...), `what()` is the full human-readable message "op: detail".
class Error : public std::runtime_error {
 public:
  Error(std::string op, const std::string& detail)
      : std::runtime_error(op + ": " + detail), op_(std::move(op)) {}
  const std::string& op() const noexcept { return op_; }

 private:
  std::string op_;
};

namespace detail {
// Concatenates any streamable values. Used instead of fmt in headers because Debian's fmt 9 does
// not compile inside C++20 .cu files (see docs/building.md).
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

template <class... Args>
[[noreturn]] void fail(std::string op, const Args&... args) {
  throw Error(std::move(op), detail::str_cat(args...));
}

}  // namespace r1

/// R1_CHECK(cond, "op", message parts...): throws r1::Error("op: message") when cond is false.
#define R1_CHECK(cond, op, ...)                    \
  do {                                             \
    if (!(cond)) [[unlikely]] {                    \
      ::r1::fail(op, __VA_ARGS__);                 \
    }                                              \
  } while (0)
