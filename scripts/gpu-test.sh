#!/usr/bin/env bash
# On a machine with a CUDA GPU: builds the CUDA preset and runs the GPU-labelled tests.
# Dependencies must already be installed (the device machines have them; elsewhere run setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake --preset cuda "${gen[@]}" -DR1_BUILD_BENCH=OFF
cmake --build build/cuda -j"$(nproc)"
ctest --test-dir build/cuda -L gpu --output-on-failure "$@"
