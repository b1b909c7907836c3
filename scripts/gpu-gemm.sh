#!/usr/bin/env bash
# The GEMM family on a GPU machine, in one call: builds the release preset (sm_90a) with the GPU
# tests and the benchmarks, runs the GEMM / act_quant GPU tests, then scripts/bench.sh (every
# benchmark + tools/peer_baselines.py + the ratio table), and prints the test summary last.
#
#   scripts/gpu-gemm.sh [all|tests|bench]     (default all)
#   OUT, PEER_BASELINES, BENCH_ONLY, BENCH_FILTER: see scripts/bench.sh
#   GPU_TEST_REGEX   ctest -R regex of the tests to run (default: the GEMM family's five)
#
# Everything verbose goes to $OUT (build.log, gpu_tests.log, one log + JSON per benchmark,
# peer_baselines.log, bench_table.md); the terminal gets the ratio table and the test summary.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what=${1:-all}
OUT=${OUT:-$root/build/release/gemm-out}
mkdir -p "$OUT"
export OUT
tests_re=${GPU_TEST_REGEX:-'^cuda_(linear|linear_fp8|linear_fp8_wgmma|act_quant|grouped_gemm)_test$'}
test_targets=(cuda_linear_test cuda_linear_fp8_test cuda_linear_fp8_wgmma_test cuda_act_quant_test
              cuda_grouped_gemm_test)

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader \
  >"$OUT/gpu.txt" 2>&1 || true
echo "== $(head -1 "$OUT/gpu.txt")"

# tests/tokenizer needs PCRE2's pkg-config file at configure time (a host test dependency). Use a
# carried copy (.deps/pcre2: `apt-get download libpcre2-dev libpcre2-8-0` + `dpkg -x`) when there is
# one; otherwise a stub .pc that only lets the configure step pass: the targets built here (GEMM
# tests and benchmarks) do not link PCRE2 and the tokenizer tests are not built.
if ! pkg-config --exists libpcre2-8 2>/dev/null; then
  if [[ -d .deps/pcre2 ]]; then
    pc=$(dirname "$(find "$root/.deps/pcre2" -name libpcre2-8.pc | head -1)")
    export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  else
    mkdir -p "$OUT/pkgconfig-stub"
    printf 'Name: libpcre2-8\nDescription: stub (GEMM build only)\nVersion: 10.42\nLibs:\nCflags:\n' \
      >"$OUT/pkgconfig-stub/libpcre2-8.pc"
    export PKG_CONFIG_PATH="$OUT/pkgconfig-stub${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  fi
fi

echo "== configure + build: GPU tests and benchmarks (log: $OUT/build.log)"
start=$SECONDS
gen=()
if command -v ninja >/dev/null && [[ ! -f build/release/CMakeCache.txt ]]; then gen=(-G Ninja); fi
if ! { cmake --preset release "${gen[@]}" -DR1_BUILD_TESTS=ON -DR1_BUILD_EXAMPLES=OFF -DR1_BUILD_BENCH=ON &&
       cmake --build build/release -j"$(nproc)" --target "${test_targets[@]}" linear_bench linear_fp8_bench \
         linear_fp8_wgmma_bench grouped_gemm_bench act_quant_bench copy_bench; } >"$OUT/build.log" 2>&1; then
  grep -E "error|Error" "$OUT/build.log" | head -30
  echo "BUILD FAILED (full log: $OUT/build.log)"
  exit 1
fi
echo "   built in $((SECONDS - start)) s"

test_summary="$OUT/gpu_tests_summary.txt"
: >"$test_summary"
if [[ $what == all || $what == tests ]]; then
  echo "== GPU tests (log: $OUT/gpu_tests.log)"
  start=$SECONDS
  set +e
  ctest --test-dir build/release -L gpu -R "$tests_re" -j4 --timeout 400 --output-on-failure \
    >"$OUT/gpu_tests.log" 2>&1
  test_rc=$?
  set -e
  {
    echo "GPU tests (ctest exit $test_rc, $((SECONDS - start)) s; full output: $OUT/gpu_tests.log)"
    grep -E "Test +#[0-9]+:|tests passed|tests failed" "$OUT/gpu_tests.log" | sed 's/^ *//'
    # doctest's failure lines and the context (INFO) printed with them, bounded
    grep -E "ERROR:|CHECK|values:|logged:|  (M=|bf16 E|fp8 E|rows=|backend)|gpu test seed|exception" \
      "$OUT/gpu_tests.log" | head -60
  } >"$test_summary"
fi

if [[ $what == all || $what == bench ]]; then
  R1_SKIP_BUILD=1 scripts/bench.sh || true
fi

echo
cat "$test_summary"
