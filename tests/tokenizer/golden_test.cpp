// SPDX-License-Identifier: MIT
// Every golden made by Hugging Face tokenizers / transformers (tests/data/tokenizer, see
// scripts/gen_tokenizer_goldens.py and tests/data/README.md) must be reproduced exactly.
#include <doctest/doctest.h>

#include "r1/io/chat.hpp"
#include "r1/io/tokenizer.hpp"
#include "support.hpp"

using namespace r1;
using r1::test::ids_of;
using r1::test::show;

namespace {

// Text -> ids and ids -> decoded text, as HF encode(add_special_tokens=False) / decode.
void check_encode_decode(const io::Tokenizer& tok, const std::vector<nlohmann::json>& rows) {
  size_t failures = 0;
  for (const auto& row : rows) {
    const std::string text = row["text"];
    const std::vector<int32_t> want = ids_of(row["ids"]);
    const std::vector<int32_t> got = tok.encode(text);
    if (got != want && ++failures <= 5) FAIL_CHECK("encode ", show(text), ": ids differ from HF");
    if (tok.decode(want) != row["decoded"].get<std::string>() && ++failures <= 5)
      FAIL_CHECK("decode of ", show(text), " differs from HF");
    if (row.contains("decoded_skip") && tok.decode(want, true) != row["decoded_skip"].get<std::string>() &&
        ++failures <= 5)
      FAIL_CHECK("decode(skip_special_tokens) of ", show(text), " differs from HF");
  }
  CHECK(failures == 0);
}

std::vector<io::ChatMessage> messages_of(const nlohmann::json& j) {
  std::vector<io::ChatMessage> m;
  for (const auto& x : j) m.push_back({x["role"], x["content"]});
  return m;
}

}  // namespace

TEST_CASE("public.jsonl: ids and decoded text equal HF tokenizers") {
  const auto rows = test::read_jsonl("tokenizer/public.jsonl");
  CHECK(rows.size() == 30);
  check_encode_decode(test::deepseek_v3(), rows);
}

TEST_CASE("adversarial.jsonl: marks, emoji, unassigned and new code points, spaces, control tokens") {
  const auto rows = test::read_jsonl("tokenizer/adversarial.jsonl");
  CHECK(rows.size() > 400);
  check_encode_decode(test::deepseek_v3(), rows);
}

TEST_CASE("decode.jsonl: split and invalid UTF-8 become U+FFFD exactly as HF; skip_special_tokens") {
  const io::Tokenizer& tok = test::deepseek_v3();
  size_t failures = 0;
  for (const auto& row : test::read_jsonl("tokenizer/decode.jsonl")) {
    const auto ids = ids_of(row["ids"]);
    if (tok.decode(ids) != row["decoded"].get<std::string>() && ++failures <= 5)
      FAIL_CHECK("decode ", row["ids"].dump(), " -> ", show(tok.decode(ids)), ", HF: ", show(row["decoded"]));
    if (tok.decode(ids, true) != row["decoded_skip"].get<std::string>() && ++failures <= 5)
      FAIL_CHECK("decode(skip) ", row["ids"].dump());
    // The streaming decoder ends with the same text, whatever the split points.
    io::StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    if (streamed != row["decoded"].get<std::string>() && ++failures <= 5) FAIL_CHECK("stream ", row["ids"].dump());
  }
  CHECK(failures == 0);
}

TEST_CASE("chat.jsonl: V3 template renders and encodes as transformers apply_chat_template") {
  const io::Tokenizer& tok = test::deepseek_v3();
  const auto rows = test::read_jsonl("tokenizer/chat.jsonl");
  CHECK(rows.size() == 3);
  for (const auto& row : rows) {
    const auto m = messages_of(row["messages"]);
    CHECK(io::render_chat(m, io::ChatTemplate::deepseek_v3) == row["rendered"].get<std::string>());
    CHECK(io::encode_chat(tok, m, io::ChatTemplate::deepseek_v3) == ids_of(row["ids"]));
    CHECK(tok.encode(row["rendered"].get<std::string>()) == ids_of(row["ids"]));
  }
}

TEST_CASE("chat_extra.jsonl: V3 and R1 templates: system hoisting, think stripping, generation prompts") {
  size_t n = 0;
  for (const auto& row : test::read_jsonl("tokenizer/chat_extra.jsonl")) {
    const auto tmpl = io::parse_chat_template(row["template"].get<std::string>());
    REQUIRE(tmpl.has_value());
    const io::Tokenizer& tok = *tmpl == io::ChatTemplate::deepseek_r1 ? test::deepseek_r1() : test::deepseek_v3();
    const auto m = messages_of(row["messages"]);
    const bool gen = row["add_generation_prompt"];
    INFO(row["template"].get<std::string>(), " ", row["messages"].dump(), " gen=", gen);
    CHECK(io::render_chat(m, *tmpl, gen) == row["rendered"].get<std::string>());
    CHECK(io::encode_chat(tok, m, *tmpl, gen) == ids_of(row["ids"]));
    ++n;
  }
  CHECK(n == 48);
}

TEST_CASE("pretok.jsonl: Llama-3, Qwen2, GPT-2 and every Split behaviour split text as HF does") {
  const auto configs = nlohmann::json::parse(test::read_text("tokenizer/pretok-configs.json"));
  std::vector<io::Tokenizer> toks;
  for (const auto& cfg : configs) {
    // A byte-level tokenizer around each pre-tokenizer: 256 byte tokens, no merges.
    nlohmann::json t = nlohmann::json::parse(test::read_text("tokenizer/flags-tokenizer.json"));
    t["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", cfg}};
    t["added_tokens"] = nlohmann::json::array();
    toks.push_back(io::Tokenizer::from_json(t.dump(), "pretok config " + cfg.dump()));
  }
  size_t failures = 0, n = 0;
  for (const auto& row : test::read_jsonl("tokenizer/pretok.jsonl")) {
    const io::Tokenizer& tok = toks.at(row["config"].get<size_t>());
    const auto want = row["pieces"].get<std::vector<std::string>>();
    const auto got = tok.pre_tokenize(row["text"].get<std::string>());
    if (got != want && ++failures <= 10)
      FAIL_CHECK("config ", configs[row["config"].get<size_t>()].dump(), " text ", show(row["text"]), ": got ",
                 nlohmann::json(got).dump(), " HF ", row["pieces"].dump());
    ++n;
  }
  CHECK(n == 720);
  CHECK(failures == 0);
}

TEST_CASE("flags.jsonl: lstrip, rstrip, single_word, normalized, special added tokens as HF") {
  const io::Tokenizer tok = io::Tokenizer::from_json(test::read_text("tokenizer/flags-tokenizer.json"), "flags-tokenizer.json");
  const auto rows = test::read_jsonl("tokenizer/flags.jsonl");
  CHECK(rows.size() == 300);
  check_encode_decode(tok, rows);
  // "ok" is an added token that is also in the BPE vocabulary: HF gives it the vocabulary id.
  CHECK(tok.added_token_id("ok") == tok.token_to_id("ok"));
}
