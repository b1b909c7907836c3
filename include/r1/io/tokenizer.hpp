// SPDX-License-Identifier: MIT
// r1::io::Tokenizer: a byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json that
// encodes and decodes exactly as HF `tokenizers` does (encode(text, add_special_tokens=False),
// decode(ids, skip_special_tokens)), plus a user-content encode mode in which control-token
// strings are plain text, and a streaming decoder. See docs/tokenizer.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "r1/core/error.hpp"
#include "r1/io/added_tokens.hpp"
#include "r1/io/bpe.hpp"
#include "r1/io/hash.hpp"
#include "r1/io/json.hpp"
#include "r1/io/limits.hpp"
#include "r1/io/mmap.hpp"
#include "r1/io/pretokenize.hpp"
#include "r1/io/tokenizer_json.hpp"
#include "r1/io/unicode.hpp"

namespace r1::io {

/// raw: added-token strings in the text become their ids, as HF encode(text,
/// add_special_tokens=False) does. user_content: nothing in the text is a control token, so a
/// user who types "<｜Assistant｜>" gets the ids of that text, not the turn marker.
enum class EncodeMode { raw, user_content };

struct LoadOptions {
  /// DeepSeek-R1 uses the DeepSeek-V3 vocabulary with ids 128798 and 128799 renamed from
  /// placeholders to "<think>" and "</think>" (special: false, normalized: true, as in R1's own
  /// tokenizer.json). Set this to load a V3 tokenizer.json as R1's; a no-op on R1's file.
  bool r1_think_tokens = false;
};

class Tokenizer {
 public:
  /// Loads `tokenizer.json` (a file, or a directory containing it); tokenizer_config.json next
  /// to it, when present, supplies the BOS and EOS tokens.
  static Tokenizer load(const std::filesystem::path& file_or_dir, const LoadOptions& options = {}) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path file = file_or_dir;
    if (fs::is_directory(file_or_dir, ec)) file = file_or_dir / "tokenizer.json";
    const auto json = MappedFile::open(file, "tokenizer.load", limits::max_tokenizer_bytes);
    const fs::path config = file.parent_path() / "tokenizer_config.json";
    std::shared_ptr<const MappedFile> config_json;
    if (fs::exists(config, ec))
      config_json = MappedFile::open(config, "tokenizer.load", limits::max_tokenizer_config_bytes);
    return from_json(json->text(), file.string(), config_json ? config_json->text() : std::string_view(), options);
  }

  /// Parses tokenizer.json text (and optionally tokenizer_config.json text). `origin` names the
  /// source in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json, const std::string& origin = "tokenizer.json",
                             std::string_view config_json = {}, const LoadOptions& options = {}) {
    Tokenizer t;
    t.origin_ = origin;
    t.parse(tokenizer_json, options);
    if (!config_json.empty()) t.parse_config(config_json, origin);
    return t;
  }

  /// Encodes valid UTF-8 text; throws r1::Error naming the offset of the first invalid byte
  /// otherwise (HF accepts only valid Unicode strings).
  std::vector<int32_t> encode(std::string_view text, EncodeMode mode = EncodeMode::raw) const {
    std::vector<int32_t> ids;
    encode_append(text, mode, ids);
    return ids;
  }

  /// encode(), appending to `out`.
  void encode_append(std::string_view text, EncodeMode mode, std::vector<int32_t>& out) const {
    check_utf8(text);
    pretok::PreTokenizer::Session pre(pre_);
    Bpe::Session bpe;
    const auto word = [&](std::string_view w) { bpe_.encode(w, out, bpe); };
    if (mode == EncodeMode::user_content) {
      pre.run(text, word);
      return;
    }
    std::vector<Segment> segments;
    added_.split(text, segments);
    for (const Segment& s : segments) {
      if (s.token >= 0)
        out.push_back(s.token);
      else
        pre.run(text.substr(s.begin, s.end - s.begin), word);
    }
  }

  /// The pre-tokens of text (no added-token matching): what the BPE model is applied to.
  std::vector<std::string> pre_tokenize(std::string_view text) const {
    check_utf8(text);
    pretok::PreTokenizer::Session pre(pre_);
    std::vector<std::string> out;
    pre.run(text, [&](std::string_view w) { out.emplace_back(w); });
    return out;
  }

  /// Decodes ids as HF does: each token's ByteLevel bytes concatenated, then invalid UTF-8
  /// replaced by U+FFFD (maximal subparts). An id that is no token throws r1::Error (HF drops it
  /// silently, which hides bugs such as sampling a padded embedding row).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const {
    std::string bytes;
    for (size_t i = 0; i < ids.size(); ++i) {
      check_id(ids[i], i);
      if (skip_special_tokens && special_[size_t(ids[i])]) continue;
      bytes += token_bytes(ids[i]);
    }
    return unicode::lossy(bytes);
  }

  /// Highest token id + 1.
  int32_t vocab_size() const { return int32_t(tokens_.size()); }
  /// The id of a token string (added tokens first, then the BPE vocabulary), as HF token_to_id.
  std::optional<int32_t> token_to_id(std::string_view token) const {
    if (auto id = added_ids_.find(token)) return id;
    return bpe_.vocab().find(token);
  }
  /// The token string of an id (its vocabulary form, e.g. "Ġhello"), if the id is a token.
  std::optional<std::string_view> id_to_token(int32_t id) const {
    if (id < 0 || id >= vocab_size() || !exists_[size_t(id)]) return std::nullopt;
    return std::string_view(tokens_[size_t(id)]);
  }
  /// The id of an added (control) token, ignoring the BPE vocabulary.
  std::optional<int32_t> added_token_id(std::string_view token) const { return added_ids_.find(token); }
  bool is_special(int32_t id) const { return id >= 0 && id < vocab_size() && special_[size_t(id)]; }
  /// The bytes the ByteLevel decoder makes of one token (may be partial UTF-8).
  std::string_view token_bytes(int32_t id) const {
    return std::string_view(decoded_).substr(decoded_off_[size_t(id)], decoded_off_[size_t(id) + 1] - decoded_off_[size_t(id)]);
  }
  /// Throws r1::Error unless id is a token; `position` names it in the message.
  void check_id(int32_t id, size_t position) const {
    R1_CHECK(id >= 0 && id < vocab_size() && exists_[size_t(id)], "tokenizer.decode", "id ", id,
             " at position ", position, " is not a token of ", origin_, " (ids are 0..",
             vocab_size() - 1, (id >= 0 && id < vocab_size() ? ", and this one is unassigned" : ""), ")");
  }

  /// BOS/EOS from tokenizer_config.json; throw r1::Error when it did not name them.
  int32_t bos_id() const {
    R1_CHECK(bos_ >= 0, "tokenizer.bos_id", origin_, ": no bos_token (tokenizer_config.json missing or without one)");
    return bos_;
  }
  int32_t eos_id() const {
    R1_CHECK(eos_ >= 0, "tokenizer.eos_id", origin_, ": no eos_token (tokenizer_config.json missing or without one)");
    return eos_;
  }

  const std::vector<AddedToken>& added_tokens() const { return added_.tokens(); }
  const pretok::PreTokenizer& pre_tokenizer() const { return pre_; }
  const Bpe& bpe() const { return bpe_; }
  const std::string& origin() const { return origin_; }

 private:
  static void check_utf8(std::string_view text) {
    const size_t bad = unicode::find_invalid(text);
    if (bad != std::string_view::npos) {
      static constexpr char hex[] = "0123456789ABCDEF";
      const uint8_t b = uint8_t(text[bad]);
      fail("tokenizer.encode", "text is not valid UTF-8: byte 0x", hex[b >> 4], hex[b & 15],
           " at offset ", bad, " of ", text.size(), " (r1 encodes Unicode text only, as HF does)");
    }
  }

  // ---- loading ------------------------------------------------------------------------------
  using json = nlohmann::json;

  [[noreturn]] void bad(const std::string& field, const std::string& what) const {
    fail("tokenizer.load", origin_, ": ", field, ": ", what);
  }

  // Bounded, strict JSON (io/json.hpp): depth, token sizes and value count are capped before
  // nlohmann allocates; duplicate keys are an error rather than "the last one wins".
  json parse_bounded(std::string_view text, const std::string& name, int depth, size_t values) const {
    JsonLimits limits;
    limits.max_depth = depth;
    limits.max_values = values;
    return parse_json(text, limits, "tokenizer.load", name);
  }

  static std::string type_of(const json& j) {
    if (j.is_object() && j.contains("type") && j["type"].is_string()) return j["type"].get<std::string>();
    return "";
  }
  const json& member(const json& obj, const char* key, const std::string& field) const {
    if (!obj.is_object()) bad(field, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) bad(field + "." + key, "missing");
    return *it;
  }
  bool get_bool(const json& obj, const char* key, const std::string& field, bool fallback) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) bad(field + "." + key, "expected true or false, got " + it->dump().substr(0, 80));
    return it->get<bool>();
  }
  bool required_bool(const json& obj, const char* key, const std::string& field) const {
    const json& v = member(obj, key, field);
    if (!v.is_boolean()) bad(field + "." + key, "expected true or false, got " + v.dump().substr(0, 80));
    return v.get<bool>();
  }
  const std::string& get_string(const json& j, const std::string& field) const {
    if (!j.is_string()) bad(field, "expected a string, got " + j.dump().substr(0, 80));
    return j.get_ref<const std::string&>();
  }
  int32_t get_id(const json& j, const std::string& field) const {
    if (!j.is_number_integer()) bad(field, "expected an integer id, got " + j.dump().substr(0, 80));
    const int64_t v = j.get<int64_t>();
    if (v < 0 || v > limits::max_token_id)
      bad(field, "id " + std::to_string(v) + " is outside 0.." + std::to_string(limits::max_token_id));
    return int32_t(v);
  }
  std::string valid_utf8(const std::string& s, const std::string& field) const {
    if (unicode::find_invalid(s) != std::string_view::npos) bad(field, "not valid UTF-8");
    return s;
  }

  void parse(std::string_view text, const LoadOptions& options) {
    TokenizerJson doc = read_tokenizer_json(text, origin_);
    const json& root = doc.root;
    if (!root.is_object()) bad("(root)", "expected a JSON object");
    if (auto v = root.find("version"); v != root.end() && !v->is_null() && *v != "1.0")
      bad("version", "unknown tokenizer.json version " + v->dump());
    for (const char* key : {"truncation", "padding"}) {
      auto it = root.find(key);
      if (it != root.end() && !it->is_null())
        bad(key, "must be null: r1 encodes whole texts, without HF's truncation or padding");
    }
    check_normalizer(root.contains("normalizer") ? root["normalizer"] : json(), "normalizer");
    parse_pre_tokenizer(root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json());
    check_decoder(root.contains("decoder") ? root["decoder"] : json());
    parse_model(member(root, "model", "(root)"), doc);
    parse_added_tokens(root.contains("added_tokens") ? root["added_tokens"] : json::array(), options);
    build_id_tables();
  }

  // Only normalizers that leave text unchanged are supported (r1 does no Unicode normalization).
  void check_normalizer(const json& n, const std::string& field) const {
    if (n.is_null()) return;
    const std::string type = type_of(n);
    if (type == "Sequence") {
      const json& list = member(n, "normalizers", field);
      if (!list.is_array()) bad(field + ".normalizers", "expected an array");
      for (size_t i = 0; i < list.size(); ++i) check_normalizer(list[i], field + ".normalizers[" + std::to_string(i) + "]");
      return;
    }
    bad(field, "normalizer '" + (type.empty() ? n.dump().substr(0, 60) : type) +
                   "' is not supported (r1 supports no normalizer, or an empty Sequence)");
  }

  void parse_pre_tokenizer(const json& p) {
    std::vector<pretok::Step> steps;
    collect_steps(p, "pre_tokenizer", steps);
    size_t byte_level = 0;
    for (const pretok::Step& s : steps) byte_level += s.type == pretok::Step::byte_level;
    if (byte_level != 1 || steps.back().type != pretok::Step::byte_level)
      bad("pre_tokenizer", "r1 supports byte-level BPE: the pre-tokenizer must end with exactly one "
                           "ByteLevel step (optionally after Split steps)");
    pre_ = pretok::PreTokenizer(std::move(steps));
  }

  void collect_steps(const json& p, const std::string& field, std::vector<pretok::Step>& steps) const {
    if (p.is_null()) bad(field, "missing (r1 needs a ByteLevel pre-tokenizer)");
    const std::string type = type_of(p);
    if (type == "Sequence") {
      const json& list = member(p, "pretokenizers", field);
      if (!list.is_array()) bad(field + ".pretokenizers", "expected an array");
      for (size_t i = 0; i < list.size(); ++i)
        collect_steps(list[i], field + ".pretokenizers[" + std::to_string(i) + "]", steps);
      return;
    }
    pretok::Step step;
    if (type == "ByteLevel") {
      step.type = pretok::Step::byte_level;
      step.add_prefix_space = get_bool(p, "add_prefix_space", field, true);
      step.use_regex = get_bool(p, "use_regex", field, true);
      steps.push_back(std::move(step));
      return;
    }
    if (type == "Split") {
      const json& pat = member(p, "pattern", field);
      try {
        if (pat.is_object() && pat.contains("Regex"))
          step.pattern = pretok::Pattern::from_regex(valid_utf8(get_string(pat["Regex"], field + ".pattern.Regex"), field + ".pattern.Regex"));
        else if (pat.is_object() && pat.contains("String"))
          step.pattern = pretok::Pattern::from_string(valid_utf8(get_string(pat["String"], field + ".pattern.String"), field + ".pattern.String"));
        else
          bad(field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
      } catch (const Error& e) {
        if (e.op() == "tokenizer.load") throw;
        bad(field + ".pattern", e.what());
      }
      const std::string& behavior = get_string(member(p, "behavior", field), field + ".behavior");
      if (behavior == "Isolated")
        step.behavior = pretok::Behavior::isolated;
      else if (behavior == "Removed")
        step.behavior = pretok::Behavior::removed;
      else if (behavior == "MergedWithPrevious")
        step.behavior = pretok::Behavior::merged_with_previous;
      else if (behavior == "MergedWithNext")
        step.behavior = pretok::Behavior::merged_with_next;
      else if (behavior == "Contiguous")
        step.behavior = pretok::Behavior::contiguous;
      else
        bad(field + ".behavior", "unknown behavior '" + behavior + "'");
      const json& invert = member(p, "invert", field);
      if (!invert.is_boolean()) bad(field + ".invert", "expected true or false");
      step.invert = invert.get<bool>();
      steps.push_back(std::move(step));
      return;
    }
    bad(field, "pre-tokenizer '" + (type.empty() ? p.dump().substr(0, 60) : type) +
                   "' is not supported (supported: Sequence, Split, ByteLevel)");
  }

  void check_decoder(const json& d) const {
    if (type_of(d) == "ByteLevel") return;
    if (type_of(d) == "Sequence" && d.contains("decoders") && d["decoders"].is_array() &&
        d["decoders"].size() == 1 && type_of(d["decoders"][0]) == "ByteLevel")
      return;
    bad("decoder", "decoder '" + (d.is_null() ? std::string("null") : type_of(d).empty() ? d.dump().substr(0, 60) : type_of(d)) +
                       "' is not supported (r1 supports the ByteLevel decoder)");
  }

  void parse_model(const json& m, const TokenizerJson& doc) {
    if (!m.is_object()) bad("model", "expected an object");
    const std::string type = type_of(m);
    if (!type.empty() && type != "BPE") bad("model.type", "model '" + type + "' is not supported (r1 supports BPE)");
    if (auto d = m.find("dropout"); d != m.end() && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0))
      bad("model.dropout", "BPE dropout is random; r1 supports null or 0");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      auto it = m.find(key);
      if (it != m.end() && !it->is_null() && !(it->is_string() && it->get_ref<const std::string&>().empty()))
        bad(std::string("model.") + key, "not supported by r1's byte-level BPE (must be null)");
    }
    const bool ignore_merges = get_bool(m, "ignore_merges", "model", false);

    // model.vocab and model.merges were streamed into doc (tokenizer_json.hpp); the DOM holds
    // {} and [] in their place, or whatever else the file had there.
    const json& vocab_dom = member(m, "vocab", "model");
    if (!vocab_dom.is_object() || !doc.vocab_streamed) bad("model.vocab", "expected an object of token -> id");
    const auto& vocab = doc.vocab;
    detail::StringIdMap map;
    map.reserve(vocab.size());
    model_tokens_.clear();
    for (const auto& [token, value] : vocab) {
      const std::string field = "model.vocab[" + json(token).dump() + "]";
      const int32_t id = get_id(value, field);
      if (unicode::find_invalid(token) != std::string_view::npos) bad(field, "token is not valid UTF-8");
      // Ids index tables, so they must be dense enough that a small file cannot make r1
      // allocate for millions of ids it does not have.
      if (size_t(id) >= 2 * vocab.size() + 1024)
        bad(field, "id " + std::to_string(id) + " is far beyond the " + std::to_string(vocab.size()) +
                       " vocabulary entries (ids must be below 2 * entries + 1024)");
      if (!map.insert(token, id)) bad("model.vocab", "duplicate key " + json(token).dump());
      if (size_t(id) >= model_tokens_.size()) model_tokens_.resize(size_t(id) + 1);
      if (model_tokens_[size_t(id)].data() != nullptr)
        bad(field, "id " + std::to_string(id) + " is also assigned to " + json(model_tokens_[size_t(id)]).dump());
      model_tokens_[size_t(id)] = token;
    }
    model_vocab_size_ = vocab.size();

    // Every byte needs a vocabulary entry for its byte-level character.
    std::array<int32_t, 256> byte_ids{};
    const auto chars = byte_level_chars();
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      unicode::append(ch, chars[size_t(b)]);
      const auto id = map.find(ch);
      if (!id) {
        static constexpr char hex[] = "0123456789ABCDEF";
        bad("model.vocab", std::string("no token for byte 0x") + hex[b >> 4] + hex[b & 15] + " ('" + ch +
                               "'): r1 supports byte-level vocabularies covering all 256 bytes");
      }
      byte_ids[size_t(b)] = *id;
    }

    const json& merges_dom = member(m, "merges", "model");
    if (!merges_dom.is_array() || !doc.merges_streamed) bad("model.merges", "expected an array");
    const auto& merges = doc.merges;
    bpe_.reserve_merges(merges.size());
    uint32_t rank = 0;
    std::string joined;
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string field = "model.merges[" + std::to_string(i) + "]";
      std::string a, b;
      const json& e = merges[i];
      if (e.is_string()) {
        const std::string& line = e.get_ref<const std::string&>();
        if (line.rfind("#version", 0) == 0) continue;  // HF skips these lines (and their rank)
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
          bad(field, "expected \"a b\" (two tokens separated by one space), got " + e.dump().substr(0, 80));
        a = line.substr(0, sp);
        b = line.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        bad(field, "expected \"a b\" or [\"a\", \"b\"], got " + e.dump().substr(0, 80));
      }
      const auto ia = map.find(a), ib = map.find(b);
      joined = a + b;
      const auto ij = map.find(joined);
      if (!ia || !ib || !ij)
        bad(field, "token " + json(!ia ? a : !ib ? b : joined).dump() + " is not in model.vocab");
      bpe_.add_merge(*ia, *ib, *ij, rank++);
    }
    bpe_.init(std::move(map), byte_ids, ignore_merges);
  }

  void parse_added_tokens(const json& list, const LoadOptions& options) {
    if (!list.is_array()) bad("added_tokens", "expected an array");
    if (list.size() > limits::max_added_tokens) bad("added_tokens", "too many entries");
    std::vector<AddedToken> tokens;
    // HF ignores the "id" fields and assigns ids itself (AddedVocabulary::add_tokens): a token
    // already in the vocabulary keeps that id, others get consecutive ids after the larger of the
    // vocabulary size and the highest id so far. r1 assigns them the same way and rejects a file
    // whose stated ids disagree, since such a file means something else to its authors.
    int32_t next_id = int32_t(model_vocab_size_);
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      const json& e = list[i];
      if (!e.is_object()) bad(field, "expected an object");
      AddedToken t;
      t.content = valid_utf8(get_string(member(e, "content", field), field + ".content"), field + ".content");
      // HF requires every field (AddedToken has no serde defaults).
      t.single_word = required_bool(e, "single_word", field);
      t.lstrip = required_bool(e, "lstrip", field);
      t.rstrip = required_bool(e, "rstrip", field);
      t.normalized = required_bool(e, "normalized", field);
      t.special = required_bool(e, "special", field);
      const int32_t stated_id = get_id(member(e, "id", field), field + ".id");
      if (t.content.empty()) continue;  // HF ignores empty added tokens
      if (added_ids_.find(t.content)) bad(field, "duplicate added token " + json(t.content).dump());
      if (auto id = bpe_.vocab().find(t.content)) {
        t.id = *id;
      } else {
        if (next_id > limits::max_token_id) bad(field, "too many tokens");
        t.id = next_id++;
      }
      if (stated_id != t.id)
        bad(field + ".id", "says " + std::to_string(stated_id) + " but HF tokenizers assigns " +
                               json(t.content).dump() + " the id " + std::to_string(t.id));
      added_ids_.insert(t.content, t.id);
      tokens.push_back(std::move(t));
    }
    if (options.r1_think_tokens) apply_r1_think_tokens(tokens);
    added_.init(std::move(tokens));
  }

  void apply_r1_think_tokens(std::vector<AddedToken>& tokens) {
    static constexpr std::pair<int32_t, std::string_view> think[] = {
        {128798, "<think>"}, {128799, "</think>"}};
    detail::StringIdMap ids;
    for (const auto& [id, content] : think) {
      AddedToken* t = nullptr;
      for (AddedToken& x : tokens)
        if (x.id == id) t = &x;
      if (t == nullptr)
        bad("added_tokens", "LoadOptions::r1_think_tokens needs an added token with id " + std::to_string(id) +
                                " (this is not a DeepSeek-V3/R1 vocabulary)");
      if (t->content != content) {
        if (auto other = token_to_id(content); other && *other != id)
          bad("added_tokens", std::string(content) + " already has id " + std::to_string(*other));
        t->content = std::string(content);
      }
      t->special = false;
      t->normalized = true;
      t->single_word = t->lstrip = t->rstrip = false;
    }
    for (const AddedToken& t : tokens) ids.insert(t.content, t.id);
    added_ids_ = std::move(ids);
  }

  void build_id_tables() {
    int32_t size = int32_t(model_tokens_.size());
    for (const AddedToken& t : added_.tokens()) size = std::max(size, t.id + 1);
    tokens_.assign(size_t(size), std::string());
    exists_.assign(size_t(size), false);
    special_.assign(size_t(size), false);
    for (size_t id = 0; id < model_tokens_.size(); ++id) {
      if (model_tokens_[id].data() == nullptr) continue;
      tokens_[id] = std::string(model_tokens_[id]);
      exists_[id] = true;
    }
    model_tokens_.clear();
    for (const AddedToken& t : added_.tokens()) {  // added tokens win, as in HF decode
      tokens_[size_t(t.id)] = t.content;
      exists_[size_t(t.id)] = true;
      special_[size_t(t.id)] = t.special;
    }
    // ByteLevel decoder, per token: the bytes of its characters if all are byte-level
    // characters, else the token's own UTF-8 (HF decoders/byte_level.rs).
    std::array<int16_t, 0x144> char_byte;
    char_byte.fill(-1);
    const auto chars = byte_level_chars();
    for (int b = 0; b < 256; ++b) char_byte[chars[size_t(b)]] = int16_t(b);
    decoded_.clear();
    decoded_off_.assign(size_t(size) + 1, 0);
    for (size_t id = 0; id < size_t(size); ++id) {
      decoded_off_[id] = uint32_t(decoded_.size());
      const std::string& tok = tokens_[id];
      std::string bytes;
      bool all = true;
      for (size_t i = 0; i < tok.size();) {
        const unicode::Decoded d = unicode::decode_valid(tok.data() + i);
        if (d.cp >= char_byte.size() || char_byte[d.cp] < 0) {
          all = false;
          break;
        }
        bytes += char(char_byte[d.cp]);
        i += d.len;
      }
      decoded_ += all ? bytes : tok;
      R1_CHECK(decoded_.size() < (size_t{1} << 32), "tokenizer.load", origin_, ": vocabulary too large");
    }
    decoded_off_[size_t(size)] = uint32_t(decoded_.size());
  }

  void parse_config(std::string_view text, const std::string& origin) {
    const std::string name = "tokenizer_config.json next to " + origin;
    const json c = parse_bounded(text, name, limits::max_tokenizer_depth, limits::max_config_values);
    if (!c.is_object()) fail("tokenizer.load", name, ": expected a JSON object");
    auto lookup = [&](const char* key) -> int32_t {
      auto it = c.find(key);
      if (it == c.end() || it->is_null()) return -1;
      const json& v = it->is_object() && it->contains("content") ? (*it)["content"] : *it;
      if (!v.is_string()) fail("tokenizer.load", name, ": ", key, " is not a string");
      const auto id = token_to_id(v.get_ref<const std::string&>());
      if (!id) fail("tokenizer.load", name, ": ", key, " ", v.dump(), " is not a token of ", origin);
      return *id;
    };
    bos_ = lookup("bos_token");
    eos_ = lookup("eos_token");
  }

  std::string origin_;
  pretok::PreTokenizer pre_;
  Bpe bpe_;
  AddedVocabulary added_;
  detail::StringIdMap added_ids_;
  size_t model_vocab_size_ = 0;
  std::vector<std::string_view> model_tokens_;  // by id, into the parsed JSON, only while loading
  std::vector<std::string> tokens_;                         // by id
  std::vector<bool> exists_, special_;
  std::string decoded_;
  std::vector<uint32_t> decoded_off_;
  int32_t bos_ = -1, eos_ = -1;
};

/// Decodes ids one at a time and returns only complete UTF-8 text: a token that ends inside a
/// multi-byte character is held back until the character completes. Concatenating every push()
/// and the final flush() gives exactly Tokenizer::decode of all the ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tok_(&tokenizer), skip_special_(skip_special_tokens) {}

  /// Adds one id; returns the text it completes (possibly empty). Throws r1::Error for an id
  /// that is no token.
  std::string push(int32_t id) {
    tok_->check_id(id, count_++);
    std::string out;
    if (skip_special_ && tok_->is_special(id)) return out;
    pending_ += tok_->token_bytes(id);
    size_t i = 0;
    while (i < pending_.size()) {
      if (static_cast<unsigned char>(pending_[i]) < 0x80) {
        out += pending_[i++];
        continue;
      }
      const unicode::Subpart sp = unicode::maximal_subpart(pending_, i);
      if (sp.truncated) break;  // may still complete
      if (sp.complete)
        out.append(pending_, i, sp.len);
      else
        out += unicode::replacement_character;
      i += sp.len;
    }
    pending_.erase(0, i);
    return out;
  }

  /// Ends the stream: a character left incomplete becomes U+FFFD, as in a whole decode.
  std::string flush() {
    std::string out = pending_.empty() ? std::string() : std::string(unicode::replacement_character);
    pending_.clear();
    return out;
  }

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;  // at most 3 bytes: the start of an incomplete character
  size_t count_ = 0;
};

}  // namespace r1::io
