// SPDX-License-Identifier: MIT
// Caps on everything a model file can make r1 allocate or loop over. Each one is checked before the
// allocation it bounds, so a hostile or corrupt file fails fast with an r1::Error instead of
// exhausting memory or the stack. docs/limits.md explains each value and what it protects.
#pragma once

#include <cstddef>
#include <cstdint>

#include "r1/tensor/shape.hpp"

namespace r1::io::limits {

// ---- safetensors ------------------------------------------------------------------------------
/// Header (JSON) bytes; the same cap as the reference implementation's MAX_HEADER_SIZE.
inline constexpr uint64_t max_header_bytes = 100'000'000;
/// Entries (tensors, and __metadata__ if present) in one file. DeepSeek-R1 has 91,991 tensors in
/// total, about 560 per shard.
inline constexpr std::size_t max_tensors_per_file = std::size_t(1) << 18;
/// Bytes of one tensor name (R1's longest is 58).
inline constexpr std::size_t max_name_bytes = 1024;
/// Tensor rank: what r1::Shape holds.
inline constexpr int max_rank = kMaxRank;
/// One dimension and one data offset: 2^48 - 1, the cap of the safetensors JSON schema. With it
/// the element-count check does not depend on the order of the dimensions.
inline constexpr uint64_t max_dim = (uint64_t(1) << 48) - 1;
inline constexpr uint64_t max_offset = (uint64_t(1) << 48) - 1;
/// Entries in `__metadata__`.
inline constexpr std::size_t max_metadata_entries = 4096;
/// JSON nesting depth of a safetensors header (3 is all the format needs).
inline constexpr int max_header_depth = 8;

// ---- any JSON r1 reads ------------------------------------------------------------------------
/// Bytes of one JSON string token as written in the file (keys included), checked before the
/// parser buffers it.
inline constexpr std::size_t max_json_string_bytes = std::size_t(1) << 20;
/// Bytes of one number or literal token.
inline constexpr std::size_t max_json_scalar_bytes = 256;

// ---- model.safetensors.index.json ------------------------------------------------------------
inline constexpr uint64_t max_index_bytes = uint64_t(64) << 20;
/// weight_map entries (R1: about 92k).
inline constexpr std::size_t max_index_entries = std::size_t(1) << 20;
/// Distinct shard files (R1: 163).
inline constexpr std::size_t max_shards = std::size_t(1) << 16;
/// Bytes of one shard file name (a POSIX NAME_MAX).
inline constexpr std::size_t max_shard_name_bytes = 255;
inline constexpr int max_index_depth = 8;

// ---- config.json ------------------------------------------------------------------------------
inline constexpr uint64_t max_config_bytes = uint64_t(4) << 20;
inline constexpr int max_config_depth = 32;
/// JSON values (scalars, arrays and objects) in config.json (R1's has about 60).
inline constexpr std::size_t max_config_values = std::size_t(1) << 16;

// ---- tokenizer.json / tokenizer_config.json (io/tokenizer.hpp) ---------------------------------
/// Bytes of tokenizer.json (DeepSeek-V3's is 7.8 MB; the largest public ones are ~35 MB).
inline constexpr uint64_t max_tokenizer_bytes = uint64_t(256) << 20;
inline constexpr uint64_t max_tokenizer_config_bytes = uint64_t(4) << 20;
inline constexpr int max_tokenizer_depth = 32;
/// JSON values in tokenizer.json outside model.vocab and model.merges (DeepSeek-V3: about 6k).
inline constexpr std::size_t max_tokenizer_values = std::size_t(1) << 20;
/// model.vocab entries plus model.merges entries (DeepSeek-V3: 256k; the largest public
/// vocabularies: about 1 M).
inline constexpr std::size_t max_tokenizer_entries = std::size_t(1) << 22;
/// Token ids: below 2^24, and (so a small file cannot claim millions of empty ids) below
/// 2 * vocabulary entries + 1024.
inline constexpr int32_t max_token_id = (int32_t(1) << 24) - 1;
/// Added tokens.
inline constexpr std::size_t max_added_tokens = std::size_t(1) << 20;

// ---- checkpoint directory ---------------------------------------------------------------------
/// Tensors across all shards of one checkpoint.
inline constexpr std::size_t max_checkpoint_tensors = std::size_t(1) << 20;

}  // namespace r1::io::limits
