#!/usr/bin/env bash
# The main job: installs the dependencies, builds r1's programs and runs the bundled tiny
# DeepSeek-R1-shaped checkpoint (tests/data/tiny-r1-mtp: 4 layers, MLA, 64-expert MoE with the
# biased sigmoid router, FP8 block-scaled weights, an MTP module) on the CPU:
#   1. r1-inspect validates the checkpoint and prints its config and tensors,
#   2. r1-generate decodes greedily, then again with MTP speculative decoding (same tokens),
#      then with native FP8 compute (activations quantized 1x128 as DeepSeek's kernels do),
#   3. r1-tokenize renders a chat prompt with the real DeepSeek-R1 tokenizer and template.
# With a CUDA GPU visible (and nvcc at build time), step 2 also runs with --device cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset ci >/dev/null
cmake --build build/ci -j"$(nproc)" --target r1-generate r1-inspect r1-tokenize
bin=build/ci/examples
model=tests/data/tiny-r1-mtp
prompt=0,150,454,385,12,7

step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "validate the checkpoint" "$bin/r1-inspect/r1-inspect" "$model"
step "greedy decoding on the CPU (token ids: the tiny model's vocabulary is random)" \
  "$bin/r1-generate/r1-generate" --model "$model" --prompt-ids "$prompt" --max-new-tokens 24
step "the same with MTP speculative decoding: identical tokens, acceptance rate on stderr" \
  "$bin/r1-generate/r1-generate" --model "$model" --prompt-ids "$prompt" --max-new-tokens 24 --mtp
step "native FP8 compute (DeepSeek's 1x128 activation quantization)" \
  "$bin/r1-generate/r1-generate" --model "$model" --prompt-ids "$prompt" --max-new-tokens 24 --fp8 native
if [[ -x "$bin/r1-generate/r1-generate" ]] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  step "greedy decoding on the GPU" \
    "$bin/r1-generate/r1-generate" --model "$model" --prompt-ids "$prompt" --max-new-tokens 24 --device cuda
fi
chat='{"messages": [{"role": "user", "content": "Why is the sky blue?"}]}'
printf '\n== the DeepSeek-R1 chat template and tokenizer (real vocabulary, 129280 tokens)\n'
printf "\$ echo '%s' | r1-tokenize --tokenizer tests/data/deepseek-v3 --jsonl --chat --template deepseek-r1\n" "$chat"
echo "$chat" | "$bin/r1-tokenize/r1-tokenize" --tokenizer tests/data/deepseek-v3 --jsonl --chat --template deepseek-r1
