// SPDX-License-Identifier: MIT
// The CUDA model end to end on the bundled tiny checkpoints (tests/data): the decode step with and
// without the CUDA graph at batch 1 and 8, and prefill throughput. Times are host wall clock per
// step as a user sees it (inputs copied in, the step, the chosen ids copied out and synchronized),
// median over the timed steps. Rows: model_decode / model_prefill; the bf16 batch-1 graph row
// compares with tools/peer_baselines.py's "HF transformers tiny-r1 bf16 greedy decode, batch 1 (ms
// per token)". Work: bytes = every weight on the device read once per step (an upper bound: a
// token reads only its top-k experts), flops = 2 x active parameters x rows (approximate). Rows
// ending in /f32 load the model with f32 activations (fp32 GEMMs and attention): its cost.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.cuh"
#include "r1/runtime/generate_cuda.hpp"

namespace {

using namespace r1;

#ifndef R1_BENCH_DATA_DIR
#define R1_BENCH_DATA_DIR "tests/data"
#endif

struct Loaded {
  std::unique_ptr<CudaDeepseekV3> model;
  double weight_bytes = 0;
};

const Loaded& model_of(const std::string& dir, Activations act = Activations::bf16) {
  static std::map<std::string, Loaded> cache;
  const std::string key = dir + "/" + activations_name(act);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const int64_t before = device_memory_stats().bytes_in_use;
  Loaded l;
  CudaDeepseekV3::LoadOptions opt;
  opt.activations = act;
  l.model = std::make_unique<CudaDeepseekV3>(load_deepseek_v3_cuda(std::string(R1_BENCH_DATA_DIR) + "/" + dir, opt));
  l.weight_bytes = double(device_memory_stats().bytes_in_use - before);
  return cache.emplace(key, std::move(l)).first->second;
}

double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int32_t> prompt_of(int64_t n, int64_t vocab, int64_t salt) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = int32_t(i == 0 ? 0 : (i * 37 + salt * 101) % vocab);
  return p;
}

void decode_row(const std::string& dir, int64_t batch, bool graph, Activations act = Activations::bf16) {
  const bool f32 = act == Activations::f32;
  const std::string name = "model_decode/" + dir + "/batch" + std::to_string(batch) + (graph ? "/graph" : "/eager") +
                           (f32 ? "/f32" : "");
  bench::add_row(name, [=](benchmark::State& st) {
    const Loaded& l = model_of(dir, act);
    const CudaDeepseekV3& m = *l.model;
    const int64_t prompt = 16, warm = 3, timed = 64, vocab = m.config().vocab_size;
    GenerateOptions g;
    g.max_new_tokens = int(warm + timed);
    CudaRunOptions run;
    run.graph = graph;
    CudaDecoder dec(m, batch, prompt + warm + timed + 2, prompt, g, run);
    for (int64_t b = 0; b < batch; ++b) dec.prefill(b, prompt_of(prompt, vocab, b));
    for (int64_t i = 0; i < warm; ++i) dec.step();  // eager warm-up, then the capture
    if (graph && !dec.graph_used()) fail("model_bench", dec.graph_note());
    std::vector<double> t;
    for (int64_t i = 0; i < timed; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      dec.step();
      t.push_back(seconds(t0));
    }
    const double s = median(t);
    bench::Work w;
    w.bytes = l.weight_bytes;
    w.flops = 2.0 * l.weight_bytes / 2.0 * double(batch);  // bf16 weights: 2 bytes per parameter
    bench::report(st, s, w,
                  {"model_decode", dir + " batch " + std::to_string(batch) + (f32 ? " f32 activations" : ""),
                   graph ? "graph" : "eager",
                   dir == "tiny-r1-bf16" && batch == 1 && graph && !f32
                       ? "HF transformers tiny-r1 bf16 greedy decode, batch 1 (ms per token)"
                       : ""});
    st.counters["ms_per_step"] = s * 1e3;
    st.counters["tokens_per_s"] = double(batch) / s;
  });
}

void prefill_row(const std::string& dir, int64_t tokens) {
  bench::add_row("model_prefill/" + dir + "/tokens" + std::to_string(tokens), [=](benchmark::State& st) {
    const Loaded& l = model_of(dir);
    const CudaDeepseekV3& m = *l.model;
    GenerateOptions g;
    g.max_new_tokens = 1;
    const std::vector<int32_t> p = prompt_of(tokens, m.config().vocab_size, 0);
    std::vector<double> t;
    for (int i = 0; i < 12; ++i) {
      CudaDecoder dec(m, 1, tokens + 2, tokens, g);
      const auto t0 = std::chrono::steady_clock::now();
      dec.prefill(0, p);
      if (i >= 2) t.push_back(seconds(t0));  // the first runs pick GEMM algorithms
    }
    const double s = median(t);
    bench::Work w;
    w.bytes = l.weight_bytes;
    w.flops = 2.0 * l.weight_bytes / 2.0 * double(tokens);
    bench::report(st, s, w, {"model_prefill", dir + " tokens " + std::to_string(tokens), "eager", ""});
    st.counters["tokens_per_s"] = double(tokens) / s;
  });
}

void register_rows() {
  for (const char* dir : {"tiny-r1-bf16", "tiny-r1-fp8"})
    for (int64_t batch : {1, 8})
      for (bool graph : {true, false}) decode_row(dir, batch, graph);
  decode_row("tiny-r1-bf16", 1, true, Activations::f32);
  for (const char* dir : {"tiny-r1-bf16", "tiny-r1-fp8"})
    for (int64_t tokens : {128, 1024}) prefill_row(dir, tokens);
}

}  // namespace

R1_BENCH_MAIN(register_rows)
