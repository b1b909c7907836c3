// SPDX-License-Identifier: MIT
// r1-tokenize: encode, decode or render chats with a Hugging Face tokenizer.json, one JSON object
// per line on stdin -> one per line on stdout, in the same order. See --help and docs/tokenizer.md.
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "r1/io/chat.hpp"
#include "r1/io/tokenizer.hpp"

namespace {

using json = nlohmann::json;
using ordered = nlohmann::ordered_json;  // output keys in the documented order

struct Options {
  std::string tokenizer;
  bool jsonl = false;
  bool decode = false;
  bool chat = false;
  std::string template_name = "deepseek-r1";
  bool skip_special_tokens = false;
  bool user_content = false;
  std::vector<std::string> texts;
};

// A line's problem: reported with its number, then the program stops with exit status 1.
struct LineError {
  std::string message;
};

const json& field(const json& obj, const char* key) {
  if (!obj.is_object()) throw LineError{"expected a JSON object"};
  auto it = obj.find(key);
  if (it == obj.end()) throw LineError{std::string("missing \"") + key + "\""};
  return *it;
}

ordered encode_line(const r1::io::Tokenizer& tok, const json& in, r1::io::EncodeMode mode) {
  const json& text = field(in, "text");
  if (!text.is_string()) throw LineError{"\"text\" must be a string"};
  return ordered{{"ids", tok.encode(text.get_ref<const std::string&>(), mode)}};
}

ordered decode_line(const r1::io::Tokenizer& tok, const json& in, bool skip_special) {
  const json& ids = field(in, "ids");
  if (!ids.is_array()) throw LineError{"\"ids\" must be an array of integers"};
  std::vector<int32_t> v;
  v.reserve(ids.size());
  for (const json& x : ids) {
    if (!x.is_number_integer() || x.get<int64_t>() < INT32_MIN || x.get<int64_t>() > INT32_MAX)
      throw LineError{"\"ids\" must be an array of integers, found " + x.dump()};
    v.push_back(int32_t(x.get<int64_t>()));
  }
  return ordered{{"text", tok.decode(v, skip_special)}};
}

ordered chat_line(const r1::io::Tokenizer& tok, const json& in, r1::io::ChatTemplate tmpl) {
  const json& messages = field(in, "messages");
  if (!messages.is_array()) throw LineError{"\"messages\" must be an array"};
  std::vector<r1::io::ChatMessage> conv;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      throw LineError{where + " must be {\"role\": string, \"content\": string}"};
    conv.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  bool gen = true;
  if (in.contains("add_generation_prompt")) {
    if (!in["add_generation_prompt"].is_boolean()) throw LineError{"\"add_generation_prompt\" must be true or false"};
    gen = in["add_generation_prompt"].get<bool>();
  }
  return ordered{{"rendered", r1::io::render_chat(conv, tmpl, gen)}, {"ids", r1::io::encode_chat(tok, conv, tmpl, gen)}};
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  Options o;
  CLI::App app{
      "r1-tokenize: byte-level BPE tokenization exactly as Hugging Face tokenizers does it.\n\n"
      "With --jsonl, reads one JSON object per line on stdin and writes one per line on stdout:\n"
      "  encode (default)  {\"text\": \"...\"}            -> {\"ids\": [...]}\n"
      "  --decode          {\"ids\": [...]}             -> {\"text\": \"...\"}\n"
      "  --chat            {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}, ...]}\n"
      "                    (optional \"add_generation_prompt\": false)\n"
      "                    -> {\"rendered\": \"...\", \"ids\": [...]}\n"
      "Encoding matches HF encode(text, add_special_tokens=False): control-token strings in the\n"
      "text become control ids (use --user-content to treat them as plain text). Chat contents are\n"
      "always encoded as user content. With --template deepseek-r1, ids 128798/128799 are\n"
      "<think>/</think> as in DeepSeek-R1 even when the tokenizer.json is DeepSeek-V3's.\n\n"
      "A line that is not valid JSON or lacks the expected field stops the program with exit\n"
      "status 1 and \"r1-tokenize: line N: ...\" on stderr; the lines before it have been written.\n\n"
      "Examples:\n"
      "  echo '{\"text\": \"Hello, world!\"}' | r1-tokenize --tokenizer DIR --jsonl\n"
      "  r1-tokenize --tokenizer DIR --text 'Hello, world!'"};
  app.add_option("--tokenizer", o.tokenizer, "tokenizer.json, or a directory containing it")->required();
  app.add_flag("--jsonl", o.jsonl, "read JSON lines on stdin, write JSON lines on stdout");
  app.add_option("--text", o.texts, "encode (or with --decode: decode a JSON array of ids) these arguments, one output line each");
  auto* dec = app.add_flag("--decode", o.decode, "decode ids to text");
  auto* chat = app.add_flag("--chat", o.chat, "render chat messages with --template");
  app.add_option("--template", o.template_name, "chat template: deepseek-v3 or deepseek-r1")
      ->check(CLI::IsMember({"deepseek-v3", "deepseek-r1"}))
      ->capture_default_str();
  app.add_flag("--skip-special-tokens", o.skip_special_tokens, "when decoding, drop special tokens (HF skip_special_tokens)");
  app.add_flag("--user-content", o.user_content, "when encoding, treat control-token strings as plain text");
  dec->excludes(chat);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!o.jsonl && o.texts.empty()) {
    std::cerr << "r1-tokenize: give --jsonl (JSON lines on stdin) or --text; see --help\n";
    return 1;
  }
  if (o.chat && !o.texts.empty()) {
    std::cerr << "r1-tokenize: --chat reads JSON lines; use --jsonl\n";
    return 1;
  }

  try {
    const auto tmpl = *r1::io::parse_chat_template(o.template_name);
    r1::io::LoadOptions load;
    load.r1_think_tokens = o.chat && tmpl == r1::io::ChatTemplate::deepseek_r1;
    const r1::io::Tokenizer tok = r1::io::Tokenizer::load(o.tokenizer, load);
    const auto mode = o.user_content ? r1::io::EncodeMode::user_content : r1::io::EncodeMode::raw;

    for (const std::string& t : o.texts) {
      if (o.decode) {
        json ids;
        try {
          ids = json::parse(t);
        } catch (const json::exception&) {
          std::cerr << "r1-tokenize: --text with --decode takes a JSON array of ids, got " << t << "\n";
          return 1;
        }
        try {
          std::cout << decode_line(tok, json{{"ids", ids}}, o.skip_special_tokens)["text"].get<std::string>() << "\n";
        } catch (const LineError& e) {
          std::cerr << "r1-tokenize: " << e.message << "\n";
          return 1;
        }
      } else {
        std::cout << json(tok.encode(t, mode)).dump() << "\n";
      }
    }
    if (!o.jsonl) return 0;

    std::string line;
    size_t number = 0;
    while (std::getline(std::cin, line)) {
      ++number;
      try {
        json in;
        try {
          in = json::parse(line);
        } catch (const json::exception& e) {
          throw LineError{std::string("invalid JSON: ") + e.what()};
        }
        ordered out = o.decode ? decode_line(tok, in, o.skip_special_tokens)
                   : o.chat ? chat_line(tok, in, tmpl)
                            : encode_line(tok, in, mode);
        std::cout << out.dump(-1, ' ', false, ordered::error_handler_t::strict) << '\n';
      } catch (const LineError& e) {
        std::cout.flush();
        std::cerr << "r1-tokenize: line " << number << ": " << e.message << "\n";
        return 1;
      } catch (const r1::Error& e) {
        std::cout.flush();
        std::cerr << "r1-tokenize: line " << number << ": " << e.what() << "\n";
        return 1;
      }
    }
    if (std::cin.bad()) {
      std::cerr << "r1-tokenize: error reading stdin\n";
      return 1;
    }
    return 0;
  } catch (const r1::Error& e) {
    std::cerr << "r1-tokenize: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "r1-tokenize: out of memory\n";
    return 1;
  }
}
