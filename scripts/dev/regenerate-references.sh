#!/usr/bin/env bash
# On a machine with torch + transformers (the GPU machines): regenerates every reference made by transformers that
# tests/data holds, from a fresh from_pretrained: tiny-code's greedy goldens, the extra shapes' checkpoints and
# goldens (checked byte-identical by a second run), and each model's dtype_error.json (transformers' own float16 /
# bfloat16 error, the cuda fixture test's bound; needs a GPU). Writes into the tree; OUT_TAR (optional) packs what
# it wrote.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
python3 scripts/dev/make_tiny_code_goldens.py
python3 scripts/dev/make_extra_goldens.py --out tests/data/extra
python3 scripts/dev/make_extra_goldens.py --check tests/data/extra
python3 scripts/dev/dtype_error.py
if [ -n "${OUT_TAR:-}" ]; then
  tar -czf "$OUT_TAR" tests/data/models/tiny-code/golden.json tests/data/models/tiny-code/golden.safetensors \
    tests/data/extra tests/data/models/*/dtype_error.json
fi
