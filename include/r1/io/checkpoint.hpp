// SPDX-License-Identifier: MIT
// A Hugging Face checkpoint directory: config.json plus safetensors shards, found through
// model.safetensors.index.json or, without an index, as the directory's model*.safetensors files.
//
// Opening validates everything that can be validated without reading tensor data: every shard in
// full (see safetensors.hpp), the index against the shards (each listed tensor is in the shard the
// index names, each stored tensor is listed, no tensor is in two shards), and every file name
// against escapes from the directory. Tensor data is only touched when a tensor is used.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
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
#include "r1/io/safetensors.hpp"
#include "r1/tensor/shape.hpp"
#include "r1/tensor/tensor.hpp"

namespace r1::io {

inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
inline constexpr const char* kConfigFileName = "config.json";

/// Contents of model.safetensors.index.json.
struct SafetensorsIndex {
  std::vector<std::string> shards;                             // distinct shard file names, sorted
  std::vector<std::pair<std::string, uint32_t>> weight_map;    // tensor -> index into shards, sorted
  std::optional<uint64_t> total_size;                          // metadata.total_size, if an integer
};

/// Whether `name` may name a shard: a plain file name ending in ".safetensors", with no directory
/// part, no "..", no control characters, at most limits::max_shard_name_bytes bytes. Returns the
/// reason it may not, or nullptr.
inline const char* shard_name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > limits::max_shard_name_bytes) return "is longer than 255 bytes";
  if (name == "." || name == "..") return "is not a file name";
  for (unsigned char c : name) {
    if (c == '/' || c == '\\') {
      return "contains a path separator (shards must be plain file names inside the checkpoint "
             "directory; absolute paths and \"..\" are not allowed)";
    }
    if (c < 0x20 || c == 0x7f) return "contains a control character";
  }
  constexpr std::string_view ext = ".safetensors";
  if (name.size() <= ext.size() || name.substr(name.size() - ext.size()) != ext) {
    return "does not end in \".safetensors\"";
  }
  return nullptr;
}

namespace detail {

/// SAX handler for the index: {"metadata": {...}, "weight_map": {tensor: shard, ...}}. Other
/// top-level keys and the content of "metadata" are skipped (depth is capped by scan_json).
class IndexSax {
 public:
  using json = nlohmann::json;
  IndexSax(std::vector<std::pair<std::string, std::string>>& entries, std::optional<uint64_t>& total_size)
      : entries_(entries), total_size_(total_size) {}

  bool null() { return scalar("null"); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t) { return scalar("a number"); }
  bool number_unsigned(json::number_unsigned_t v) {
    if (state_ == State::metadata && skip_ == 0 && key_ == "total_size") total_size_ = v;
    return scalar("a number");
  }
  bool number_float(json::number_float_t, const json::string_t&) { return scalar("a number"); }
  bool binary(json::binary_t&) { return scalar("binary data"); }
  bool string(json::string_t& v) {
    if (state_ == State::wm_value) {
      if (const char* why = shard_name_problem(v)) {
        return error(str_cat("weight_map[", escaped(entries_.back().first), "] = ", escaped(v), ": ", why));
      }
      entries_.back().second = std::move(v);
      state_ = State::weight_map;
      return true;
    }
    return scalar("a string");
  }
  bool start_object(std::size_t) {
    switch (state_) {
      case State::start:
        state_ = State::top;
        return true;
      case State::wm_open:
        state_ = State::weight_map;
        return true;
      case State::meta_open:
        state_ = State::metadata;
        return true;
      default:
        return nested();
    }
  }
  bool start_array(std::size_t) {
    switch (state_) {
      case State::start: return error("the index is an array, not a JSON object");
      case State::wm_open: return error("weight_map is an array, expected an object");
      case State::meta_open: return error("metadata is an array, expected an object");
      default: return nested();
    }
  }
  bool end_object() { return end(); }
  bool end_array() { return end(); }
  bool key(json::string_t& k) {
    if (skip_ > 0) return true;
    switch (state_) {
      case State::top:
        if (k == "weight_map" || k == "metadata") {
          bool& seen = k == "weight_map" ? have_wm_ : have_meta_;
          if (seen) return error(str_cat("duplicate key ", escaped(k)));
          seen = true;
          state_ = k == "weight_map" ? State::wm_open : State::meta_open;
        } else {
          state_ = State::top_skip;  // unknown top-level keys are tolerated and ignored
        }
        return true;
      case State::weight_map:
        if (k.size() > limits::max_name_bytes) {
          return error(str_cat("weight_map: tensor name ", escaped(k, 60), " is ", k.size(),
                               " bytes long, over the cap of ", limits::max_name_bytes));
        }
        for (unsigned char c : k) {
          if (c < 0x20 || c == 0x7f) {
            return error(str_cat("weight_map: tensor name ", escaped(k), " contains a control character"));
          }
        }
        if (entries_.size() >= limits::max_index_entries) {
          return error(str_cat("weight_map has more than ", limits::max_index_entries, " entries"));
        }
        entries_.emplace_back(std::move(k), std::string());
        state_ = State::wm_value;
        return true;
      case State::metadata:
        key_ = std::move(k);
        return true;
      default:
        return true;  // unreachable: keys only occur inside objects
    }
  }
  bool parse_error(std::size_t position, const std::string& last_token, const json::exception& ex) {
    return error(json_syntax_error(position, last_token, ex));
  }

  bool finished_with_weight_map() const { return have_wm_; }
  const std::string& message() const { return message_; }

 private:
  enum class State { start, top, top_skip, wm_open, weight_map, wm_value, meta_open, metadata, done };

  bool error(std::string m) {
    if (message_.empty()) message_ = std::move(m);
    return false;
  }
  bool scalar(const char* what) {
    if (skip_ > 0) return true;
    switch (state_) {
      case State::start: return error(str_cat("the index is ", what, ", not a JSON object"));
      case State::top_skip: state_ = State::top; return true;
      case State::metadata: return true;
      case State::wm_open: return error(str_cat("weight_map is ", what, ", expected an object"));
      case State::meta_open: return error(str_cat("metadata is ", what, ", expected an object"));
      case State::wm_value:
        return error(str_cat("weight_map[", escaped(entries_.back().first), "] is ", what,
                             ", expected a shard file name"));
      default: return error(str_cat("unexpected ", what));
    }
  }
  // An array or object where the schema has no structure: skipped when ignorable, else an error.
  bool nested() {
    if (skip_ > 0 || state_ == State::top_skip || state_ == State::metadata) {
      ++skip_;
      return true;
    }
    if (state_ == State::wm_value) {
      return error(str_cat("weight_map[", escaped(entries_.back().first),
                           "] is not a string, expected a shard file name"));
    }
    return error("unexpected nested value");
  }
  bool end() {
    if (skip_ > 0) {
      if (--skip_ == 0 && state_ == State::top_skip) state_ = State::top;
      return true;
    }
    switch (state_) {
      case State::top: state_ = State::done; return true;
      case State::weight_map:
      case State::metadata: state_ = State::top; return true;
      default: return error("unexpected end of object");
    }
  }

  std::vector<std::pair<std::string, std::string>>& entries_;
  std::optional<uint64_t>& total_size_;
  State state_ = State::start;
  bool have_wm_ = false, have_meta_ = false;
  int skip_ = 0;
  std::string key_;
  std::string message_;
};

/// True when `p` is `dir` or inside it (both canonical).
inline bool path_within(const std::filesystem::path& p, const std::filesystem::path& dir) {
  auto pi = p.begin();
  for (auto di = dir.begin(); di != dir.end(); ++di, ++pi) {
    if (di->empty()) continue;  // a trailing separator
    if (pi == p.end() || *pi != *di) return false;
  }
  return true;
}

}  // namespace detail

/// Parses the text of a model.safetensors.index.json; `source` names it in errors.
inline SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& source) {
  if (text.size() > limits::max_index_bytes) {
    fail("checkpoint.index", source, ": ", text.size(), " bytes, over the cap of ",
         limits::max_index_bytes);
  }
  if (detail::starts_with_bom(text)) {
    fail("checkpoint.index", source, ": starts with a UTF-8 byte order mark, which JSON does not allow");
  }
  JsonLimits jl;
  jl.max_depth = limits::max_index_depth;
  const JsonScan scan = scan_json(text, jl, "checkpoint.index", source);
  std::vector<std::pair<std::string, std::string>> raw;
  raw.reserve(std::size_t(std::min<uint64_t>(scan.members[2], limits::max_index_entries)));
  SafetensorsIndex idx;
  detail::IndexSax sax(raw, idx.total_size);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &sax,
                                   nlohmann::json::input_format_t::json, true, false);
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint.index", source, ": ", detail::json_error_text(e));
  }
  if (!ok) fail("checkpoint.index", source, ": ", sax.message().empty() ? "invalid JSON" : sax.message());
  R1_CHECK(sax.finished_with_weight_map(), "checkpoint.index", source, ": has no \"weight_map\" object");
  R1_CHECK(!raw.empty(), "checkpoint.index", source, ": weight_map is empty");

  std::sort(raw.begin(), raw.end());
  for (std::size_t i = 1; i < raw.size(); ++i) {
    if (raw[i].first == raw[i - 1].first) {
      fail("checkpoint.index", source, ": tensor ", escaped(raw[i].first),
           " is listed more than once in weight_map");
    }
  }
  for (const auto& [name, shard] : raw) idx.shards.push_back(shard);
  std::sort(idx.shards.begin(), idx.shards.end());
  idx.shards.erase(std::unique(idx.shards.begin(), idx.shards.end()), idx.shards.end());
  R1_CHECK(idx.shards.size() <= limits::max_shards, "checkpoint.index", source, ": ",
           idx.shards.size(), " distinct shard files, over the cap of ", limits::max_shards);
  idx.weight_map.reserve(raw.size());
  for (auto& [name, shard] : raw) {
    const auto it = std::lower_bound(idx.shards.begin(), idx.shards.end(), shard);
    idx.weight_map.emplace_back(std::move(name), uint32_t(it - idx.shards.begin()));
  }
  return idx;
}

/// A checkpoint directory, opened and cross-checked. Cheap to copy (shared state).
class Checkpoint {
 public:
  Checkpoint() = default;

  /// Opens `dir`: config.json (required), then model.safetensors.index.json and the shards it
  /// names, or without an index every model*.safetensors file in `dir` (not subdirectories).
  static Checkpoint open(const std::filesystem::path& dir) { return open_impl(dir, {}, true); }

  /// Opens the shards of an index file (its directory's config.json is read when present;
  /// config_json() is null otherwise). This is what `r1-inspect model.safetensors.index.json` does.
  static Checkpoint open_index(const std::filesystem::path& index_file) {
    std::filesystem::path dir = index_file.parent_path();
    if (dir.empty()) dir = ".";
    return open_impl(dir, index_file, false);
  }

  const std::filesystem::path& dir() const { return state().dir; }
  bool has(std::string_view name) const { return locate(name) != nullptr; }
  /// The entry of `name` in its shard, or nullptr.
  const TensorEntry* find(std::string_view name) const {
    const Loc* l = locate(name);
    return l ? state().shards[l->shard].find(name) : nullptr;
  }
  /// All tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(state().names.size());
    for (const Loc& l : state().names) out.emplace_back(l.name);
    return out;
  }
  std::size_t size() const { return state().names.size(); }
  /// The shard holding `name`; throws when absent.
  const SafetensorsFile& shard_of(std::string_view name) const {
    const Loc* l = locate(name);
    R1_CHECK(l != nullptr, "checkpoint", dir().string(), ": no tensor named ", escaped(name));
    return state().shards[l->shard];
  }
  /// The opened shards, in file-name order.
  const std::vector<SafetensorsFile>& shards() const { return state().shards; }
  /// Whether the tensors were found through model.safetensors.index.json.
  bool indexed() const { return state().indexed; }

  /// Host tensor `name` (borrowing the mapping, see SafetensorsFile::tensor).
  Tensor get(std::string_view name) const { return shard_of(name).tensor(name); }
  /// As get(name), after checking the dtype and shape the caller expects.
  Tensor get(std::string_view name, DType dtype, const Shape& expected) const {
    const Loc* l = locate(name);
    R1_CHECK(l != nullptr, "checkpoint", dir().string(), ": no tensor named ", escaped(name),
             " (expected ", dtype_name(dtype), " ", expected.str(), ")");
    const SafetensorsFile& f = state().shards[l->shard];
    const TensorEntry* e = f.find(name);
    R1_CHECK(e->dtype == dtype && e->shape == expected, "checkpoint", f.path().string(),
             ": tensor ", escaped(name), " is ", dtype_name(e->dtype), " ", e->shape.str(),
             ", expected ", dtype_name(dtype), " ", expected.str());
    return f.tensor(*e);
  }

  /// The parsed config.json (null when open_index found none).
  const nlohmann::json& config_json() const { return state().config; }

 private:
  struct Loc {
    std::string_view name;  // points into the shard's entry, which the shared state keeps alive
    uint32_t shard;
  };
  struct State {
    std::filesystem::path dir;
    nlohmann::json config;
    std::vector<SafetensorsFile> shards;
    std::vector<Loc> names;  // sorted by name
    bool indexed = false;
  };

  const State& state() const {
    R1_CHECK(s_ != nullptr, "checkpoint", "use of a default-constructed Checkpoint");
    return *s_;
  }
  const Loc* locate(std::string_view name) const {
    const auto& v = state().names;
    auto it = std::lower_bound(v.begin(), v.end(), name,
                               [](const Loc& l, std::string_view n) { return l.name < n; });
    return it != v.end() && it->name == name ? &*it : nullptr;
  }

  // Resolves `name` in `dir` (canonical) and checks that the file it reaches stays inside `dir`.
  // One exception: the Hugging Face hub cache keeps checkpoints as snapshots/<rev>/<file> symlinks
  // to ../../blobs/<hash>; a target inside that repository's blobs/ is accepted.
  static std::filesystem::path resolve_inside(const std::filesystem::path& dir, const std::string& name,
                                              const char* what) {
    namespace fs = std::filesystem;
    const fs::path p = dir / name;
    std::error_code ec;
    const fs::path real = fs::canonical(p, ec);
    if (ec) fail("checkpoint", dir.string(), ": ", what, " ", escaped(name), " cannot be opened: ", ec.message());
    const fs::path snapshots = dir.parent_path();
    const bool in_dir = detail::path_within(real, dir);
    const bool in_hub_blobs = snapshots.filename() == "snapshots" &&
                              detail::path_within(real, snapshots.parent_path() / "blobs");
    if (!in_dir && !in_hub_blobs) {
      fail("checkpoint", dir.string(), ": ", what, " ", escaped(name), " resolves to ", real.string(),
           ", outside the checkpoint directory");
    }
    return real;
  }

  static Checkpoint open_impl(const std::filesystem::path& dir_in, std::filesystem::path index_file,
                              bool require_config) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(dir_in, ec);
    R1_CHECK(!ec && fs::is_directory(st), "checkpoint", dir_in.string(), ": ",
             ec ? ec.message() : std::string("not a directory"));
    auto s = std::make_shared<State>();
    s->dir = dir_in;
    const fs::path dir = fs::canonical(dir_in, ec);
    R1_CHECK(!ec, "checkpoint", dir_in.string(), ": ", ec.message());

    // config.json
    const bool have_config = fs::exists(dir / kConfigFileName, ec);
    R1_CHECK(have_config || !require_config, "checkpoint", dir_in.string(), ": no ", kConfigFileName);
    if (have_config) {
      JsonLimits jl;
      jl.max_depth = limits::max_config_depth;
      const fs::path cfg = resolve_inside(dir, kConfigFileName, "config file");
      s->config = read_json_file(cfg, limits::max_config_bytes, jl, "config");
      R1_CHECK(s->config.is_object(), "config", (dir_in / kConfigFileName).string(),
               ": expected a JSON object, got ", s->config.type_name());
    }

    // The shard list, from the index or from the directory.
    std::optional<SafetensorsIndex> index;
    if (index_file.empty() && fs::exists(dir / kIndexFileName, ec)) index_file = dir_in / kIndexFileName;
    std::vector<std::string> shard_names;
    if (!index_file.empty()) {
      const fs::path real = resolve_inside(dir, index_file.filename().string(), "index file");
      const auto f = MappedFile::open(real, "checkpoint.index", limits::max_index_bytes);
      index = parse_safetensors_index(f->text(), index_file.string());
      shard_names = index->shards;
      s->indexed = true;
    } else {
      for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string fname = it->path().filename().string();
        if (fname.rfind("model", 0) == 0 && fname.size() > 12 &&
            fname.compare(fname.size() - 12, 12, ".safetensors") == 0) {
          shard_names.push_back(fname);
          R1_CHECK(shard_names.size() <= limits::max_shards, "checkpoint", dir_in.string(),
                   ": more than ", limits::max_shards, " model*.safetensors files");
        }
      }
      R1_CHECK(!ec, "checkpoint", dir_in.string(), ": cannot list: ", ec.message());
      R1_CHECK(!shard_names.empty(), "checkpoint", dir_in.string(), ": no ", kIndexFileName,
               " and no model*.safetensors files");
      std::sort(shard_names.begin(), shard_names.end());
    }

    std::size_t total = 0;
    for (const std::string& name : shard_names) {
      const fs::path p = dir / name;
      if (!fs::exists(fs::symlink_status(p, ec))) {
        // Name one tensor that needs the missing shard, to make the message actionable.
        std::string example;
        if (index) {
          const uint32_t k = uint32_t(&name - shard_names.data());
          for (const auto& [t, sh] : index->weight_map) {
            if (sh == k) {
              example = " (needed by tensor " + escaped(t) + ")";
              break;
            }
          }
        }
        fail("checkpoint", dir_in.string(), ": shard ", escaped(name), " listed in the index is missing",
             example);
      }
      resolve_inside(dir, name, "shard");
      s->shards.push_back(SafetensorsFile::open(dir_in / name));
      total += s->shards.back().entries().size();
      R1_CHECK(total <= limits::max_checkpoint_tensors, "checkpoint", dir_in.string(), ": more than ",
               limits::max_checkpoint_tensors, " tensors in total");
    }

    // Every stored tensor once, across all shards.
    s->names.reserve(total);
    for (uint32_t k = 0; k < s->shards.size(); ++k) {
      for (const TensorEntry& e : s->shards[k].entries()) s->names.push_back({e.name, k});
    }
    std::sort(s->names.begin(), s->names.end(),
              [](const Loc& a, const Loc& b) { return a.name < b.name || (a.name == b.name && a.shard < b.shard); });
    for (std::size_t i = 1; i < s->names.size(); ++i) {
      if (s->names[i].name == s->names[i - 1].name) {
        fail("checkpoint", dir_in.string(), ": tensor ", escaped(s->names[i].name), " is stored in two shards, ",
             escaped(shard_names[s->names[i - 1].shard]), " and ", escaped(shard_names[s->names[i].shard]));
      }
    }

    // The index and the shards must agree exactly (both lists are sorted by name).
    if (index) {
      const auto& wm = index->weight_map;
      const auto& have = s->names;
      std::size_t a = 0, b = 0;
      while (a < wm.size() || b < have.size()) {
        if (b == have.size() || (a < wm.size() && std::string_view(wm[a].first) < have[b].name)) {
          fail("checkpoint", dir_in.string(), ": the index lists tensor ", escaped(wm[a].first), " in shard ",
               escaped(index->shards[wm[a].second]), ", which does not contain it");
        }
        if (a == wm.size() || have[b].name < std::string_view(wm[a].first)) {
          fail("checkpoint", dir_in.string(), ": tensor ", escaped(have[b].name), " is stored in shard ",
               escaped(shard_names[have[b].shard]), " but not listed in the index");
        }
        if (wm[a].second != have[b].shard) {
          fail("checkpoint", dir_in.string(), ": the index maps tensor ", escaped(wm[a].first), " to shard ",
               escaped(index->shards[wm[a].second]), " but it is stored in shard ",
               escaped(shard_names[have[b].shard]));
        }
        ++a;
        ++b;
      }
    }
    Checkpoint c;
    c.s_ = std::move(s);
    return c;
  }

  std::shared_ptr<const State> s_;
};

}  // namespace r1::io
