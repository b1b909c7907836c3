// SPDX-License-Identifier: MIT
// r1-inspect PATH: validates a model file and prints what it holds.
//   PATH ends in .safetensors    -> one safetensors file
//   PATH ends in .index.json     -> an index file and the shards it names
//   PATH ends in .json           -> a config.json alone
//   PATH is a directory          -> a checkpoint: config.json + shards (index or model*.safetensors)
//   anything else                -> one safetensors file
// Exit status 0 when valid, 1 with the error on stderr otherwise (never a signal: every failure
// r1 can detect is an r1::Error, and the parsers are fuzzed).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "r1/io/checkpoint.hpp"
#include "r1/io/safetensors.hpp"
#include "r1/models/config.hpp"

namespace fs = std::filesystem;

namespace {

struct Options {
  std::string path;
  bool no_tensors = false;
};

// 1234567 -> "1,234,567"
std::string grouped(uint64_t v) {
  std::string s = std::to_string(v), out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

// 671026419200 -> "671,026,419,200 (671.03B)"
std::string billions(int64_t v) {
  const double d = double(v);
  if (d >= 1e9) return fmt::format("{} ({:.2f}B)", grouped(uint64_t(v)), d / 1e9);
  if (d >= 1e6) return fmt::format("{} ({:.2f}M)", grouped(uint64_t(v)), d / 1e6);
  return grouped(uint64_t(v));
}

// Names come from the file: print them escaped (no terminal control sequences).
std::string printable(const std::string& s) {
  const std::string q = r1::io::escaped(s, 200);
  return q.substr(1, q.size() - 2);
}

struct Row {
  std::string name, dtype, shape;
  uint64_t bytes;
};

void print_table(std::vector<Row> rows) {
  std::size_t wn = 4, wd = 5, ws = 5;
  for (const Row& r : rows) {
    wn = std::max(wn, r.name.size());
    wd = std::max(wd, r.dtype.size());
    ws = std::max(ws, r.shape.size());
  }
  wn = std::min<std::size_t>(wn, 100);
  fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>14}\n", "name", wn, "dtype", wd, "shape", ws, "bytes");
  for (const Row& r : rows) {
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>14}\n", r.name, wn, r.dtype, wd, r.shape, ws, grouped(r.bytes));
  }
}

Row row(const r1::io::TensorEntry& e) {
  return {printable(e.name), std::string(r1::dtype_name(e.dtype)), e.shape.str(), e.nbytes()};
}

void print_config(const r1::ModelConfig& c) {
  int64_t dense = 0, moe = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) (c.is_moe_layer(l) ? moe : dense) += 1;
  fmt::print("config: {}, vocab {}, hidden {}, {} layers ({} dense, {} MoE) + {} MTP, {} heads\n", c.model_type,
             c.vocab_size, c.hidden_size, c.num_hidden_layers, dense, moe, c.num_nextn_predict_layers,
             c.num_attention_heads);
  fmt::print("  attention: MLA, q_lora {}, kv_lora {}, head dims nope {} / rope {} / v {}\n",
             c.has_q_lora() ? std::to_string(c.q_lora_rank) : std::string("none (direct q_proj)"), c.kv_lora_rank,
             c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim);
  if (c.n_routed_experts > 0) {
    fmt::print("  MoE: {} routed + {} shared experts of width {}, top-{} ({} groups, keep {}), {} / {}, "
               "{}normalized, scale {}\n",
               c.n_routed_experts, c.n_shared_experts, c.moe_intermediate_size, c.num_experts_per_tok, c.n_group,
               c.topk_group, r1::topk_method_name(c.topk_method), r1::scoring_func_name(c.scoring_func),
               c.norm_topk_prob ? "" : "not ", c.routed_scaling_factor);
  }
  if (c.rope.type == r1::RopeType::yarn) {
    fmt::print("  RoPE: YaRN, theta {}, factor {}, original context {}, max positions {}\n", c.rope.theta,
               c.rope.factor,
               c.rope.original_max_position_embeddings ? std::to_string(*c.rope.original_max_position_embeddings)
                                                       : std::string("(none)"),
               c.max_position_embeddings);
  } else {
    fmt::print("  RoPE: plain, theta {}, max positions {}\n", c.rope.theta, c.max_position_embeddings);
  }
  if (c.quantization) {
    fmt::print("  weights: FP8 e4m3, {}x{} blocks{}\n", c.quantization->block_rows, c.quantization->block_cols,
               c.quantization->scale_fmt.empty() ? "" : ", scales " + c.quantization->scale_fmt);
  } else {
    fmt::print("  weights: {}\n", c.torch_dtype.empty() ? std::string("unquantized") : c.torch_dtype);
  }
  const r1::ParameterCount p = r1::parameter_count(c);
  fmt::print("parameters: main {}, activated per token {}, MTP {} (+{} in embedding/head copies), stored {}\n",
             billions(p.main), billions(p.activated), billions(p.mtp), billions(p.mtp_copies), billions(p.stored()));
}

int inspect_checkpoint(const r1::io::Checkpoint& ck, const Options& opt) {
  // Validate everything before printing anything: "valid" must mean valid.
  std::optional<r1::ModelConfig> cfg;
  if (!ck.config_json().is_null()) cfg = r1::parse_model_config(ck.config_json(), (ck.dir() / "config.json").string());
  uint64_t bytes = 0, elements = 0;
  std::vector<Row> rows;
  for (const std::string& name : ck.names()) {
    const r1::io::TensorEntry* e = ck.find(name);
    bytes += e->nbytes();
    // FP8 block scales are not parameters; everything else is.
    if (name.size() < 10 || name.compare(name.size() - 10, 10, "_scale_inv") != 0) {
      elements += uint64_t(e->shape.numel());
    }
    if (!opt.no_tensors) rows.push_back(row(*e));
  }
  fmt::print("{}: valid checkpoint, {} shard{} ({}), {} tensors, {} bytes of tensor data\n", ck.dir().string(),
             ck.shards().size(), ck.shards().size() == 1 ? "" : "s",
             ck.indexed() ? "from model.safetensors.index.json" : "model*.safetensors", grouped(ck.size()),
             grouped(bytes));
  if (cfg) {
    print_config(*cfg);
    const r1::ParameterCount p = r1::parameter_count(*cfg);
    fmt::print("tensor elements (without *_scale_inv): {} ({} the config's count)\n", grouped(elements),
               elements == uint64_t(p.stored()) ? "equal to" : "differs from");
  }
  if (!opt.no_tensors) print_table(std::move(rows));
  return 0;
}

int run(const Options& opt) {
  const fs::path path = opt.path;
  std::error_code ec;
  const std::string fname = path.filename().string();
  auto ends_with = [&](const std::string& suffix) {
    return fname.size() >= suffix.size() && fname.compare(fname.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  // The name decides first, so that a directory or device named *.safetensors is reported as a
  // bad safetensors file rather than as a checkpoint without config.json.
  const bool named_file = ends_with(".safetensors") || ends_with(".json");
  if (!named_file && fs::is_directory(path, ec)) return inspect_checkpoint(r1::io::Checkpoint::open(path), opt);
  if (ends_with(".index.json")) return inspect_checkpoint(r1::io::Checkpoint::open_index(path), opt);
  if (ends_with(".json")) {
    const r1::ModelConfig cfg = r1::load_model_config(path);
    fmt::print("{}: valid config\n", path.string());
    print_config(cfg);
    return 0;
  }
  const r1::io::SafetensorsFile f = r1::io::SafetensorsFile::open(path);
  const auto& h = f.header();
  fmt::print("{}: valid safetensors file, {} tensors, {} bytes (header {} bytes)\n", path.string(),
             grouped(h.entries.size()), grouped(f.file_size()), grouped(h.header_bytes));
  for (const auto& [k, v] : f.metadata()) fmt::print("metadata: {} = {}\n", printable(k), printable(v));
  if (!opt.no_tensors) {
    std::vector<Row> rows;
    for (const auto& e : h.entries) rows.push_back(row(e));
    print_table(std::move(rows));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"r1-inspect: validate a safetensors file, an index file, a config.json or a checkpoint "
               "directory, and print its tensors (name, dtype, shape, bytes), config and parameter count"};
  Options opt;
  app.add_option("PATH", opt.path, "safetensors file, model.safetensors.index.json, config.json or checkpoint directory")
      ->required();
  app.add_flag("--no-tensors", opt.no_tensors, "print the summary only, not the tensor table");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 1;
  }
  try {
    return run(opt);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "r1-inspect: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "r1-inspect: error: %s\n", e.what());
  }
  return 1;
}
