#!/usr/bin/env bash
# Compile-time guard for the warp-specialized Hopper kernels (no GPU needed): compiles the
# translation units that hold them for sm_90a with `ptxas -v` and fails if ptxas
#   - serialized wgmma instructions (C7512: "insufficient register resources"; C7518: "program
#     dependence on compiler-inserted WG.DP in divergent path", e.g. a conditional load between a
#     wgmma's issue and its wait),
#   - ignored a setmaxnreg (C7508), or
#   - spilled registers in a TMA + wgmma kernel (mla_sm90::, mla_decode_sm90, wgmma::).
# Each of these has cost a kernel most of its speed without any test failing: a `__trap()` in the
# mbarrier wait once made ptxas allocate MLA prefill's consumers at 168 registers instead of 240,
# spill the wgmma operands and serialize every wgmma (docs/benchmarks.md, session 11).
# The mma.sync kernels' documented small spills (docs/benchmarks.md, kernel resources) are not
# checked here.
#
#   scripts/check-ptxas.sh [nvcc]        (run by ctest as cuda_ptxas_check in CUDA builds)
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=${1:-nvcc}
units=(src/cuda/mla_prefill.cu src/cuda/mla_decode.cu src/cuda/grouped_gemm.cu)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
bad=0
for u in "${units[@]}"; do
  unit_bad=0
  if ! "$nvcc" -DR1_WITH_CUDA=1 -Iinclude -O2 -DNDEBUG --generate-code=arch=compute_90a,code=sm_90a \
      -std=c++20 --expt-relaxed-constexpr -Xptxas -v -x cu -c "$u" -o /dev/null >"$log" 2>&1; then
    echo "FAIL $u: does not compile"; tail -20 "$log"; exit 1
  fi
  if grep -E "C7512|C7518|C7508" "$log"; then
    echo "FAIL $u: ptxas serialized wgmma instructions or ignored setmaxnreg (above)"
    unit_bad=1
  fi
  # "Compiling entry function '<mangled>' for 'sm_90a'" then "N bytes stack frame, S bytes spill stores, ..."
  while read -r fn spill; do
    # mangled names hold the namespaces and kernel names (…8mla_sm90…, …5wgmma…)
    if [[ $fn =~ mla_sm90|mla_decode_sm90|5wgmma ]]; then
      name=$fn
      if command -v c++filt >/dev/null; then name=$(echo "$fn" | c++filt); fi
      echo "FAIL $u: $spill bytes of register spills in $name"
      unit_bad=1
    fi
  done < <(awk '/Compiling entry function/ { fn = $7; gsub("\x27", "", fn) }
                /bytes spill stores/ { if ($5 != "0") print fn, $5 }' "$log")
  if [[ $unit_bad == 0 ]]; then echo "ok   $u"; else bad=1; fi
done
exit $bad
