// SPDX-License-Identifier: MIT
// Loading a DeepSeek-V3/R1 model from a Hugging Face checkpoint directory (config.json +
// safetensors shards + model.safetensors.index.json).
#pragma once

#include <filesystem>

#include "r1/io/checkpoint.hpp"
#include "r1/models/config.hpp"
#include "r1/models/deepseek_v3_any.hpp"

namespace r1 {

/// Opens `dir`, validates config.json and loads the weights it names (see AnyDeepseekV3::load).
inline AnyDeepseekV3 load_deepseek_v3(const std::filesystem::path& dir, const ModelLoadOptions& opt = {}) {
  io::Checkpoint ck = io::Checkpoint::open(dir);
  const ModelConfig cfg = parse_model_config(ck.config_json(), (dir / "config.json").string());
  return AnyDeepseekV3::load(ck, cfg, opt);
}

}  // namespace r1
