// SPDX-License-Identifier: MIT
// safetensors files: a strictly validating, memory-mapped reader and a writer.
//
// Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data section.
// The JSON maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
// to the data section) plus an optional "__metadata__" string->string map.
//
// The reader accepts exactly what the reference implementation (huggingface/safetensors) accepts,
// minus what is listed as stricter in docs/io.md: duplicate keys, unknown fields, dims or offsets
// above 2^48-1, control characters in names, and the caps in io/limits.hpp. In particular:
// offsets must tile the data section exactly (no gap, no overlap, no trailing byte), the byte size
// of every tensor must equal shape x dtype size (overflow-checked in 64 bits), and empty and rank-0
// tensors are valid. Nothing is read past the header at open time.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "r1/core/dtype.hpp"
#include "r1/core/error.hpp"
#include "r1/io/json.hpp"
#include "r1/io/limits.hpp"
#include "r1/io/mmap.hpp"
#include "r1/tensor/shape.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1::io {

/// One tensor of a safetensors file. `begin`/`end` are byte offsets relative to the data section.
struct TensorEntry {
  std::string name;
  DType dtype = DType::u8;
  Shape shape;
  uint64_t begin = 0, end = 0;
  uint64_t nbytes() const { return end - begin; }
};

/// The dtypes a safetensors file may hold for r1, by their safetensors names. r1's own I4X2 is not
/// a safetensors dtype, and dtypes r1 has no type for (F8_E8M0, U16, C64, F4...) are rejected.
inline bool parse_safetensors_dtype(std::string_view s, DType& out) {
  DType d;
  if (!parse_dtype(s, d) || d == DType::i4x2) return false;
  out = d;
  return true;
}

/// A validated safetensors header. Produced by parse_safetensors from the bytes of a whole file.
struct SafetensorsHeader {
  uint64_t header_bytes = 0;  // N
  uint64_t data_begin = 0;    // 8 + N: file offset of the data section
  uint64_t data_bytes = 0;    // size of the data section
  std::vector<TensorEntry> entries;  // ordered by (begin, end, name)
  std::map<std::string, std::string> metadata;
};

namespace detail {

/// Error prefix naming the file and, when known, the tensor and its field.
struct StContext {
  const std::string& source;
  [[noreturn]] void error(const std::string& msg) const { fail("safetensors", source, ": ", msg); }
};

/// SAX handler: the header's JSON schema as a state machine, filling entries and metadata
/// directly (no DOM). Any event the schema does not allow stops the parse with a message that
/// names the tensor and the field.
class HeaderSax {
 public:
  using json = nlohmann::json;
  HeaderSax(std::vector<TensorEntry>& entries, std::map<std::string, std::string>& metadata)
      : entries_(entries), metadata_(metadata) {}

  bool null() { return value("null"); }
  bool boolean(bool) { return value("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    return number(false, 0, detail::str_cat("the negative number ", v));
  }
  bool number_unsigned(json::number_unsigned_t v) { return number(true, v, {}); }
  bool number_float(json::number_float_t, const json::string_t& raw) {
    return number(false, 0, detail::str_cat("the non-integer number ", escaped(raw, 40)));
  }
  bool string(json::string_t& v) {
    switch (state_) {
      case State::meta_value:
        metadata_.emplace(std::move(meta_key_), std::move(v));
        state_ = State::meta;
        return true;
      case State::dtype_value:
        if (!parse_safetensors_dtype(v, entries_.back().dtype)) {
          return field_error(detail::str_cat(
              "unknown dtype ", escaped(v, 40),
              " (r1 reads F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL)"));
        }
        state_ = State::tensor;
        return true;
      default:
        return value("a string");
    }
  }
  bool binary(json::binary_t&) { return value("binary data"); }

  bool start_object(std::size_t) {
    switch (state_) {
      case State::start:
        state_ = State::top;
        return true;
      case State::meta_open:
        state_ = State::meta;
        return true;
      case State::tensor_open:
        have_dtype_ = have_shape_ = have_offsets_ = false;
        state_ = State::tensor;
        return true;
      default:
        return value("an object");
    }
  }
  bool end_object() {
    switch (state_) {
      case State::top:
        state_ = State::done;
        return true;
      case State::meta:
        state_ = State::top;
        return true;
      case State::tensor: {
        const char* missing = !have_dtype_ ? "dtype" : !have_shape_ ? "shape" : !have_offsets_ ? "data_offsets" : nullptr;
        if (missing) {
          return tensor_error(detail::str_cat("missing field \"", missing,
                                              "\" (each tensor needs dtype, shape and data_offsets)"));
        }
        state_ = State::top;
        return true;
      }
      default:
        return error("unexpected end of object");  // unreachable: the parser balances braces
    }
  }
  bool start_array(std::size_t) {
    switch (state_) {
      case State::shape_open:
        state_ = State::shape;
        return true;
      case State::offsets_open:
        count_ = 0;
        state_ = State::offsets;
        return true;
      default:
        return value("an array");
    }
  }
  bool end_array() {
    if (state_ == State::offsets && count_ != 2) {
      field_ = "data_offsets";
      return field_error(detail::str_cat("has ", count_, " elements, expected 2 ([begin, end])"));
    }
    state_ = State::tensor;  // the only arrays the schema allows are shape and data_offsets
    return true;
  }

  bool key(json::string_t& k) {
    switch (state_) {
      case State::top:
        if (k == "__metadata__") {
          if (have_metadata_) return error("duplicate key \"__metadata__\"");
          have_metadata_ = true;
          state_ = State::meta_open;
          return true;
        }
        return new_tensor(k);
      case State::meta:
        if (metadata_.count(k)) return error(detail::str_cat("__metadata__: duplicate key ", escaped(k)));
        if (metadata_.size() >= limits::max_metadata_entries) {
          return error(detail::str_cat("__metadata__ has more than ", limits::max_metadata_entries,
                                       " entries"));
        }
        meta_key_ = std::move(k);
        state_ = State::meta_value;
        return true;
      case State::tensor: {
        bool* seen = nullptr;
        State next = State::tensor;
        if (k == "dtype") {
          seen = &have_dtype_;
          next = State::dtype_value;
        } else if (k == "shape") {
          seen = &have_shape_;
          next = State::shape_open;
        } else if (k == "data_offsets") {
          seen = &have_offsets_;
          next = State::offsets_open;
        } else {
          return tensor_error(detail::str_cat("unknown field ", escaped(k, 60),
                                              " (allowed: dtype, shape, data_offsets)"));
        }
        field_ = k == "dtype" ? "dtype" : k == "shape" ? "shape" : "data_offsets";
        if (*seen) return tensor_error(detail::str_cat("duplicate field \"", field_, "\""));
        *seen = true;
        state_ = next;
        return true;
      }
      default:
        return error("unexpected object key");  // unreachable: keys only occur inside objects
    }
  }

  bool parse_error(std::size_t position, const std::string& last_token, const json::exception& ex) {
    return error(json_syntax_error(position, last_token, ex));
  }

  const std::string& message() const { return message_; }

 private:
  enum class State {
    start, top, meta_open, meta, meta_value, tensor_open, tensor, dtype_value, shape_open, shape,
    offsets_open, offsets, done
  };

  bool error(std::string m) {
    if (message_.empty()) message_ = std::move(m);
    return false;
  }
  bool tensor_error(const std::string& m) {
    return error(detail::str_cat("tensor ", escaped(entries_.back().name), ": ", m));
  }
  bool field_error(const std::string& m) {
    return tensor_error(detail::str_cat("field \"", field_, "\" ", m));
  }

  bool new_tensor(json::string_t& name) {
    if (name.size() > limits::max_name_bytes) {
      return error(detail::str_cat("tensor name ", escaped(name, 60), " is ", name.size(),
                                   " bytes long, over the cap of ", limits::max_name_bytes));
    }
    for (unsigned char c : name) {
      if (c < 0x20 || c == 0x7f) {
        return error(detail::str_cat("tensor name ", escaped(name), " contains a control character"));
      }
    }
    if (entries_.size() >= limits::max_tensors_per_file) {
      return error(detail::str_cat("more tensors than the cap of ", limits::max_tensors_per_file,
                                   " tensors per file"));
    }
    entries_.emplace_back();
    entries_.back().name = std::move(name);
    state_ = State::tensor_open;
    return true;
  }

  // A JSON value that is not a number, in a place the schema does not allow it.
  bool value(const char* what) {
    switch (state_) {
      case State::start:
        return error(detail::str_cat("the header is ", what, ", not a JSON object"));
      case State::meta_open:
        if (std::string_view(what) == "null") {  // the reference reads __metadata__ as an Option
          state_ = State::top;
          return true;
        }
        return error(detail::str_cat("__metadata__ is ", what, ", expected an object of strings"));
      case State::meta_value:
        return error(detail::str_cat("__metadata__ value of ", escaped(meta_key_), " is ", what,
                                     ", expected a string"));
      case State::tensor_open:
        return tensor_error(detail::str_cat("is ", what,
                                            ", expected an object with dtype, shape and data_offsets"));
      case State::dtype_value:
        return field_error(detail::str_cat("is ", what, ", expected a string"));
      case State::shape_open:
      case State::offsets_open:
        return field_error(detail::str_cat("is ", what, ", expected an array of integers"));
      case State::shape:
      case State::offsets:
        return field_error(detail::str_cat("contains ", what, ", expected non-negative integers"));
      default:
        return error(detail::str_cat("unexpected ", what));
    }
  }

  bool number(bool is_unsigned, uint64_t v, const std::string& what) {
    if (state_ != State::shape && state_ != State::offsets) {
      return value(is_unsigned ? "a number" : what.c_str());
    }
    if (!is_unsigned) {
      return field_error(detail::str_cat("contains ", what, ", expected non-negative integers"));
    }
    TensorEntry& e = entries_.back();
    if (state_ == State::shape) {
      if (e.shape.rank >= limits::max_rank) {
        return field_error(detail::str_cat("has more than ", limits::max_rank, " dimensions"));
      }
      if (v > limits::max_dim) {
        return field_error(detail::str_cat("dimension ", v, " exceeds the cap of ", limits::max_dim,
                                           " (2^48-1)"));
      }
      e.shape.dims[e.shape.rank++] = int64_t(v);
      return true;
    }
    if (count_ >= 2) {
      return field_error("has more than 2 elements, expected 2 ([begin, end])");
    }
    if (v > limits::max_offset) {
      return field_error(detail::str_cat("offset ", v, " exceeds the cap of ", limits::max_offset,
                                         " (2^48-1)"));
    }
    (count_ == 0 ? e.begin : e.end) = v;
    ++count_;
    return true;
  }

  std::vector<TensorEntry>& entries_;
  std::map<std::string, std::string>& metadata_;
  State state_ = State::start;
  bool have_metadata_ = false, have_dtype_ = false, have_shape_ = false, have_offsets_ = false;
  const char* field_ = "";
  int count_ = 0;
  std::string meta_key_;
  std::string message_;
};

/// Element count of a shape, or false when the product of its non-zero extents exceeds int64.
/// Checking the non-zero extents makes the result independent of the order of the dimensions
/// (the reference accepts [0, 2^64-1, 2^64-1] but rejects [2^64-1, 2^64-1, 0]). It is stricter
/// than the reference, on purpose: every prefix and suffix product of an accepted shape fits in
/// int64, so Shape::numel() and the strides of a Tensor can never overflow, in any order.
inline bool checked_numel(const Shape& s, uint64_t& out) {
  int64_t n = 1;
  bool zero = false;
  for (int i = 0; i < s.rank; ++i) {
    if (s.dims[i] == 0) {
      zero = true;
    } else if (__builtin_mul_overflow(n, s.dims[i], &n)) {
      return false;
    }
  }
  out = zero ? 0 : uint64_t(n);
  return true;
}

}  // namespace detail

/// Validates the bytes of a whole safetensors file (`size` bytes at `file`) and returns its
/// header. `source` names the file in errors: "safetensors: <source>: tensor "x": ...".
inline SafetensorsHeader parse_safetensors(const uint8_t* file, uint64_t size, const std::string& source) {
  const detail::StContext ctx{source};
  if (size < 8) {
    ctx.error(detail::str_cat("file is ", size,
                              " bytes, too small for the 8-byte header length (truncated or not a "
                              "safetensors file)"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[i];  // little-endian regardless of the host
  if (n == 0) ctx.error("header length is 0 (a header is at least \"{}\")");
  if (n > limits::max_header_bytes) {
    ctx.error(detail::str_cat("header length ", n, " exceeds the cap of ", limits::max_header_bytes,
                              " bytes"));
  }
  if (n > size - 8) {
    ctx.error(detail::str_cat("header length ", n, " runs past the end of the file (", size - 8,
                              " bytes after the length field): truncated file or corrupt length"));
  }
  SafetensorsHeader h;
  h.header_bytes = n;
  h.data_begin = 8 + n;
  h.data_bytes = size - h.data_begin;
  const std::string_view text(reinterpret_cast<const char*>(file + 8), std::size_t(n));

  // The reference accepts leading whitespace (writers may pad to align the data); anything else
  // before '{', e.g. a byte order mark or NUL, is an error.
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) ctx.error("header is all whitespace, expected a JSON object");
  if (text[first] != '{') {
    ctx.error(detail::str_cat("header must be a JSON object, but its first character is ",
                              escaped(text.substr(first, 1)), " at byte ", 8 + first));
  }
  JsonLimits jl;
  jl.max_depth = limits::max_header_depth;
  const JsonScan scan = scan_json(text, jl, "safetensors", source);
  // Counted before anything is stored. __metadata__ counts as an entry here: one fewer tensor at
  // an arbitrary cap costs nothing, and the count needs no parsing.
  if (scan.members[1] > limits::max_tensors_per_file) {
    ctx.error(detail::str_cat("header has ", scan.members[1], " entries, over the cap of ",
                              limits::max_tensors_per_file, " tensors per file"));
  }
  h.entries.reserve(std::size_t(scan.members[1]));
  detail::HeaderSax sax(h.entries, h.metadata);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &sax,
                                   nlohmann::json::input_format_t::json, true, false);
  } catch (const nlohmann::json::exception& e) {
    ctx.error(detail::json_error_text(e));
  }
  if (!ok) ctx.error(sax.message().empty() ? "invalid header" : sax.message());

  // Duplicate names first: with duplicates the offsets checks below would report a misleading
  // overlap or hole. Sort an index so the header order of equal names does not matter.
  {
    std::vector<const TensorEntry*> by_name(h.entries.size());
    for (std::size_t i = 0; i < h.entries.size(); ++i) by_name[i] = &h.entries[i];
    std::sort(by_name.begin(), by_name.end(),
              [](const TensorEntry* a, const TensorEntry* b) { return a->name < b->name; });
    for (std::size_t i = 1; i < by_name.size(); ++i) {
      if (by_name[i]->name == by_name[i - 1]->name) {
        ctx.error(detail::str_cat("tensor ", escaped(by_name[i]->name),
                                  " appears more than once in the header"));
      }
    }
  }
  for (const TensorEntry& e : h.entries) {
    uint64_t numel = 0, bytes = 0;
    if (!detail::checked_numel(e.shape, numel) ||
        __builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &bytes)) {
      ctx.error(detail::str_cat("tensor ", escaped(e.name), ": shape ", e.shape.str(), " x ",
                                dtype_name(e.dtype), " overflows a 64-bit byte count (the product of "
                                "the non-zero extents must fit in int64)"));
    }
    if (e.end < e.begin) {
      ctx.error(detail::str_cat("tensor ", escaped(e.name), ": data_offsets [", e.begin, ", ", e.end,
                                "] end before they begin"));
    }
    if (e.end > h.data_bytes) {
      ctx.error(detail::str_cat("tensor ", escaped(e.name), ": data_offsets [", e.begin, ", ", e.end,
                                "] run past the end of the data section (", h.data_bytes,
                                " bytes): truncated file or corrupt offsets"));
    }
    if (e.end - e.begin != bytes) {
      ctx.error(detail::str_cat("tensor ", escaped(e.name), ": ", dtype_name(e.dtype), " ",
                                e.shape.str(), " needs ", bytes, " bytes but data_offsets [",
                                e.begin, ", ", e.end, "] span ", e.end - e.begin));
    }
  }
  std::sort(h.entries.begin(), h.entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  // The tensors must tile the data section: no hole (a polyglot file could hide data there), no
  // overlap (many tensors on the same bytes), nothing after the last tensor.
  uint64_t pos = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry& e : h.entries) {
    if (e.begin > pos) {
      ctx.error(detail::str_cat("bytes [", pos, ", ", e.begin,
                                ") of the data section belong to no tensor (a hole before tensor ",
                                escaped(e.name), "; tensors must cover the data section exactly)"));
    }
    if (e.begin < pos) {
      ctx.error(detail::str_cat("tensor ", escaped(e.name), " at data_offsets [", e.begin, ", ", e.end,
                                "] overlaps tensor ", escaped(prev->name), " at [", prev->begin, ", ",
                                prev->end, "]"));
    }
    if (e.end > pos) {
      pos = e.end;
      prev = &e;
    }
  }
  if (pos != h.data_bytes) {
    ctx.error(detail::str_cat("the data section has ", h.data_bytes, " bytes but the tensors cover only ",
                              pos, " (", h.data_bytes - pos, " trailing bytes)"));
  }
  return h;
}

/// A memory-mapped, validated safetensors file. Cheap to copy: copies share the mapping, which
/// lives as long as any copy or any tensor borrowed from it.
class SafetensorsFile {
 public:
  SafetensorsFile() = default;

  /// Maps `path` and validates it completely (see parse_safetensors); throws r1::Error.
  static SafetensorsFile open(const std::filesystem::path& path) {
    auto s = std::make_shared<State>();
    s->path = path;
    s->map = MappedFile::open(path, "safetensors");
    s->header = parse_safetensors(s->map->data(), s->map->size(), path.string());
    s->by_name.resize(s->header.entries.size());
    for (std::size_t i = 0; i < s->by_name.size(); ++i) s->by_name[i] = uint32_t(i);
    const auto& ents = s->header.entries;
    std::sort(s->by_name.begin(), s->by_name.end(),
              [&](uint32_t a, uint32_t b) { return ents[a].name < ents[b].name; });
    SafetensorsFile f;
    f.s_ = std::move(s);
    return f;
  }

  const std::filesystem::path& path() const { return state().path; }
  /// Entries ordered by their offsets in the data section.
  const std::vector<TensorEntry>& entries() const { return state().header.entries; }
  const std::map<std::string, std::string>& metadata() const { return state().header.metadata; }
  const SafetensorsHeader& header() const { return state().header; }
  uint64_t file_size() const { return state().map->size(); }

  /// The entry called `name`, or nullptr (binary search over the names).
  const TensorEntry* find(std::string_view name) const {
    const State& s = state();
    const auto& ents = s.header.entries;
    auto it = std::lower_bound(s.by_name.begin(), s.by_name.end(), name,
                               [&](uint32_t i, std::string_view n) { return ents[i].name < n; });
    if (it == s.by_name.end() || ents[*it].name != name) return nullptr;
    return &ents[*it];
  }

  /// Address of the first byte of `e`'s data inside the mapping (`e` must come from this file).
  const uint8_t* data(const TensorEntry& e) const {
    const State& s = state();
    return s.map->data() + s.header.data_begin + e.begin;
  }

  /// Host tensor of `name`. When its data is aligned to its element size (always, for files from
  /// r1's or the reference's writer) the tensor borrows the read-only mapping, which it keeps
  /// alive; do not write through it (copy it first, e.g. with Tensor::to). Misaligned data is
  /// copied into an aligned allocation instead, so typed access is never misaligned.
  Tensor tensor(std::string_view name) const {
    const TensorEntry* e = find(name);
    R1_CHECK(e != nullptr, "safetensors", path().string(), ": no tensor named ", escaped(name));
    return tensor(*e);
  }
  Tensor tensor(const TensorEntry& e) const {
    const uint8_t* p = data(e);
    if (reinterpret_cast<std::uintptr_t>(p) % dtype_size(e.dtype) == 0) {
      return Tensor::borrow(const_cast<uint8_t*>(p), e.dtype, e.shape, Space::host, state().map);
    }
    Tensor t = Tensor::empty(e.dtype, e.shape);  // [e.shape]: an aligned host copy of the bytes
    if (e.nbytes() > 0) std::memcpy(t.data(), p, std::size_t(e.nbytes()));
    return t;
  }

 private:
  struct State {
    std::filesystem::path path;
    std::shared_ptr<const MappedFile> map;
    SafetensorsHeader header;
    std::vector<uint32_t> by_name;  // indices into header.entries, sorted by name
  };
  const State& state() const {
    R1_CHECK(s_ != nullptr, "safetensors", "use of a default-constructed SafetensorsFile");
    return *s_;
  }
  std::shared_ptr<const State> s_;
};

namespace detail {
inline void write_all(int fd, const void* data, std::size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      fail("safetensors.write", path, ": write failed: ", std::strerror(e));
    }
    p += w;
    n -= std::size_t(w);
  }
}
}  // namespace detail

/// Writes `tensors` (any space, any strides) and `metadata` to `path` as safetensors. Like the
/// reference writer it orders the data by descending element size, then by name, and pads the
/// header with spaces to a multiple of 8 bytes, so every tensor is aligned to its element size.
/// The file appears atomically (written under a temporary name, then renamed). Everything it
/// writes passes r1's reader: names and metadata must be valid UTF-8 without control characters
/// in names, names unique and not "__metadata__", dtypes safetensors dtypes.
inline void write_safetensors(const std::filesystem::path& path,
                              const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::string where = path.string();
  R1_CHECK(tensors.size() <= limits::max_tensors_per_file, "safetensors.write", where, ": ",
           tensors.size(), " tensors, over the cap of ", limits::max_tensors_per_file);
  R1_CHECK(metadata.size() <= limits::max_metadata_entries, "safetensors.write", where, ": ",
           metadata.size(), " metadata entries, over the cap of ", limits::max_metadata_entries);
  std::vector<std::size_t> order(tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto& [name, t] = tensors[i];
    R1_CHECK(t.defined(), "safetensors.write", where, ": tensor ", escaped(name), " is empty (undefined)");
    R1_CHECK(t.dtype() != DType::i4x2, "safetensors.write", where, ": tensor ", escaped(name),
             ": I4X2 is not a safetensors dtype (store packed int4 as U8)");
    R1_CHECK(name != "__metadata__", "safetensors.write", where,
             ": \"__metadata__\" is reserved and cannot name a tensor");
    R1_CHECK(name.size() <= limits::max_name_bytes && valid_utf8(name), "safetensors.write", where,
             ": tensor name ", escaped(name), " is not valid UTF-8 of at most ", limits::max_name_bytes,
             " bytes");
    for (unsigned char c : name) {
      R1_CHECK(c >= 0x20 && c != 0x7f, "safetensors.write", where, ": tensor name ", escaped(name),
               " contains a control character");
    }
    order[i] = i;
  }
  for (const auto& [k, v] : metadata) {
    R1_CHECK(valid_utf8(k) && valid_utf8(v), "safetensors.write", where, ": metadata entry ",
             escaped(k), " is not valid UTF-8");
    R1_CHECK(v.size() <= limits::max_json_string_bytes && k.size() <= limits::max_json_string_bytes,
             "safetensors.write", where, ": metadata entry ", escaped(k), " is over ",
             limits::max_json_string_bytes, " bytes");
  }
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const std::size_t sa = dtype_size(tensors[a].second.dtype()), sb = dtype_size(tensors[b].second.dtype());
    if (sa != sb) return sa > sb;
    return tensors[a].first < tensors[b].first;
  });
  for (std::size_t i = 1; i < order.size(); ++i) {
    R1_CHECK(tensors[order[i]].first != tensors[order[i - 1]].first, "safetensors.write", where,
             ": tensor name ", escaped(tensors[order[i]].first), " is given twice");
  }

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (std::size_t i : order) {
    const Tensor& t = tensors[i].second;
    std::vector<int64_t> dims(t.shape().dims, t.shape().dims + t.rank());
    const uint64_t bytes = t.nbytes();
    header[tensors[i].first] = {{"dtype", std::string(dtype_name(t.dtype()))},
                                {"shape", dims},
                                {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  R1_CHECK(text.size() <= limits::max_header_bytes, "safetensors.write", where, ": header of ",
           text.size(), " bytes exceeds the cap of ", limits::max_header_bytes);

  static std::atomic<unsigned> counter{0};
  const std::filesystem::path tmp =
      path.string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int e = errno;
    fail("safetensors.write", where, ": cannot create ", tmp.string(), ": ", std::strerror(e));
  }
  bool open_fd = true;
  try {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    detail::write_all(fd, len, 8, where);
    detail::write_all(fd, text.data(), text.size(), where);
    for (std::size_t i : order) {
      const Tensor& t = tensors[i].second;
      if (t.nbytes() == 0) continue;
      // Device or strided tensors are staged through a contiguous host copy, one at a time.
      const Tensor host = (t.space() == Space::host && t.is_contiguous()) ? t : t.to(Space::host);  // [t.shape()] contiguous, on the host
      detail::write_all(fd, host.data(), host.nbytes(), where);
    }
    int err = ::fsync(fd) == 0 ? 0 : errno;
    open_fd = false;
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0) fail("safetensors.write", where, ": cannot flush: ", std::strerror(err));
  } catch (...) {
    if (open_fd) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    fail("safetensors.write", where, ": cannot rename ", tmp.string(), ": ", std::strerror(e));
  }
}

}  // namespace r1::io
