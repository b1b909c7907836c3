#!/usr/bin/env bash
# The main job: installs dependencies, builds r1 and runs the demo on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset ci >/dev/null
cmake --build build/ci -j"$(nproc)" --target r1-quickstart
build/ci/examples/r1-quickstart
