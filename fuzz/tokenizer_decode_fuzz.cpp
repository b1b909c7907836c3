// SPDX-License-Identifier: MIT
// libFuzzer target: decoding ids, whole and streaming, with the real DeepSeek-V3 vocabulary. The
// input is read as little-endian int32 ids (any value: negative, past the vocabulary, ...); the
// first byte's low bit asks for skip_special_tokens. Checked properties:
//   - an id that is no token makes decode() and StreamDecoder::push() throw r1::Error, at the same
//     position; nothing else throws;
//   - every string the streaming decoder returns is valid UTF-8 on its own;
//   - the streamed pieces and the final flush concatenate to decode() of the same ids.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "r1/io/tokenizer.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

const r1::io::Tokenizer& tokenizer() {
  static const r1::io::Tokenizer t = [] {
    const char* env = std::getenv("R1_FUZZ_DATA");
    return r1::io::Tokenizer::load(std::string(env ? env : R1_FUZZ_DATA_DEFAULT) + "/deepseek-v3");
  }();
  return t;
}

}  // namespace

// Load before fuzzing starts, so the load does not count against the first input's time limit.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const r1::io::Tokenizer& tok = tokenizer();
  const bool skip = data[0] & 1;
  std::vector<int32_t> ids;
  for (size_t i = 1; i + 4 <= size; i += 4) {
    uint32_t v;
    std::memcpy(&v, data + i, 4);
    // Mostly ids near the vocabulary (so decoding does real work), sometimes anything at all.
    const int32_t id = (v >> 31) ? int32_t(v) : int32_t(v % uint32_t(tok.vocab_size() + 16));
    ids.push_back(id);
  }
  size_t first_bad = ids.size();
  for (size_t i = 0; i < ids.size() && first_bad == ids.size(); ++i)
    if (!tok.id_to_token(ids[i])) first_bad = i;

  std::string whole;
  bool threw = false;
  try {
    whole = tok.decode(ids, skip);
  } catch (const r1::Error&) {
    threw = true;
  }
  check(threw == (first_bad < ids.size()));

  r1::io::StreamDecoder stream(tok, skip);
  std::string streamed;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece;
    try {
      piece = stream.push(ids[i]);
    } catch (const r1::Error&) {
      check(i == first_bad);
      return 0;
    }
    check(i != first_bad);
    check(r1::io::unicode::find_invalid(piece) == std::string::npos);
    streamed += piece;
  }
  const std::string tail = stream.flush();
  check(r1::io::unicode::find_invalid(tail) == std::string::npos);
  check(streamed + tail == whole);
  return 0;
}
