// SPDX-License-Identifier: MIT
// Encoding time is linear in the input: 1 MiB of one letter, of digits, of spaces or of CJK
// encodes in under 2 s, and doubling the input costs at most 2.2x. Times are this thread's CPU
// time (other processes on a shared CI machine do not count), best of 3 runs with the two sizes
// interleaved; a ratio over the limit is measured again (up to 3 times) before it fails, so only
// a consistent slowdown fails the test -- a quadratic step gives ~4x every time.
#include <time.h>

#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "r1/io/tokenizer.hpp"
#include "support.hpp"

using namespace r1;

namespace {

double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

std::string repeat_to(const std::string& unit, size_t bytes) {
  std::string s;
  s.reserve(bytes + unit.size());
  while (s.size() < bytes) s += unit;
  return s;
}

struct Timing {
  double small, large;
};

Timing measure(const io::Tokenizer& tok, const std::string& small, const std::string& large, io::EncodeMode mode) {
  Timing best{1e9, 1e9};
  for (int run = 0; run < 3; ++run) {
    for (int which = 0; which < 2; ++which) {
      const std::string& s = which == 0 ? small : large;
      const double t0 = cpu_seconds();
      const std::vector<int32_t> ids = tok.encode(s, mode);
      const double t = cpu_seconds() - t0;
      REQUIRE(!ids.empty());
      (which == 0 ? best.small : best.large) = std::min(which == 0 ? best.small : best.large, t);
    }
  }
  return best;
}

void check_linear(const io::Tokenizer& tok, const std::string& unit, size_t bytes,
                  io::EncodeMode mode = io::EncodeMode::raw) {
  const std::string small = repeat_to(unit, bytes), large = small + small;
  INFO("unit ", test::show(unit), ", ", bytes, " and ", 2 * bytes, " bytes");
  Timing t{};
  for (int attempt = 0; attempt < 3; ++attempt) {
    t = measure(tok, small, large, mode);
    if (t.large <= 2.2 * t.small) break;
  }
  MESSAGE(test::show(unit), ": ", t.small, " s, doubled ", t.large, " s (x", t.large / t.small, ")");
  CHECK(t.small < 2.0);
  CHECK(t.large <= 2.2 * t.small);
}

}  // namespace

TEST_CASE("1 MiB of one letter, digits, spaces and CJK: < 2 s, doubling <= 2.2x") {
  const io::Tokenizer& tok = test::deepseek_v3();
  for (const char* unit : {"a", "7", " ", "中"}) check_linear(tok, unit, size_t{1} << 20);
}

TEST_CASE("many short pre-tokens and added tokens stay linear") {
  // Long single pre-tokens (the BPE merge loop) are the cases above; these exercise the
  // pre-tokenizer, the added-token split and the per-word path instead.
  const io::Tokenizer& tok = test::deepseek_v3();
  for (const char* unit : {"a1 ", "<｜User｜>x", "e\u0301 ", "\r\n."}) check_linear(tok, unit, size_t{1} << 18);
  check_linear(tok, "<｜User｜>", size_t{1} << 18, io::EncodeMode::user_content);
}

TEST_CASE("the regex engine stays linear on the Llama-3 pattern") {
  // flags-tokenizer.json splits with Llama-3's pattern, which has no hand-written scanner; a run
  // of spaces makes its \s*[\r\n]+ backtrack over the whole run once.
  const io::Tokenizer tok = io::Tokenizer::from_json(test::read_text("tokenizer/flags-tokenizer.json"), "flags");
  REQUIRE(tok.pre_tokenizer().steps()[0].pattern.scanner == io::pretok::Scanner::none);
  check_linear(tok, " ", size_t{1} << 20);
  for (const char* unit : {"7 ", "'s", " a\n"}) check_linear(tok, unit, size_t{1} << 18);
}
