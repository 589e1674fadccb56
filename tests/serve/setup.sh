#!/usr/bin/env bash
# Test setup for tests/serve (a ctest fixture): installs the pinned openai client (package-lock.json) and builds the
# tiny-code cpu engine the server tests serve. Usage: setup.sh KILN_BINARY OUT_DIR
set -euo pipefail
KILN=$1
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [ ! -f "$HERE/node_modules/openai/package.json" ] ||
   ! cmp -s "$HERE/package-lock.json" "$HERE/node_modules/.package-lock.json.kiln"; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$HERE/package-lock.json" "$HERE/node_modules/.package-lock.json.kiln"
fi
mkdir -p "$OUT"
# Rebuilt when the kiln binary is newer than the engine (a format change).
if [ ! -f "$OUT/engine/engine.json" ] || [ "$KILN" -nt "$OUT/engine/engine.json" ]; then
  rm -rf "$OUT/ckpt" "$OUT/engine"
  "$KILN" convert --model "$ROOT/tests/data/models/tiny-code" --output "$OUT/ckpt" --rope-freq-dtype checkpoint >/dev/null
  "$KILN" build --checkpoint "$OUT/ckpt" --output "$OUT/engine" --target cpu --max-batch-size 64 --max-seq-len 512 \
    --max-input-len 256 >/dev/null
  rm -rf "$OUT/ckpt"
fi
echo "serve test setup: $OUT/engine"
