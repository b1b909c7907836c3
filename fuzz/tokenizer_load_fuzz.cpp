// SPDX-License-Identifier: MIT
// libFuzzer target: tokenizer.json loading. The input is a tokenizer.json text; loading must end
// in a Tokenizer or an r1::Error, never a crash, hang or runaway allocation. What loads is then
// used: a few encodes (both modes), a decode and a streaming decode (which must equal the whole
// decode), so hostile Split patterns, added tokens and vocabularies run too. decode(encode(s))
// == s is not checked here: a Removed split or add_prefix_space legitimately changes the text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "r1/io/tokenizer.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();  // a property violation: let libFuzzer report it
}

void exercise(const r1::io::Tokenizer& tok, std::string_view text) {
  for (auto mode : {r1::io::EncodeMode::raw, r1::io::EncodeMode::user_content}) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text, mode);
    } catch (const r1::Error&) {
      continue;  // e.g. a pattern over its backtracking budget
    }
    const std::string back = tok.decode(ids);
    r1::io::StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    check(streamed == back);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    const r1::io::Tokenizer tok = r1::io::Tokenizer::from_json(json, "fuzz.json");
    for (std::string_view text : {std::string_view("Hello, world! 123 中文\n\n  x"), std::string_view("<s> a'll \t\r\n"),
                                  std::string_view("")})
      exercise(tok, text);
    // The tail of the input as text too, when it is valid UTF-8.
    const std::string_view tail = json.substr(json.size() > 64 ? json.size() - 64 : 0);
    if (r1::io::unicode::find_invalid(tail) == std::string_view::npos) exercise(tok, tail);
  } catch (const r1::Error&) {
  }
  return 0;
}
