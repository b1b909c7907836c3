// SPDX-License-Identifier: MIT
// Byte-level BPE merging of one pre-token, exactly as HF's BPE model (models/bpe/word.rs): start
// from one symbol per byte, repeatedly merge the adjacent pair with the lowest merge rank
// (leftmost first on ties), until no pair has a merge.
//
// O(n log n) per pre-token: a min-heap of candidate merges over a doubly linked list of symbols,
// with stale heap entries skipped on pop (as HF does), so a 1 MiB pre-token (1 MiB of one letter)
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

   private:
    friend class Bpe;
    struct Symbol {
      int32_t id, prev, next;
    };
    struct Candidate {
      uint64_t key;  // rank << 32 | position: a min-heap on this is HF's order
      int32_t id;
      bool operator>(const Candidate& o) const { return key > o.key; }
    };
    struct CacheSlot {
      uint64_t hash = 0;
      uint32_t key_off = 0, key_len = 0, ids_off = 0, ids_len = 0;
      bool used = false;
    };
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
    std::string mapped;
    std::vector<CacheSlot> cache;
    std::string cache_keys;
    std::vector<int32_t> cache_ids;
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
    if (word.size() > Session::cache_max_word) {
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

  /// The merge loop itself, without the cache (tests compare it with a naive reference).
  void merge(std::string_view word, std::vector<int32_t>& out, Session& s) const {
    const size_t n = word.size();
    R1_CHECK(n < (size_t{1} << 31), "tokenizer.encode", "a single pre-token of ", n,
             " bytes is too long (limit 2 GiB)");
    auto& sym = s.symbols;
    sym.resize(n);
    for (size_t i = 0; i < n; ++i)
      sym[i] = {byte_ids_[uint8_t(word[i])], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1};
    auto& heap = s.heap;
    heap.clear();
    for (size_t i = 0; i + 1 < n; ++i)
      if (const Merge* m = find_merge(sym[i].id, sym[i + 1].id))
        heap.push_back({uint64_t(m->rank) << 32 | i, m->id});
    const auto cmp = std::greater<Session::Candidate>();
    std::make_heap(heap.begin(), heap.end(), cmp);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), cmp);
      const Session::Candidate top = heap.back();
      heap.pop_back();
      const int32_t pos = int32_t(top.key & 0xffffffffu);
      Session::Symbol& left = sym[size_t(pos)];
      if (left.id < 0 || left.next < 0) continue;  // merged away, or now last
      const int32_t right_pos = left.next;
      const Merge* m = find_merge(left.id, sym[size_t(right_pos)].id);
      if (m == nullptr || m->id != top.id) continue;  // stale: the pair has changed
      left.id = top.id;
      left.next = sym[size_t(right_pos)].next;
      sym[size_t(right_pos)].id = -1;
      if (left.next >= 0) sym[size_t(left.next)].prev = pos;
      if (left.prev >= 0) {
        if (const Merge* p = find_merge(sym[size_t(left.prev)].id, left.id)) {
          heap.push_back({uint64_t(p->rank) << 32 | uint32_t(left.prev), p->id});
          std::push_heap(heap.begin(), heap.end(), cmp);
        }
      }
      if (left.next >= 0) {
        if (const Merge* p = find_merge(left.id, sym[size_t(left.next)].id)) {
          heap.push_back({uint64_t(p->rank) << 32 | uint32_t(pos), p->id});
          std::push_heap(heap.begin(), heap.end(), cmp);
        }
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
