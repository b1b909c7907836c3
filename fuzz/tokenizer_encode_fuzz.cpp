// SPDX-License-Identifier: MIT
// libFuzzer target: encoding text (raw and user-content modes) and chat rendering, with the real
// DeepSeek-V3 vocabulary (scanners), its R1 variant, and a Llama-3-pattern tokenizer (regex
// engine). The first input byte picks the case; the rest is the text. Checked properties:
//   - invalid UTF-8 is an r1::Error, valid UTF-8 always encodes;
//   - decode(encode(s)) == s (DeepSeek both modes; the others in user-content mode);
//   - user content never yields a control token id; chat prompts hold only the template's;
//   - the streaming decoder equals the whole decode;
//   - the hand-written scanners equal the regex engine on DeepSeek's and GPT-2's patterns.
// The tokenizers come from $R1_FUZZ_DATA (default: the repository's tests/data).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "r1/io/chat.hpp"
#include "r1/io/pretokenize.hpp"
#include "r1/io/regex.hpp"
#include "r1/io/tokenizer.hpp"

namespace {

using r1::io::EncodeMode;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

std::string data_dir() {
  const char* env = std::getenv("R1_FUZZ_DATA");
  return env ? env : R1_FUZZ_DATA_DEFAULT;
}

struct Tokenizers {
  r1::io::Tokenizer v3, r1, llama;
  std::vector<r1::io::pretok::Pattern> scanned;
  std::vector<r1::io::regex::Program> programs;
};

const Tokenizers& tokenizers() {
  static const Tokenizers t = [] {
    r1::io::LoadOptions r1opt;
    r1opt.r1_think_tokens = true;
    Tokenizers t{r1::io::Tokenizer::load(data_dir() + "/deepseek-v3"),
                 r1::io::Tokenizer::load(data_dir() + "/deepseek-v3", r1opt),
                 r1::io::Tokenizer::load(data_dir() + "/tokenizer/flags-tokenizer.json"),
                 {},
                 {}};
    for (std::string_view p : {r1::io::pretok::digits_1_3_pattern, r1::io::pretok::deepseek_cjk_pattern,
                               r1::io::pretok::deepseek_words_pattern, r1::io::pretok::gpt2_pattern}) {
      t.scanned.push_back(r1::io::pretok::Pattern::from_regex(p));
      t.programs.push_back(r1::io::regex::compile(p));
    }
    return t;
  }();
  return t;
}

std::string stream_decode(const r1::io::Tokenizer& tok, const std::vector<int32_t>& ids) {
  r1::io::StreamDecoder d(tok);
  std::string out;
  for (int32_t id : ids) out += d.push(id);
  return out + d.flush();
}

void round_trip(const r1::io::Tokenizer& tok, std::string_view text, EncodeMode mode) {
  const std::vector<int32_t> ids = tok.encode(text, mode);
  const std::string back = tok.decode(ids);
  check(back == text);
  check(stream_decode(tok, ids) == back);
  if (mode == EncodeMode::user_content && &tok != &tokenizers().llama)
    for (int32_t id : ids) check(id < 128000);  // DeepSeek's control tokens are 128000 and up
}

void scanners_equal_engine(std::string_view text) {
  const Tokenizers& t = tokenizers();
  for (size_t k = 0; k < t.scanned.size(); ++k) {
    std::vector<size_t> a, b;
    r1::io::pretok::PatternRunner runner(t.scanned[k]);
    runner.find_all(text, [&](size_t s, size_t e) { a.insert(a.end(), {s, e}); });
    r1::io::regex::Matcher m(t.programs[k]);
    m.find_all(text, [&](size_t s, size_t e) { b.insert(b.end(), {s, e}); });
    check(a == b);
  }
}

void chat(const r1::io::Tokenizer& tok, r1::io::ChatTemplate tmpl, std::string_view text) {
  // Messages separated by U+001E; the first character picks the role.
  std::vector<r1::io::ChatMessage> messages;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\x1e', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view part = text.substr(start, end - start);
    const char r = part.empty() ? 'u' : part[0];
    messages.push_back({r == 's' ? "system" : r == 'a' ? "assistant" : "user", std::string(part)});
    start = end + 1;
  }
  const std::vector<int32_t> ids = r1::io::encode_chat(tok, messages, tmpl);
  size_t users = 0, assistants = 0, controls = 0;
  for (const auto& m : messages) users += m.role == "user", assistants += m.role == "assistant";
  for (int32_t id : ids) controls += id == 0 || id == 1 || id >= 128000;
  // BOS, <｜User｜> per user turn, <｜Assistant｜> + EOS per assistant turn, the generation
  // prompt (+ <think> for R1): nothing else may be a control id.
  check(controls == 1 + users + 2 * assistants + 1 + (tmpl == r1::io::ChatTemplate::deepseek_r1 ? 1 : 0));
}

}  // namespace

// Load before fuzzing starts, so the load does not count against the first input's time limit.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizers();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Tokenizers& t = tokenizers();
  const uint8_t choice = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (r1::io::unicode::find_invalid(text) != std::string_view::npos) {
    bool threw = false;
    try {
      (void)t.v3.encode(text, choice & 1 ? EncodeMode::raw : EncodeMode::user_content);
    } catch (const r1::Error&) {
      threw = true;
    }
    check(threw);
    return 0;
  }
  switch (choice % 6) {
    case 0: round_trip(t.v3, text, EncodeMode::raw); break;
    case 1: round_trip(t.v3, text, EncodeMode::user_content); break;
    case 2: round_trip(t.r1, text, EncodeMode::raw); break;
    case 3: round_trip(t.llama, text, EncodeMode::user_content); (void)t.llama.encode(text); break;
    case 4: scanners_equal_engine(text); break;
    case 5: chat(choice & 0x80 ? t.r1 : t.v3, choice & 0x80 ? r1::io::ChatTemplate::deepseek_r1 : r1::io::ChatTemplate::deepseek_v3, text); break;
  }
  return 0;
}
