// SPDX-License-Identifier: MIT
// Added tokens (control tokens such as <｜User｜>) and how raw text is split on them, mirroring HF
// tokenizers' AddedVocabulary::extract_and_normalize: first the tokens with normalized=false are
// found in the text, then the tokens with normalized=true in the pieces left over; each pass
// takes leftmost-longest matches and applies single_word, lstrip and rstrip exactly as HF's
// find_matches does (with the regex crate's \w and \s, as HF uses that crate there).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "r1/io/unicode.hpp"

namespace r1::io {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

/// Leftmost-longest search for a set of strings in a byte trie (HF uses an Aho-Corasick automaton
/// with the same match semantics). A search costs at most the length of the longest token per
/// text position whose first byte starts some token.
class TokenTrie {
 public:
  /// items: (string, value); strings are distinct and non-empty.
  void build(const std::vector<std::pair<std::string_view, int32_t>>& items) {
    std::vector<std::map<uint8_t, int32_t>> kids(1);
    std::vector<int32_t> value(1, -1);
    for (const auto& [s, v] : items) {
      int32_t node = 0;
      for (char ch : s) {
        auto [it, fresh] = kids[size_t(node)].try_emplace(uint8_t(ch), int32_t(kids.size()));
        if (fresh) {
          kids.emplace_back();
          value.push_back(-1);
        }
        node = it->second;
      }
      value[size_t(node)] = v;
    }
    nodes_.assign(kids.size(), Node{});
    edges_.clear();
    for (size_t n = 0; n < kids.size(); ++n) {
      nodes_[n].value = value[n];
      nodes_[n].begin = uint32_t(edges_.size());
      for (const auto& [b, child] : kids[n]) edges_.push_back({b, child});
      nodes_[n].end = uint32_t(edges_.size());
    }
    root_.fill(-1);
    for (uint32_t e = nodes_[0].begin; e < nodes_[0].end; ++e) root_[edges_[e].byte] = edges_[e].child;
    empty_ = items.empty();
  }
  bool empty() const { return empty_; }

  /// The leftmost-longest match starting at or after `from`.
  bool find(std::string_view s, size_t from, size_t& start, size_t& end, int32_t& value) const {
    for (size_t i = from; i < s.size(); ++i) {
      int32_t node = root_[uint8_t(s[i])];
      if (node < 0) continue;
      int32_t best = -1;
      size_t best_end = 0;
      size_t j = i + 1;
      for (;;) {
        if (nodes_[size_t(node)].value >= 0) best = nodes_[size_t(node)].value, best_end = j;
        if (j >= s.size()) break;
        node = child(node, uint8_t(s[j]));
        if (node < 0) break;
        ++j;
      }
      if (best >= 0) {
        start = i;
        end = best_end;
        value = best;
        return true;
      }
    }
    return false;
  }

 private:
  struct Node {
    int32_t value = -1;
    uint32_t begin = 0, end = 0;
  };
  struct Edge {
    uint8_t byte;
    int32_t child;
  };
  int32_t child(int32_t node, uint8_t b) const {
    const Node& n = nodes_[size_t(node)];
    for (uint32_t e = n.begin; e < n.end; ++e)
      if (edges_[e].byte == b) return edges_[e].child;
    return -1;
  }
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::array<int32_t, 256> root_{};
  bool empty_ = true;
};

/// A piece of the text: plain text (token < 0) or an added token's id.
struct Segment {
  size_t begin, end;
  int32_t token;
};

class AddedVocabulary {
 public:
  void init(std::vector<AddedToken> tokens) {
    tokens_ = std::move(tokens);
    std::vector<std::pair<std::string_view, int32_t>> plain, normalized;
    for (size_t i = 0; i < tokens_.size(); ++i)
      (tokens_[i].normalized ? normalized : plain).push_back({tokens_[i].content, int32_t(i)});
    plain_.build(plain);
    normalized_.build(normalized);
  }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

  /// Splits text into plain-text and added-token segments (empty text segments dropped).
  void split(std::string_view text, std::vector<Segment>& out) const {
    out.clear();
    std::vector<Segment> first;
    find_matches(text, 0, plain_, first);
    for (const Segment& seg : first) {
      if (seg.token >= 0) {
        out.push_back(seg);
        continue;
      }
      // The normalizers r1 supports leave text unchanged, so pass 2 runs on the same bytes.
      find_matches(text.substr(seg.begin, seg.end - seg.begin), seg.begin, normalized_, out);
    }
    std::erase_if(out, [](const Segment& s) { return s.token < 0 && s.begin == s.end; });
  }

 private:
  static bool ends_with_word(std::string_view s) {
    if (s.empty()) return false;
    const size_t k = unicode::last_len(s.data(), s.size());
    return unicode::props(unicode::decode_valid(s.data() + s.size() - k).cp).word();
  }
  static bool starts_with_word(std::string_view s) {
    return !s.empty() && unicode::props(unicode::decode_valid(s.data()).cp).word();
  }
  // Start of the trailing whitespace run of s (HF: `\s*$`).
  static size_t trailing_space_start(std::string_view s) {
    size_t i = s.size();
    while (i > 0) {
      const size_t k = unicode::last_len(s.data(), i);
      if (!unicode::props(unicode::decode_valid(s.data() + i - k).cp).space()) break;
      i -= k;
    }
    return i;
  }
  // Length of the leading whitespace run of s (HF: `^\s*`).
  static size_t leading_space_len(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
      const unicode::Decoded d = unicode::decode_valid(s.data() + i);
      if (!unicode::props(d.cp).space()) break;
      i += d.len;
    }
    return i;
  }

  // HF AddedVocabulary::find_matches on `sentence` (at `base` in the whole text).
  void find_matches(std::string_view sentence, size_t base, const TokenTrie& trie,
                    std::vector<Segment>& out) const {
    if (trie.empty()) {
      out.push_back({base, base + sentence.size(), -1});
      return;
    }
    size_t start_offset = 0, from = 0, start, stop;
    int32_t k;
    while (trie.find(sentence, from, start, stop, k)) {
      from = stop;  // the search continues after the match whatever the flags do with it
      const AddedToken& t = tokens_[size_t(k)];
      if (t.single_word) {
        const bool start_space = start == 0 || !ends_with_word(sentence.substr(0, start));
        const bool stop_space = stop == sentence.size() || !starts_with_word(sentence.substr(stop));
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) start = std::max(trailing_space_start(sentence.substr(0, start)), start_offset);
      if (t.rstrip) stop += leading_space_len(sentence.substr(stop));
      if (start_offset < start) out.push_back({base + start_offset, base + start, -1});
      out.push_back({base + start, base + stop, t.id});
      start_offset = stop;
    }
    if (start_offset != sentence.size()) out.push_back({base + start_offset, base + sentence.size(), -1});
  }

  std::vector<AddedToken> tokens_;
  TokenTrie plain_, normalized_;
};

}  // namespace r1::io
