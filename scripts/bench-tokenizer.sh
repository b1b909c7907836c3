#!/usr/bin/env bash
# Tokenizer throughput, r1 against Hugging Face tokenizers, single-threaded, on the same corpus
# and the same machine (docs/tokenizer.md records the numbers).
#   scripts/bench-tokenizer.sh [MiB]      (default 4 MiB of mixed English/Chinese/code)
# Builds bench/tokenizer_bench (host only, Release) in build/bench-tokenizer, generates the corpus
# with bench/tokenizer_corpus.py, and runs bench/tokenizer_hf_bench.py with HF tokenizers from a
# virtual environment in build/bench-tokenizer/venv (created on first use with
# pip install 'tokenizers==0.23.*'; set PYTHON to use an interpreter that already has it).
set -euo pipefail
cd "$(dirname "$0")/.."
mib="${1:-4}"
build=build/bench-tokenizer
jobs="${JOBS:-2}"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DR1_ENABLE_CUDA=OFF -DR1_BUILD_TESTS=OFF \
      -DR1_BUILD_EXAMPLES=OFF -DR1_BUILD_BENCH=ON > "$build.cmake.log" 2>&1 ||
  { cat "$build.cmake.log"; exit 1; }
cmake --build "$build" --target tokenizer_bench -j "$jobs"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ ! -x "$build/venv/bin/python" ]]; then
    python3 -m venv "$build/venv"
    "$build/venv/bin/pip" install -q 'tokenizers==0.23.*'
  fi
  PYTHON="$build/venv/bin/python"
fi

corpus="$build/corpus-${mib}MiB.txt"
[[ -f "$corpus" ]] || python3 bench/tokenizer_corpus.py --out "$corpus" --mib "$mib"
tokenizer=tests/data/deepseek-v3

echo "== r1 (tokenizer_bench, 1 thread)"
R1_BENCH_CORPUS="$corpus" R1_BENCH_TOKENIZER="$tokenizer" "$build/bench/tokenizer_bench" \
  --benchmark_counters_tabular=true | tee "$build/r1.txt"
echo "== Hugging Face tokenizers (RAYON_NUM_THREADS=1)"
"$PYTHON" bench/tokenizer_hf_bench.py --tokenizer "$tokenizer/tokenizer.json" --corpus "$corpus" | tee "$build/hf.txt"

r1_sum=$(sed -n 's/^r1: .* checksum \([0-9]*\)$/\1/p' "$build/r1.txt")
hf_sum=$(sed -n 's/^hf tokenizers .* checksum \([0-9]*\)$/\1/p' "$build/hf.txt")
r1_mbs=$(sed -n 's/^r1 encode: \([0-9.]*\) MB\/s$/\1/p' "$build/r1.txt")
hf_mbs=$(sed -n 's/^hf encode_batch_fast: \([0-9.]*\) MB\/s$/\1/p' "$build/hf.txt")
echo
echo "== summary: $mib MiB corpus, single thread, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "   r1 encode:                    $r1_mbs MB/s"
echo "   HF tokenizers encode (batch): $hf_mbs MB/s   (CPU time of one thread, best of 5)"
if [[ "$r1_sum" == "$hf_sum" ]]; then echo "   ids identical (checksum $r1_sum)"; else echo "   IDS DIFFER: r1 $r1_sum, HF $hf_sum"; exit 1; fi
