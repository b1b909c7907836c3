#!/usr/bin/env bash
# The test command: installs dependencies, configures, builds everything (CUDA code too when nvcc
# is present) and runs the tests with ctest. GPU tests are reported as skipped without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --workflow --preset ci
