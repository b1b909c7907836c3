// SPDX-License-Identifier: MIT
// Small open-addressing hash maps for the tokenizer's hot paths: token string -> id (128k
// entries) and merge pair -> (rank, id). Built once at load, then read-only, so they need no
// deletion and can be probed from many threads at once.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r1::io::detail {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (s.size() * 0xbf58476d1ce4e5b9ull);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ mix64(w)) * 0x94d049bb133111ebull;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  return mix64(h ^ w ^ (uint64_t(n) << 59));
}

inline size_t table_size_for(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  return cap;
}

/// uint64 key -> V. Keys must not be UINT64_MAX (the empty marker). Key and value share a slot,
/// so a lookup touches one cache line.
template <class V>
class U64Map {
 public:
  void reserve(size_t n) {
    const size_t cap = table_size_for(n);
    if (cap <= slots_.size()) return;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& s : old)
      if (s.key != empty) insert_or_assign(s.key, s.value);
  }
  void insert_or_assign(uint64_t key, const V& v) {
    if ((size_ + 1) * 2 > slots_.size()) reserve(size_ + 1);
    size_t i = mix64(key) & mask_;
    while (slots_[i].key != empty && slots_[i].key != key) i = (i + 1) & mask_;
    if (slots_[i].key == empty) ++size_;
    slots_[i] = {key, v};
  }
  const V* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    size_t i = mix64(key) & mask_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == empty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t empty = UINT64_MAX;
  struct Slot {
    uint64_t key = empty;
    V value{};
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

/// string -> int32 id; the strings are copied into one arena.
class StringIdMap {
 public:
  void reserve(size_t n) {
    const size_t cap = table_size_for(n);
    if (cap <= slots_.size()) return;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old)
      if (s.len != empty_len) place(s);
  }
  /// Inserts s -> id; returns false (and changes nothing) if s is already present.
  bool insert(std::string_view s, int32_t id) {
    if ((entries_ + 1) * 2 > slots_.size()) reserve(entries_ + 1);
    const uint64_t h = hash_bytes(s);
    size_t i = h & mask_;
    while (slots_[i].len != empty_len) {
      if (slots_[i].hash == h && key(slots_[i]) == s) return false;
      i = (i + 1) & mask_;
    }
    Slot slot{h, arena_.size(), uint32_t(s.size()), id};
    arena_.append(s);
    slots_[i] = slot;
    ++entries_;
    return true;
  }
  std::optional<int32_t> find(std::string_view s) const {
    if (slots_.empty()) return std::nullopt;
    const uint64_t h = hash_bytes(s);
    size_t i = h & mask_;
    while (slots_[i].len != empty_len) {
      if (slots_[i].hash == h && key(slots_[i]) == s) return slots_[i].id;
      i = (i + 1) & mask_;
    }
    return std::nullopt;
  }
  size_t size() const { return entries_; }

 private:
  static constexpr uint32_t empty_len = UINT32_MAX;
  struct Slot {
    uint64_t hash = 0;
    size_t offset = 0;
    uint32_t len = empty_len;
    int32_t id = -1;
  };
  std::string_view key(const Slot& s) const { return std::string_view(arena_).substr(s.offset, s.len); }
  void place(const Slot& s) {
    size_t i = s.hash & mask_;
    while (slots_[i].len != empty_len) i = (i + 1) & mask_;
    slots_[i] = s;
  }
  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0, entries_ = 0;
};

}  // namespace r1::io::detail
