// SPDX-License-Identifier: MIT
// Fuzzes config.json handling: the bounded JSON parser with config limits, then ModelConfig
// validation and the parameter count (whose int64 arithmetic must not overflow under the caps;
// UBSan reports it if it does). An accepted config must satisfy the invariants the model code
// relies on.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "r1/io/json.hpp"
#include "r1/models/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  r1::io::JsonLimits limits;
  limits.max_depth = r1::io::limits::max_config_depth;
  r1::ModelConfig c;
  try {
    const auto j = r1::io::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), limits,
                                      "config", "fuzz");
    c = r1::parse_model_config(j, "fuzz");
  } catch (const r1::Error&) {
    return 0;
  }
  const r1::ParameterCount p = r1::parameter_count(c);
  if (p.main <= 0 || p.activated <= 0 || p.activated > p.main || p.stored() < p.main) std::abort();
  if (c.qk_rope_head_dim % 2 != 0 || c.hidden_size <= 0 || c.num_hidden_layers <= 0) std::abort();
  if (c.n_routed_experts > 0) {
    if (c.n_routed_experts % c.n_group != 0 || c.topk_group > c.n_group) std::abort();
    if (c.num_experts_per_tok > c.n_routed_experts) std::abort();
  }
  for (int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) std::abort();
  }
  return 0;
}
