#!/usr/bin/env bash
# The main job: convert the bundled tiny-code model, build a cpu engine, and generate Python from a prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=build/bin/kiln
OUT=${DEMO_DIR:-build/demo}
rm -rf "$OUT"
mkdir -p "$OUT"
$KILN convert --model tests/data/models/tiny-code --output "$OUT/checkpoint"
$KILN build --checkpoint "$OUT/checkpoint" --output "$OUT/engine" --target cpu --max-batch-size 4 --max-seq-len 512
echo "--- prompt: def fibonacci(n):"
$KILN run --engine "$OUT/engine" --prompt $'def fibonacci(n):\n' --max-new-tokens 64 --ignore-eos
