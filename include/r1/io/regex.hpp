// SPDX-License-Identifier: MIT
// A small backtracking regex engine for the subset of Oniguruma (Ruby syntax) that Hugging Face
// pre-tokenizer Split patterns use: literals, escapes, classes with \p{..}/\s/\d/\w, `.`,
// alternation, groups, (?i) on ASCII letters, greedy and lazy quantifiers, and look-ahead.
//
// Why not PCRE2/Oniguruma: the GPU machines have neither, and the known patterns run through
// hand-written scanners anyway (pretokenize.hpp); this engine is what makes any *other*
// tokenizer.json load, with the same leftmost-first backtracking semantics as Oniguruma, checked
// against PCRE2 by tests/tokenizer/regex_test.cpp.
//
// Safety: the matcher keeps its backtracking state on the heap (no recursion per character),
// rejects unbounded loops over sub-patterns that can match the empty string, caps the compiled
// size, and gives up with an r1::Error after a step budget proportional to the input, so a hostile
// pattern cannot hang or crash the process.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "r1/core/error.hpp"
#include "r1/io/unicode.hpp"

namespace r1::io::regex {

/// A set of code points: ranges, general categories and the \s/\w flags, optionally negated.
struct CharClass {
  std::vector<std::pair<char32_t, char32_t>> ranges;  // inclusive
  unicode::CategoryMask categories = 0;
  bool space = false, not_space = false, word = false, not_word = false;
  bool negated = false;
  std::array<uint64_t, 2> ascii{};  // final membership of c < 128, filled by finish()

  bool contains_slow(char32_t c) const {
    bool in = false;
    for (const auto& [lo, hi] : ranges) {
      if (c >= lo && c <= hi) {
        in = true;
        break;
      }
    }
    if (!in && (categories || space || not_space || word || not_word)) {
      const unicode::Props p = unicode::props(c);
      in = p.in(categories) || (space && p.space()) || (not_space && !p.space()) ||
           (word && p.onig_word()) || (not_word && !p.onig_word());
    }
    return in != negated;
  }
  void finish() {
    ascii = {};
    for (char32_t c = 0; c < 128; ++c)
      if (contains_slow(c)) ascii[c >> 6] |= uint64_t{1} << (c & 63);
  }
  bool contains(char32_t c) const {
    if (c < 128) return (ascii[c >> 6] >> (c & 63)) & 1;
    return contains_slow(c);
  }
};

enum class Op : uint8_t { cls, run, split, jmp, look, match };

struct Inst {
  Op op;
  bool greedy = true;    // run
  bool negative = false;  // look
  int32_t cls = -1;       // cls, run
  int32_t x = 0, y = 0;   // split: try x then y; jmp: x; look: x = continuation after the body
  uint32_t min = 0, max = 0;  // run; max == unbounded for no upper limit
};
inline constexpr uint32_t unbounded = UINT32_MAX;

/// Limits that keep a hostile pattern cheap to compile.
inline constexpr size_t max_pattern_bytes = 16384;
inline constexpr int max_nesting = 64;
inline constexpr size_t max_program = 1 << 16;
inline constexpr uint32_t max_repeat = 100000;

struct Program {
  std::string pattern;
  std::vector<Inst> code;
  std::vector<CharClass> classes;
  bool nullable = true;            // can match the empty string
  std::vector<int32_t> first;      // classes one of which must match the first character
  std::array<uint64_t, 2> first_ascii{};
};

namespace detail {

struct Node {
  enum Kind { empty, klass, concat, alt, repeat, look } kind = empty;
  int32_t cls = -1;
  std::vector<Node> kids;
  uint32_t min = 0, max = 0;
  bool greedy = true, negative = false;
};

class Parser {
 public:
  Parser(std::string_view pattern, Program& prog) : p_(pattern), prog_(prog) {}

  Node parse() {
    Node n = parse_alt(false, 0);
    if (i_ < p_.size()) fail_at("unmatched ')'");
    return n;
  }

 private:
  [[noreturn]] void fail_at(const std::string& what) const {
    fail("tokenizer.regex", "pattern '", p_, "' at offset ", i_, ": ", what);
  }
  bool more() const { return i_ < p_.size(); }
  char peek() const { return p_[i_]; }

  char32_t next_cp() {
    const unicode::Decoded d = unicode::decode(p_, i_);
    if (d.len == 0) fail_at("invalid UTF-8 in the pattern");
    i_ += d.len;
    return d.cp;
  }

  Node parse_alt(bool icase, int depth) {
    if (depth > max_nesting) fail_at("groups nested deeper than " + std::to_string(max_nesting));
    // An inline (?i) lasts to the end of the enclosing group, later branches included.
    bool scope = icase;
    std::vector<Node> branches;
    branches.push_back(parse_concat(scope, depth));
    while (more() && peek() == '|') {
      ++i_;
      branches.push_back(parse_concat(scope, depth));
    }
    if (branches.size() == 1) return std::move(branches[0]);
    Node n;
    n.kind = Node::alt;
    n.kids = std::move(branches);
    return n;
  }

  // A concatenation ends at '|', ')' or the end; an inline (?i) in it updates `icase`.
  Node parse_concat(bool& icase, int depth) {
    Node n;
    n.kind = Node::concat;
    while (more() && peek() != '|' && peek() != ')') {
      Node atom;
      const size_t atom_start = i_;
      if (!parse_atom(atom, icase, depth)) continue;  // an inline flag group: no atom
      parse_quantifiers(atom, atom_start);
      n.kids.push_back(std::move(atom));
    }
    if (n.kids.size() == 1) return std::move(n.kids[0]);
    if (n.kids.empty()) n.kind = Node::empty;
    return n;
  }
  void parse_quantifiers(Node& atom, size_t atom_start) {
    bool quantified = false;
    while (more()) {
      uint32_t lo, hi;
      const size_t q = i_;
      const char c = peek();
      if (c == '*') {
        lo = 0, hi = unbounded, ++i_;
      } else if (c == '+') {
        lo = 1, hi = unbounded, ++i_;
      } else if (c == '?') {
        lo = 0, hi = 1, ++i_;
      } else if (c == '{' && parse_interval(lo, hi)) {
      } else {
        break;
      }
      if (quantified) {
        i_ = q;
        fail_at("a quantifier directly after another one is not supported");
      }
      if (atom.kind == Node::empty) {
        i_ = atom_start;
        fail_at("quantifier without a target");
      }
      bool greedy = true;
      if (more() && peek() == '?') {
        greedy = false;
        ++i_;
      } else if (more() && peek() == '+') {
        fail_at("possessive quantifiers are not supported");
      }
      Node r;
      r.kind = Node::repeat;
      r.min = lo;
      r.max = hi;
      r.greedy = greedy;
      r.kids.push_back(std::move(atom));
      atom = std::move(r);
      quantified = true;
    }
  }

  // {n} {n,} {n,m} {,m}; anything else leaves '{' to be a literal (as Oniguruma does).
  bool parse_interval(uint32_t& lo, uint32_t& hi) {
    size_t j = i_ + 1;
    auto number = [&](uint32_t& v) {
      const size_t s = j;
      uint64_t x = 0;
      while (j < p_.size() && p_[j] >= '0' && p_[j] <= '9') {
        x = x * 10 + uint64_t(p_[j] - '0');
        if (x > max_repeat) {
          i_ = s;
          fail_at("repetition count above " + std::to_string(max_repeat));
        }
        ++j;
      }
      v = uint32_t(x);
      return j > s;
    };
    const bool has_lo = number(lo);
    if (!has_lo) lo = 0;
    if (j < p_.size() && p_[j] == '}') {
      if (!has_lo) return false;
      hi = lo;
    } else if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (!number(hi)) {
        if (!has_lo) return false;
        hi = unbounded;
      }
      if (j >= p_.size() || p_[j] != '}') return false;
    } else {
      return false;
    }
    if (hi != unbounded && hi < lo) fail_at("repetition {n,m} with m < n");
    i_ = j + 1;
    return true;
  }

  int32_t add_class(CharClass c) {
    c.finish();
    prog_.classes.push_back(std::move(c));
    return int32_t(prog_.classes.size() - 1);
  }

  // Adds c (and, under (?i), its ASCII case partners) to the class.
  void add_char(CharClass& cc, char32_t c, bool icase) {
    if (icase) {
      const char32_t lower = (c >= 'A' && c <= 'Z') ? c + 32 : c;
      if (lower >= 'a' && lower <= 'z') {
        for (uint32_t f : unicode_data::ascii_case_folds[lower - 'a'])
          if (f) cc.ranges.push_back({f, f});
        return;
      }
      if (c >= 128) fail_at("case-insensitive matching of non-ASCII characters is not supported");
    }
    cc.ranges.push_back({c, c});
  }
  void add_range(CharClass& cc, char32_t lo, char32_t hi, bool icase) {
    if (hi < lo) fail_at("character range out of order");
    if (icase && (lo < 128 || hi < 128)) {
      if (hi >= 128) fail_at("case-insensitive matching of non-ASCII characters is not supported");
      for (char32_t c = lo; c <= hi; ++c) add_char(cc, c, true);
      return;
    }
    if (icase) fail_at("case-insensitive matching of non-ASCII characters is not supported");
    cc.ranges.push_back({lo, hi});
  }

  static bool category_by_name(std::string_view name, unicode::CategoryMask& m) {
    using namespace unicode;
    struct Entry {
      std::string_view name;
      CategoryMask mask;
    };
    static constexpr Entry major[] = {{"L", letter}, {"M", mark}, {"N", number}, {"P", punctuation},
                                      {"S", symbol}, {"Z", separator}, {"C", other}};
    for (const Entry& e : major)
      if (e.name == name) return m = e.mask, true;
    for (int k = 0; k < category_count; ++k)
      if (name == unicode_data::category_names[k]) return m = CategoryMask{1} << k, true;
    return false;
  }

  // Parses the escape after a backslash into `cc` (a class item). Returns false if it is not a
  // class-like escape (the caller then treats it as a literal via literal_escape).
  bool class_escape(CharClass& cc, bool icase) {
    const char e = peek();
    using namespace unicode;
    constexpr CategoryMask all = (CategoryMask{1} << category_count) - 1;
    switch (e) {
      case 's': ++i_, cc.space = true; return true;
      case 'S': ++i_, cc.not_space = true; return true;
      case 'w': ++i_, cc.word = true; return true;
      case 'W': ++i_, cc.not_word = true; return true;
      case 'd': ++i_, cc.categories |= mask_of({Nd}); return true;
      case 'D': ++i_, cc.categories |= all & ~mask_of({Nd}); return true;
      case 'p':
      case 'P': {
        ++i_;
        if (!more() || peek() != '{') fail_at("expected '{' after \\p");
        const size_t close = p_.find('}', i_);
        if (close == std::string_view::npos) fail_at("unterminated \\p{");
        std::string_view name = p_.substr(i_ + 1, close - i_ - 1);
        bool neg = e == 'P';
        if (!name.empty() && name[0] == '^') neg = !neg, name.remove_prefix(1);
        CategoryMask m;
        if (!category_by_name(name, m))
          fail_at("unsupported property \\p{" + std::string(name) +
                  "}: supported are the general categories (L, Lu, Ll, Lt, Lm, Lo, M, Mn, Mc, "
                  "Me, N, Nd, Nl, No, P, Pc, Pd, Ps, Pe, Pi, Pf, Po, S, Sm, Sc, Sk, So, Z, Zs, "
                  "Zl, Zp, C, Cc, Cf, Cs, Co, Cn)");
        if (icase && (m & (letter)) && (m & letter) != letter)
          fail_at("case-insensitive letter subcategories are not supported");
        cc.categories |= neg ? (all & ~m) : m;
        i_ = close + 1;
        return true;
      }
      default: return false;
    }
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // A literal escape (\n, \t, \x41, \x{263a}, \u263a, \. ...). The backslash is consumed.
  char32_t literal_escape() {
    if (!more()) fail_at("pattern ends with a backslash");
    const char e = peek();
    auto hex = [&](size_t digits_min, size_t digits_max, bool braces) {
      char32_t v = 0;
      size_t n = 0;
      if (braces) ++i_;
      while (more() && n < digits_max && hex_value(peek()) >= 0) {
        v = v * 16 + char32_t(hex_value(peek()));
        ++i_, ++n;
      }
      if (n < digits_min) fail_at("malformed hexadecimal escape");
      if (braces) {
        if (!more() || peek() != '}') fail_at("malformed \\x{...} escape");
        ++i_;
      }
      if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) fail_at("escape is not a Unicode scalar value");
      return v;
    };
    switch (e) {
      case 't': ++i_; return '\t';
      case 'n': ++i_; return '\n';
      case 'r': ++i_; return '\r';
      case 'f': ++i_; return '\f';
      case 'v': ++i_; return '\v';
      case 'a': ++i_; return '\a';
      case 'e': ++i_; return 0x1B;
      case 'x':
        ++i_;
        if (more() && peek() == '{') return hex(1, 8, true);
        return hex(1, 2, false);
      case 'u': ++i_; return hex(4, 4, false);
      default: break;
    }
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
      fail_at(std::string("unsupported escape \\") + e +
              " (anchors, back-references and other escapes are not supported)");
    return next_cp();  // an escaped punctuation or non-ASCII character stands for itself
  }

  Node class_node(CharClass cc) {
    Node n;
    n.kind = Node::klass;
    n.cls = add_class(std::move(cc));
    return n;
  }

  Node parse_class(bool icase) {
    CharClass cc;
    if (more() && peek() == '^') cc.negated = true, ++i_;
    bool first = true;
    for (;;) {
      if (!more()) fail_at("unterminated character class");
      const char c = peek();
      if (c == ']') {
        if (first) fail_at("empty character class");
        ++i_;
        break;
      }
      first = false;
      if (c == '[') fail_at("nested character classes and POSIX brackets are not supported");
      if (c == '&' && i_ + 1 < p_.size() && p_[i_ + 1] == '&')
        fail_at("character class intersection is not supported");
      char32_t lo;
      if (c == '\\') {
        ++i_;
        if (!more()) fail_at("pattern ends with a backslash");
        if (class_escape(cc, icase)) {
          if (more() && peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']')
            fail_at("a class escape cannot start a range");
          continue;
        }
        lo = literal_escape();
      } else {
        lo = next_cp();
      }
      // A range a-b, unless '-' is last in the class.
      if (more() && peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        char32_t hi;
        if (peek() == '\\') {
          ++i_;
          if (!more()) fail_at("pattern ends with a backslash");
          const char e = peek();
          if (e == 's' || e == 'S' || e == 'w' || e == 'W' || e == 'd' || e == 'D' || e == 'p' ||
              e == 'P')
            fail_at("a class escape cannot end a range");
          hi = literal_escape();
        } else if (peek() == '[') {
          fail_at("nested character classes are not supported");
        } else {
          hi = next_cp();
        }
        add_range(cc, lo, hi, icase);
      } else {
        add_char(cc, lo, icase);
      }
    }
    return class_node(std::move(cc));
  }

  // Parses one atom. Returns false for an inline flag group "(?i)" that produced no atom.
  bool parse_atom(Node& out, bool& icase, int depth) {
    const char c = peek();
    if (c == '(') {
      ++i_;
      bool sub_icase = icase;
      Node::Kind kind = Node::concat;  // plain group
      bool negative = false;
      if (more() && peek() == '?') {
        ++i_;
        if (!more()) fail_at("unterminated group");
        const char g = peek();
        if (g == ':') {
          ++i_;
        } else if (g == '=' || g == '!') {
          kind = Node::look;
          negative = g == '!';
          ++i_;
        } else if (g == 'i' || g == '-') {
          bool on = true;
          bool flag_seen = false;
          for (;;) {
            if (!more()) fail_at("unterminated group");
            const char f = peek();
            if (f == '-' && on) {
              on = false, ++i_;
            } else if (f == 'i') {
              sub_icase = on, flag_seen = true, ++i_;
            } else {
              break;
            }
          }
          if (!flag_seen || !more()) fail_at("unsupported group flags (only (?i) and (?-i) are supported)");
          if (peek() == ')') {  // (?i): applies to the rest of the enclosing group
            ++i_;
            icase = sub_icase;
            return false;
          }
          if (peek() != ':') fail_at("unsupported group flags (only (?i) and (?-i) are supported)");
          ++i_;
        } else if ((g >= 'a' && g <= 'z') || (g >= 'A' && g <= 'Z')) {
          fail_at(std::string("unsupported group flag '") + g + "' (only (?i) and (?-i) are supported)");
        } else {
          fail_at(std::string("unsupported group (?") + g +
                  " (look-behind, atomic, named and conditional groups are not supported)");
        }
      }
      Node body = parse_alt(sub_icase, depth + 1);
      if (!more() || peek() != ')') fail_at("missing ')'");
      ++i_;
      if (kind == Node::look) {
        out.kind = Node::look;
        out.negative = negative;
        out.kids.push_back(std::move(body));
      } else {
        out = std::move(body);
      }
      return true;
    }
    if (c == '[') {
      ++i_;
      out = parse_class(icase);
      return true;
    }
    if (c == '.') {
      ++i_;
      CharClass cc;
      cc.ranges.push_back({'\n', '\n'});
      cc.negated = true;  // Ruby syntax: '.' is anything but a newline
      out = class_node(std::move(cc));
      return true;
    }
    if (c == '^' || c == '$') fail_at("anchors are not supported");
    if (c == '*' || c == '+' || c == '?') fail_at("quantifier without a target");
    if (c == '{') {
      uint32_t lo, hi;
      const size_t save = i_;
      if (parse_interval(lo, hi)) {
        i_ = save;
        fail_at("quantifier without a target");
      }
    }
    CharClass cc;
    if (c == '\\') {
      ++i_;
      if (!more()) fail_at("pattern ends with a backslash");
      if (!class_escape(cc, icase)) add_char(cc, literal_escape(), icase);
    } else {
      add_char(cc, next_cp(), icase);
    }
    out = class_node(std::move(cc));
    return true;
  }

  std::string_view p_;
  Program& prog_;
  size_t i_ = 0;
};

inline bool nullable(const Node& n) {
  switch (n.kind) {
    case Node::empty: return true;
    case Node::klass: return false;
    case Node::concat:
      for (const Node& k : n.kids)
        if (!nullable(k)) return false;
      return true;
    case Node::alt:
      for (const Node& k : n.kids)
        if (nullable(k)) return true;
      return false;
    case Node::repeat: return n.min == 0 || nullable(n.kids[0]);
    case Node::look: return true;
  }
  return true;
}

// Collects the classes that can match the first character of a non-empty match of n. Returns
// false when that cannot be bounded (a look-ahead decides).
inline bool first_classes(const Node& n, std::vector<int32_t>& out) {
  switch (n.kind) {
    case Node::empty: return true;
    case Node::klass: out.push_back(n.cls); return true;
    case Node::concat:
      for (const Node& k : n.kids) {
        if (!first_classes(k, out)) return false;
        if (!nullable(k)) break;
      }
      return true;
    case Node::alt:
      for (const Node& k : n.kids)
        if (!first_classes(k, out)) return false;
      return true;
    case Node::repeat: return n.max == 0 || first_classes(n.kids[0], out);
    case Node::look: return false;
  }
  return false;
}

class Emitter {
 public:
  explicit Emitter(Program& p) : p_(p) {}
  void emit(const Node& n) {
    switch (n.kind) {
      case Node::empty: return;
      case Node::klass: push({Op::cls, true, false, n.cls}); return;
      case Node::concat:
        for (const Node& k : n.kids) emit(k);
        return;
      case Node::alt: {
        std::vector<size_t> jumps;
        for (size_t b = 0; b < n.kids.size(); ++b) {
          if (b + 1 < n.kids.size()) {
            const size_t split = push({Op::split});
            p_.code[split].x = int32_t(split + 1);
            emit(n.kids[b]);
            jumps.push_back(push({Op::jmp}));
            p_.code[split].y = int32_t(p_.code.size());
          } else {
            emit(n.kids[b]);
          }
        }
        for (size_t j : jumps) p_.code[j].x = int32_t(p_.code.size());
        return;
      }
      case Node::repeat: emit_repeat(n); return;
      case Node::look: {
        const size_t look = push({Op::look});
        p_.code[look].negative = n.negative;
        emit(n.kids[0]);
        push({Op::match});
        p_.code[look].x = int32_t(p_.code.size());
        return;
      }
    }
  }

 private:
  void emit_repeat(const Node& n) {
    const Node& body = n.kids[0];
    if (n.max == 0) return;
    if (body.kind == Node::klass) {  // a run over one class: one instruction, O(1) stack
      Inst in{Op::run, n.greedy, false, body.cls};
      in.min = n.min;
      in.max = n.max;
      push(in);
      return;
    }
    if (n.max == unbounded && nullable(body))
      fail("tokenizer.regex", "pattern '", p_.pattern,
           "': an unbounded repetition of a sub-pattern that can match the empty string is not "
           "supported");
    for (uint32_t k = 0; k < n.min; ++k) emit(body);
    if (n.max == unbounded) {
      const size_t loop = push({Op::split});
      emit(body);
      const size_t back = push({Op::jmp});
      p_.code[back].x = int32_t(loop);
      set_split(loop, loop + 1, p_.code.size(), n.greedy);
      return;
    }
    std::vector<size_t> splits;
    for (uint32_t k = n.min; k < n.max; ++k) {
      splits.push_back(push({Op::split}));
      emit(body);
    }
    for (size_t s : splits) set_split(s, s + 1, p_.code.size(), n.greedy);
  }
  void set_split(size_t at, size_t body, size_t skip, bool greedy) {
    p_.code[at].x = int32_t(greedy ? body : skip);
    p_.code[at].y = int32_t(greedy ? skip : body);
  }
  size_t push(Inst in) {
    if (p_.code.size() >= max_program)
      fail("tokenizer.regex", "pattern '", p_.pattern, "' compiles to more than ", max_program,
           " instructions (repetition counts too large)");
    p_.code.push_back(in);
    return p_.code.size() - 1;
  }
  Program& p_;
};

}  // namespace detail

/// Compiles an Oniguruma-syntax pattern, or throws r1::Error naming what is unsupported.
inline Program compile(std::string_view pattern) {
  Program prog;
  if (pattern.size() > max_pattern_bytes)
    fail("tokenizer.regex", "pattern of ", pattern.size(), " bytes exceeds the limit of ",
         max_pattern_bytes);
  prog.pattern = std::string(pattern);
  detail::Node root = detail::Parser(pattern, prog).parse();
  detail::Emitter(prog).emit(root);
  prog.code.push_back({Op::match});
  prog.nullable = detail::nullable(root);
  std::vector<int32_t> first;
  if (!prog.nullable && detail::first_classes(root, first)) {
    std::sort(first.begin(), first.end());
    first.erase(std::unique(first.begin(), first.end()), first.end());
    prog.first = std::move(first);
    for (int32_t c : prog.first) {
      prog.first_ascii[0] |= prog.classes[c].ascii[0];
      prog.first_ascii[1] |= prog.classes[c].ascii[1];
    }
  }
  return prog;
}

/// Runs a Program over text. One Matcher per thread (it owns the backtracking stack).
class Matcher {
 public:
  explicit Matcher(const Program& prog) : prog_(prog) {}

  /// Calls emit(start, end) for each match, with the iteration rules of the `onig` crate's
  /// find_iter that HF uses: leftmost-first matches, non-overlapping, and an empty match right
  /// where the previous match ended is skipped by advancing one character.
  template <class Emit>
  void find_all(std::string_view text, Emit&& emit) {
    text_ = text;
    steps_ = 0;
    budget_ = 1'000'000 + 1'000 * uint64_t(text.size());
    size_t last_end = 0;
    bool have_last = false;
    size_t last_match_end = 0;
    while (last_end <= text.size()) {
      size_t s, e;
      if (!search(last_end, s, e)) return;
      if (s == e && have_last && last_match_end == e) {
        last_end += last_end < text.size() ? unicode::decode_valid(text.data() + last_end).len : 1;
        continue;
      }
      last_end = e;
      have_last = true;
      last_match_end = e;
      emit(s, e);
    }
  }

  /// Anchored attempt at `pos`: sets `end` and returns true if the pattern matches there.
  bool match_at(std::string_view text, size_t pos, size_t& end) {
    text_ = text;
    steps_ = 0;
    budget_ = 1'000'000 + 1'000 * uint64_t(text.size());
    return exec(0, pos, end);
  }

 private:
  enum class Kind : uint8_t { alt, greedy_run, lazy_run };
  struct Frame {
    Kind kind;
    int32_t pc;
    size_t pos;
    size_t aux;  // greedy_run: lowest position; lazy_run: highest position
  };

  bool first_ok(size_t pos) const {
    const char32_t c = unicode::decode_valid(text_.data() + pos).cp;
    if (c < 128) return (prog_.first_ascii[c >> 6] >> (c & 63)) & 1;
    for (int32_t k : prog_.first)
      if (prog_.classes[k].contains(c)) return true;
    return false;
  }

  bool search(size_t from, size_t& s, size_t& e) {
    const bool filter = !prog_.first.empty();
    for (size_t pos = from; pos <= text_.size();) {
      if (pos == text_.size()) {
        if (prog_.nullable && exec(0, pos, e)) return s = pos, true;
        return false;
      }
      if ((!filter || first_ok(pos)) && exec(0, pos, e)) return s = pos, true;
      pos += unicode::decode_valid(text_.data() + pos).len;
      ++steps_;
    }
    return false;
  }

  void tick(uint64_t n = 1) {
    steps_ += n;
    if (steps_ > budget_) [[unlikely]]
      fail("tokenizer.regex", "pattern '", prog_.pattern, "' needs more than ", budget_,
           " backtracking steps on a ", text_.size(),
           "-byte piece of text (catastrophic backtracking); r1 gives up rather than hang");
  }

  bool exec(int32_t pc, size_t pos, size_t& end) {
    const size_t base = stack_.size();
    const size_t n = text_.size();
    const char* s = text_.data();
    for (;;) {
      tick();
      const Inst& in = prog_.code[size_t(pc)];
      switch (in.op) {
        case Op::cls: {
          if (pos < n) {
            const unicode::Decoded d = unicode::decode_valid(s + pos);
            if (prog_.classes[size_t(in.cls)].contains(d.cp)) {
              pos += d.len;
              ++pc;
              continue;
            }
          }
          goto backtrack;
        }
        case Op::run: {
          const CharClass& cc = prog_.classes[size_t(in.cls)];
          uint32_t count = 0;
          size_t p = pos, at_min = pos;
          const uint32_t limit = in.greedy ? in.max : in.min;
          while (count < limit && p < n) {
            const unicode::Decoded d = unicode::decode_valid(s + p);
            if (!cc.contains(d.cp)) break;
            p += d.len;
            if (++count == in.min) at_min = p;
          }
          tick(count);
          if (count < in.min) goto backtrack;
          if (in.min == 0) at_min = pos;
          if (in.greedy) {
            if (p > at_min) stack_.push_back({Kind::greedy_run, pc + 1, p, at_min});
          } else {
            // Lazy: start at the minimum; each backtrack takes one more character.
            size_t q = p, c = count;
            while (c < in.max && q < n) {
              const unicode::Decoded d = unicode::decode_valid(s + q);
              if (!cc.contains(d.cp)) break;
              q += d.len;
              ++c;
            }
            tick(c - count);
            if (q > p) stack_.push_back({Kind::lazy_run, pc + 1, p, q});
          }
          pos = p;
          ++pc;
          continue;
        }
        case Op::split:
          stack_.push_back({Kind::alt, in.y, pos, 0});
          pc = in.x;
          continue;
        case Op::jmp: pc = in.x; continue;
        case Op::look: {
          size_t ignored;
          const bool ok = exec(pc + 1, pos, ignored);  // atomic: its stack is dropped on return
          if (ok != in.negative) {
            pc = in.x;
            continue;
          }
          goto backtrack;
        }
        case Op::match:
          end = pos;
          stack_.resize(base);
          return true;
      }
    backtrack:
      if (stack_.size() == base) return false;
      Frame& f = stack_.back();
      tick();
      switch (f.kind) {
        case Kind::alt:
          pc = f.pc, pos = f.pos;
          stack_.pop_back();
          break;
        case Kind::greedy_run: {
          pc = f.pc;
          f.pos -= unicode::last_len(s, f.pos);
          pos = f.pos;
          if (f.pos <= f.aux) stack_.pop_back();
          break;
        }
        case Kind::lazy_run: {
          pc = f.pc;
          f.pos += unicode::decode_valid(s + f.pos).len;
          pos = f.pos;
          if (f.pos >= f.aux) stack_.pop_back();
          break;
        }
      }
    }
  }

  const Program& prog_;
  std::string_view text_;
  std::vector<Frame> stack_;
  uint64_t steps_ = 0, budget_ = 0;
};

}  // namespace r1::io::regex
