#!/usr/bin/env bash
# One command on a GPU machine: builds the release preset (sm_90a, Release), runs every benchmark
# program in build/release/bench with JSON output, runs the PyTorch / cuBLAS peers
# (tools/peer_baselines.py) in the same call, and prints the ratio table (bench/report.py).
#
#   OUT              logs, JSON and bench_table.md go here (default: build/release/bench-out)
#   PEER_BASELINES   path of peer_baselines.py (default: .deps/tools/peer_baselines.py, else
#                    ../shared/tools/peer_baselines.py); PEER_BASELINES=none skips the peers
#   BENCH_ONLY       space-separated program names to run (default: every *_bench)
#   BENCH_SKIP       program names not to run (default: tokenizer_bench, host-only, which
#                    scripts/bench-tokenizer.sh runs beside its own peer)
#   BENCH_FILTER     Google Benchmark --benchmark_filter regex passed to every program
#   R1_SKIP_BUILD=1  use build/release as it is (scripts/gpu-gemm.sh builds it first)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
OUT=${OUT:-$root/build/release/bench-out}
mkdir -p "$OUT"
export OUT

if [[ "${R1_SKIP_BUILD:-0}" != 1 ]]; then
  gen=()
  if command -v ninja >/dev/null && [[ ! -f build/release/CMakeCache.txt ]]; then gen=(-G Ninja); fi
  echo "== configure + build (release preset; log: $OUT/build.log)"
  if ! { cmake --preset release "${gen[@]}" -DR1_BUILD_TESTS=OFF -DR1_BUILD_EXAMPLES=OFF &&
         cmake --build build/release -j"$(nproc)"; } >"$OUT/build.log" 2>&1; then
    grep -E "error|Error" "$OUT/build.log" | head -30
    echo "BUILD FAILED (full log: $OUT/build.log)"
    exit 1
  fi
fi

progs=()
if [[ -n "${BENCH_ONLY:-}" ]]; then
  for p in $BENCH_ONLY; do progs+=("build/release/bench/$p"); done
else
  skip=" ${BENCH_SKIP-tokenizer_bench} "
  for p in build/release/bench/*_bench; do
    if [[ -x $p && $skip != *" $(basename "$p") "* ]]; then progs+=("$p"); fi
  done
fi
filter=()
if [[ -n "${BENCH_FILTER:-}" ]]; then filter=(--benchmark_filter="$BENCH_FILTER"); fi

jsons=()
for p in "${progs[@]}"; do
  name=$(basename "$p")
  echo "== $name (log: $OUT/$name.log)"
  start=$SECONDS
  if timeout 300 "$p" --benchmark_out="$OUT/$name.json" --benchmark_out_format=json "${filter[@]}" \
      >"$OUT/$name.log" 2>&1; then
    echo "   done in $((SECONDS - start)) s"
  else
    echo "   FAILED (exit $?) after $((SECONDS - start)) s; last lines:"
    tail -5 "$OUT/$name.log" | sed 's/^/   /'
  fi
  if [[ -s "$OUT/$name.json" ]]; then jsons+=("$OUT/$name.json"); fi
done

peer=${PEER_BASELINES:-}
if [[ -z "$peer" ]]; then
  for c in .deps/tools/peer_baselines.py ../shared/tools/peer_baselines.py; do
    if [[ -f $c ]]; then peer=$c; break; fi
  done
fi
peer_json=()
if [[ -n "$peer" && "$peer" != none ]]; then
  echo "== peers: $peer (log: $OUT/peer_baselines.log)"
  start=$SECONDS
  # The script writes $OUT/baselines.json; it imports make_fixtures.py from its own folder.
  if (cd "$(dirname "$peer")" && timeout 300 python3 "$(basename "$peer")") >"$OUT/peer_baselines.log" 2>&1; then
    echo "   done in $((SECONDS - start)) s"
  else
    echo "   FAILED (exit $?); last lines:"
    tail -5 "$OUT/peer_baselines.log" | sed 's/^/   /'
  fi
  grep -h "SECTION FAILED" "$OUT/peer_baselines.log" | sed 's/^/   /' || true
  if [[ -s "$OUT/baselines.json" ]]; then peer_json=(--peers "$OUT/baselines.json"); fi
else
  echo "== peers skipped (no peer_baselines.py; set PEER_BASELINES)"
fi

# PyTorch peers of the kernels peer_baselines.py leaves out (rope, router, sampling, MLA prefill...).
if [[ "${PEER_BASELINES:-}" != none ]]; then
  echo "== peers: bench/peers_extra.py (log: $OUT/peers_extra.log)"
  start=$SECONDS
  if timeout 300 python3 bench/peers_extra.py >"$OUT/peers_extra.log" 2>&1; then
    echo "   done in $((SECONDS - start)) s"
  else
    echo "   FAILED (exit $?); last lines:"
    tail -5 "$OUT/peers_extra.log" | sed 's/^/   /'
  fi
  grep -h "SECTION FAILED" "$OUT/peers_extra.log" | sed 's/^/   /' || true
  if [[ -s "$OUT/peers_extra.json" ]]; then peer_json+=(--peers "$OUT/peers_extra.json"); fi
fi

echo "== ratio table (all rows: $OUT/bench_table.md)"
if ((${#jsons[@]} == 0)); then
  echo "no benchmark JSON was written"
  exit 1
fi
python3 bench/report.py "${peer_json[@]}" --markdown "$OUT/bench_table.md" "${jsons[@]}"
