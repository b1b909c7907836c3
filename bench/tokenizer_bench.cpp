// SPDX-License-Identifier: MIT
// Tokenizer throughput (host, single thread): encode, decode and streaming decode of the
// benchmark corpus (bench/tokenizer_corpus.py), tokenizer loading, and one 1 MiB pre-token.
// scripts/bench-tokenizer.sh runs it beside Hugging Face tokenizers on the same corpus.
//
//   R1_BENCH_CORPUS=corpus.txt [R1_BENCH_TOKENIZER=dir] tokenizer_bench
//
// It prints the corpus size, token count and a checksum of all ids; bench/tokenizer_hf_bench.py
// prints the same for HF, so equal checksums show both did the same work.
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "r1/io/tokenizer.hpp"

namespace {

struct Corpus {
  std::vector<std::string> docs;
  size_t bytes = 0;
  std::vector<std::vector<int32_t>> ids;
  size_t tokens = 0;
};

std::string tokenizer_path() {
  const char* env = std::getenv("R1_BENCH_TOKENIZER");
  return env ? env : R1_BENCH_TOKENIZER_DEFAULT;
}

const r1::io::Tokenizer& tokenizer() {
  static const r1::io::Tokenizer t = r1::io::Tokenizer::load(tokenizer_path());
  return t;
}

Corpus& corpus() {
  static Corpus c;
  return c;
}

void encode_corpus(benchmark::State& state, r1::io::EncodeMode mode) {
  const Corpus& c = corpus();
  const r1::io::Tokenizer& tok = tokenizer();
  for (auto _ : state) {
    size_t n = 0;
    for (const std::string& d : c.docs) n += tok.encode(d, mode).size();
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(c.bytes));
  state.counters["tokens"] = double(c.tokens);
}

void BM_EncodeCorpus(benchmark::State& state) { encode_corpus(state, r1::io::EncodeMode::raw); }
void BM_EncodeCorpusUserContent(benchmark::State& state) { encode_corpus(state, r1::io::EncodeMode::user_content); }

void BM_DecodeCorpus(benchmark::State& state) {
  const Corpus& c = corpus();
  for (auto _ : state) {
    size_t n = 0;
    for (const auto& ids : c.ids) n += tokenizer().decode(ids).size();
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(c.bytes));
}

void BM_StreamDecodeCorpus(benchmark::State& state) {
  const Corpus& c = corpus();
  for (auto _ : state) {
    size_t n = 0;
    for (const auto& ids : c.ids) {
      r1::io::StreamDecoder d(tokenizer());
      for (int32_t id : ids) n += d.push(id).size();
      n += d.flush().size();
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(c.bytes));
}

void BM_LongPreToken(benchmark::State& state) {
  const std::string text(size_t(state.range(0)), 'a');  // one pre-token: the BPE merge loop alone
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer().encode(text));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
}

void BM_Load(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(r1::io::Tokenizer::load(tokenizer_path()));
}

double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// The headline number, measured the way bench/tokenizer_hf_bench.py measures HF: encode every
// document, best of 5, this thread's CPU time (so a busy machine does not skew the comparison).
double encode_mb_per_s() {
  double best = 1e30;
  for (int run = 0; run < 5; ++run) {
    const double t0 = cpu_seconds();
    size_t n = 0;
    for (const std::string& d : corpus().docs) n += tokenizer().encode(d).size();
    benchmark::DoNotOptimize(n);
    best = std::min(best, cpu_seconds() - t0);
  }
  return double(corpus().bytes) / best / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const char* path = std::getenv("R1_BENCH_CORPUS");
  if (path == nullptr) {
    std::fprintf(stderr,
                 "tokenizer_bench: set R1_BENCH_CORPUS to a corpus made by bench/tokenizer_corpus.py "
                 "(scripts/bench-tokenizer.sh does both)\n");
    return 1;
  }
  try {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "tokenizer_bench: cannot read %s\n", path);
      return 1;
    }
    const std::string text((std::istreambuf_iterator<char>(f)), {});
    Corpus& c = corpus();
    for (size_t start = 0;;) {  // documents are separated by "\f\n"
      const size_t end = text.find("\f\n", start);
      c.docs.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
      c.bytes += c.docs.back().size();
      if (end == std::string::npos) break;
      start = end + 2;
    }
    uint64_t checksum = 0;
    for (const std::string& d : c.docs) {
      c.ids.push_back(tokenizer().encode(d));
      for (int32_t id : c.ids.back()) checksum = (checksum * 1000003u + uint64_t(id) + 1) % (uint64_t{1} << 61);
      c.tokens += c.ids.back().size();
    }
    std::printf("r1: %zu documents, %zu bytes, %zu tokens, checksum %llu\n", c.docs.size(), c.bytes, c.tokens,
                static_cast<unsigned long long>(checksum));
  } catch (const r1::Error& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
  benchmark::RegisterBenchmark("encode_corpus", BM_EncodeCorpus)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("encode_corpus_user_content", BM_EncodeCorpusUserContent)
      ->Unit(benchmark::kMillisecond)
      ->MinTime(2.0);
  benchmark::RegisterBenchmark("decode_corpus", BM_DecodeCorpus)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("stream_decode_corpus", BM_StreamDecodeCorpus)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("long_pre_token", BM_LongPreToken)->Arg(1 << 20)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("load", BM_Load)->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("r1 encode: %.2f MB/s\n", encode_mb_per_s());
  return 0;
}
