// SPDX-License-Identifier: MIT
// Byte-level BPE merging of one pre-token, exactly as HF's BPE model (models/bpe/word.rs): start
// from one symbol per byte, repeatedly merge the adjacent pair with the lowest merge rank
// (leftmost first on ties), until no pair has a merge.
//
// O(n log n) per pre-token: a tournament tree of candidate merges over a doubly linked list of
// symbols (HF uses a heap; both pick the same merges), so a 1 MiB pre-token (1 MiB of one letter)
// stays fast. Repeated pre-tokens hit a per-session cache.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "r1/core/error.hpp"
#include "r1/io/hash.hpp"

namespace r1::io {

/// The GPT-2 byte <-> character map of byte-level BPE: printable Latin-1 bytes map to themselves,
/// the other 68 bytes to U+0100.. in byte order.
inline std::array<char32_t, 256> byte_level_chars() {
  std::array<char32_t, 256> m{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    m[size_t(b)] = printable ? char32_t(b) : next++;
  }
  return m;
}

class Bpe {
 public:
  struct Merge {
    uint32_t rank;
    int32_t id;  // the merged token
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }
  static constexpr uint64_t no_pair = UINT64_MAX;
  /// The priority of the pair (a, b) at position i: rank-major, then position.
  uint64_t key_of(int32_t a, int32_t b, size_t i) const {
    const Merge* m = find_merge(a, b);
    return m ? (uint64_t(m->rank) << 32 | i) : no_pair;
  }

  /// vocab: the model's token -> id map; byte_ids[b]: the id of byte b's byte-level character.
  void init(detail::StringIdMap vocab, const std::array<int32_t, 256>& byte_ids, bool ignore_merges) {
    vocab_ = std::move(vocab);
    byte_ids_ = byte_ids;
    ignore_merges_ = ignore_merges;
    const auto chars = byte_level_chars();
    for (int b = 0; b < 256; ++b) {
      std::string& s = byte_utf8_[size_t(b)];
      const char32_t c = chars[size_t(b)];
      if (c < 0x80) {
        s = std::string(1, char(c));
      } else {
        s += char(0xC0 | (c >> 6));
        s += char(0x80 | (c & 0x3F));
      }
    }
  }
  void reserve_merges(size_t n) { merges_.reserve(n); }
  /// A later merge of the same pair replaces an earlier one (HF collects merges into a map).
  void add_merge(int32_t a, int32_t b, int32_t merged, uint32_t rank) {
    merges_.insert_or_assign(pair_key(a, b), Merge{rank, merged});
  }
  const Merge* find_merge(int32_t a, int32_t b) const { return merges_.find(pair_key(a, b)); }
  size_t merge_count() const { return merges_.size(); }
  const detail::StringIdMap& vocab() const { return vocab_; }

  /// Scratch memory and a cache of recent pre-tokens, for one thread.
  class Session {
   public:
    static constexpr size_t cache_max_word = 64;
    static constexpr size_t cache_slots = 1 << 14;
    static constexpr size_t cache_after_words = 256;

   private:
    friend class Bpe;
    struct Symbol {
      int32_t id, prev, next;
    };
    struct CacheSlot {
      uint64_t hash = 0;
      uint32_t key_off = 0, key_len = 0, ids_off = 0, ids_len = 0;
      bool used = false;
    };
    std::vector<Symbol> symbols;
    std::vector<uint64_t> tree;
    std::vector<size_t> level_offsets;
    std::vector<int32_t> small_ids;
    std::vector<uint64_t> small_keys;
    std::string mapped;
    std::vector<CacheSlot> cache;
    std::string cache_keys;
    std::vector<int32_t> cache_ids;
    size_t words = 0;
  };

  /// Appends the ids of one pre-token (raw bytes) to out.
  void encode(std::string_view word, std::vector<int32_t>& out, Session& s) const {
    if (word.empty()) return;
    if (word.size() == 1) {
      out.push_back(byte_ids_[uint8_t(word[0])]);
      return;
    }
    if (ignore_merges_) {
      s.mapped.clear();
      for (char c : word) s.mapped += byte_utf8_[uint8_t(c)];
      if (const auto id = vocab_.find(s.mapped)) {
        out.push_back(*id);
        return;
      }
    }
    // The cache pays off only over many words: short texts (a chat turn) skip allocating it.
    if (word.size() > Session::cache_max_word || ++s.words < Session::cache_after_words) {
      merge(word, out, s);
      return;
    }
    if (s.cache.empty()) s.cache.resize(Session::cache_slots);
    const uint64_t h = detail::hash_bytes(word);
    Session::CacheSlot& slot = s.cache[h & (Session::cache_slots - 1)];
    if (slot.used && slot.hash == h &&
        std::string_view(s.cache_keys).substr(slot.key_off, slot.key_len) == word) {
      out.insert(out.end(), s.cache_ids.begin() + slot.ids_off,
                 s.cache_ids.begin() + slot.ids_off + slot.ids_len);
      return;
    }
    const size_t before = out.size();
    merge(word, out, s);
    // Direct-mapped: a colliding word simply replaces the slot; the arenas are reset when they
    // grow large so a long text cannot grow the cache without bound.
    if (s.cache_keys.size() > (8u << 20) || s.cache_ids.size() > (2u << 20)) {
      s.cache_keys.clear();
      s.cache_ids.clear();
      std::fill(s.cache.begin(), s.cache.end(), Session::CacheSlot{});
    }
    slot.used = true;
    slot.hash = h;
    slot.key_off = uint32_t(s.cache_keys.size());
    slot.key_len = uint32_t(word.size());
    s.cache_keys.append(word);
    slot.ids_off = uint32_t(s.cache_ids.size());
    slot.ids_len = uint32_t(out.size() - before);
    s.cache_ids.insert(s.cache_ids.end(), out.begin() + ptrdiff_t(before), out.end());
  }

  /// The merge loop itself, without the cache. Short words use a linear scan per merge; long
  /// ones a tournament tree. Both merge the lowest-rank pair first, leftmost on ties, which is
  /// exactly the order of HF's heap (whose stale entries never win: see merge_tree).
  void merge(std::string_view word, std::vector<int32_t>& out, Session& s) const {
    if (word.size() <= naive_max) {
      merge_naive(word, out, s);
    } else {
      merge_tree(word, out, s);
    }
  }
  static constexpr size_t naive_max = 24;

  /// O(n^2) for tiny n: find the minimum (rank, position) pair by a scan, merge, repeat.
  void merge_naive(std::string_view word, std::vector<int32_t>& out, Session& s) const {
    const size_t n = word.size();
    auto& ids = s.small_ids;
    auto& keys = s.small_keys;  // keys[i]: (rank << 32 | i) of the pair (ids[i], ids[i+1])
    ids.resize(n);
    keys.resize(n);
    for (size_t i = 0; i < n; ++i) ids[i] = byte_ids_[uint8_t(word[i])];
    size_t count = n;
    for (size_t i = 0; i + 1 < count; ++i) keys[i] = key_of(ids[i], ids[i + 1], i);
    while (count > 1) {
      size_t best = 0;
      for (size_t i = 1; i + 1 < count; ++i)
        if (keys[i] < keys[best]) best = i;
      if (keys[best] == no_pair) break;
      ids[best] = find_merge(ids[best], ids[best + 1])->id;
      for (size_t i = best + 1; i + 1 < count; ++i) ids[i] = ids[i + 1];
      for (size_t i = best + 1; i + 2 < count; ++i)
        keys[i] = keys[i + 1] == no_pair ? no_pair : ((keys[i + 1] & ~uint64_t(0xffffffffu)) | i);
      --count;
      if (best + 1 < count) keys[best] = key_of(ids[best], ids[best + 1], best);
      if (best > 0) keys[best - 1] = key_of(ids[best - 1], ids[best], best - 1);
    }
    out.insert(out.end(), ids.begin(), ids.begin() + ptrdiff_t(count));
  }

  /// O(n log n) with good locality: an 8-ary tournament (min) tree over symbol positions whose
  /// leaf i holds the (rank << 32 | i) key of the pair starting at symbol i, kept current on
  /// every merge; a node's 8 children fill one cache line. HF keeps a heap with stale entries
  /// instead; an entry it does not skip always describes the current pair at its position (a
  /// symbol only grows by absorbing its whole right neighbour, so the same merged token at the
  /// same position means the same pair), so both pick the same merge every time.
  void merge_tree(std::string_view word, std::vector<int32_t>& out, Session& s) const {
    const size_t n = word.size();
    R1_CHECK(n < (size_t{1} << 31), "tokenizer.encode", "a single pre-token of ", n,
             " bytes is too long (limit 2 GiB)");
    auto& sym = s.symbols;
    sym.resize(n);
    for (size_t i = 0; i < n; ++i)
      sym[i] = {byte_ids_[uint8_t(word[i])], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1};
    // Levels, leaves first, each padded to a multiple of 8 (the last has one node).
    auto& off = s.level_offsets;
    off.clear();
    size_t total = 0, width = n;
    for (;;) {
      off.push_back(total);
      const size_t padded = width == 1 ? 1 : (width + 7) / 8 * 8;
      total += padded;
      if (width == 1) break;
      width = (width + 7) / 8;
    }
    auto& tree = s.tree;
    tree.assign(total, no_pair);
    for (size_t i = 0; i + 1 < n; ++i) tree[i] = key_of(sym[i].id, sym[i + 1].id, i);
    const size_t levels = off.size();
    const auto min8 = [&](size_t level, size_t parent) {
      const uint64_t* c = tree.data() + off[level - 1] + parent * 8;
      uint64_t m = c[0];
      for (int k = 1; k < 8; ++k) m = std::min(m, c[k]);
      return m;
    };
    for (size_t level = 1; level < levels; ++level) {
      const size_t count = (level + 1 < levels ? off[level + 1] : total) - off[level];
      for (size_t p = 0; p < count; ++p)
        if ((p * 8) < (off[level] - off[level - 1])) tree[off[level] + p] = min8(level, p);
    }
    const auto pair_key = [&](int32_t i) {
      const int32_t j = sym[size_t(i)].next;
      return j < 0 ? no_pair : key_of(sym[size_t(i)].id, sym[size_t(j)].id, size_t(i));
    };
    size_t idx[3];
    while (tree[off[levels - 1]] != no_pair) {
      const int32_t pos = int32_t(tree[off[levels - 1]] & 0xffffffffu);
      Session::Symbol& left = sym[size_t(pos)];
      const int32_t right = left.next;
      left.id = find_merge(left.id, sym[size_t(right)].id)->id;
      left.next = sym[size_t(right)].next;
      sym[size_t(right)].id = -1;
      if (left.next >= 0) sym[size_t(left.next)].prev = pos;
      // Update the (up to) three leaves, then their ancestors level by level, once each.
      size_t m = 0;
      if (left.prev >= 0) {
        tree[size_t(left.prev)] = pair_key(left.prev);
        idx[m++] = size_t(left.prev);
      }
      tree[size_t(pos)] = pair_key(pos);
      idx[m++] = size_t(pos);
      tree[size_t(right)] = no_pair;
      idx[m++] = size_t(right);
      for (size_t level = 1; level < levels && m > 0; ++level) {
        size_t kept = 0;
        for (size_t k = 0; k < m; ++k) {
          const size_t parent = idx[k] / 8;
          if (kept > 0 && idx[kept - 1] == parent) continue;  // indices are ascending
          const uint64_t v = min8(level, parent);
          uint64_t& node = tree[off[level] + parent];
          if (node == v) continue;  // nothing above it changes
          node = v;
          idx[kept++] = parent;
        }
        m = kept;
      }
    }
    for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
  }

 private:
  std::array<int32_t, 256> byte_ids_{};
  std::array<std::string, 256> byte_utf8_;
  detail::StringIdMap vocab_;
  bool ignore_merges_ = false;
  detail::U64Map<Merge> merges_;
};

}  // namespace r1::io
