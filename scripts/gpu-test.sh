#!/usr/bin/env bash
# On a machine with a CUDA GPU: configure, build every GPU-labelled test and run `ctest -L gpu`.
#
#   scripts/gpu-test.sh [ctest arguments...]        e.g.  scripts/gpu-test.sh -R cuda_linear
#
#   R1_GPU_BUILD   build directory (default build/gpu)
#   R1_GPU_ARCH    CUDA architectures (default 90a: Hopper; "90a;80" adds the portable sm_80 path)
#   R1_GPU_TESTS   regex: build and run only the GPU tests whose names match
#   R1_SANITIZE    memcheck | racecheck | synccheck | initcheck: run each GPU test under
#                  compute-sanitizer with that tool (tests are slower; the intentional out-of-memory test case is skipped)
#   R1_SANITIZE_TEST_ARGS  extra arguments for each test executable under the sanitizer, e.g.
#                  "-tc='linear: R1 projection*'" (doctest's test-case filter) to bisect a report
#   R1_SANITIZE_TOOL_ARGS  extra compute-sanitizer arguments, e.g. "--kernel-name kns=gemm_mma"
#   R1_SANITIZE_PER_CASE   regex: the GPU tests whose doctest cases each run as a sanitizer process of
#                  their own (in the same job pool, each with R1_SANITIZE_TIMEOUT), e.g. cuda_model
#                  (its cases take minutes each under racecheck; one process for all would time out)
#
# Dependencies must already be installed (the GPU machines have them; elsewhere run setup.sh). The
# PCRE2 differential test of the tokenizer is not built here (R1_TEST_PCRE2=OFF): the GPU machines'
# image has no PCRE2 headers, and that test is host-only anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${R1_GPU_BUILD:-build/gpu}
arch=${R1_GPU_ARCH:-90a}
gen=()
if command -v ninja >/dev/null && [[ ! -f $build/CMakeCache.txt ]]; then gen=(-G Ninja); fi
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DR1_ENABLE_CUDA=ON \
  -DR1_CUDA_ARCHITECTURES="$arch" -DR1_BUILD_TESTS=ON -DR1_BUILD_EXAMPLES=ON -DR1_BUILD_BENCH=OFF \
  -DR1_TEST_PCRE2=OFF >/dev/null
# The GPU tests are exactly the ctest entries labelled gpu; their names are their targets' names.
mapfile -t tests < <(ctest --test-dir "$build" -N -L gpu | sed -n 's/^ *Test *#[0-9]*: *//p' |
                     grep -E "${R1_GPU_TESTS:-.}")
echo "== building ${#tests[@]} GPU tests (${arch}) in $build"
cmake --build "$build" -j"$(nproc)" --target "${tests[@]}"
if [[ -n ${R1_SANITIZE:-} ]]; then
  # Every GPU test executable under compute-sanitizer, four at a time, each with its own log in
  # $R1_SANITIZE_LOGS (default $build/sanitize); doctest's exclusion keeps the intentional
  # out-of-memory case (an allocation failure the sanitizer would report) out of the run.
  logs=${R1_SANITIZE_LOGS:-$build/sanitize}
  mkdir -p "$logs"
  # One job: "test" or "test<TAB>n<TAB>case pattern" (one doctest case of a split test).
  run_one() {
    local t case_no="" pattern="" exe name log
    IFS=$'\t' read -r t case_no pattern <<<"$1"
    exe=$(find "$build/tests" -type f -name "$t" -perm -u+x | head -1)
    name=$t${case_no:+ case $case_no}
    log=$logs/$t${case_no:+.case$case_no}.$R1_SANITIZE.log
    # racecheck reports hazards inside cuBLASLt's own Hopper kernels (nvjet_*: TMA/mbarrier
    # synchronization it does not model); those are NVIDIA's code, so racecheck skips them.
    local skip=() envs=()
    [[ $R1_SANITIZE == racecheck ]] && skip=(--kernel-name-exclude kns=nvjet)
    [[ $R1_SANITIZE == racecheck && $t != *grouped_gemm* ]] && envs=(R1_GEMM_BACKEND=own)
    local targs=() sargs=()
    eval "targs=(${R1_SANITIZE_TEST_ARGS:-})"
    eval "sargs=(${R1_SANITIZE_TOOL_ARGS:-})"
    [[ -n $pattern ]] && targs+=("--test-case=$pattern")
    if env "${envs[@]}" timeout "${R1_SANITIZE_TIMEOUT:-500}" compute-sanitizer --tool "$R1_SANITIZE" "${skip[@]}" \
        "${sargs[@]}" --error-exitcode 99 "$exe" --test-case-exclude='*impossible allocation*' "${targs[@]}" \
        >"$log" 2>&1; then
      echo "clean   $R1_SANITIZE $name${pattern:+ ($pattern)}"
    else
      echo "FAILED  $R1_SANITIZE $name${pattern:+ ($pattern)} (exit $?; log $log)"
      grep -E "ERROR SUMMARY|Invalid|Race|Error" "$log" | head -5 | sed 's/^/        /'
      return 1
    fi
  }
  # The job list: one line per test, or per doctest case of the tests R1_SANITIZE_PER_CASE names.
  # doctest splits a -tc filter at commas, so a case name's commas become '?' (any one character).
  jobs=()
  for t in "${tests[@]}"; do
    if [[ -n ${R1_SANITIZE_PER_CASE:-} && $t =~ $R1_SANITIZE_PER_CASE ]]; then
      exe=$(find "$build/tests" -type f -name "$t" -perm -u+x | head -1)
      n=0
      while IFS= read -r c; do
        n=$((n + 1))
        jobs+=("$t"$'\t'"$n"$'\t'"${c//,/?}")
      done < <("$exe" --list-test-cases --no-version 2>/dev/null | sed -n '/^====/,/^====/p' | grep -v '^====')
    else
      jobs+=("$t")
    fi
  done
  if [[ $R1_SANITIZE == racecheck ]]; then
    # racecheck aborts with "Internal Sanitizer Error: failed to handle a hardware exception" on
    # cuBLASLt's Hopper (nvjet) kernels, even with them excluded. racecheck is for r1's kernels:
    # R1_GEMM_BACKEND=own makes 'automatic' GEMMs and MLA's per-head GEMMs run r1's own, and the
    # tests' explicit cuBLASLt cases are skipped (each skip is printed in the log); memcheck still
    # runs cuBLASLt's kernels.
    # (The grouped-GEMM tests check the automatic choice itself, and run no cuBLASLt GEMM.)
    export R1_TEST_SKIP_CUBLASLT=1
  fi
  export -f run_one
  export build logs R1_SANITIZE R1_SANITIZE_TEST_ARGS R1_SANITIZE_TOOL_ARGS
  printf '%s\n' "${jobs[@]}" | xargs -d '\n' -P "${R1_SANITIZE_JOBS:-4}" -I{} bash -c 'run_one "$1"' _ {}
  exit $?
fi
ctest --test-dir "$build" -L gpu -R "${R1_GPU_TESTS:-.}" --output-on-failure "$@"
