// SPDX-License-Identifier: MIT
// Generator of hostile model files: malformed safetensors files, index files, config.json files
// and checkpoint directories, each with the error r1 must report for it. Shared by
// malformed_test.cpp (the library, under ASan+UBSan) and inspect_malformed_test.cpp (the
// r1-inspect program); r1-generate can run the same cases:
//
//   for (const auto& c : r1::testing::malformed_cases(scratch)) { ...open c.path, expect c.expected... }
//
// Every case is written under `scratch_dir`. `path` is what a program is given: a .safetensors
// file, a model.safetensors.index.json, or a checkpoint directory (config cases are checkpoint
// directories whose only problem is config.json). `expected` is a substring of the error message.
// The cases cover reliability.md §1 and §7 and more: header length fields that lie in both
// directions, truncation at every byte, JSON that is not UTF-8 / not an object / deeply nested /
// has duplicate keys, every way offsets can be wrong, shape overflow, rank and count caps,
// metadata, index files escaping the directory, missing and doubled shards, and config values
// of the wrong type, out of range or inconsistent.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace r1::testing {

struct Case {
  enum class Kind { safetensors, index, checkpoint, config };
  std::string name;             // unique, "<area>/<what>"
  std::filesystem::path path;   // what to open
  std::string expected;         // substring of the error message
  Kind kind = Kind::safetensors;
};

namespace malformed {

using Bytes = std::string;

/// prefix + decimal i (appending, which avoids GCC 12's false -Wrestrict on "lit" + string).
inline std::string numbered(std::string prefix, long long i) {
  prefix += std::to_string(i);
  return prefix;
}

inline Bytes le64(uint64_t n) {
  Bytes b(8, '\0');
  for (int i = 0; i < 8; ++i) b[i] = char((n >> (8 * i)) & 0xff);
  return b;
}

/// A safetensors file: length field (the header's true length unless `n` is given), header text,
/// then `data_bytes` bytes of data (0x5a, never a space, so a header length that lies long reads
/// non-whitespace JSON).
inline Bytes st(const std::string& header, uint64_t data_bytes, int64_t n = -1) {
  return le64(n < 0 ? header.size() : uint64_t(n)) + header + Bytes(std::size_t(data_bytes), '\x5a');
}

/// `"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]}` with raw JSON for shape and offsets.
inline std::string ent(const std::string& name, const std::string& dtype, const std::string& shape,
                       const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

inline void write(const std::filesystem::path& p, const Bytes& b) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(b.data(), std::streamsize(b.size()));
}

/// A small valid file: two F32 tensors (a [2,2], b [2]) and metadata.
inline std::string valid_header() {
  return "{\"__metadata__\":{\"format\":\"pt\"}," + ent("a", "F32", "[2,2]", "[0,16]") + "," +
         ent("b", "F32", "[2]", "[16,24]") + "}";
}

/// The tiny-r1-bf16 config, as a starting point for config mutations.
inline nlohmann::json base_config() {
  return nlohmann::json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "vocab_size": 1024, "hidden_size": 256, "intermediate_size": 512, "moe_intermediate_size": 128,
    "num_hidden_layers": 4, "num_nextn_predict_layers": 0, "num_attention_heads": 4,
    "num_key_value_heads": 4, "n_shared_experts": 1, "n_routed_experts": 16, "num_experts_per_tok": 4,
    "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "topk_method": "noaux_tc", "norm_topk_prob": true, "first_k_dense_replace": 1, "moe_layer_freq": 1,
    "q_lora_rank": 192, "kv_lora_rank": 128, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16,
    "v_head_dim": 32, "hidden_act": "silu", "max_position_embeddings": 163840, "rms_norm_eps": 1e-06,
    "rope_theta": 10000,
    "rope_scaling": {"type": "yarn", "rope_type": "yarn", "factor": 40,
                     "original_max_position_embeddings": 4096, "beta_fast": 32, "beta_slow": 1,
                     "mscale": 1.0, "mscale_all_dim": 1.0},
    "attention_bias": false, "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1,
    "torch_dtype": "bfloat16",
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]}
  })");
}

}  // namespace malformed

/// Writes every case under `scratch_dir` (which must exist and be empty) and returns them.
inline std::vector<Case> malformed_cases(const std::filesystem::path& scratch_dir) {
  namespace fs = std::filesystem;
  using namespace malformed;
  using K = Case::Kind;
  std::vector<Case> cases;
  const fs::path root = scratch_dir;

  // ---- safetensors files -------------------------------------------------------------------
  auto file = [&](const std::string& name, const Bytes& bytes, const std::string& expected) {
    std::string fname = name;
    for (char& c : fname) c = (c == '/' ? '_' : c);
    const fs::path p = root / "st" / (fname + ".safetensors");
    write(p, bytes);
    cases.push_back({"safetensors/" + name, p, expected, K::safetensors});
  };
  // A header around one tensor entry (of a 16-byte data section unless given).
  auto one = [&](const std::string& name, const std::string& entry_json, const std::string& expected,
                 uint64_t data = 16) { file(name, st("{" + entry_json + "}", data), expected); };
  auto f32 = [](const std::string& shape, const std::string& offs) { return ent("t", "F32", shape, offs); };

  const std::string good = valid_header();
  const Bytes good_file = st(good, 24);

  // Sizes and the length field.
  file("empty-file", "", "too small for the 8-byte header length");
  file("seven-bytes", Bytes(7, '\0'), "too small for the 8-byte header length");
  file("header-length-zero", le64(0) + "{}", "header length is 0");
  file("header-length-2^64-1", le64(~uint64_t(0)) + good, "exceeds the cap");
  file("header-length-2^63", le64(uint64_t(1) << 63) + good, "exceeds the cap");
  file("header-length-cap+1", le64(100'000'001) + good, "exceeds the cap");
  file("header-length-past-eof", st(good, 24, int64_t(good.size() + 25)), "runs past the end of the file");
  file("header-length-short-by-1", st(good, 24, int64_t(good.size() - 1)), "JSON syntax error");
  file("header-length-short-half", st(good, 24, int64_t(good.size() / 2)), "JSON syntax error");
  file("header-length-long-by-1", st(good, 24, int64_t(good.size() + 1)), "JSON syntax error");
  file("header-length-long-by-7-odd", st(good, 24, int64_t(good.size() + 7)), "JSON syntax error");
  file("header-only-no-data", st(good, 0), "run past the end of the data section");
  // Truncation at every byte of a valid file: the error depends on where the cut falls.
  for (std::size_t len = 0; len < good_file.size(); ++len) {
    const char* why = len < 8                 ? "too small for the 8-byte header length"
                      : len < 8 + good.size() ? "runs past the end of the file"
                                              : "run past the end of the data section";
    file(numbered("truncated/at-", (long long)len), good_file.substr(0, len), why);
  }
  file("appended-byte", good_file + "x", "trailing bytes");

  // The header as JSON.
  file("header-array", st("[]", 0), "must be a JSON object");
  file("header-string", st("\"abc\"", 0), "must be a JSON object");
  file("header-number", st("42", 0), "must be a JSON object");
  file("header-all-spaces", st("        ", 0), "all whitespace");
  file("header-bom", st("\xef\xbb\xbf{}", 0), "must be a JSON object");
  file("header-nul-first", st(Bytes("\0{}", 3), 0), "must be a JSON object");
  file("header-nul-padding", st(Bytes("{}\0\0\0\0\0\0", 8), 0), "a NUL byte at byte 2");
  file("header-nul-then-more-json", st(Bytes("{}\0{\"a\":1}", 10), 0), "a NUL byte at byte 2");
  file("header-nul-in-name", st(Bytes("{\"a\0b\":{}}", 10), 0), "JSON syntax error");
  file("header-trailing-garbage", st("{} x", 0), "JSON syntax error");
  file("header-two-objects", st("{}{}", 0), "JSON syntax error");
  file("header-unterminated", st("{\"a\":{\"dtype\":\"F32\"", 0), "JSON syntax error");
  file("header-trailing-comma", st("{" + f32("[4]", "[0,16]") + ",}", 16), "JSON syntax error");
  file("header-single-quotes", st("{'t':{}}", 0), "JSON syntax error");
  file("header-comment", st("{/* c */}", 0), "JSON syntax error");
  file("header-not-utf8-in-name", st("{\"\xff\xfe\":{}}", 0), "JSON syntax error");
  file("header-not-utf8-overlong", st("{\"\xc0\xaf\":{}}", 0), "JSON syntax error");
  file("header-not-utf8-outside-string", st("{\xe9}", 0), "JSON syntax error");
  file("header-lone-surrogate", st("{\"\\ud800\":{}}", 0), "JSON syntax error");
  file("header-nan-literal", st("{" + f32("[NaN]", "[0,16]") + "}", 16), "JSON syntax error");
  file("header-number-overflow-1e400", st("{" + f32("[1e400]", "[0,16]") + "}", 16), "number overflow");
  file("nesting-9-levels", st("{\"a\":[[[[[[[[1]]]]]]]]}", 0), "nesting deeper than 8");
  file("nesting-100000-levels", st("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", 0),
       "nesting deeper than 8");
  file("nesting-100000-objects", st(std::string(100000, '{'), 0), "nesting deeper than 8");
  file("string-over-1MiB", st("{\"__metadata__\":{\"k\":\"" + std::string((1 << 20) + 1, 'x') + "\"}}", 0),
       "over the cap of 1048576 bytes");
  file("number-token-300-digits", st("{" + f32("[" + std::string(300, '1') + "]", "[0,16]") + "}", 16),
       "a JSON token");

  // Keys: duplicates, names.
  file("duplicate-tensor-identical",
       st("{" + f32("[4]", "[0,16]") + "," + f32("[4]", "[0,16]") + "}", 16), "appears more than once");
  file("duplicate-tensor-other-dtype",
       st("{" + f32("[4]", "[0,16]") + "," + ent("t", "I32", "[4]", "[0,16]") + "}", 16),
       "appears more than once");
  file("duplicate-tensor-other-offsets",
       st("{" + f32("[4]", "[0,16]") + "," + f32("[4]", "[16,32]") + "}", 32), "appears more than once");
  file("duplicate-metadata", st("{\"__metadata__\":{},\"__metadata__\":{}}", 0), "duplicate key \"__metadata__\"");
  file("duplicate-metadata-key", st("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0),
       "__metadata__: duplicate key");
  one("duplicate-field-dtype", "\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}",
      "duplicate field \"dtype\"");
  one("duplicate-field-offsets", "\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"data_offsets\":[0,16]}",
      "duplicate field \"data_offsets\"");
  one("name-control-char", ent("a\\u0001b", "F32", "[4]", "[0,16]"), "contains a control character");
  one("name-nul", ent("a\\u0000b", "F32", "[4]", "[0,16]"), "contains a control character");
  one("name-newline", ent("a\\nb", "F32", "[4]", "[0,16]"), "contains a control character");
  one("name-1025-bytes", ent(std::string(1025, 'n'), "F32", "[4]", "[0,16]"), "over the cap of 1024");
  {
    // 2^18 + 1 empty tensors: rejected by counting (scan_json) before any entry is stored.
    std::string h = "{";
    for (int i = 0; i < (1 << 18) + 1; ++i) {
      if (i) h += ',';
      h += ent(numbered("t", i), "U8", "[0]", "[0,0]");
    }
    file("too-many-tensors", st(h + "}", 0), "header has 262145 entries, over the cap of 262144 tensors");
  }

  // Tensor entries: schema.
  one("entry-array", "\"t\":[1,2]", "is an array, expected an object");
  one("entry-string", "\"t\":\"F32\"", "is a string, expected an object");
  one("entry-null", "\"t\":null", "is null, expected an object");
  one("entry-number", "\"t\":7", "is a number, expected an object");
  one("missing-dtype", "\"t\":{\"shape\":[4],\"data_offsets\":[0,16]}", "missing field \"dtype\"");
  one("missing-shape", "\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}", "missing field \"shape\"");
  one("missing-offsets", "\"t\":{\"dtype\":\"F32\",\"shape\":[4]}", "missing field \"data_offsets\"");
  one("empty-entry", "\"t\":{}", "missing field \"dtype\"");
  one("unknown-field", "\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"x\":1}",
      "unknown field \"x\"");
  one("dtype-unknown-F8_E8M0", ent("t", "F8_E8M0", "[16]", "[0,16]"), "unknown dtype \"F8_E8M0\"");
  one("dtype-unknown-U16", ent("t", "U16", "[8]", "[0,16]"), "unknown dtype \"U16\"");
  one("dtype-lowercase", ent("t", "f32", "[4]", "[0,16]"), "unknown dtype \"f32\"");
  one("dtype-r1-internal-I4X2", ent("t", "I4X2", "[16]", "[0,16]"), "unknown dtype \"I4X2\"");
  one("dtype-empty", ent("t", "", "[4]", "[0,16]"), "unknown dtype \"\"");
  one("dtype-number", "\"t\":{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,16]}", "field \"dtype\" is a number");
  one("dtype-object", "\"t\":{\"dtype\":{\"x\":1},\"shape\":[4],\"data_offsets\":[0,16]}",
      "field \"dtype\" is an object");
  one("shape-not-array", f32("4", "[0,16]"), "field \"shape\" is a number, expected an array");
  one("shape-string", f32("\"[4]\"", "[0,16]"), "field \"shape\" is a string");
  one("shape-negative", f32("[-4]", "[0,16]"), "negative number -4");
  one("shape-float", f32("[4.0]", "[0,16]"), "non-integer number");
  one("shape-exponent", f32("[4e0]", "[0,16]"), "non-integer number");
  one("shape-string-dim", f32("[\"4\"]", "[0,16]"), "contains a string");
  one("shape-null-dim", f32("[null]", "[0,16]"), "contains null");
  one("shape-bool-dim", f32("[true]", "[0,16]"), "contains a boolean");
  one("shape-nested", f32("[[4]]", "[0,16]"), "contains an array");
  one("shape-dim-2^48", f32("[281474976710656]", "[0,16]"), "exceeds the cap");
  one("shape-dim-2^64", f32("[18446744073709551616]", "[0,16]"), "non-integer number");
  one("shape-rank-9", f32("[1,1,1,1,1,1,1,1,4]", "[0,16]"), "more than 8 dimensions");
  one("shape-numel-overflow", f32("[281474976710655,281474976710655]", "[0,16]"), "overflows a 64-bit byte count");
  one("shape-bytes-overflow", ent("t", "I64", "[140737488355328,16384]", "[0,16]"),
      "overflows a 64-bit byte count");
  one("shape-numel-over-int64", ent("t", "U8", "[281474976710655,65536]", "[0,16]"), "overflows a 64-bit byte count");
  one("shape-zero-first-then-overflow", ent("t", "U8", "[0,281474976710655,281474976710655]", "[0,0]"),
      "overflows a 64-bit byte count", 0);
  one("shape-zero-last-after-overflow", ent("t", "U8", "[281474976710655,281474976710655,0]", "[0,0]"),
      "overflows a 64-bit byte count", 0);
  one("shape-zero-dim-mismatch", f32("[0,4]", "[0,16]"), "needs 0 bytes");
  one("size-too-small", f32("[4]", "[0,8]"), "needs 16 bytes but data_offsets [0, 8] span 8", 8);
  one("size-too-large", f32("[2]", "[0,16]"), "needs 8 bytes but data_offsets [0, 16] span 16");
  one("rank0-size-mismatch", f32("[]", "[0,16]"), "needs 4 bytes");
  one("offsets-not-array", f32("[4]", "16"), "field \"data_offsets\" is a number, expected an array");
  one("offsets-three", f32("[4]", "[0,16,32]"), "has more than 2 elements");
  one("offsets-one", f32("[4]", "[16]"), "has 1 elements, expected 2");
  one("offsets-empty", f32("[4]", "[]"), "has 0 elements, expected 2");
  one("offsets-negative", f32("[4]", "[-16,0]"), "negative number -16");
  one("offsets-negative-end", f32("[4]", "[0,-1]"), "negative number -1");
  one("offsets-float", f32("[4]", "[0.0,16]"), "non-integer number");
  one("offsets-string", f32("[4]", "[\"0\",16]"), "contains a string");
  one("offsets-over-2^48", f32("[4]", "[281474976710656,281474976710672]"), "exceeds the cap");
  one("offsets-2^64", f32("[4]", "[0,18446744073709551616]"), "non-integer number");
  one("offsets-2^64-minus-1", f32("[4]", "[18446744073709551615,0]"), "exceeds the cap");
  one("offsets-end-before-begin", f32("[0]", "[16,0]"), "end before they begin");
  one("offsets-past-eof", f32("[4]", "[0,16]"), "run past the end of the data section", 8);
  one("offsets-far-past-eof", f32("[1024]", "[0,4096]"), "run past the end of the data section");
  one("offsets-near-2^48", f32("[4]", "[281474976710639,281474976710655]"), "run past the end of the data section");

  // Offsets against each other: the tensors must tile the data section.
  file("overlap-partial",
       st("{" + ent("a", "F32", "[4]", "[0,16]") + "," + ent("b", "F32", "[4]", "[8,24]") + "}", 24), "overlaps");
  file("overlap-same-range",
       st("{" + ent("a", "F32", "[4]", "[0,16]") + "," + ent("b", "F32", "[4]", "[0,16]") + "}", 16), "overlaps");
  {
    std::string h = "{";  // the safetensors reference's test_json_attack: 10 tensors on [0,16]
    for (int i = 0; i < 10; ++i) {
      if (i) h += ',';
      h += ent(numbered("t", i), "F32", "[4]", "[0,16]");
    }
    file("overlap-ten-tensors", st(h + "}", 16), "overlaps");
  }
  file("overlap-empty-inside",
       st("{" + ent("a", "F32", "[4]", "[0,16]") + "," + ent("e", "F32", "[0]", "[8,8]") + "}", 16), "overlaps");
  file("gap-between", st("{" + ent("a", "F32", "[2]", "[0,8]") + "," + ent("b", "F32", "[2]", "[12,20]") + "}", 20),
       "belong to no tensor");
  file("gap-at-start", st("{" + ent("a", "F32", "[2]", "[4,12]") + "}", 12), "belong to no tensor");
  file("trailing-data", st("{" + ent("a", "F32", "[2]", "[0,8]") + "}", 12), "4 trailing bytes");
  file("data-without-tensors", st("{}", 5), "5 trailing bytes");
  file("data-only-metadata", st("{\"__metadata__\":{\"a\":\"b\"}}", 1), "1 trailing bytes");

  // __metadata__.
  file("metadata-number-value", st("{\"__metadata__\":{\"k\":1}}", 0), "__metadata__ value of \"k\" is a number");
  file("metadata-object-value", st("{\"__metadata__\":{\"k\":{}}}", 0), "is an object, expected a string");
  file("metadata-null-value", st("{\"__metadata__\":{\"k\":null}}", 0), "is null, expected a string");
  file("metadata-bool-value", st("{\"__metadata__\":{\"k\":true}}", 0), "is a boolean, expected a string");
  file("metadata-array", st("{\"__metadata__\":[\"a\"]}", 0), "__metadata__ is an array");
  file("metadata-string", st("{\"__metadata__\":\"pt\"}", 0), "__metadata__ is a string");
  {
    std::string h = "{\"__metadata__\":{";
    for (int i = 0; i < 4097; ++i) {
      h += i ? ",\"" : "\"";
      h += numbered("k", i);
      h += "\":\"v\"";
    }
    file("metadata-4097-entries", st(h + "}}", 0), "more than 4096 entries");
  }

  // Not a regular file (a naive reader blocks on a FIFO or reads /dev/zero forever).
  fs::create_directories(root / "st");
  const fs::path fifo = root / "st" / "fifo.safetensors";
  if (::mkfifo(fifo.c_str(), 0600) == 0) cases.push_back({"safetensors/fifo", fifo, "not a regular file (a FIFO)", K::safetensors});
  const fs::path zero = root / "st" / "dev-zero.safetensors";
  fs::create_symlink("/dev/zero", zero);
  cases.push_back({"safetensors/symlink-to-dev-zero", zero, "not a regular file (a character device)", K::safetensors});
  cases.push_back({"safetensors/missing-file", root / "st" / "does-not-exist.safetensors", "cannot open", K::safetensors});
  fs::create_directories(root / "st" / "a-directory.safetensors");
  cases.push_back({"safetensors/directory", root / "st" / "a-directory.safetensors", "not a regular file (a directory)",
                   K::safetensors});

  // ---- index files and checkpoint directories ----------------------------------------------
  const std::string cfg_text = base_config().dump(2);
  const Bytes shard_a = st("{" + ent("a", "F32", "[2]", "[0,8]") + "}", 8);
  const Bytes shard_b = st("{" + ent("b", "F32", "[2]", "[0,8]") + "}", 8);
  auto ckpt = [&](const std::string& name) {
    const fs::path d = root / "ckpt" / name;
    fs::create_directories(d);
    write(d / "config.json", cfg_text);
    write(d / "model-00001-of-00002.safetensors", shard_a);
    write(d / "model-00002-of-00002.safetensors", shard_b);
    return d;
  };
  const std::string s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors";
  const std::string wm_ok = "\"a\":\"" + s1 + "\",\"b\":\"" + s2 + "\"";
  // A checkpoint whose index text is `index`; the case opens the index file.
  auto index = [&](const std::string& name, const Bytes& text, const std::string& expected) {
    const fs::path d = ckpt("index-" + name);
    write(d / "model.safetensors.index.json", text);
    cases.push_back({"index/" + name, d / "model.safetensors.index.json", expected, K::index});
  };
  auto wm = [](const std::string& body) { return "{\"metadata\":{\"total_size\":16},\"weight_map\":{" + body + "}}"; };

  index("not-json", "weight_map: a", "JSON syntax error");
  index("empty-file", "", "JSON syntax error");
  index("array", "[]", "not a JSON object");
  index("string", "\"x\"", "not a JSON object");
  index("bom", "\xef\xbb\xbf" + wm(wm_ok), "byte order mark");
  index("no-weight-map", "{\"metadata\":{}}", "has no \"weight_map\"");
  index("weight-map-array", "{\"weight_map\":[]}", "weight_map is an array");
  index("weight-map-string", "{\"weight_map\":\"x\"}", "weight_map is a string");
  index("weight-map-null", "{\"weight_map\":null}", "weight_map is null");
  index("metadata-array", "{\"metadata\":[],\"weight_map\":{" + wm_ok + "}}", "metadata is an array");
  index("duplicate-weight-map", "{\"weight_map\":{" + wm_ok + "},\"weight_map\":{" + wm_ok + "}}",
        "duplicate key \"weight_map\"");
  index("duplicate-tensor", wm(wm_ok + ",\"a\":\"" + s2 + "\""), "listed more than once");
  index("value-number", wm("\"a\":1"), "expected a shard file name");
  index("value-null", wm("\"a\":null"), "expected a shard file name");
  index("value-object", wm("\"a\":{}"), "expected a shard file name");
  index("value-array", wm("\"a\":[\"" + s1 + "\"]"), "expected a shard file name");
  index("shard-dotdot", wm("\"a\":\"../" + s1 + "\",\"b\":\"" + s2 + "\""), "path separator");
  index("shard-absolute", wm("\"a\":\"/etc/passwd\",\"b\":\"" + s2 + "\""), "path separator");
  index("shard-absolute-safetensors", wm("\"a\":\"/tmp/x.safetensors\""), "path separator");
  index("shard-backslash", wm("\"a\":\"..\\\\x.safetensors\""), "path separator");
  index("shard-subdir", wm("\"a\":\"sub/" + s1 + "\""), "path separator");
  index("shard-dot-dot-only", wm("\"a\":\"..\""), "is not a file name");
  index("shard-empty", wm("\"a\":\"\""), "is empty");
  index("shard-not-safetensors", wm("\"a\":\"config.json\""), "does not end in \".safetensors\"");
  index("shard-control-char", wm("\"a\":\"x\\u0007.safetensors\""), "contains a control character");
  index("shard-name-256-bytes", wm("\"a\":\"" + std::string(244, 's') + ".safetensors\""), "longer than 255 bytes");
  index("tensor-name-control-char", wm("\"a\\u0002\":\"" + s1 + "\""), "contains a control character");
  index("missing-shard", wm("\"a\":\"" + s1 + "\",\"b\":\"model-00003-of-00003.safetensors\""), "is missing");
  index("tensor-absent-from-shard", wm(wm_ok + ",\"c\":\"" + s1 + "\""), "which does not contain it");
  index("tensor-in-wrong-shard", wm("\"a\":\"" + s2 + "\",\"b\":\"" + s1 + "\""), "but it is stored in shard");
  index("empty-weight-map", wm(""), "weight_map is empty");
  {
    const fs::path d = ckpt("index-tensor-not-in-index");
    write(d / s1, st("{" + ent("a", "F32", "[2]", "[0,8]") + "," + ent("c", "F32", "[2]", "[8,16]") + "}", 16));
    write(d / "model.safetensors.index.json", wm(wm_ok));
    cases.push_back({"index/tensor-not-in-index", d / "model.safetensors.index.json", "not listed in the index", K::index});
  }
  index("nesting-9-levels", "{\"metadata\":{\"x\":[[[[[[[[1]]]]]]]]},\"weight_map\":{" + wm_ok + "}}",
        "nesting deeper than 8");
  index("nesting-100000-levels", "{\"metadata\":" + std::string(100000, '[') + std::string(100000, ']') + "}",
        "nesting deeper than 8");
  index("tensor-name-1025-bytes", wm("\"" + std::string(1025, 'n') + "\":\"" + s1 + "\""), "over the cap of 1024");
  index("trailing-garbage", wm(wm_ok) + "]", "JSON syntax error");
  index("nul-after-object", wm(wm_ok) + Bytes("\0\"x", 3), "a NUL byte");
  {
    const fs::path d = ckpt("index-shard-in-two-files");
    write(d / s2, st("{" + ent("a", "F32", "[2]", "[0,8]") + "," + ent("b", "F32", "[2]", "[8,16]") + "}", 16));
    write(d / "model.safetensors.index.json", wm(wm_ok));
    cases.push_back({"index/tensor-in-two-shards", d / "model.safetensors.index.json", "is stored in two shards", K::index});
  }
  {
    const fs::path d = ckpt("index-truncated-shard");
    write(d / s2, shard_b.substr(0, shard_b.size() - 3));
    write(d / "model.safetensors.index.json", wm(wm_ok));
    cases.push_back({"index/truncated-shard", d / "model.safetensors.index.json",
                     "model-00002-of-00002.safetensors: tensor \"b\": data_offsets [0, 8] run past", K::index});
  }
  {
    // The index names a file that is a symlink leaving the directory.
    const fs::path d = ckpt("index-shard-symlink-escape");
    write(root / "outside" / "evil.safetensors", shard_a);
    fs::create_symlink(root / "outside" / "evil.safetensors", d / "evil.safetensors");
    write(d / "model.safetensors.index.json", wm("\"a\":\"evil.safetensors\",\"b\":\"" + s2 + "\""));
    cases.push_back({"index/shard-symlink-escapes", d / "model.safetensors.index.json",
                     "outside the checkpoint directory", K::index});
  }
  {
    const fs::path d = ckpt("index-shard-fifo");
    fs::remove(d / s2);
    ::mkfifo((d / s2).c_str(), 0600);
    write(d / "model.safetensors.index.json", wm(wm_ok));
    cases.push_back({"index/shard-is-fifo", d / "model.safetensors.index.json", "not a regular file (a FIFO)", K::index});
  }
  {
    const fs::path d = ckpt("index-shard-directory");
    fs::remove(d / s2);
    fs::create_directories(d / s2);
    write(d / "model.safetensors.index.json", wm(wm_ok));
    cases.push_back({"index/shard-is-directory", d / "model.safetensors.index.json", "not a regular file (a directory)",
                     K::index});
  }

  // Checkpoint directories.
  auto dir_case = [&](const std::string& name, const fs::path& d, const std::string& expected) {
    cases.push_back({"checkpoint/" + name, d, expected, K::checkpoint});
  };
  {
    const fs::path d = ckpt("no-config");
    fs::remove(d / "config.json");
    dir_case("no-config", d, "no config.json");
  }
  {
    const fs::path d = root / "ckpt" / "no-shards";
    fs::create_directories(d);
    write(d / "config.json", cfg_text);
    write(d / "reference.safetensors", shard_a);
    dir_case("no-shards", d, "no model*.safetensors files");
  }
  {
    const fs::path d = ckpt("unindexed-duplicate");
    write(d / s2, shard_a);
    dir_case("unindexed-tensor-in-two-shards", d, "is stored in two shards");
  }
  {
    const fs::path d = ckpt("unindexed-corrupt-shard");
    write(d / s1, le64(1000) + "{}");
    dir_case("unindexed-corrupt-shard", d, "runs past the end of the file");
  }
  {
    const fs::path d = ckpt("config-is-directory");
    fs::remove(d / "config.json");
    fs::create_directories(d / "config.json");
    dir_case("config-is-directory", d, "not a regular file (a directory)");
  }
  {
    const fs::path d = ckpt("config-symlink-escape");
    fs::remove(d / "config.json");
    write(root / "outside" / "config.json", cfg_text);
    fs::create_symlink(root / "outside" / "config.json", d / "config.json");
    dir_case("config-symlink-escapes", d, "outside the checkpoint directory");
  }
  {
    const fs::path d = ckpt("config-over-4MiB");
    write(d / "config.json", "{" + std::string((4 << 20), ' ') + "}");
    dir_case("config-over-4MiB", d, "over the cap of 4194304 bytes");
  }
  {
    const fs::path d = ckpt("index-is-directory");
    fs::create_directories(d / "model.safetensors.index.json");
    dir_case("index-is-directory", d, "not a regular file (a directory)");
  }

  // ---- config.json -------------------------------------------------------------------------
  auto cfg_raw = [&](const std::string& name, const std::string& text, const std::string& expected) {
    const fs::path d = ckpt("config-" + name);
    write(d / "config.json", text);
    cases.push_back({"config/" + name, d, expected, K::config});
  };
  // Mutates the base config: sets `key` (a.b for nested) to `value`, or erases it when null_is_erase.
  auto cfg = [&](const std::string& name, const std::string& key, const nlohmann::json& value,
                 const std::string& expected, bool erase = false) {
    nlohmann::json j = base_config();
    nlohmann::json* target = &j;
    std::string k = key;
    if (const auto dot = k.find('.'); dot != std::string::npos) {
      target = &j[k.substr(0, dot)];
      k = k.substr(dot + 1);
    }
    if (erase) {
      target->erase(k);
    } else {
      (*target)[k] = value;
    }
    cfg_raw(name, j.dump(2), expected);
  };
  cfg_raw("not-json", "{hidden_size: 256}", "JSON syntax error");
  cfg_raw("empty", "", "JSON syntax error");
  cfg_raw("array", "[1,2]", "expected a JSON object");
  cfg_raw("bom", "\xef\xbb\xbf{}", "byte order mark");
  cfg_raw("duplicate-key", "{\"hidden_size\": 256, \"hidden_size\": 7168}", "duplicate key \"hidden_size\"");
  cfg_raw("nesting-33-levels", "{\"x\":" + std::string(33, '[') + std::string(33, ']') + "}", "nesting deeper than 32");
  cfg_raw("nesting-1e6-levels", std::string(1000000, '['), "nesting deeper than 32");
  cfg_raw("too-many-values", "{\"x\":[" + [] {
    std::string s;
    for (int i = 0; i < 70000; ++i) s += i ? ",0" : "0";
    return s;
  }() + "]}", "more than 65536 JSON values");
  cfg_raw("number-overflow", "{\"rms_norm_eps\": 1e400}", "number overflow");
  cfg_raw("trailing-comma", "{\"a\": 1,}", "JSON syntax error");
  cfg_raw("nul-after-object", base_config().dump() + Bytes("\0{", 2), "a NUL byte");
  cfg("missing-model-type", "model_type", nullptr, "field \"model_type\" is missing", true);
  cfg("model-type-llama", "model_type", "llama", "unsupported (supported: deepseek_v3, deepseek_v2)");
  cfg("model-type-number", "model_type", 3, "expected a string, got an integer");
  cfg("missing-hidden-size", "hidden_size", nullptr, "field \"hidden_size\" is missing", true);
  cfg("missing-vocab-size", "vocab_size", nullptr, "field \"vocab_size\" is missing", true);
  cfg("missing-layers", "num_hidden_layers", nullptr, "field \"num_hidden_layers\" is missing", true);
  cfg("missing-q-lora-rank", "q_lora_rank", nullptr, "field \"q_lora_rank\" is missing", true);
  cfg("missing-n-routed-experts", "n_routed_experts", nullptr, "field \"n_routed_experts\" is missing", true);
  cfg("missing-moe-intermediate", "moe_intermediate_size", nullptr, "field \"moe_intermediate_size\" is missing", true);
  cfg("hidden-size-string", "hidden_size", "256", "expected an integer, got a string");
  cfg("hidden-size-float", "hidden_size", 256.0, "expected an integer, got a non-integer number");
  cfg("hidden-size-bool", "hidden_size", true, "expected an integer, got a boolean");
  cfg("hidden-size-null", "hidden_size", nullptr, "expected an integer, got null");
  cfg("hidden-size-array", "hidden_size", nlohmann::json::array({256}), "expected an integer, got an array");
  cfg("hidden-size-negative", "hidden_size", -256, "must be between 1 and 65536");
  cfg("hidden-size-zero", "hidden_size", 0, "must be between 1 and 65536");
  cfg("hidden-size-2^40", "hidden_size", int64_t(1) << 40, "must be between 1 and 65536");
  cfg("vocab-size-2^64-1", "vocab_size", 18446744073709551615ull, "must be between 1 and 16777216");
  cfg("layers-100000", "num_hidden_layers", 100000, "must be between 1 and 1024");
  cfg("heads-zero", "num_attention_heads", 0, "must be between 1 and 1024");
  cfg("kv-lora-negative", "kv_lora_rank", -1, "must be between");
  cfg("rope-dim-odd", "qk_rope_head_dim", 15, "must be even");
  cfg("head-dim-huge", "v_head_dim", 1 << 20, "must be between 1 and 1024");
  cfg("nextn-negative", "num_nextn_predict_layers", -1, "must be between 0 and 16");
  cfg("groups-not-dividing", "n_group", 3, "is not divisible into 3 equal groups");
  cfg("topk-group-over-groups", "topk_group", 5, "must be between 1 and 4");
  cfg("topk-over-kept-groups", "num_experts_per_tok", 9, "more experts than the 2 kept groups of 4 hold");
  cfg("topk-over-experts", "num_experts_per_tok", 17, "must be between 1 and 16");
  cfg("groups-of-one-noaux", "n_group", 16, "top-2");
  cfg("first-dense-over-layers", "first_k_dense_replace", 5, "must be between 0 and 4");
  cfg("moe-layer-freq-zero", "moe_layer_freq", 0, "must be between 1 and 1024");
  cfg("no-experts-but-moe-layers", "n_routed_experts", nullptr, "but there are no routed experts");
  cfg("topk-method-unknown", "topk_method", "top_p", "unsupported (supported: noaux_tc, greedy, group_limited_greedy)");
  cfg("scoring-func-relu", "scoring_func", "relu", "unsupported (supported: sigmoid, softmax)");
  cfg("norm-topk-string", "norm_topk_prob", "yes", "expected true or false, got a string");
  cfg("scaling-factor-zero", "routed_scaling_factor", 0, "must be in (0");
  cfg("scaling-factor-negative", "routed_scaling_factor", -2.5, "must be in (0");
  cfg("hidden-act-gelu", "hidden_act", "gelu", "unsupported activation (supported: silu)");
  cfg("hidden-act-long", "hidden_act", std::string(300, 'a'), "longer than 256 bytes");
  cfg("attention-bias", "attention_bias", true, "unsupported (MLA projections have no bias)");
  cfg("rms-eps-negative", "rms_norm_eps", -1e-6, "must be in (0");
  cfg("rms-eps-zero", "rms_norm_eps", 0, "must be in (0");
  cfg("rms-eps-string", "rms_norm_eps", "1e-6", "expected a number, got a string");
  cfg("max-positions-zero", "max_position_embeddings", 0, "must be between 1");
  cfg("rope-theta-negative", "rope_theta", -10000, "must be in (0");
  cfg("rope-scaling-string", "rope_scaling", "yarn", "expected an object, got a string");
  cfg("rope-type-linear", "rope_scaling.rope_type", "linear", "disagrees with rope_type");
  cfg("rope-type-dynamic", "rope_scaling", {{"rope_type", "dynamic"}, {"factor", 2.0}}, "unsupported RoPE type");
  cfg("rope-factor-missing", "rope_scaling.factor", nullptr, "field \"rope_scaling.factor\" is missing", true);
  cfg("rope-factor-below-1", "rope_scaling.factor", 0.5, "must be in [1");
  cfg("rope-factor-string", "rope_scaling.factor", "40", "expected a number, got a string");
  cfg("rope-beta-negative", "rope_scaling.beta_fast", -32, "must be in [0");
  cfg("rope-original-max-zero", "rope_scaling.original_max_position_embeddings", 0, "must be between 1");
  cfg("rope-mscale-string", "rope_scaling.mscale", "1.0", "expected a number");
  cfg("rope-truncate-number", "rope_scaling.truncate", 1, "expected true or false");
  {
    nlohmann::json j = base_config();
    j.erase("rope_scaling");
    j["rope_parameters"] = nlohmann::json::array({1});
    cfg_raw("rope-parameters-array", j.dump(), "field \"rope_parameters\" = [1]: expected an object");
  }
  cfg("quant-not-object", "quantization_config", "fp8", "expected an object, got a string");
  cfg("quant-method-gptq", "quantization_config.quant_method", "gptq", "unsupported (r1 reads block-scaled FP8");
  cfg("quant-method-missing", "quantization_config.quant_method", nullptr, "quant_method\" is missing", true);
  cfg("quant-fmt-e5m2", "quantization_config.fmt", "e5m2", "unsupported FP8 format");
  cfg("quant-static-activations", "quantization_config.activation_scheme", "static", "unsupported");
  cfg("quant-scale-fmt", "quantization_config.scale_fmt", "e8m0", "unsupported (supported: null, \"ue8m0\")");
  cfg("quant-block-missing", "quantization_config.weight_block_size", nullptr, "weight_block_size\" is missing", true);
  cfg("quant-block-one-int", "quantization_config.weight_block_size", {128}, "expected two integers");
  cfg("quant-block-three-ints", "quantization_config.weight_block_size", {128, 128, 128}, "expected two integers");
  cfg("quant-block-string", "quantization_config.weight_block_size", {"128", 128}, "expected an integer, got a string");
  cfg("quant-block-zero", "quantization_config.weight_block_size", {0, 128}, "must be between 1 and 4096");
  cfg("quant-block-float", "quantization_config.weight_block_size", {128.5, 128}, "non-integer number");
  cfg("quant-modules-not-list", "quantization_config.modules_to_not_convert", "lm_head", "expected a list");
  cfg("bos-out-of-vocab", "bos_token_id", 1024, "must be between 0 and 1023");
  cfg("bos-negative", "bos_token_id", -1, "must be between 0 and 1023");
  cfg("eos-out-of-vocab", "eos_token_id", 5000, "must be between 0 and 1023");
  cfg("eos-list-string", "eos_token_id", {1, "2"}, "expected an integer, got a string");
  cfg("eos-object", "eos_token_id", {{"id", 1}}, "expected an integer, got an object");
  cfg("pad-out-of-vocab", "pad_token_id", 99999, "must be between 0 and 1023");
  cfg("tie-embeddings-string", "tie_word_embeddings", "false", "expected true or false");
  return cases;
}

}  // namespace r1::testing
