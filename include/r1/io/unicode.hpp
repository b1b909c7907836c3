// SPDX-License-Identifier: MIT
// UTF-8 and Unicode character classes for the tokenizer: strict UTF-8 decoding, the lossy decoding
// Hugging Face applies to decoded bytes, and per-code-point general category / whitespace / word
// lookups from tables probed out of HF tokenizers itself (unicode_tables.hpp, Unicode 16.0).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "r1/io/unicode_tables.hpp"

namespace r1::io::unicode {

/// General categories, numbered as in unicode_tables.hpp.
enum Category : uint8_t {
  Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po, Sm, Sc, Sk, So, Zs,
  Zl, Zp, Cc, Cf, Cs, Co, category_count
};

/// A set of categories as a bit mask (bit i = category i), so a class test is one shift.
using CategoryMask = uint32_t;
constexpr CategoryMask mask_of(std::initializer_list<Category> cs) {
  CategoryMask m = 0;
  for (Category c : cs) m |= CategoryMask{1} << c;
  return m;
}
inline constexpr CategoryMask letter = mask_of({Lu, Ll, Lt, Lm, Lo});
inline constexpr CategoryMask mark = mask_of({Mn, Mc, Me});
inline constexpr CategoryMask number = mask_of({Nd, Nl, No});
inline constexpr CategoryMask punctuation = mask_of({Pc, Pd, Ps, Pe, Pi, Pf, Po});
inline constexpr CategoryMask symbol = mask_of({Sm, Sc, Sk, So});
inline constexpr CategoryMask separator = mask_of({Zs, Zl, Zp});
inline constexpr CategoryMask other = mask_of({Cc, Cf, Cs, Co, Cn});

/// Per-code-point properties packed in one byte: category in the low 5 bits, then flags.
struct Props {
  uint8_t bits;
  constexpr Category category() const { return Category(bits & 31); }
  constexpr bool in(CategoryMask m) const { return (m >> (bits & 31)) & 1; }
  constexpr bool space() const { return bits & unicode_data::space_bit; }         // Oniguruma \s
  constexpr bool word() const { return bits & unicode_data::word_bit; }           // regex crate \w
  constexpr bool onig_word() const { return bits & unicode_data::onig_word_bit; }  // Oniguruma \w
};

namespace detail {
// Two-level table: index[cp >> 8] selects a 256-entry block; identical blocks are shared, so the
// whole code space costs about 100 KB. Built once from the run list on first use.
struct Table {
  std::array<uint16_t, 0x1100> index{};
  std::vector<uint8_t> blocks;
  std::array<uint8_t, 128> ascii{};
};

inline Table build_table() {
  std::vector<uint8_t> flat(0x110000);
  constexpr size_t n = std::size(unicode_data::runs);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t first = unicode_data::runs[i] >> 8;
    const uint32_t last = i + 1 < n ? unicode_data::runs[i + 1] >> 8 : 0x110000;
    for (uint32_t c = first; c < last; ++c) flat[c] = uint8_t(unicode_data::runs[i] & 0xff);
  }
  Table t;
  std::vector<std::string_view> seen;  // views into flat, one per distinct block
  for (uint32_t b = 0; b < 0x1100; ++b) {
    std::string_view block(reinterpret_cast<const char*>(flat.data()) + b * 256, 256);
    size_t k = 0;
    while (k < seen.size() && seen[k] != block) ++k;
    if (k == seen.size()) {
      seen.push_back(block);
      t.blocks.insert(t.blocks.end(), block.begin(), block.end());
    }
    t.index[b] = uint16_t(k);
  }
  for (int c = 0; c < 128; ++c) t.ascii[c] = flat[c];
  return t;
}

inline const Table& table() {
  static const Table t = build_table();
  return t;
}
}  // namespace detail

/// Properties of a code point (must be < 0x110000).
inline Props props(char32_t c) {
  const detail::Table& t = detail::table();
  if (c < 128) return Props{t.ascii[c]};
  return Props{t.blocks[size_t(t.index[c >> 8]) * 256 + (c & 255)]};
}

// ---- UTF-8 ------------------------------------------------------------------------------------

/// One decoded code point: `len` bytes; len == 0 means the bytes at that position are not
/// well-formed UTF-8 (overlong, surrogate, > U+10FFFF, truncated, stray continuation byte).
struct Decoded {
  char32_t cp;
  uint32_t len;
};

/// Strict decoder (Unicode Table 3-7 well-formed sequences) of the code point at s[i].
inline Decoded decode(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  const size_t avail = s.size() - i;
  const unsigned char b0 = p[0];
  if (b0 < 0x80) return {b0, 1};
  if (b0 < 0xC2) return {0, 0};
  if (b0 < 0xE0) {
    if (avail < 2 || (p[1] & 0xC0) != 0x80) return {0, 0};
    return {char32_t((b0 & 0x1F) << 6 | (p[1] & 0x3F)), 2};
  }
  if (b0 < 0xF0) {
    if (avail < 3) return {0, 0};
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return {0, 0};
    return {char32_t((b0 & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F)), 3};
  }
  if (b0 < 0xF5) {
    if (avail < 4) return {0, 0};
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return {0, 0};
    return {char32_t((b0 & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 | (p[3] & 0x3F)), 4};
  }
  return {0, 0};
}

/// Decodes a code point of text already known to be valid UTF-8 (no checks).
inline Decoded decode_valid(const char* s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  if (p[0] < 0x80) return {p[0], 1};
  if (p[0] < 0xE0) return {char32_t((p[0] & 0x1F) << 6 | (p[1] & 0x3F)), 2};
  if (p[0] < 0xF0) return {char32_t((p[0] & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F)), 3};
  return {char32_t((p[0] & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 | (p[3] & 0x3F)), 4};
}

/// Byte length of the last code point of valid UTF-8 text ending at s[end) (end > 0).
inline size_t last_len(const char* s, size_t end) {
  size_t k = 1;
  while (k < end && (static_cast<unsigned char>(s[end - k]) & 0xC0) == 0x80) ++k;
  return k;
}

/// Offset of the first byte that does not start a well-formed UTF-8 sequence, or npos.
inline size_t find_invalid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const Decoded d = decode(s, i);
    if (d.len == 0) return i;
    i += d.len;
  }
  return std::string_view::npos;
}

inline void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

inline constexpr std::string_view replacement_character = "\xEF\xBF\xBD";  // U+FFFD

/// Length of the maximal prefix of s[i..] that is a valid *beginning* of a UTF-8 sequence
/// ("maximal subpart", Unicode §3.9 / WHATWG), and whether that sequence is complete.
/// For an invalid lead byte the subpart is that one byte.
/// `truncated`: the input ended inside a sequence that could still complete (a streaming decoder
/// waits for more bytes; a whole decode replaces it).
struct Subpart {
  uint32_t len;
  bool complete;
  bool truncated;
};
inline Subpart maximal_subpart(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  const size_t avail = s.size() - i;
  const unsigned char b0 = p[0];
  if (b0 < 0x80) return {1, true, false};
  uint32_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {1, false, false};
  }
  uint32_t k = 1;
  while (k < need && k < avail) {
    const unsigned char b = p[k];
    if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return {k, false, false};
    ++k;
  }
  return {k, k == need, k < need};
}

/// Bytes -> valid UTF-8, replacing each maximal ill-formed subpart by U+FFFD: exactly Rust's
/// String::from_utf8_lossy, which HF's ByteLevel decoder applies to the decoded bytes.
inline void append_lossy(std::string& out, std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t j = i;
    while (j < bytes.size() && static_cast<unsigned char>(bytes[j]) < 0x80) ++j;
    out.append(bytes.data() + i, j - i);
    i = j;
    if (i >= bytes.size()) break;
    const Subpart sp = maximal_subpart(bytes, i);
    if (sp.complete) {
      out.append(bytes.data() + i, sp.len);
    } else {
      out += replacement_character;
    }
    i += sp.len;
  }
}

inline std::string lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_lossy(out, bytes);
  return out;
}

}  // namespace r1::io::unicode
