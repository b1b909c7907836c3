#!/usr/bin/env bash
# Installs r1's system dependencies from Debian packages. Idempotent: installs only what is missing,
# and touches apt only then. Used by both README commands and by CI.
set -euo pipefail

packages=(
  cmake g++ make            # build
  nlohmann-json3-dev        # config.json, safetensors headers, tokenizer.json
  libcli11-dev              # command-line parsing in the examples
  libfmt-dev                # formatting in host-only tools and examples
  doctest-dev               # tests
  libbenchmark-dev          # benchmarks
  libpcre2-dev              # tokenizer tests: a real regex engine as the oracle of r1's pre-tokenizer
)
if [[ "${R1_SETUP_FUZZ:-0}" == 1 ]]; then
  packages+=(clang libclang-rt-dev)  # libFuzzer + sanitizers for scripts/fuzz.sh
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
