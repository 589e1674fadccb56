#!/usr/bin/env bash
# Writes the quantized kiln checkpoints the numeric-reference test reads (tests/data/quant/<model>-<case>/:
# config.json and rank0.safetensors), with kiln quantize from the fixtures in tests/data/models, and the calibration
# data they are made from: random token ids for the random-weight fixtures (tests/data/quant/calib_ids.jsonl) and
# Python text from CPython's standard library for tiny-code (tests/data/quant/calib.txt; never sympy, its evaluation
# text). scripts/dev/quant_reference.py (GPU machine, transformers) computes the reference logits of the same
# checkpoints; tests/e2e/quant_reference_test.cpp compares kiln's cpu engine with them.
#   usage: scripts/dev/make_quant_checkpoints.sh [build/bin/kiln]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
kiln="${1:-$root/build/bin/kiln}"
out="$root/tests/data/quant"
mkdir -p "$out"
if [ ! -f "$out/calib_ids.jsonl" ]; then
  python3 - "$out/calib_ids.jsonl" <<'PY'
import json, random, sys
r = random.Random(16)
with open(sys.argv[1], "w") as f:
    for _ in range(8):
        f.write(json.dumps({"input_ids": [r.randrange(3, 384) for _ in range(64)]}) + "\n")
PY
fi
if [ ! -f "$out/calib.txt" ]; then
  cat /usr/lib/python3.11/textwrap.py /usr/lib/python3.11/heapq.py /usr/lib/python3.11/bisect.py > "$out/calib.txt"
fi
# name model qformat extra-flags...
cases=(
  "llama-fp8 llama fp8 --kv-cache-dtype fp8"
  "llama-fp8_rowwise llama fp8_rowwise"
  "llama-int8_sq llama int8_sq --kv-cache-dtype int8"
  "llama-int8_wo llama int8_wo"
  "llama-int4_wo llama int4_wo"
  "llama-int4_awq llama int4_awq"
  "qwen2-fp8 qwen2 fp8"
  "qwen2-fp8_rowwise qwen2 fp8_rowwise --kv-cache-dtype fp8"
  "qwen2-int8_sq qwen2 int8_sq"
  "qwen2-int8_wo qwen2 int8_wo --kv-cache-dtype int8"
  "qwen2-int4_wo qwen2 int4_wo --group-size 8"
  "qwen2-int4_awq qwen2 int4_awq --group-size 8"
  "mixtral-fp8_rowwise mixtral fp8_rowwise"
  "mixtral-int8_wo mixtral int8_wo --kv-cache-dtype int8"
  "mixtral-int4_wo mixtral int4_wo --group-size 32 --kv-cache-dtype fp8"
  "tiny-code-fp8 tiny-code fp8 --kv-cache-dtype fp8"
  "tiny-code-int4_awq tiny-code int4_awq --kv-cache-dtype int8"
)
for c in "${cases[@]}"; do
  read -r name model qformat extra <<<"$c"
  rm -rf "$out/$name" "$out/$name.full"
  if [ "$model" = tiny-code ]; then calib=(--calib-dataset "$out/calib.txt" --calib-size 16 --calib-max-seq-length 128)
  else calib=(--calib-dataset "$out/calib_ids.jsonl" --calib-size 8 --calib-max-seq-length 64); fi
  # shellcheck disable=SC2086
  "$kiln" quantize --model "$root/tests/data/models/$model" --output "$out/$name.full" --qformat "$qformat" \
    "${calib[@]}" --no-progress $extra
  mkdir "$out/$name"
  mv "$out/$name.full/config.json" "$out/$name.full/rank0.safetensors" "$out/$name/"
  rm -rf "$out/$name.full"
  echo "$name: $(du -sh "$out/$name" | cut -f1)"
done
