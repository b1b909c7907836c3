// SPDX-License-Identifier: MIT
// Shared helpers of the tokenizer tests: the DeepSeek-V3 tokenizer loaded once per process, and
// JSON-lines reading of the goldens in tests/data/tokenizer.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "r1/io/tokenizer.hpp"

namespace r1::test {

inline std::string data_path(const std::string& rel) { return std::string(R1_TEST_DATA_DIR) + "/" + rel; }

inline const io::Tokenizer& deepseek_v3() {
  static const io::Tokenizer t = io::Tokenizer::load(data_path("deepseek-v3"));
  return t;
}
inline const io::Tokenizer& deepseek_r1() {
  static const io::Tokenizer t = [] {
    io::LoadOptions o;
    o.r1_think_tokens = true;
    return io::Tokenizer::load(data_path("deepseek-v3"), o);
  }();
  return t;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& rel) {
  std::ifstream f(data_path(rel));
  REQUIRE_MESSAGE(f.good(), "cannot open ", data_path(rel));
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  REQUIRE(!rows.empty());
  return rows;
}

inline std::string read_text(const std::string& rel) {
  std::ifstream f(data_path(rel), std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open ", data_path(rel));
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

/// Printable form of a string for failure messages.
inline std::string show(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', true).substr(0, 200); }

}  // namespace r1::test
