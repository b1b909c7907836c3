// SPDX-License-Identifier: MIT
// Reading tokenizer.json: bounded and strict like every JSON r1 reads (io/json.hpp: caps checked
// before nlohmann allocates, duplicate keys rejected), but without building a DOM for the two
// big parts. model.vocab (128k entries for DeepSeek-V3) and model.merges (127k) stream straight
// into flat vectors; the rest (a few KB) becomes a DOM in which they appear as {} and []. This
// halves the load time of a DOM parse and its memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "r1/core/error.hpp"
#include "r1/io/json.hpp"
#include "r1/io/limits.hpp"

namespace r1::io {

/// What tokenizer.json holds, vocab and merges apart from the rest.
struct TokenizerJson {
  nlohmann::json root;  // with model.vocab == {} and model.merges == [] when streamed
  bool vocab_streamed = false, merges_streamed = false;
  std::vector<std::pair<std::string, nlohmann::json>> vocab;  // token -> id (any JSON value), may repeat
  std::vector<nlohmann::json> merges;                        // "a b" strings or [a, b] arrays
};

namespace detail {

/// nlohmann SAX handler: forwards everything to BoundedDomBuilder except the contents of
/// model.vocab (when an object) and model.merges (when an array), which it collects itself.
class TokenizerJsonHandler {
 public:
  using json = nlohmann::json;
  TokenizerJsonHandler(TokenizerJson& out, const JsonLimits& limits, size_t max_entries)
      : out_(out), dom_(out.root, limits), max_entries_(max_entries) {}

  bool null() { return scalar(json(nullptr)); }
  bool boolean(bool v) { return scalar(json(v)); }
  bool number_integer(json::number_integer_t v) { return scalar(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return scalar(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return scalar(json(v)); }
  bool string(json::string_t& v) { return scalar(json(std::move(v))); }
  bool binary(json::binary_t&) { return error("binary values are not JSON text"); }

  bool key(json::string_t& k) {
    const int depth = int(kinds_.size());
    if (mode_ == Mode::vocab) {
      if (depth != 3) return true;  // a key inside a nested value: that value is reported later
      if (!count()) return false;
      out_.vocab.emplace_back(std::move(k), json());  // duplicates: rejected by the consumer
      return true;
    }
    if (mode_ == Mode::merges) return true;
    if (depth == 1) root_key_ = k;
    if (depth == 2) model_key_ = k;
    return dom_.key(k);
  }

  bool start_object(std::size_t n) { return open(true, n); }
  bool start_array(std::size_t n) { return open(false, n); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool parse_error(std::size_t position, const std::string& last_token, const json::exception& ex) {
    return error(json_syntax_error(position, last_token, ex));
  }
  const std::string& message() const { return message_.empty() ? dom_.message() : message_; }

 private:
  enum class Mode { dom, vocab, merges };

  bool error(std::string m) {
    if (message_.empty()) message_ = std::move(m);
    return false;
  }
  bool count() {
    if (++entries_ > max_entries_)
      return error(str_cat("model.vocab and model.merges hold more than ", max_entries_, " entries"));
    return true;
  }

  bool scalar(json&& v) {
    const int depth = int(kinds_.size());
    if (mode_ == Mode::vocab) {
      if (depth == 3) out_.vocab.back().second = std::move(v);
      return true;
    }
    if (mode_ == Mode::merges) {
      if (depth == 3) {
        if (!count()) return false;
        out_.merges.push_back(std::move(v));
      } else if (depth == 4 && out_.merges.back().is_array()) {
        if (out_.merges.back().size() >= 2) {
          out_.merges.back() = json::object();  // more than two parts: reported later
        } else {
          out_.merges.back().push_back(std::move(v));
        }
      }
      return true;
    }
    if (v.is_null()) return dom_.null();
    if (v.is_boolean()) return dom_.boolean(v.get<bool>());
    if (v.is_number_unsigned()) return dom_.number_unsigned(v.get<json::number_unsigned_t>());
    if (v.is_number_integer()) return dom_.number_integer(v.get<json::number_integer_t>());
    if (v.is_number_float()) return dom_.number_float(v.get<json::number_float_t>(), "");
    return dom_.string(v.get_ref<json::string_t&>());
  }

  bool open(bool object, std::size_t n) {
    kinds_.push_back(object);
    const int depth = int(kinds_.size());
    if (mode_ == Mode::vocab) {
      if (depth == 4) out_.vocab.back().second = json::object();  // not an id: reported later
      return true;
    }
    if (mode_ == Mode::merges) {
      if (depth == 4) {
        if (!count()) return false;
        out_.merges.push_back(object ? json::object() : json::array());  // arrays: the pair form
      } else if (depth > 4) {
        out_.merges.back() = json::object();  // nested deeper: not a merge
      }
      return true;
    }
    if (depth == 3 && in_model_) {
      if (object && model_key_ == "vocab") {
        out_.vocab_streamed = true;
        mode_ = Mode::vocab;
        return dom_.start_object(0);  // model.vocab stays {} in the DOM
      }
      if (!object && model_key_ == "merges") {
        out_.merges_streamed = true;
        mode_ = Mode::merges;
        return dom_.start_array(0);
      }
    }
    if (depth == 2) in_model_ = object && root_key_ == "model";
    return object ? dom_.start_object(n) : dom_.start_array(n);
  }

  bool close() {
    const bool object = kinds_.back();
    const int depth = int(kinds_.size());
    kinds_.pop_back();
    if (mode_ != Mode::dom) {
      if (depth != 3) return true;
      mode_ = Mode::dom;
    }
    if (depth == 2) in_model_ = false;
    return object ? dom_.end_object() : dom_.end_array();
  }

  TokenizerJson& out_;
  BoundedDomBuilder dom_;
  size_t max_entries_, entries_ = 0;
  std::vector<bool> kinds_;  // open containers, true for objects
  Mode mode_ = Mode::dom;
  bool in_model_ = false;
  std::string root_key_, model_key_;
  std::string message_;
};

}  // namespace detail

/// Parses tokenizer.json text under the caps of io/limits.hpp; throws r1::Error("tokenizer.load",
/// "<source>: ...") naming what is wrong.
inline TokenizerJson read_tokenizer_json(std::string_view text, const std::string& source) {
  JsonLimits limits;
  limits.max_depth = limits::max_tokenizer_depth;
  limits.max_values = limits::max_tokenizer_values;
  if (detail::starts_with_bom(text))
    fail("tokenizer.load", source, ": starts with a UTF-8 byte order mark, which JSON does not allow");
  scan_json(text, limits, "tokenizer.load", source);
  TokenizerJson out;
  detail::TokenizerJsonHandler handler(out, limits, limits::max_tokenizer_entries);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &handler,
                                   nlohmann::json::input_format_t::json, true, false);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer.load", source, ": ", detail::json_error_text(e));
  }
  if (!ok) fail("tokenizer.load", source, ": ", handler.message().empty() ? "invalid JSON" : handler.message());
  return out;
}

}  // namespace r1::io
