// SPDX-License-Identifier: MIT
// Checkpoint directories: the fixtures (indexed and single-file), index parsing, the no-index
// layout, the Hugging Face cache layout, and opening a checkpoint with DeepSeek-R1's real layout
// (163 shards, 91,991 tensors) fast. Hostile directories are in malformed_test.cpp.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "r1/io/checkpoint.hpp"

namespace fs = std::filesystem;
using namespace r1;
using r1::io::Checkpoint;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "r1-ckpt-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(s.data(), std::streamsize(s.size()));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const r1::Error& e) {
    return e.what();
  }
  return "";
}

Tensor f32(std::vector<float> v) { return Tensor::from_vector(v, Shape{int64_t(v.size())}); }

const std::string kConfig = R"({"model_type": "deepseek_v3"})";

}  // namespace

TEST_CASE("the fixture checkpoints open, agree with their indexes, and every tensor is readable") {
  for (const char* name : {"tiny-r1-bf16", "tiny-r1-fp8", "tiny-r1-mtp", "tiny-v3-noqlora", "tiny-v3-plain",
                           "tiny-v3-fp8-mtp"}) {
    INFO(name);
    const fs::path dir = fs::path(R1_TEST_DATA_DIR) / name;
    const Checkpoint ck = Checkpoint::open(dir);
    CHECK(ck.config_json().at("model_type") == "deepseek_v3");
    CHECK(ck.indexed() == fs::exists(dir / "model.safetensors.index.json"));
    // reference.safetensors is not part of the model.
    CHECK_FALSE(ck.has("logits"));
    const std::vector<std::string> names = ck.names();
    CHECK(std::is_sorted(names.begin(), names.end()));
    std::size_t stored = 0;
    for (const auto& shard : ck.shards()) stored += shard.entries().size();
    CHECK(names.size() == stored);
    CHECK(ck.size() == stored);
    for (const std::string& n : names) {
      const io::TensorEntry* e = ck.find(n);
      REQUIRE(e != nullptr);
      const Tensor t = ck.get(n, e->dtype, e->shape);  // e->shape
      CHECK(t.nbytes() == e->nbytes());
    }
    CHECK(ck.has("model.embed_tokens.weight"));
    if (ck.indexed()) {
      const auto f = io::MappedFile::open(dir / "model.safetensors.index.json", "test");
      const io::SafetensorsIndex idx = io::parse_safetensors_index(f->text(), "index");
      CHECK(idx.weight_map.size() == names.size());
      for (const auto& [tensor, shard] : idx.weight_map) {
        CHECK(ck.shard_of(tensor).path().filename() == idx.shards[shard]);
      }
      CHECK(idx.total_size.has_value());
    }
  }
}

TEST_CASE("get() with an expected dtype and shape names the tensor, the file and both sides") {
  const fs::path dir = fs::path(R1_TEST_DATA_DIR) / "tiny-r1-bf16";
  const Checkpoint ck = Checkpoint::open(dir);
  const std::string w = "model.layers.0.input_layernorm.weight";
  CHECK(ck.get(w, DType::bf16, Shape{256}).numel() == 256);
  const std::string wrong_shape = error_of([&] { ck.get(w, DType::bf16, Shape{7168}); });
  CHECK(wrong_shape.find("tensor \"" + w + "\" is BF16 [256], expected BF16 [7168]") != std::string::npos);
  CHECK(wrong_shape.find("model-0000") != std::string::npos);  // the shard file
  const std::string wrong_dtype = error_of([&] { ck.get(w, DType::f32, Shape{256}); });
  CHECK(wrong_dtype.find("is BF16 [256], expected F32 [256]") != std::string::npos);
  const std::string absent = error_of([&] { ck.get("model.layers.9.mlp.gate.weight", DType::bf16, Shape{16, 256}); });
  CHECK(absent.find(dir.string()) != std::string::npos);
  CHECK(absent.find("no tensor named \"model.layers.9.mlp.gate.weight\" (expected BF16 [16, 256])") !=
        std::string::npos);
  CHECK(error_of([&] { ck.get("nope"); }).find("no tensor named \"nope\"") != std::string::npos);
  CHECK(ck.find("nope") == nullptr);
  CHECK(error_of([] { Checkpoint().names(); }).find("default-constructed") != std::string::npos);
}

TEST_CASE("index parsing: metadata and unknown keys are skipped, the map is sorted and interned") {
  const io::SafetensorsIndex idx = io::parse_safetensors_index(
      R"({"metadata": {"total_size": 96, "nested": {"x": [1, {"y": null}]}, "f": 1.5},
          "other": [1, 2, {"z": "w"}], "weight_map": {"b": "s2.safetensors", "a": "s1.safetensors",
          "c": "s1.safetensors"}, "tail": "ignored"})",
      "idx");
  CHECK(idx.total_size == 96u);
  REQUIRE(idx.shards == std::vector<std::string>{"s1.safetensors", "s2.safetensors"});
  REQUIRE(idx.weight_map.size() == 3);
  CHECK(idx.weight_map[0] == std::pair<std::string, uint32_t>{"a", 0});
  CHECK(idx.weight_map[1] == std::pair<std::string, uint32_t>{"b", 1});
  CHECK(idx.weight_map[2] == std::pair<std::string, uint32_t>{"c", 0});
  CHECK(io::shard_name_problem("model-00001-of-00163.safetensors") == nullptr);
  CHECK(io::shard_name_problem("a/b.safetensors") != nullptr);
  CHECK(io::shard_name_problem("..") != nullptr);
  CHECK(io::shard_name_problem(".safetensors") != nullptr);
}

TEST_CASE("without an index, every model*.safetensors file is a shard") {
  TempDir tmp;
  write_text(tmp.path / "config.json", kConfig);
  io::write_safetensors(tmp.path / "model-00001-of-00002.safetensors", {{"a", f32({1, 2})}});
  io::write_safetensors(tmp.path / "model-00002-of-00002.safetensors", {{"b", f32({3})}, {"c", f32({})}});
  io::write_safetensors(tmp.path / "reference.safetensors", {{"a", f32({9})}});  // not a shard
  io::write_safetensors(tmp.path / "consolidated.safetensors", {{"a", f32({9})}});  // not a shard either
  const Checkpoint ck = Checkpoint::open(tmp.path);
  CHECK_FALSE(ck.indexed());
  CHECK(ck.names() == std::vector<std::string>{"a", "b", "c"});
  CHECK(ck.get("b").data_as<float>()[0] == 3.0f);
  CHECK(ck.shard_of("c").path().filename() == "model-00002-of-00002.safetensors");
  CHECK(ck.shards().size() == 2);
}

TEST_CASE("open_index reads an index without config.json") {
  TempDir tmp;
  io::write_safetensors(tmp.path / "s1.safetensors", {{"a", f32({1})}});
  write_text(tmp.path / "weights.index.json", R"({"weight_map": {"a": "s1.safetensors"}})");
  const Checkpoint ck = Checkpoint::open_index(tmp.path / "weights.index.json");
  CHECK(ck.config_json().is_null());
  CHECK(ck.has("a"));
  CHECK(error_of([&] { Checkpoint::open(tmp.path); }).find("no config.json") != std::string::npos);
}

TEST_CASE("symlinks: inside the directory and the Hugging Face hub cache layout are accepted") {
  TempDir tmp;
  SUBCASE("a symlink to another file of the directory") {
    write_text(tmp.path / "config.json", kConfig);
    fs::create_directories(tmp.path / "data");
    io::write_safetensors(tmp.path / "data" / "real.safetensors", {{"a", f32({1})}});
    fs::create_symlink("data/real.safetensors", tmp.path / "model.safetensors");
    CHECK(Checkpoint::open(tmp.path).has("a"));
  }
  SUBCASE("snapshots/<rev>/* -> ../../blobs/<hash>") {
    const fs::path repo = tmp.path / "models--org--name";
    const fs::path snap = repo / "snapshots" / "0123abcd";
    write_text(repo / "blobs" / "c0ff", kConfig);  // creates blobs/
    io::write_safetensors(repo / "blobs" / "beef", {{"w", f32({5})}});
    write_text(repo / "blobs" / "f00d", R"({"weight_map": {"w": "model-00001-of-00001.safetensors"}})");
    fs::create_directories(snap);
    fs::create_symlink("../../blobs/c0ff", snap / "config.json");
    fs::create_symlink("../../blobs/beef", snap / "model-00001-of-00001.safetensors");
    fs::create_symlink("../../blobs/f00d", snap / "model.safetensors.index.json");
    const Checkpoint ck = Checkpoint::open(snap);
    CHECK(ck.indexed());
    CHECK(ck.get("w").data_as<float>()[0] == 5.0f);
    // The same symlink leaving a directory that is not a hub snapshot is refused.
    const fs::path other = tmp.path / "plain";
    fs::create_directories(other);
    fs::create_symlink("../models--org--name/blobs/c0ff", other / "config.json");
    fs::create_symlink("../models--org--name/blobs/beef", other / "model.safetensors");
    CHECK(error_of([&] { Checkpoint::open(other); }).find("outside the checkpoint directory") != std::string::npos);
  }
}

namespace {

// DeepSeek-R1's published tensors (r1-spec.md §7.2) with their real shapes and dtypes, in the
// order of the published layout, layer 61 being the MTP module.
struct Spec {
  std::string name;
  const char* dtype;
  std::vector<int64_t> shape;
};

std::vector<Spec> r1_tensors() {
  std::vector<Spec> out;
  auto fp8 = [&](const std::string& n, int64_t rows, int64_t cols) {
    out.push_back({n + ".weight", "F8_E4M3", {rows, cols}});
    out.push_back({n + ".weight_scale_inv", "F32", {(rows + 127) / 128, (cols + 127) / 128}});
  };
  out.push_back({"model.embed_tokens.weight", "BF16", {129280, 7168}});
  for (int l = 0; l <= 61; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", "BF16", {7168}});
    out.push_back({p + "post_attention_layernorm.weight", "BF16", {7168}});
    fp8(p + "self_attn.q_a_proj", 1536, 7168);
    out.push_back({p + "self_attn.q_a_layernorm.weight", "BF16", {1536}});
    fp8(p + "self_attn.q_b_proj", 24576, 1536);
    fp8(p + "self_attn.kv_a_proj_with_mqa", 576, 7168);
    out.push_back({p + "self_attn.kv_a_layernorm.weight", "BF16", {512}});
    fp8(p + "self_attn.kv_b_proj", 32768, 512);
    fp8(p + "self_attn.o_proj", 7168, 16384);
    if (l < 3) {
      fp8(p + "mlp.gate_proj", 18432, 7168);
      fp8(p + "mlp.up_proj", 18432, 7168);
      fp8(p + "mlp.down_proj", 7168, 18432);
    } else {
      out.push_back({p + "mlp.gate.weight", "BF16", {256, 7168}});
      out.push_back({p + "mlp.gate.e_score_correction_bias", "F32", {256}});
      for (int e = 0; e < 256; ++e) {
        const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
        fp8(x + "gate_proj", 2048, 7168);
        fp8(x + "up_proj", 2048, 7168);
        fp8(x + "down_proj", 7168, 2048);
      }
      fp8(p + "mlp.shared_experts.gate_proj", 2048, 7168);
      fp8(p + "mlp.shared_experts.up_proj", 2048, 7168);
      fp8(p + "mlp.shared_experts.down_proj", 7168, 2048);
    }
    if (l == 61) {
      out.push_back({p + "embed_tokens.weight", "BF16", {129280, 7168}});
      out.push_back({p + "enorm.weight", "BF16", {7168}});
      out.push_back({p + "hnorm.weight", "BF16", {7168}});
      out.push_back({p + "eh_proj.weight", "BF16", {7168, 14336}});
      out.push_back({p + "shared_head.norm.weight", "BF16", {7168}});
      out.push_back({p + "shared_head.head.weight", "BF16", {129280, 7168}});
    }
  }
  out.push_back({"model.norm.weight", "BF16", {7168}});
  out.push_back({"lm_head.weight", "BF16", {129280, 7168}});
  return out;
}

}  // namespace

TEST_CASE("a checkpoint with DeepSeek-R1's layout (163 shards, 91,991 tensors, ~690 GB) opens fast") {
  // Shards are sparse files: real headers, the data section only reserved (ftruncate), so the
  // test needs megabytes of disk, not 690 GB. Opening must not read tensor data.
  TempDir tmp;
  const std::vector<Spec> specs = r1_tensors();
  REQUIRE(specs.size() == 91991);
  constexpr int kShards = 163;
  uint64_t total = 0;
  std::vector<uint64_t> bytes(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    DType d = DType::u8;
    REQUIRE(io::parse_safetensors_dtype(specs[i].dtype, d));
    bytes[i] = dtype_size(d);
    for (int64_t x : specs[i].shape) bytes[i] *= uint64_t(x);
    total += bytes[i];
  }
  CHECK(total > 680'000'000'000ull);
  const auto t_make = std::chrono::steady_clock::now();
  std::string index = "{\"metadata\":{\"total_size\":" + std::to_string(total) + "},\"weight_map\":{";
  std::size_t i = 0;
  for (int s = 0; s < kShards; ++s) {
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, kShards);
    std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
    uint64_t off = 0;
    const uint64_t limit = total * uint64_t(s + 1) / kShards;
    for (uint64_t cum = total * uint64_t(s) / kShards; i < specs.size() && (cum < limit || s == kShards - 1); ++i) {
      std::string shape;
      for (int64_t x : specs[i].shape) {
        if (!shape.empty()) shape += ',';
        shape += std::to_string(x);
      }
      header.append(",\"").append(specs[i].name).append("\":{\"dtype\":\"").append(specs[i].dtype);
      header.append("\",\"shape\":[").append(shape).append("],\"data_offsets\":[").append(std::to_string(off));
      header.append(",").append(std::to_string(off + bytes[i])).append("]}");
      if (index.back() != '{') index += ',';
      index.append("\"").append(specs[i].name).append("\":\"").append(fname).append("\"");
      off += bytes[i];
      cum += bytes[i];
    }
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string len(8, '\0');
    for (int b = 0; b < 8; ++b) len[b] = char((uint64_t(header.size()) >> (8 * b)) & 0xff);
    write_text(tmp.path / fname, len + header);
    fs::resize_file(tmp.path / fname, 8 + header.size() + off);
  }
  REQUIRE(i == specs.size());
  write_text(tmp.path / "model.safetensors.index.json", index + "}}");
  write_text(tmp.path / "config.json", kConfig);
  const double make_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_make).count();

  const auto t0 = std::chrono::steady_clock::now();
  const Checkpoint ck = Checkpoint::open(tmp.path);
  const double open_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("R1 layout: generated in ", make_s, " s; Checkpoint::open took ", open_s, " s for ", ck.size(),
          " tensors in ", ck.shards().size(), " shards");
  CHECK(ck.size() == specs.size());
  CHECK(ck.shards().size() == kShards);
  CHECK(ck.get("model.layers.60.mlp.experts.255.down_proj.weight_scale_inv", DType::f32, Shape{56, 16}).numel() ==
        56 * 16);
  CHECK(ck.find("model.layers.61.shared_head.head.weight")->shape == Shape{129280, 7168});
  // Generous bound for a shared 2-core CI machine; a quiet one takes a fraction of a second.
  CHECK(open_s < 10.0);
}
