// SPDX-License-Identifier: MIT
// Fuzzes parse_safetensors_index on arbitrary text. An accepted index must be well formed: shard
// names plain *.safetensors file names, sorted and distinct; weight_map sorted, without duplicates,
// every shard index in range.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "r1/io/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  r1::io::SafetensorsIndex idx;
  try {
    idx = r1::io::parse_safetensors_index(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const r1::Error&) {
    return 0;
  }
  for (std::size_t i = 0; i < idx.shards.size(); ++i) {
    if (r1::io::shard_name_problem(idx.shards[i]) != nullptr) std::abort();
    if (i > 0 && !(idx.shards[i - 1] < idx.shards[i])) std::abort();
  }
  for (std::size_t i = 0; i < idx.weight_map.size(); ++i) {
    if (idx.weight_map[i].second >= idx.shards.size()) std::abort();
    if (i > 0 && !(idx.weight_map[i - 1].first < idx.weight_map[i].first)) std::abort();
  }
  if (idx.weight_map.empty()) std::abort();
  return 0;
}
