// SPDX-License-Identifier: MIT
// The pre-tokenizer's matchers against a real regex engine. PCRE2 (a test-only dependency) runs
// each pattern with the same find-all rules as the `onig` crate HF uses; r1's hand-written
// scanners and its backtracking engine must produce the same matches on random and adversarial
// text. Separately, r1's Unicode tables (probed from HF, Unicode 16.0) must agree with PCRE2's
// (Unicode 14/15) on every code point except ones PCRE2 does not know yet.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "r1/io/pretokenize.hpp"
#include "r1/io/regex.hpp"
#include "r1/io/unicode.hpp"

using namespace r1::io;
using Matches = std::vector<std::pair<size_t, size_t>>;

namespace {

class Pcre {
 public:
  explicit Pcre(const std::string& pattern) {
    int err;
    PCRE2_SIZE off;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof buf);
      FAIL("PCRE2 cannot compile ", pattern, ": ", reinterpret_cast<const char*>(buf));
    }
    md_ = pcre2_match_data_create_from_pattern(code_, nullptr);
  }
  ~Pcre() {
    pcre2_match_data_free(md_);
    pcre2_code_free(code_);
  }
  Pcre(const Pcre&) = delete;
  Pcre& operator=(const Pcre&) = delete;

  bool match_at(const std::string& s, size_t from, size_t& start, size_t& end) const {
    const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), from, 0, md_, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    REQUIRE_MESSAGE(rc >= 0, "PCRE2 match error ", rc);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
    start = ov[0];
    end = ov[1];
    return true;
  }

  /// The onig crate's find_iter rules (what HF's Split uses), driven by PCRE2.
  Matches find_all(const std::string& s) const {
    Matches out;
    size_t last_end = 0, last_match_end = 0;
    bool have_last = false;
    while (last_end <= s.size()) {
      size_t b, e;
      if (!match_at(s, last_end, b, e)) break;
      if (b == e && have_last && last_match_end == e) {
        last_end += last_end < s.size() ? unicode::decode_valid(s.data() + last_end).len : 1;
        continue;
      }
      last_end = e;
      have_last = true;
      last_match_end = e;
      out.push_back({b, e});
    }
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
  pcre2_match_data* md_ = nullptr;
};

Matches engine_find_all(const regex::Program& prog, const std::string& s) {
  regex::Matcher m(prog);
  Matches out;
  m.find_all(s, [&](size_t b, size_t e) { out.push_back({b, e}); });
  return out;
}

Matches runner_find_all(const pretok::Pattern& p, const std::string& s) {
  pretok::PatternRunner r(p);
  Matches out;
  r.find_all(s, [&](size_t b, size_t e) { out.push_back({b, e}); });
  return out;
}

// Text for failure messages: printable ASCII as is, everything else as \u{...}.
std::string show(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && out.size() < 300;) {
    const unicode::Decoded d = unicode::decode_valid(s.data() + i);
    if (d.cp >= 0x20 && d.cp < 0x7f) {
      out += char(d.cp);
    } else {
      char buf[16];
      std::snprintf(buf, sizeof buf, "\\u{%x}", unsigned(d.cp));
      out += buf;
    }
    i += d.len;
  }
  return out;
}

std::string utf8(char32_t c) {
  std::string s;
  unicode::append(s, c);
  return s;
}

// Does PCRE2's idea of c's class agree with r1's table for everything the patterns test?
struct Agreement {
  Pcre l{"^\\p{L}$"}, m{"^\\p{M}$"}, n{"^\\p{N}$"}, p{"^\\p{P}$"}, s{"^\\p{S}$"}, space{"^\\s$"},
      nd{"^\\p{Nd}$"}, lu{"^\\p{Lu}$"}, cn{"^\\p{Cn}$"};
  static bool is(const Pcre& re, const std::string& x) {
    size_t b, e;
    return re.match_at(x, 0, b, e);
  }
  bool agrees(char32_t c) const {
    const std::string x = utf8(c);
    const unicode::Props pr = unicode::props(c);
    return is(l, x) == pr.in(unicode::letter) && is(m, x) == pr.in(unicode::mark) &&
           is(n, x) == pr.in(unicode::number) && is(p, x) == pr.in(unicode::punctuation) &&
           is(s, x) == pr.in(unicode::symbol) && is(space, x) == pr.space() &&
           is(nd, x) == (pr.category() == unicode::Nd) && is(lu, x) == (pr.category() == unicode::Lu);
  }
};

const Agreement& agreement() {
  static const Agreement a;
  return a;
}

// Characters the random strings are drawn from: every class boundary the patterns care about.
std::vector<char32_t> pool() {
  std::u32string base =
      U"abcxyzABCXYZ0123456789 \t\n\r\f\v!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
      U"\u0085\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000\u200b\u200d\ufeff\u180e"
      U"\u0300\u0301\u0345\u20dd\u093f\u0e31\ufe0f"
      U"éßſKİıǅΩω中文字一龥龦〇々ぁあゟ゠アヿー・한글Джعربيةहिनदी"
      U"٠١۲०১๑１２ⅠⅫ²½①𝟘"
      U"«»“”—–…‰§¶†•。、，！？「」【】￥€£∑√≈±×÷←→★✓©®™😀👍🏽🇨🇳"
      U"\ue000\U000f0000\u0378\U0002ffff\U000e0001\ufffd\x7f\x01";
  std::vector<char32_t> out(base.begin(), base.end());
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> any(0, 0x10FFFF);
  while (out.size() < base.size() + 300) {
    const char32_t c = any(rng);
    if (c < 0xD800 || c > 0xDFFF) out.push_back(c);
  }
  std::erase_if(out, [](char32_t c) { return !agreement().agrees(c); });
  return out;
}

std::string random_text(std::mt19937& rng, const std::vector<char32_t>& chars, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len), pick(0, chars.size() - 1);
  std::uniform_int_distribution<int> percent(0, 99);
  std::string s;
  const size_t n = len(rng);
  while (s.size() < n) {
    const char32_t c = chars[pick(rng)];
    const int run = percent(rng) < 10 ? 2 + percent(rng) % 20 : 1;  // runs stress the quantifiers
    for (int k = 0; k < run; ++k) s += utf8(c);
  }
  return s;
}

// The patterns of real byte-level BPE tokenizers, then assorted ones for the engine's features.
const std::vector<std::string>& patterns() {
  static const std::vector<std::string> p = {
      std::string(pretok::digits_1_3_pattern),
      std::string(pretok::deepseek_cjk_pattern),
      std::string(pretok::deepseek_words_pattern),
      std::string(pretok::deepseek_words_pattern_escaped),
      std::string(pretok::gpt2_pattern),
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      R"(a*)",
      R"(x?|\s)",
      R"((?:ab|a)*c?)",
      R"(\d(?=\d)|\p{L}+?\p{N})",
      R"((?!a)[^\s]{2,4}|(?=\s)\s)",
      R"([\p{P}\p{S}]+?(?:\s|\n)?)",
      R"((?i)[a-c]+|X{2,3}|\P{L}+)",
      R"([^\p{L}\p{N}\s]+|\p{Nd}{2}|.)",
      R"(\p{Lu}\p{Ll}*|\p{Zs}+|\p{Cc}|\p{Co}+)",
      R"(\x41|\x{4e2d}|\x{301}+|[\x{1F600}-\x{1F64F}])",
      R"((?:(?:a|b)+c|d)+?)",
      R"(.+?(?=\n)|\n)",
  };
  return p;
}

}  // namespace

TEST_CASE("unicode tables agree with PCRE2 on every code point PCRE2 knows") {
  const Agreement& a = agreement();
  size_t newer = 0, disagreements = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    if (a.agrees(c)) continue;
    // PCRE2's \s still includes U+180E, which Unicode 6.3 moved out of White_Space (Oniguruma
    // and HF follow Unicode). Any other disagreement is allowed only where PCRE2's older Unicode
    // has no character yet.
    if (c == 0x180E) continue;
    if (Agreement::is(a.cn, utf8(c)) && unicode::props(c).category() != unicode::Cn) {
      ++newer;
    } else if (++disagreements <= 10) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "U+%04X", unsigned(c));
      FAIL_CHECK(buf, ": r1's table and PCRE2 disagree");
    }
  }
  CHECK(disagreements == 0);
  MESSAGE("code points assigned after PCRE2's Unicode version: ", newer);
  CHECK(newer > 1000);  // Unicode 15-16 added thousands; 0 would mean the tables are old
}

TEST_CASE("unicode tables: spot checks of HF's classes") {
  using namespace unicode;
  CHECK(props('A').category() == Lu);
  CHECK(props(U'ſ').category() == Ll);
  CHECK(props(U'\u3000').space());
  CHECK(props(U'\u00a0').space());
  CHECK(props(U'\u0085').space());
  CHECK_FALSE(props(U'\u200b').space());  // zero-width space is Cf, not \s
  CHECK_FALSE(props(U'\u180e').space());
  CHECK(props(U'\u1c89').category() == Lu);  // Cyrillic TJE, new in Unicode 16.0
  CHECK(props(0x10FFFF).category() == Cn);
  CHECK(props(U'_').word());
  CHECK(props(U'\u200d').word());  // the regex crate's \w includes Join_Control
  CHECK_FALSE(props(U'-').word());
}

TEST_CASE("scanners and the regex engine equal PCRE2 on random and adversarial text") {
  const std::vector<char32_t> chars = pool();
  REQUIRE(chars.size() > 150);
  std::mt19937 rng(2024);
  std::vector<std::string> texts = {"", " ", "  ", "\n", " \n ", "a", "'s", "'S", "'ſ", "  a", " \n\n x",
                                    "\r\n\r\n", "x  ", "1234567", "中文カナ", "e\u0301\u0301", "\u3000\u3000x",
                                    std::string(300, ' ') + "x", std::string(200, 'a') + "1", std::string(50, '!') + "\n\n"};
  for (int i = 0; i < 1500; ++i) texts.push_back(random_text(rng, chars, i < 1200 ? 24 : 200));
  for (const std::string& pattern : patterns()) {
    INFO("pattern ", pattern);
    const Pcre pcre(pattern);
    const regex::Program prog = regex::compile(pattern);
    const pretok::Pattern split = pretok::Pattern::from_regex(pattern);
    size_t failures = 0;
    for (const std::string& t : texts) {
      const Matches want = pcre.find_all(t);
      if (engine_find_all(prog, t) != want && ++failures <= 3) FAIL_CHECK("engine differs on ", show(t));
      if (runner_find_all(split, t) != want && ++failures <= 3) FAIL_CHECK("scanner differs on ", show(t));
    }
    CHECK(failures == 0);
  }
}

TEST_CASE("the known patterns are recognised and use their scanners") {
  CHECK(pretok::recognize(pretok::digits_1_3_pattern) == pretok::Scanner::digits_1_3);
  CHECK(pretok::recognize(pretok::deepseek_cjk_pattern) == pretok::Scanner::deepseek_cjk);
  CHECK(pretok::recognize(pretok::deepseek_words_pattern) == pretok::Scanner::deepseek_words);
  CHECK(pretok::recognize(pretok::deepseek_words_pattern_escaped) == pretok::Scanner::deepseek_words);
  CHECK(pretok::recognize(pretok::gpt2_pattern) == pretok::Scanner::gpt2);
  CHECK(pretok::recognize("\\p{N}{1,4}") == pretok::Scanner::none);
}

TEST_CASE("regex engine: unsupported syntax is a clear error naming the pattern and offset") {
  const std::pair<const char*, const char*> cases[] = {
      {"(?<=a)b", "look-behind"},
      {"a(?>b)", "atomic"},
      {"(?<name>a)", "named"},
      {"\\1", "back-references"},
      {"^a", "anchors"},
      {"a$", "anchors"},
      {"\\bword", "unsupported escape \\b"},
      {"[[:alpha:]]", "POSIX"},
      {"[a&&b]", "intersection"},
      {"\\p{Han}", "unsupported property \\p{Han}"},
      {"(?i)é", "non-ASCII"},
      {"a**", "after another"},
      {"a++", "possessive"},
      {"*a", "without a target"},
      {"{2}", "without a target"},
      {"(ab", "missing ')'"},
      {"ab)", "unmatched ')'"},
      {"[abc", "unterminated character class"},
      {"[]", "empty character class"},
      {"a{3,2}", "m < n"},
      {"a{100001}", "above"},
      {"(?:a*)*", "empty string"},
      {"(?:a|b?)+", "empty string"},
      {"(?:(?:ab){300}){300}", "instructions"},
      {"\\x{110000}", "Unicode scalar"},
      {"[z-a]", "out of order"},
      {"\\", "backslash"},
      {"(?x)a", "flag"},
  };
  for (const auto& [pattern, what] : cases) {
    INFO("pattern ", pattern);
    try {
      (void)regex::compile(pattern);
      FAIL_CHECK("compiled, expected an error mentioning '", what, "'");
    } catch (const r1::Error& e) {
      const std::string msg = e.what();
      CHECK(e.op() == "tokenizer.regex");
      CHECK_MESSAGE(msg.find(what) != std::string::npos, msg);
      CHECK_MESSAGE(msg.find(pattern) != std::string::npos, msg);
    }
  }
  std::string deep(100, '(');
  CHECK_THROWS_WITH_AS(regex::compile(deep + "a" + std::string(100, ')')), doctest::Contains("nested deeper"), r1::Error);
  CHECK_THROWS_AS(regex::compile(std::string(20000, 'a')), r1::Error);
}

TEST_CASE("regex engine: catastrophic backtracking stops with an error instead of hanging") {
  const regex::Program prog = regex::compile("(?:a|a)+b");
  regex::Matcher m(prog);
  const std::string text(40, 'a');  // 2^40 paths
  CHECK_THROWS_WITH_AS(m.find_all(text, [](size_t, size_t) {}), doctest::Contains("catastrophic backtracking"),
                       r1::Error);
  // Deep repetition of a group runs on the heap stack, not the C++ stack.
  const regex::Program groups = regex::compile("(?:ab)+");
  regex::Matcher g(groups);
  std::string abab;
  for (int i = 0; i < 200000; ++i) abab += "ab";
  Matches out;
  g.find_all(abab, [&](size_t b, size_t e) { out.push_back({b, e}); });
  CHECK(out == Matches{{0, abab.size()}});
}
