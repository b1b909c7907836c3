#!/usr/bin/env bash
# Builds every libFuzzer target with clang (in build/fuzz) and runs each for N seconds, one after
# the other, printing executions per second and total executions per target.
#
#   scripts/fuzz.sh [seconds-per-target=60] [target-base ...]
#
# Seeds come from fuzz/corpus/<base>/ (read-only); what the fuzzer learns accumulates in
# fuzz/corpus-work/<base>/ (git-ignored) and is reused by the next run. A crash, leak, timeout,
# over-large allocation or sanitizer report leaves its input in fuzz/corpus-work/<base>-artifacts/
# and makes the script exit 1 (after running the remaining targets). Environment: JOBS (build
# parallelism, default 2), R1_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
if ! command -v clang++ >/dev/null; then
  R1_SETUP_FUZZ=1 scripts/setup.sh
fi

build=build/fuzz
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DR1_BUILD_FUZZERS=ON \
  -DR1_BUILD_TESTS=OFF -DR1_BUILD_EXAMPLES=OFF -DR1_BUILD_BENCH=OFF -DR1_ENABLE_CUDA=OFF >/dev/null
mapfile -t all < "$build/fuzz/fuzzers.txt"
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
cmake --build "$build" -j"${JOBS:-2}" --target "${targets[@]/%/_fuzz}"

# Per input at most 2 s; per run 2 GiB RSS and no single allocation above 256 MiB (the caps in
# include/r1/io/limits.hpp keep r1 far below that). libFuzzer derives max_len from the seeds.
flags=(-max_total_time="$seconds" -timeout=2 -rss_limit_mb=2048 -malloc_limit_mb=256
       -print_final_stats=1 ${R1_FUZZ_ARGS:-})
status=0
results=()
for t in "${targets[@]}"; do
  work=fuzz/corpus-work/$t
  artifacts=fuzz/corpus-work/$t-artifacts/
  mkdir -p "$work" "$artifacts"
  extra=()
  [[ -f fuzz/$t.dict ]] && extra+=(-dict="fuzz/$t.dict")
  seeds=()
  [[ -d fuzz/corpus/$t ]] && seeds+=("fuzz/corpus/$t")
  log=$build/fuzz/$t.log
  echo "fuzz: $t for ${seconds}s (log $log)"
  rc=0
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
    "$build/fuzz/${t}_fuzz" "${flags[@]}" "${extra[@]}" -artifact_prefix="$artifacts" "$work" "${seeds[@]}" \
    >"$log" 2>&1 || rc=$?
  execs=$(grep -oE 'stat::number_of_executed_units:[[:space:]]*[0-9]+' "$log" | tail -1 | awk '{print $2}')
  rate=$(grep -oE 'stat::average_exec_per_sec:[[:space:]]*[0-9]+' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -oE '#[0-9]+.*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' | awk '{print $2}')
  verdict=ok
  if ((rc != 0)); then
    verdict="FAILED (exit $rc, see $log and $artifacts)"
    status=1
  fi
  results+=("$(printf '%-20s %10s s %14s execs %10s execs/s %8s cov  %s' "$t" "$seconds" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "$verdict")")
done
echo
printf '%s\n' "${results[@]}"
exit $status
