// SPDX-License-Identifier: MIT
// Pre-tokenization: the Split and ByteLevel steps of a tokenizer.json pre_tokenizer, with HF's
// exact semantics (per-piece regex matching, the five split behaviours, `invert`, ByteLevel's
// add_prefix_space and GPT-2 regex).
//
// Known patterns (DeepSeek-V3's three Split regexes and GPT-2's ByteLevel regex) are recognised
// from their text and run through hand-written linear-time scanners; any other pattern runs
// through the small backtracking engine in regex.hpp. tests/tokenizer/regex_test.cpp proves both
// equal to PCRE2 on random and adversarial text.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "r1/core/error.hpp"
#include "r1/io/regex.hpp"
#include "r1/io/unicode.hpp"

namespace r1::io::pretok {

/// HF SplitDelimiterBehavior.
enum class Behavior : uint8_t { removed, isolated, merged_with_previous, merged_with_next, contiguous };

/// Patterns with a hand-written scanner.
enum class Scanner : uint8_t {
  none,              // run the regex engine
  digits_1_3,        // \p{N}{1,3}
  deepseek_cjk,      // [一-龥぀-ゟ゠-ヿ]+
  deepseek_words,    // DeepSeek-V3's word/punctuation/whitespace pattern
  gpt2,              // ByteLevel's built-in regex
};

inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

/// The DeepSeek-V3 tokenizer.json spells \r and \n inside its third pattern as raw CR/LF
/// characters; the escaped spelling means the same and is accepted too.
inline constexpr std::string_view deepseek_words_pattern =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
inline constexpr std::string_view deepseek_words_pattern_escaped =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
inline constexpr std::string_view deepseek_cjk_pattern = "[一-龥぀-ゟ゠-ヿ]+";
inline constexpr std::string_view digits_1_3_pattern = "\\p{N}{1,3}";

inline Scanner recognize(std::string_view pattern) {
  if (pattern == digits_1_3_pattern) return Scanner::digits_1_3;
  if (pattern == deepseek_cjk_pattern) return Scanner::deepseek_cjk;
  if (pattern == deepseek_words_pattern || pattern == deepseek_words_pattern_escaped)
    return Scanner::deepseek_words;
  if (pattern == gpt2_pattern) return Scanner::gpt2;
  return Scanner::none;
}

inline std::string_view scanner_name(Scanner s) {
  switch (s) {
    case Scanner::none: return "regex engine";
    case Scanner::digits_1_3: return "digits_1_3";
    case Scanner::deepseek_cjk: return "deepseek_cjk";
    case Scanner::deepseek_words: return "deepseek_words";
    case Scanner::gpt2: return "gpt2";
  }
  return "?";
}

namespace scan {

inline constexpr size_t no_match = SIZE_MAX;
using unicode::Props;

struct Char {
  char32_t cp;
  uint32_t len;
  Props props;
};
inline Char at(std::string_view s, size_t i) {
  const unicode::Decoded d = unicode::decode_valid(s.data() + i);
  return {d.cp, d.len, unicode::props(d.cp)};
}

inline bool is_cr_lf(char32_t c) { return c == '\r' || c == '\n'; }

// End of the run of characters satisfying pred starting at i.
template <class Pred>
inline size_t run_end(std::string_view s, size_t i, Pred pred) {
  while (i < s.size()) {
    const Char c = at(s, i);
    if (!pred(c)) break;
    i += c.len;
  }
  return i;
}

// Whitespace handling shared by DeepSeek and GPT-2: `\s+(?!\S)|\s+` at i, given the run W of
// whitespace [i, w_end): all of W if it reaches the end of the piece, else W minus its last
// character if that leaves at least one, else (`\s+`) all of W.
inline size_t whitespace_tail(std::string_view s, size_t i, size_t w_end) {
  if (w_end == s.size()) return w_end;
  const size_t last = unicode::last_len(s.data(), w_end);
  return w_end - last > i ? w_end - last : w_end;
}

/// \p{N}{1,3}
inline size_t digits_1_3(std::string_view s, size_t i) {
  size_t end = i;
  for (int k = 0; k < 3 && end < s.size(); ++k) {
    const Char c = at(s, end);
    if (!c.props.in(unicode::number)) break;
    end += c.len;
  }
  return end > i ? end : no_match;
}

/// [一-龥぀-ゟ゠-ヿ]+ : U+4E00..U+9FA5, U+3040..U+309F, U+30A0..U+30FF
inline bool is_deepseek_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x30FF);
}
inline size_t deepseek_cjk(std::string_view s, size_t i) {
  const size_t end = run_end(s, i, [](const Char& c) { return is_deepseek_cjk(c.cp); });
  return end > i ? end : no_match;
}

/// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+ | [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ |
/// ` ?[\p{P}\p{S}]+[\r\n]*` | \s*[\r\n]+ | \s+(?!\S) | \s+   -- tried in this order at i.
inline size_t deepseek_words(std::string_view s, size_t i) {
  using namespace unicode;
  constexpr CategoryMask letter_mark = letter | mark;
  constexpr CategoryMask punct_symbol = punctuation | symbol;
  const Char c = at(s, i);
  const size_t next = i + c.len;
  auto is_ascii_alpha = [](char32_t x) { return (x | 0x20) >= 'a' && (x | 0x20) <= 'z'; };
  // 1. ASCII punctuation followed by ASCII letters.
  if (c.cp < 128 && c.props.in(punct_symbol) && next < s.size() && is_ascii_alpha(uint8_t(s[next]))) {
    size_t e = next;
    while (e < s.size() && is_ascii_alpha(uint8_t(s[e]))) ++e;
    return e;
  }
  // 2. An optional leading character that is not CR/LF/letter/punctuation/symbol, then letters
  //    and marks. Backtracking only matters when c itself is a mark, and then both readings
  //    give the same end.
  const auto lm = [&](const Char& x) { return x.props.in(letter_mark); };
  if (!is_cr_lf(c.cp) && !c.props.in(letter | punct_symbol) && next < s.size() && lm(at(s, next)))
    return run_end(s, next, lm);
  if (lm(c)) return run_end(s, next, lm);
  // 3. An optional space, punctuation/symbols, then CR/LF.
  const auto ps = [&](const Char& x) { return x.props.in(punct_symbol); };
  size_t p = no_match;
  if (c.cp == ' ' && next < s.size() && ps(at(s, next)))
    p = run_end(s, next, ps);
  else if (ps(c))
    p = run_end(s, next, ps);
  if (p != no_match) {
    while (p < s.size() && is_cr_lf(uint8_t(s[p]))) ++p;
    return p;
  }
  if (!c.props.space()) return no_match;
  // 4.-6. Whitespace. W = [i, w_end); `\s*[\r\n]+` ends after the last CR/LF in W.
  size_t w_end = i, last_crlf = no_match;
  while (w_end < s.size()) {
    const Char w = at(s, w_end);
    if (!w.props.space()) break;
    if (is_cr_lf(w.cp)) last_crlf = w_end;
    w_end += w.len;
  }
  if (last_crlf != no_match) return last_crlf + 1;
  return whitespace_tail(s, i, w_end);
}

/// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
inline size_t gpt2(std::string_view s, size_t i) {
  using namespace unicode;
  const Char c = at(s, i);
  const size_t next = i + c.len;
  if (c.cp == '\'' && next < s.size()) {
    const char a = s[next];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return next + 1;
    if (next + 1 < s.size()) {
      const char b = s[next + 1];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return next + 2;
    }
  }
  const auto is_l = [](const Char& x) { return x.props.in(letter); };
  const auto is_n = [](const Char& x) { return x.props.in(number); };
  const auto is_other = [](const Char& x) { return !x.props.space() && !x.props.in(letter | number); };
  const bool space = c.cp == ' ' && next < s.size();
  const Char d = space ? at(s, next) : c;
  const size_t from = space ? next + d.len : next;
  if (is_l(d)) return run_end(s, from, is_l);
  if (is_n(d)) return run_end(s, from, is_n);
  if (is_other(d)) return run_end(s, from, is_other);
  if (!c.props.space()) return no_match;
  const size_t w_end = run_end(s, next, [](const Char& x) { return x.props.space(); });
  return whitespace_tail(s, i, w_end);
}

inline size_t anchored(Scanner kind, std::string_view s, size_t i) {
  switch (kind) {
    case Scanner::digits_1_3: return digits_1_3(s, i);
    case Scanner::deepseek_cjk: return deepseek_cjk(s, i);
    case Scanner::deepseek_words: return deepseek_words(s, i);
    case Scanner::gpt2: return gpt2(s, i);
    case Scanner::none: break;
  }
  return no_match;
}

}  // namespace scan

/// A compiled Split pattern: a scanner, or a regex program.
struct Pattern {
  std::string text;
  Scanner scanner = Scanner::none;
  std::shared_ptr<const regex::Program> program;  // when scanner == none

  static Pattern from_regex(std::string_view pattern) {
    Pattern p;
    p.text = std::string(pattern);
    p.scanner = recognize(pattern);
    if (p.scanner == Scanner::none) p.program = std::make_shared<regex::Program>(regex::compile(pattern));
    return p;
  }
  /// HF's SplitPattern::String: the string matched literally (HF escapes it with the regex
  /// crate's escape(), which backslashes these characters, and compiles the result).
  static Pattern from_string(std::string_view literal) {
    std::string escaped;
    for (char c : literal) {
      if (std::string_view("\\.+*?()|[]{}^$#&-~").find(c) != std::string_view::npos) escaped += '\\';
      escaped += c;
    }
    return from_regex(escaped);
  }
};

/// Per-call matching state (the regex engine's backtracking stack). Not shared between threads.
class PatternRunner {
 public:
  explicit PatternRunner(const Pattern& p) : p_(&p) {
    if (p.program) matcher_ = std::make_unique<regex::Matcher>(*p.program);
  }
  /// Calls emit(start, end) for each match in s, as the onig crate's find_iter does.
  template <class Emit>
  void find_all(std::string_view s, Emit&& emit) {
    if (matcher_) {
      matcher_->find_all(s, emit);
      return;
    }
    // Scanned patterns never match the empty string, so find_iter is "leftmost match, then
    // continue after it".
    size_t i = 0;
    while (i < s.size()) {
      const size_t e = scan::anchored(p_->scanner, s, i);
      if (e != scan::no_match) {
        emit(i, e);
        i = e;
      } else {
        i += unicode::decode_valid(s.data() + i).len;
      }
    }
  }

 private:
  const Pattern* p_;
  std::unique_ptr<regex::Matcher> matcher_;
};

/// One step of the pre-tokenizer.
struct Step {
  enum Type : uint8_t { split, byte_level } type = split;
  // split
  Pattern pattern;
  Behavior behavior = Behavior::isolated;
  bool invert = false;
  // byte_level
  bool add_prefix_space = false;
  bool use_regex = true;
};

/// A whole pre-tokenizer: steps in order; ByteLevel is last (checked at load).
class PreTokenizer {
 public:
  PreTokenizer() = default;
  explicit PreTokenizer(std::vector<Step> steps) : steps_(std::move(steps)) {}
  const std::vector<Step>& steps() const { return steps_; }

  /// Per-call state: runners and scratch buffers for each step.
  class Session {
   public:
    explicit Session(const PreTokenizer& pt) : pt_(pt), gpt2_(pt.gpt2_) {
      for (const Step& s : pt.steps_) runners_.emplace_back(s.pattern);
      scratch_.resize(pt.steps_.size());
      prefixed_.resize(pt.steps_.size());
    }
    /// Splits `text` (one segment between added tokens) and calls word(piece) for each final
    /// pre-token, in order. Pieces are views valid only during the call.
    template <class Word>
    void run(std::string_view text, Word&& word) {
      apply(0, text, word);
    }

   private:
    struct Piece {
      size_t begin, end;
      bool match;
    };

    template <class Word>
    void apply(size_t k, std::string_view piece, Word& word) {
      if (piece.empty()) return;
      if (k == pt_.steps_.size()) {
        word(piece);
        return;
      }
      const Step& step = pt_.steps_[k];
      if (step.type == Step::byte_level) {
        if (step.add_prefix_space && piece[0] != ' ') {
          std::string& buf = prefixed_[k];
          buf.assign(1, ' ');
          buf.append(piece);
          piece = buf;
        }
        if (!step.use_regex) {
          apply(k + 1, piece, word);
          return;
        }
        size_t prev = 0;
        gpt2_.find_all(piece, [&](size_t s, size_t e) {
          if (s > prev) apply(k + 1, piece.substr(prev, s - prev), word);
          apply(k + 1, piece.substr(s, e - s), word);
          prev = e;
        });
        if (prev < piece.size()) apply(k + 1, piece.substr(prev), word);
        return;
      }
      if (step.behavior == Behavior::isolated) {  // matches and gaps alike become pieces
        size_t prev = 0;
        runners_[k].find_all(piece, [&](size_t s, size_t e) {
          if (s > prev) apply(k + 1, piece.substr(prev, s - prev), word);
          apply(k + 1, piece.substr(s, e - s), word);
          prev = e;
        });
        if (prev < piece.size()) apply(k + 1, piece.substr(prev), word);
        return;
      }
      // Other behaviours: list (offsets, is_match) as HF's Pattern::find_matches does, apply
      // `invert`, then merge or drop per the behaviour (normalizer.rs NormalizedString::split).
      std::vector<Piece>& m = scratch_[k];
      m.clear();
      size_t prev = 0;
      runners_[k].find_all(piece, [&](size_t s, size_t e) {
        if (prev != s) m.push_back({prev, s, false});
        m.push_back({s, e, true});
        prev = e;
      });
      if (prev != piece.size()) m.push_back({prev, piece.size(), false});
      if (step.invert)
        for (Piece& x : m) x.match = !x.match;
      std::vector<Piece> out;
      bool previous_match = false;
      switch (step.behavior) {
        case Behavior::removed:
          for (const Piece& x : m)
            if (!x.match) out.push_back(x);
          break;
        case Behavior::contiguous:
          for (const Piece& x : m) {
            if (x.match == previous_match && !out.empty())
              out.back().end = x.end;
            else
              out.push_back({x.begin, x.end, false});
            previous_match = x.match;
          }
          break;
        case Behavior::merged_with_previous:
          for (const Piece& x : m) {
            if (x.match && !previous_match && !out.empty())
              out.back().end = x.end;
            else
              out.push_back({x.begin, x.end, false});
            previous_match = x.match;
          }
          break;
        case Behavior::merged_with_next:
          for (size_t j = m.size(); j-- > 0;) {
            const Piece& x = m[j];
            if (x.match && !previous_match && !out.empty())
              out.back().begin = x.begin;
            else
              out.push_back({x.begin, x.end, false});
            previous_match = x.match;
          }
          std::reverse(out.begin(), out.end());
          break;
        case Behavior::isolated: break;
      }
      for (const Piece& x : out) apply(k + 1, piece.substr(x.begin, x.end - x.begin), word);
    }

    const PreTokenizer& pt_;
    std::vector<PatternRunner> runners_;
    PatternRunner gpt2_;
    std::vector<std::vector<Piece>> scratch_;
    std::vector<std::string> prefixed_;
  };

 private:
  std::vector<Step> steps_;
  Pattern gpt2_ = Pattern::from_regex(gpt2_pattern);
};

}  // namespace r1::io::pretok
