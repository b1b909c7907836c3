// SPDX-License-Identifier: MIT
// The r1-tokenize program on the goldens: JSON lines in, JSON lines out, in order; bad lines stop
// it with exit status 1 and the line number.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "support.hpp"

namespace {

struct Run {
  int status;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Run run(const std::string& args, const std::string& input) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("r1_tokenize_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path in = dir / "in", out = dir / "out", err = dir / "err";
  std::ofstream(in, std::ios::binary) << input;
  const std::string cmd = quote(R1_TOKENIZE_PATH) + " " + args + " < " + quote(in) + " > " + quote(out) + " 2> " + quote(err);
  const int raw = std::system(cmd.c_str());
  auto slurp = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  Run r{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
  fs::remove_all(dir);
  return r;
}

std::vector<nlohmann::json> lines(const std::string& text) {
  std::vector<nlohmann::json> v;
  std::istringstream s(text);
  std::string line;
  while (std::getline(s, line)) v.push_back(nlohmann::json::parse(line));
  return v;
}

const std::string tokenizer_arg = "--tokenizer " + quote(r1::test::data_path("deepseek-v3"));
// A 5 KB tokenizer for the error cases: they are about line handling, and it loads instantly.
const std::string small_arg = "--tokenizer " + quote(r1::test::data_path("tokenizer/flags-tokenizer.json"));

}  // namespace

TEST_CASE("r1-tokenize --jsonl encodes and --decode decodes public.jsonl exactly") {
  const auto rows = r1::test::read_jsonl("tokenizer/public.jsonl");
  std::string enc_in, dec_in;
  for (const auto& r : rows) {
    enc_in += nlohmann::json{{"text", r["text"]}}.dump() + "\n";
    dec_in += nlohmann::json{{"ids", r["ids"]}}.dump() + "\n";
  }
  const Run enc = run(tokenizer_arg + " --jsonl", enc_in);
  REQUIRE_MESSAGE(enc.status == 0, enc.err);
  const auto got = lines(enc.out);
  REQUIRE(got.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) CHECK(got[i]["ids"] == rows[i]["ids"]);

  const Run dec = run(tokenizer_arg + " --jsonl --decode", dec_in);
  REQUIRE_MESSAGE(dec.status == 0, dec.err);
  const auto texts = lines(dec.out);
  REQUIRE(texts.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) CHECK(texts[i]["text"] == rows[i]["decoded"]);
}

TEST_CASE("r1-tokenize --chat renders and encodes chat.jsonl (V3) and chat_extra.jsonl (R1)") {
  std::string v3_in;
  const auto v3 = r1::test::read_jsonl("tokenizer/chat.jsonl");
  for (const auto& r : v3) v3_in += nlohmann::json{{"messages", r["messages"]}}.dump() + "\n";
  const Run a = run(tokenizer_arg + " --jsonl --chat --template deepseek-v3", v3_in);
  REQUIRE_MESSAGE(a.status == 0, a.err);
  const auto got = lines(a.out);
  REQUIRE(got.size() == v3.size());
  for (size_t i = 0; i < v3.size(); ++i) {
    CHECK(got[i]["rendered"] == v3[i]["rendered"]);
    CHECK(got[i]["ids"] == v3[i]["ids"]);
  }

  std::vector<nlohmann::json> r1rows;
  std::string r1_in;
  for (const auto& r : r1::test::read_jsonl("tokenizer/chat_extra.jsonl")) {
    if (r["template"] != "deepseek-r1") continue;
    r1rows.push_back(r);
    r1_in += nlohmann::json{{"messages", r["messages"]}, {"add_generation_prompt", r["add_generation_prompt"]}}.dump() + "\n";
  }
  REQUIRE(r1rows.size() == 24);
  const Run b = run(tokenizer_arg + " --jsonl --chat --template deepseek-r1", r1_in);
  REQUIRE_MESSAGE(b.status == 0, b.err);
  const auto got_r1 = lines(b.out);
  REQUIRE(got_r1.size() == r1rows.size());
  for (size_t i = 0; i < r1rows.size(); ++i) {
    CHECK(got_r1[i]["rendered"] == r1rows[i]["rendered"]);
    CHECK(got_r1[i]["ids"] == r1rows[i]["ids"]);
  }
}

TEST_CASE("r1-tokenize: bad lines stop with exit 1 naming the line; --help works") {
  const std::string good = R"({"text": "ok"})"
                           "\n";
  struct Case {
    std::string args, input, needle;
  };
  const Case cases[] = {
      {" --jsonl", good + "{not json\n", "line 2: invalid JSON"},
      {" --jsonl", good + good + R"({"txt": "x"})" "\n", "line 3: missing \"text\""},
      {" --jsonl", R"({"text": 5})" "\n", "line 1: \"text\" must be a string"},
      {" --jsonl", "[1,2]\n", "line 1: expected a JSON object"},
      {" --jsonl --decode", R"({"ids": [1, "x"]})" "\n", "line 1: \"ids\" must be an array of integers"},
      {" --jsonl --decode", R"({"ids": [1, 999999]})" "\n", "line 1: tokenizer.decode: id 999999 at position 1"},
      {" --jsonl", "{\"text\": \"a\"}\n{\"text\": \"\\u00e9\"}\n\n", "line 3: invalid JSON"},
      {" --jsonl --decode", R"({"ids": [1, 99999999999]})" "\n", "line 1: \"ids\" must be an array of integers"},
      {" --jsonl --chat --template deepseek-v3", R"({"messages": [{"role": "tool", "content": "x"}]})" "\n", "line 1: chat.render: message 0 has role 'tool'"},
      {" --jsonl --chat --template deepseek-v3", R"({"messages": [{"role": "user"}]})" "\n", "line 1: messages[0] must be"},
      {" --jsonl --chat --template deepseek-v3", R"({"messages": []})" "\n", "line 1: chat.render: empty conversation"},
      {" --jsonl", "{\"text\": \"\\ud800\"}\n", "line 1: invalid JSON"},
  };
  for (const Case& c : cases) {
    INFO(c.args, " <<< ", c.input);
    const Run r = run(small_arg + c.args, c.input);
    CHECK(r.status == 1);
    CHECK_MESSAGE(r.err.find(c.needle) != std::string::npos, r.err);
  }
  // Lines before the bad one were written.
  const Run partial = run(small_arg + " --jsonl", good + good + "oops\n");
  CHECK(partial.status == 1);
  CHECK(lines(partial.out).size() == 2);

  const Run missing = run("--tokenizer /nonexistent --jsonl", good);
  CHECK(missing.status == 1);
  CHECK(missing.err.find("/nonexistent") != std::string::npos);
  const Run help = run("--help", "");
  CHECK(help.status == 0);
  CHECK(help.out.find("--decode") != std::string::npos);
  CHECK(help.out.find("exit") != std::string::npos);
  const Run text = run(tokenizer_arg + " --text 'Hello, world!'", "");
  CHECK(text.status == 0);
  CHECK(text.out == "[19923,14,2058,3]\n");
}
