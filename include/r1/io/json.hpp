// SPDX-License-Identifier: MIT
// JSON from untrusted files, with bounded cost. nlohmann's text parser is iterative, but it buffers
// each string or number token whole, builds a DOM of any size and keeps the last of duplicate keys.
// So every JSON text r1 reads goes through:
//   1. scan_json: one pass over the bytes that enforces the nesting depth and the length of every
//      token before the parser allocates anything for them, and counts object members (callers
//      use the counts to enforce entry caps and to reserve exactly once);
//   2. nlohmann's SAX parser driving either a format-specific handler (safetensors headers, index
//      files: no DOM at all) or BoundedDomBuilder below (config.json), which rejects duplicate
//      keys and caps the number of values.
// Every failure, nlohmann's own exceptions included, becomes an r1::Error naming the file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "r1/core/error.hpp"
#include "r1/io/limits.hpp"
#include "r1/io/mmap.hpp"

namespace r1::io {

namespace detail {
using ::r1::detail::str_cat;

inline bool starts_with_bom(std::string_view text) {
  return text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xef &&
         static_cast<unsigned char>(text[1]) == 0xbb && static_cast<unsigned char>(text[2]) == 0xbf;
}
}  // namespace detail

/// A string as it should appear in an error message: quoted, with control characters, quotes,
/// backslashes and bytes that are not valid UTF-8 escaped, cut after `max_bytes` bytes.
inline std::string escaped(std::string_view s, std::size_t max_bytes = 120) {
  std::string out = "\"";
  const std::size_t n = s.size() < max_bytes ? s.size() : max_bytes;
  char buf[8];
  for (std::size_t i = 0; i < n;) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
    } else if (c < 0x80) {
      out += char(c);
      ++i;
    } else {
      // Copy a well-formed UTF-8 sequence whole; escape anything else byte by byte.
      int len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
      bool ok = len > 0 && i + std::size_t(len) <= s.size();
      for (int k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
      if (ok) {
        out.append(s.data() + i, std::size_t(len));
        i += std::size_t(len);
      } else {
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out += buf;
        ++i;
      }
    }
  }
  if (n < s.size()) out += "...";
  return out + "\"";
}

/// True when `s` is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points above
/// U+10FFFF).
inline bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + std::size_t(len) > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += std::size_t(len);
  }
  return true;
}

/// Caps applied to one JSON text.
struct JsonLimits {
  int max_depth = 32;
  std::size_t max_string_bytes = limits::max_json_string_bytes;
  std::size_t max_scalar_bytes = limits::max_json_scalar_bytes;
  std::size_t max_values = limits::max_config_values;  // BoundedDomBuilder only
};

/// What scan_json saw. members[d] counts the `key: value` pairs of objects at nesting depth d
/// (the top-level object is depth 1); exact for well-formed JSON.
struct JsonScan {
  int max_depth = 0;
  uint64_t members[4] = {0, 0, 0, 0};
};

/// Enforces the depth and token-length caps of `limits` on `text` without parsing it; throws
/// r1::Error(op, "<source>: ...") on a violation. Malformed JSON passes unless it breaks a cap: the
/// parser that runs next reports it with a position.
inline JsonScan scan_json(std::string_view text, const JsonLimits& limits, const char* op,
                          const std::string& source) {
  JsonScan out;
  int depth = 0;
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = text[i];
    switch (c) {
      case '"': {
        const std::size_t start = ++i;
        while (i < n && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
        const std::size_t len = (i < n ? i : n) - start;
        if (len > limits.max_string_bytes) {
          fail(op, source, ": a JSON string at byte ", start - 1, " is ", len,
               " bytes long, over the cap of ", limits.max_string_bytes, " bytes");
        }
        ++i;  // the closing quote (past the end when unterminated: the parser reports that)
        break;
      }
      case '{':
      case '[':
        if (++depth > limits.max_depth) {
          fail(op, source, ": JSON nesting deeper than ", limits.max_depth, " levels at byte ", i);
        }
        if (depth > out.max_depth) out.max_depth = depth;
        ++i;
        break;
      case '}':
      case ']':
        --depth;
        ++i;
        break;
      case ':':
        if (depth >= 0 && depth < 4) ++out.members[depth];
        ++i;
        break;
      case ',':
      case ' ':
      case '\t':
      case '\n':
      case '\r':
        ++i;
        break;
      case '\0':
        // nlohmann's lexer takes NUL for the end of the input and would ignore everything after
        // it; JSON text cannot contain one (inside strings it must be escaped).
        fail(op, source, ": a NUL byte at byte ", i, " (JSON text cannot contain one)");
      default: {
        const std::size_t start = i;
        while (i < n) {
          const char d = text[i];
          if (d == '"' || d == '{' || d == '}' || d == '[' || d == ']' || d == ':' || d == ',' ||
              d == ' ' || d == '\t' || d == '\n' || d == '\r' || d == '\0') {
            break;
          }
          ++i;
        }
        if (i - start > limits.max_scalar_bytes) {
          fail(op, source, ": a JSON token at byte ", start, " is ", i - start,
               " bytes long, over the cap of ", limits.max_scalar_bytes, " bytes");
        }
      }
    }
  }
  return out;
}

namespace detail {
/// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is what users need.
inline std::string json_error_text(const std::exception& e) {
  std::string_view w = e.what();
  if (w.size() > 1 && w[0] == '[') {
    const auto close = w.find("] ");
    if (close != std::string_view::npos) w.remove_prefix(close + 2);
  }
  return std::string(w);
}
}  // namespace detail

/// Reports a syntax error from nlohmann's SAX parser in the form every handler uses.
inline std::string json_syntax_error(std::size_t position, const std::string& last_token,
                                     const std::exception& ex) {
  return detail::str_cat("JSON syntax error near byte ", position, " (last token ",
                         escaped(last_token, 40), "): ", detail::json_error_text(ex));
}

/// A nlohmann SAX handler that builds a DOM like nlohmann::json::parse, but rejects duplicate
/// object keys (a JSON parser differential: nlohmann keeps the last, others keep the first) and
/// stops at `max_depth` nesting levels or `max_values` values.
class BoundedDomBuilder {
 public:
  using json = nlohmann::json;
  BoundedDomBuilder(json& root, const JsonLimits& limits) : root_(root), limits_(limits) {}

  bool null() { return put(json(nullptr)); }
  bool boolean(bool v) { return put(json(v)); }
  bool number_integer(json::number_integer_t v) { return put(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return put(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return put(json(v)); }
  bool string(json::string_t& v) { return put(json(std::move(v))); }
  bool binary(json::binary_t&) { return error("binary values are not JSON text"); }
  bool start_object(std::size_t) { return open(json::value_t::object); }
  bool start_array(std::size_t) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    auto& obj = *stack_.back();
    auto [it, inserted] = obj.get_ref<json::object_t&>().emplace(std::move(k), nullptr);
    if (!inserted) {
      return error(detail::str_cat("duplicate key ", escaped(it->first), " in one object"));
    }
    slot_ = &it->second;
    return true;
  }
  bool parse_error(std::size_t position, const std::string& last_token, const json::exception& ex) {
    return error(json_syntax_error(position, last_token, ex));
  }

  const std::string& message() const { return message_; }

 private:
  bool error(std::string m) {
    if (message_.empty()) message_ = std::move(m);
    return false;
  }
  // Places a new value where the parser is (root, next array element, or the slot of the last
  // key) and returns its address.
  json* place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      auto& arr = top.get_ref<json::array_t&>();
      arr.push_back(std::move(v));
      return &arr.back();
    }
    *slot_ = std::move(v);
    return slot_;
  }
  bool count() {
    if (++values_ > limits_.max_values) {
      return error(detail::str_cat("more than ", limits_.max_values, " JSON values"));
    }
    return true;
  }
  bool put(json&& v) {
    if (!count()) return false;
    place(std::move(v));
    return true;
  }
  bool open(json::value_t t) {
    if (!count()) return false;
    if (int(stack_.size()) >= limits_.max_depth) {
      return error(detail::str_cat("JSON nesting deeper than ", limits_.max_depth, " levels"));
    }
    stack_.push_back(place(json(t)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  json& root_;
  JsonLimits limits_;
  std::vector<json*> stack_;  // open arrays and objects; their addresses are stable while open
  json* slot_ = nullptr;      // the value of the last key read
  std::size_t values_ = 0;
  std::string message_;
};

/// Parses `text` into a DOM under `limits` (scan_json first, then BoundedDomBuilder). Strict JSON:
/// no comments, no trailing content, no byte order mark. Throws r1::Error(op, "<source>: ...").
inline nlohmann::json parse_json(std::string_view text, const JsonLimits& limits, const char* op,
                                 const std::string& source) {
  if (detail::starts_with_bom(text)) {
    fail(op, source, ": starts with a UTF-8 byte order mark, which JSON does not allow");
  }
  scan_json(text, limits, op, source);
  nlohmann::json root;
  BoundedDomBuilder builder(root, limits);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &builder,
                                   nlohmann::json::input_format_t::json, true, false);
  } catch (const nlohmann::json::exception& e) {
    fail(op, source, ": ", detail::json_error_text(e));
  }
  if (!ok) fail(op, source, ": ", builder.message().empty() ? "invalid JSON" : builder.message());
  return root;
}

/// Maps the file at `path` (a regular file of at most `max_bytes`) and parses it with parse_json.
inline nlohmann::json read_json_file(const std::filesystem::path& path, uint64_t max_bytes,
                                     const JsonLimits& limits, const char* op) {
  const auto file = MappedFile::open(path, op, max_bytes);
  return parse_json(file->text(), limits, op, path.string());
}

}  // namespace r1::io
