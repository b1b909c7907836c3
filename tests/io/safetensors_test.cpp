// SPDX-License-Identifier: MIT
// safetensors reader and writer, and the bounded JSON helpers under them. The hostile inputs are
// in malformed_test.cpp; this file covers valid files, the writer, and the edges of validity.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "r1/io/json.hpp"
#include "r1/io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace r1;
using r1::io::SafetensorsFile;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "r1-st-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string le64(uint64_t n) {
  std::string b(8, '\0');
  for (int i = 0; i < 8; ++i) b[i] = char((n >> (8 * i)) & 0xff);
  return b;
}

void write_bytes(const fs::path& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(b.data(), std::streamsize(b.size()));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const r1::Error& e) {
    return e.what();
  }
  return "";
}

// Tensor with bytes 0, 1, 2, ... (mod 251) so every byte is position-dependent.
Tensor patterned(DType d, const Shape& s, int seed) {
  Tensor t = Tensor::empty(d, s);  // s
  auto* p = static_cast<uint8_t*>(t.data());
  for (std::size_t i = 0; i < t.nbytes(); ++i) p[i] = uint8_t((i * 7 + std::size_t(seed)) % 251);
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.data(), b.data(), a.nbytes()) == 0);
}

}  // namespace

TEST_CASE("write then read: every dtype, rank 0, empty and rank-8 tensors, metadata") {
  TempDir tmp;
  const fs::path p = tmp.path / "all.safetensors";
  std::vector<std::pair<std::string, Tensor>> ts;
  int seed = 0;
  for (DType d : {DType::f64, DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::f8_e5m2, DType::i64,
                  DType::i32, DType::i16, DType::i8, DType::u8, DType::boolean}) {
    ts.emplace_back(std::string("t_") + std::string(dtype_name(d)), patterned(d, Shape{3, 5}, ++seed));
  }
  ts.emplace_back("scalar", patterned(DType::f32, Shape{}, 1));                  // rank 0: one element
  ts.emplace_back("empty", patterned(DType::bf16, Shape{0, 7}, 2));              // no bytes
  ts.emplace_back("rank8", patterned(DType::u8, Shape{1, 2, 1, 2, 1, 2, 1, 3}, 3));
  ts.emplace_back("", patterned(DType::i8, Shape{2}, 4));                       // the empty name is valid
  ts.emplace_back("unicode.名前.ü", patterned(DType::i16, Shape{1}, 5));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "tabs\tand \"quotes\""}};
  io::write_safetensors(p, ts, meta);

  const SafetensorsFile f = SafetensorsFile::open(p);
  CHECK(f.metadata() == meta);
  CHECK(f.entries().size() == ts.size());
  for (const auto& [name, t] : ts) {
    INFO("tensor ", name);
    const io::TensorEntry* e = f.find(name);
    REQUIRE(e != nullptr);
    CHECK(e->dtype == t.dtype());
    CHECK(e->shape == t.shape());
    const Tensor back = f.tensor(name);  // t.shape()
    CHECK(same_bytes(back, t));
    // Aligned data is borrowed from the mapping, not copied.
    if (t.nbytes() > 0) CHECK(back.data() == static_cast<const void*>(f.data(*e)));
  }
  // Entries come in offset order, tile the data section, and every tensor is aligned to its
  // element size (the writer orders by descending element size and pads the header).
  uint64_t pos = 0;
  for (const auto& e : f.entries()) {
    CHECK(e.begin == pos);
    CHECK((f.header().data_begin + e.begin) % dtype_size(e.dtype) == 0);
    pos = e.end;
  }
  CHECK(pos == f.header().data_bytes);
  CHECK(f.header().data_begin % 8 == 0);
  CHECK(f.find("absent") == nullptr);
}

TEST_CASE("the writer stores strided views contiguously and writes atomically") {
  TempDir tmp;
  const Tensor base = patterned(DType::f32, Shape{4, 6}, 9);  // [4, 6]
  const Tensor col = base.slice(1, 2, 5);  // [4, 3], row stride 6: not contiguous
  REQUIRE_FALSE(col.is_contiguous());
  const fs::path p = tmp.path / "strided.safetensors";
  io::write_safetensors(p, {{"col", col}});
  const Tensor back = SafetensorsFile::open(p).tensor("col");  // [4, 3], contiguous
  CHECK(same_bytes(back, col.contiguous().to(Space::host)));
  // Only the final file remains (no temporary).
  int files = 0;
  for (const auto& it : fs::directory_iterator(tmp.path)) files += it.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("the writer rejects what the reader would reject, and leaves no file behind") {
  TempDir tmp;
  const fs::path p = tmp.path / "bad.safetensors";
  const Tensor t = patterned(DType::f32, Shape{2}, 1);  // [2]
  CHECK(error_of([&] { io::write_safetensors(p, {{"a", t}, {"a", t}}); }).find("given twice") != std::string::npos);
  CHECK(error_of([&] { io::write_safetensors(p, {{"__metadata__", t}}); }).find("reserved") != std::string::npos);
  CHECK(error_of([&] { io::write_safetensors(p, {{"a\nb", t}}); }).find("control character") != std::string::npos);
  CHECK(error_of([&] { io::write_safetensors(p, {{"\xff", t}}); }).find("not valid UTF-8") != std::string::npos);
  CHECK(error_of([&] { io::write_safetensors(p, {{"x", Tensor()}}); }).find("undefined") != std::string::npos);
  CHECK(error_of([&] { io::write_safetensors(p, {{"x", Tensor::empty(DType::i4x2, Shape{4})}}); })
            .find("I4X2 is not a safetensors dtype") != std::string::npos);
  CHECK(error_of([&] { io::write_safetensors(p, {{"a", t}}, {{"k", "\xc3"}}); }).find("not valid UTF-8") !=
        std::string::npos);
  CHECK(error_of([&] { io::write_safetensors(tmp.path / "no-such-dir" / "x.safetensors", {{"a", t}}); })
            .find("cannot create") != std::string::npos);
  CHECK(fs::is_empty(tmp.path));
}

TEST_CASE("valid edge cases the reference accepts") {
  TempDir tmp;
  auto open_bytes = [&](const std::string& header, const std::string& data) {
    const fs::path p = tmp.path / "edge.safetensors";
    write_bytes(p, le64(header.size()) + header + data);
    return SafetensorsFile::open(p);
  };
  const std::string f32_12 = [] {
    std::string d(12, '\0');
    const float v[3] = {1.5f, -2.0f, 3.25f};
    std::memcpy(d.data(), v, 12);
    return d;
  }();

  SUBCASE("header order differs from offset order") {
    const auto f = open_bytes(
        R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
        R"("c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        f32_12);
    REQUIRE(f.entries().size() == 3);
    CHECK(f.entries()[0].name == "a");
    CHECK(f.entries()[1].name == "b");
    CHECK(f.tensor("c").data_as<float>()[0] == 3.25f);
  }
  SUBCASE("leading and trailing whitespace padding, __metadata__ null, extra empty tensors") {
    const auto f = open_bytes(
        "\n  \t{\"__metadata__\":null,\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
        "\"e2\":{\"dtype\":\"BF16\",\"shape\":[5,0,4294967296],\"data_offsets\":[12,12]}}   \r\n",
        f32_12);
    CHECK(f.metadata().empty());
    CHECK(f.entries().size() == 3);
    CHECK(f.tensor("e2").numel() == 0);
    CHECK(f.tensor("x").data_as<float>()[1] == -2.0f);
  }
  SUBCASE("shape checks do not depend on the order of the dimensions") {
    // The reference rejects [2^48-1, 2^48-1, 0] but accepts [0, 2^48-1, 2^48-1]; r1 rejects both
    // (their non-zero extents overflow int64) and accepts any order of [0, 2^31, 2^31].
    for (const char* shape : {"[281474976710655,281474976710655,0]", "[0,281474976710655,281474976710655]"}) {
      const fs::path p = tmp.path / "order.safetensors";
      const std::string h = std::string(R"({"z":{"dtype":"F64","shape":)") + shape + R"(,"data_offsets":[0,0]}})";
      write_bytes(p, le64(h.size()) + h);
      CHECK(error_of([&] { SafetensorsFile::open(p); }).find("overflows a 64-bit byte count") != std::string::npos);
    }
    for (const char* shape : {"[2147483648,2147483648,0]", "[0,2147483648,2147483648]", "[2147483648,0,2147483648]"}) {
      const auto f = open_bytes(std::string(R"({"z":{"dtype":"F64","shape":)") + shape + R"(,"data_offsets":[0,0]}})", "");
      const Tensor t = f.tensor("z");  // strides and numel computed without overflow
      CHECK(t.numel() == 0);
      CHECK(f.find("z")->nbytes() == 0);
    }
  }
  SUBCASE("misaligned data is copied into aligned memory, never read misaligned") {
    // A 1-byte U8 tensor first puts the F32 tensor at data offset 1; an odd header length shifts
    // everything once more.
    std::string data(1, '\x07');
    data += f32_12;
    std::string h =
        R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"F32","shape":[3],"data_offsets":[1,13]}})";
    while ((8 + h.size()) % 4 != 1) h += ' ';  // odd data start: "x" lands at 2 mod 4
    const auto f = open_bytes(h, data);
    const io::TensorEntry* e = f.find("x");
    REQUIRE(reinterpret_cast<std::uintptr_t>(f.data(*e)) % 4 != 0);
    const Tensor x = f.tensor("x");  // [3]
    CHECK(reinterpret_cast<std::uintptr_t>(x.data()) % 4 == 0);
    CHECK(x.data() != static_cast<const void*>(f.data(*e)));
    CHECK(x.data_as<float>()[0] == 1.5f);
    CHECK(x.data_as<float>()[2] == 3.25f);
    CHECK(f.tensor("u").data_as<uint8_t>()[0] == 7);
  }
  SUBCASE("no tensors at all") {
    const auto f = open_bytes("{}", "");
    CHECK(f.entries().empty());
  }
}

TEST_CASE("errors name the file, the tensor and the field") {
  TempDir tmp;
  const fs::path p = tmp.path / "named.safetensors";
  const std::string h = R"({"layer.0.w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})";
  write_bytes(p, le64(h.size()) + h + std::string(12, 'x'));
  const std::string msg = error_of([&] { SafetensorsFile::open(p); });
  CHECK(msg.rfind("safetensors: ", 0) == 0);
  CHECK(msg.find(p.string()) != std::string::npos);
  CHECK(msg.find("tensor \"layer.0.w\"") != std::string::npos);
  CHECK(msg.find("needs 16 bytes but data_offsets [0, 12] span 12") != std::string::npos);

  io::write_safetensors(p, {{"w", patterned(DType::f32, Shape{2}, 0)}});
  const std::string absent = error_of([&] { SafetensorsFile::open(p).tensor("missing.weight"); });
  CHECK(absent.find(p.string()) != std::string::npos);
  CHECK(absent.find("no tensor named \"missing.weight\"") != std::string::npos);
  CHECK(error_of([] { SafetensorsFile().entries(); }).find("default-constructed") != std::string::npos);
}

TEST_CASE("a borrowed tensor keeps the mapping alive after every SafetensorsFile is gone") {
  TempDir tmp;
  const fs::path p = tmp.path / "keep.safetensors";
  const Tensor t = patterned(DType::bf16, Shape{64}, 3);  // [64]
  io::write_safetensors(p, {{"w", t}});
  Tensor borrowed;  // [64], from the mapping
  {
    const SafetensorsFile f = SafetensorsFile::open(p);
    const SafetensorsFile copy = f;  // copies share one mapping
    CHECK(copy.data(copy.entries()[0]) == f.data(f.entries()[0]));
    borrowed = copy.tensor("w");
  }
  fs::remove(p);  // the mapping outlives the directory entry as well
  CHECK(same_bytes(borrowed, t));
}

TEST_CASE("every fixture file opens and every tensor is readable") {
  int files = 0;
  for (const auto& dir : fs::directory_iterator(R1_TEST_DATA_DIR)) {
    if (!dir.is_directory()) continue;
    for (const auto& it : fs::directory_iterator(dir.path())) {
      if (it.path().extension() != ".safetensors") continue;
      INFO(it.path().string());
      const SafetensorsFile f = SafetensorsFile::open(it.path());
      uint64_t bytes = 0;
      for (const auto& e : f.entries()) {
        const Tensor t = f.tensor(e);  // e.shape
        CHECK(t.nbytes() == e.nbytes());
        bytes += e.nbytes();
      }
      CHECK(bytes == f.header().data_bytes);
      CHECK(f.header().data_begin + bytes == f.file_size());
      ++files;
    }
  }
  CHECK(files >= 10);
}

TEST_CASE("escaped() quotes and escapes untrusted text for messages; valid_utf8 follows RFC 3629") {
  CHECK(io::escaped("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(io::escaped(std::string("x\0y\n\x1b", 5)) == "\"x\\x00y\\x0a\\x1b\"");
  CHECK(io::escaped("ü\xff") == "\"ü\\xff\"");
  CHECK(io::escaped(std::string(300, 'a'), 10) == "\"aaaaaaaaaa...\"");
  CHECK(io::valid_utf8("plain ascii"));
  CHECK(io::valid_utf8("名前 ü 😀"));
  CHECK_FALSE(io::valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(io::valid_utf8("\xed\xa0\x80"));      // surrogate U+D800
  CHECK_FALSE(io::valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(io::valid_utf8("\xe6\x97"));          // truncated
  CHECK_FALSE(io::valid_utf8("\x80"));
}

TEST_CASE("bounded JSON: caps before the parser allocates, duplicate keys rejected") {
  io::JsonLimits lim;
  lim.max_depth = 4;
  lim.max_string_bytes = 16;
  lim.max_scalar_bytes = 8;
  lim.max_values = 10;
  auto err = [&](const std::string& text) {
    return error_of([&] { io::parse_json(text, lim, "test", "src.json"); });
  };
  CHECK(io::parse_json(R"({"a":[1,{"b":null}],"c":"x"})", lim, "test", "src.json")["a"][1].contains("b"));
  CHECK(err(R"([[[[[1]]]]])").find("test: src.json: JSON nesting deeper than 4 levels at byte 4") == 0);
  CHECK(err(std::string(1 << 20, '[')).find("nesting deeper than 4") != std::string::npos);
  CHECK(err(R"({"k":"0123456789abcdefg"})").find("is 17 bytes long, over the cap of 16") != std::string::npos);
  CHECK(err(R"([123456789])").find("a JSON token at byte 1 is 9 bytes long") != std::string::npos);
  CHECK(err(R"([1,2,3,4,5,6,7,8,9,10])").find("more than 10 JSON values") != std::string::npos);
  CHECK(err(R"({"a":1,"a":1})").find("duplicate key \"a\"") != std::string::npos);
  CHECK(err(R"({"a":{"b":1,"b":2}})").find("duplicate key \"b\"") != std::string::npos);
  CHECK(err("\xef\xbb\xbf{}").find("byte order mark") != std::string::npos);
  CHECK(err("{} {}").find("JSON syntax error") != std::string::npos);
  CHECK(err("{\"a\":1} // c").find("JSON syntax error") != std::string::npos);
  CHECK(err("").find("JSON syntax error") != std::string::npos);
  // Escaped quotes do not end a string for the scanner.
  CHECK(io::parse_json(R"(["a\"b\\"])", lim, "test", "src.json")[0] == "a\"b\\");
  const io::JsonScan s = io::scan_json(R"({"a":{"x":1,"y":[2]},"b":3})", lim, "test", "src.json");
  CHECK(s.max_depth == 3);
  CHECK(s.members[1] == 2);
  CHECK(s.members[2] == 2);
}

TEST_CASE("parse_safetensors on memory validates without a file") {
  const std::string h = R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})";
  const std::string bytes = le64(h.size()) + h + std::string(8, '\1');
  const auto hdr = io::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
  REQUIRE(hdr.entries.size() == 1);
  CHECK(hdr.entries[0].dtype == DType::i32);
  CHECK(hdr.data_begin == 8 + h.size());
  CHECK(error_of([&] {
          io::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size() - 1, "mem");
        }).find("safetensors: mem: tensor \"a\": data_offsets [0, 8] run past") == 0);
}
