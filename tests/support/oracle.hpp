// SPDX-License-Identifier: MIT
// A fixture's oracle outputs (tests/data/<fixture>/reference.safetensors: Hugging Face
// transformers' DeepseekV3 in float64; /work/shared/fixtures' README lists what it holds), for the
// host and the GPU model tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "r1/io/safetensors.hpp"

namespace r1::testing {

struct Oracle {
  io::SafetensorsFile file;
  /// `dir` is the fixture's directory name under tests/data (R1_TEST_DATA_DIR).
  explicit Oracle(const std::string& dir)
      : file(io::SafetensorsFile::open(std::string(R1_TEST_DATA_DIR) + "/" + dir + "/reference.safetensors")) {}
  Tensor get(const char* name) const { return file.tensor(name); }
  bool has(const char* name) const { return file.find(name) != nullptr; }
  /// An I64 id list (input_ids, generated_ids, ...) as int32.
  std::vector<int32_t> ids(const char* name) const {
    Tensor t = get(name);  // [n] I64
    std::vector<int32_t> out;
    for (int64_t i = 0; i < t.numel(); ++i) out.push_back(int32_t(t.data_as<int64_t>()[i]));
    return out;
  }
};

}  // namespace r1::testing
