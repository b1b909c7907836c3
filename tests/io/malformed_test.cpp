// SPDX-License-Identifier: MIT
// Hostile inputs through the library, built with AddressSanitizer + UndefinedBehaviorSanitizer
// (tests/io/CMakeLists.txt). Every case of malformed_cases.hpp must raise an r1::Error containing
// its expected message, within a second, and without any allocation larger than 1 MiB + 4x the
// bytes of the case: caps are checked before allocating, so a file that claims terabytes or a
// million levels of nesting costs nothing. Then thousands of seeded random mutations of valid
// files must each open or fail with an r1::Error, never anything else.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <random>
#include <set>
#include <string>

#include "malformed_cases.hpp"
#include "r1/io/checkpoint.hpp"
#include "r1/io/safetensors.hpp"
#include "r1/models/config.hpp"

namespace fs = std::filesystem;
using namespace r1;
using r1::testing::Case;

// ---- the largest single allocation, through a replaced global operator new ------------------
// (ASan still checks every access; it also aborts on any allocation over the cap given in
// __asan_default_options below, which covers malloc and aligned_alloc as well.)
namespace {
std::atomic<std::size_t> g_largest{0};
void note(std::size_t n) {
  std::size_t cur = g_largest.load(std::memory_order_relaxed);
  while (n > cur && !g_largest.compare_exchange_weak(cur, n, std::memory_order_relaxed)) {
  }
}
void* allocate(std::size_t n, std::size_t align) {
  note(n);
  void* p = align <= alignof(std::max_align_t) ? std::malloc(n ? n : 1)
                                               : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return allocate(n, 0); }
void* operator new[](std::size_t n) { return allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate(n, std::size_t(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  note(n);
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  note(n);
  return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

#if defined(__SANITIZE_ADDRESS__)
// A hard backstop: any single allocation above 256 MiB aborts the test under ASan.
extern "C" const char* __asan_default_options() {
  return "max_allocation_size_mb=256:allocator_may_return_null=0:detect_leaks=1";
}
#endif

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "r1-malformed-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
};

// Bytes a case consists of: the file, or every regular file under the directory.
uint64_t case_bytes(const fs::path& p) {
  std::error_code ec;
  if (fs::is_regular_file(fs::symlink_status(p, ec))) return fs::file_size(p, ec);
  uint64_t n = 0;
  if (fs::is_directory(fs::symlink_status(p, ec))) {
    for (const auto& e : fs::recursive_directory_iterator(p, ec)) {
      if (fs::is_regular_file(e.symlink_status())) n += e.file_size();
    }
  }
  return n;
}

// Reads one element of every tensor, so bad offsets would show up as ASan reports.
void touch_all(const io::Checkpoint& ck) {
  for (const std::string& n : ck.names()) {
    const Tensor t = ck.get(n);  // as stored
    if (t.nbytes() > 0) {
      volatile uint8_t sink = static_cast<const uint8_t*>(t.data())[t.nbytes() - 1];
      (void)sink;
    }
  }
}

// Opens a case the way a program would; returns the error message ("" when it opened).
std::string open_case(const Case& c) {
  try {
    switch (c.kind) {
      case Case::Kind::safetensors: {
        const auto f = io::SafetensorsFile::open(c.path);
        for (const auto& e : f.entries()) f.tensor(e);
        break;
      }
      case Case::Kind::index:
        touch_all(io::Checkpoint::open_index(c.path));
        break;
      case Case::Kind::checkpoint:
      case Case::Kind::config: {
        const io::Checkpoint ck = io::Checkpoint::open(c.path);
        parse_model_config(ck.config_json(), (c.path / "config.json").string());
        touch_all(ck);
        break;
      }
    }
  } catch (const r1::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("every malformed case fails with its expected error, in under a second, without large allocations") {
  TempDir tmp;
  const std::vector<Case> cases = r1::testing::malformed_cases(tmp.path);
  std::set<std::string> names, types;
  for (const Case& c : cases) {
    names.insert(c.name);
    types.insert(c.name.substr(0, c.name.find("/at-")));  // truncation points count as one type
  }
  CHECK(names.size() == cases.size());
  MESSAGE(cases.size(), " cases of ", types.size(), " types");
  CHECK(types.size() >= 60);

  double slowest = 0;
  std::string slowest_name;
  for (const Case& c : cases) {
    INFO("case ", c.name, " (", c.path.string(), ")");
    const uint64_t input = case_bytes(c.path);
    g_largest = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string msg = open_case(c);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::size_t largest = g_largest.load();
    INFO("error: ", msg);
    CHECK_MESSAGE(!msg.empty(), "opened without an error");
    CHECK_MESSAGE(msg.find(c.expected) != std::string::npos, "expected \"", c.expected, "\"");
    CHECK(s < 1.0);
    CHECK_MESSAGE(largest <= (1u << 20) + 4 * input, "largest allocation ", largest, " bytes for ", input,
                  " input bytes");
    if (c.kind == Case::Kind::config) {
      // The config alone, through load_model_config, reports the same problem.
      try {
        load_model_config(c.path);
        // Syntax-level failures surface in Checkpoint::open; semantic ones must surface here too.
        CHECK_MESSAGE(false, "load_model_config accepted it");
      } catch (const r1::Error& e) {
        CHECK(std::string(e.what()).find(c.expected) != std::string::npos);
      }
    }
    if (s > slowest) {
      slowest = s;
      slowest_name = c.name;
    }
  }
  MESSAGE("slowest case: ", slowest_name, " ", slowest, " s");
}

TEST_CASE("the valid fixtures pass under the sanitizers") {
  for (const char* name : {"tiny-r1-bf16", "tiny-r1-fp8", "tiny-r1-mtp", "tiny-v3-noqlora", "tiny-v3-plain",
                           "tiny-v3-fp8-mtp"}) {
    INFO(name);
    const fs::path dir = fs::path(R1_TEST_DATA_DIR) / name;
    const io::Checkpoint ck = io::Checkpoint::open(dir);
    CHECK_NOTHROW(parse_model_config(ck.config_json(), name));
    CHECK_NOTHROW(touch_all(ck));
  }
}

namespace {

// One random edit of `s`: bit flips, structural bytes, digits, deletions, duplications, cuts.
void mutate(std::string& s, std::mt19937_64& rng) {
  static const char kBytes[] = {'"', '{', '}', '[', ']', ',', ':', '-', '0', '9', ' ', '\\', 'e', '.', '\0', '\xff'};
  if (s.empty()) {
    s.push_back(kBytes[rng() % sizeof kBytes]);
    return;
  }
  const std::size_t pos = rng() % s.size();
  switch (rng() % 7) {
    case 0: s[pos] = char(s[pos] ^ (1 << (rng() % 8))); break;
    case 1: s[pos] = kBytes[rng() % sizeof kBytes]; break;
    case 2: s.insert(pos, 1, kBytes[rng() % sizeof kBytes]); break;
    case 3: s.erase(pos, 1 + rng() % 8); break;
    case 4: s.insert(pos, s.substr(rng() % s.size(), 1 + rng() % 16)); break;
    case 5: s.resize(pos); break;
    default: s[pos] = char('0' + rng() % 10); break;
  }
}

}  // namespace

TEST_CASE("random mutations of valid inputs open or fail with r1::Error, nothing else") {
  std::mt19937_64 rng(20261123);
  int accepted = 0, rejected = 0;
  auto run = [&](const std::string& what, const std::string& base, int n,
                 const std::function<void(const std::string&)>& parse) {
    for (int i = 0; i < n; ++i) {
      std::string s = base;
      const int edits = 1 + int(rng() % 4);
      for (int k = 0; k < edits; ++k) mutate(s, rng);
      try {
        parse(s);
        ++accepted;
      } catch (const r1::Error&) {
        ++rejected;
      } catch (const std::exception& e) {
        FAIL(what, " mutation ", i, " threw a non-r1 exception: ", e.what());
      }
    }
  };

  // A safetensors file with several dtypes, an empty and a rank-0 tensor, and metadata.
  TempDir tmp;
  const fs::path p = tmp.path / "seed.safetensors";
  io::write_safetensors(p,
                        {{"w", Tensor::zeros(DType::bf16, Shape{3, 4})},
                         {"s", Tensor::zeros(DType::f32, Shape{})},
                         {"e", Tensor::zeros(DType::i64, Shape{0, 2})},
                         {"q", Tensor::zeros(DType::f8_e4m3, Shape{5})}},
                        {{"format", "pt"}});
  const std::string st = [&] {
    const auto f = io::MappedFile::open(p, "test");
    return std::string(f->text());
  }();
  run("safetensors", st, 4000, [](const std::string& s) {
    const auto h = io::parse_safetensors(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "mutant");
    uint64_t pos = 0;  // an accepted file must still tile its data section
    for (const auto& e : h.entries) {
      REQUIRE(e.begin == pos);
      pos = e.end;
    }
    REQUIRE(h.data_begin + pos == s.size());
  });

  const std::string index = R"({"metadata": {"total_size": 64}, "weight_map": {"model.embed_tokens.weight": )"
                            R"("model-00001-of-00002.safetensors", "lm_head.weight": "model-00002-of-00002.safetensors"}})";
  run("index", index, 3000, [](const std::string& s) { io::parse_safetensors_index(s, "mutant"); });

  const std::string config = r1::testing::malformed::base_config().dump(1);
  io::JsonLimits jl;
  jl.max_depth = io::limits::max_config_depth;
  run("config", config, 3000, [&](const std::string& s) {
    const auto j = io::parse_json(s, jl, "config", "mutant");
    const ModelConfig c = parse_model_config(j, "mutant");
    (void)parameter_count(c);
  });
  MESSAGE("mutants accepted: ", accepted, ", rejected with r1::Error: ", rejected);
  CHECK(rejected > accepted);  // most edits break something; all were handled
  CHECK(accepted > 0);         // and the validators are not rejecting everything
}
