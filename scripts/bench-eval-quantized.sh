#!/usr/bin/env bash
# kiln eval on tiny-code's quantized cpu engines against the unquantized one (issue 21's README figures): for each
# format, kiln quantize (calibrated on CPython's standard library, as scripts/bench-quantization.sh), kiln build
# (cpu), kiln eval mmlu (the plain cloze of tests/data/eval/code_mmlu) and kiln eval summarize
# (tests/data/eval/code_docstrings.jsonl, the README's settings), then kiln eval compare against the unquantized
# engine with the default tolerance (1 point). Writes bench/results/eval-tiny-code.json (the reports' figures and the
# comparisons' verdicts).
#   usage: scripts/bench-eval-quantized.sh [build/bin/kiln] [calib-size]
# With WORK=DIR the checkpoints, engines and reports are kept there and rows already there are not run again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kiln="${1:-$root/build/bin/kiln}"
calib_size="${2:-64}"
model="$root/tests/data/models/tiny-code"
if [ -n "${WORK:-}" ]; then
  work="$WORK"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
# Calibration text: the standard library's modules in name order, one JSONL document each.
[ -f "$work/calib.jsonl" ] || python3 "$root/scripts/dev/stdlib_calib.py" "$work/calib.jsonl"
calib=(--calib-dataset "$work/calib.jsonl" --calib-size "$calib_size" --calib-max-seq-length 512)
rows=(
  "bf16|"
  "fp8|--qformat fp8"
  "int8_sq|--qformat int8_sq"
  "int8_wo|--qformat int8_wo"
  "int4_awq|--qformat int4_awq"
  "fp8_kv_fp8|--qformat fp8 --kv-cache-dtype fp8"
)
for row in "${rows[@]}"; do
  name="${row%%|*}"
  flags="${row#*|}"
  [ -f "$work/sum-$name.json" ] && continue
  rm -rf "$work/ck-$name" "$work/e-$name"
  if [ -z "$flags" ]; then
    "$kiln" convert --model "$model" --output "$work/ck-$name" --dtype bfloat16 >/dev/null 2>&1
  else
    # shellcheck disable=SC2086
    "$kiln" quantize --model "$model" --output "$work/ck-$name" $flags "${calib[@]}" --no-progress >/dev/null
  fi
  "$kiln" build --checkpoint "$work/ck-$name" --output "$work/e-$name" --target cpu --max-batch-size 8 \
    --max-seq-len 2048 >/dev/null
  "$kiln" eval mmlu --engine "$work/e-$name" --data-dir "$root/tests/data/eval/code_mmlu" --method continuation \
    --continuation-format plain --json-out "$work/mmlu-$name.json" >/dev/null 2>&1
  "$kiln" eval summarize --engine "$work/e-$name" --dataset "$root/tests/data/eval/code_docstrings.jsonl" \
    --input-field signature --reference-field docstring --prompt-suffix $'\n    """' --output-len 32 \
    --json-out "$work/sum-$name.json" >/dev/null 2>&1
  echo "$name: done" >&2
done
for row in "${rows[@]:1}"; do
  name="${row%%|*}"
  for kind in mmlu sum; do
    set +e
    "$kiln" eval compare "$work/$kind-bf16.json" "$work/$kind-$name.json" >"$work/cmp-$kind-$name.txt" 2>&1
    echo $? >"$work/cmp-$kind-$name.rc"
    set -e
  done
done
python3 - "$work" "$root/bench/results/eval-tiny-code.json" "$calib_size" "${rows[@]}" <<'PY'
import json, subprocess, sys
work, out, calib = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = [r.split("|")[0] for r in sys.argv[4:]]
flags = {r.split("|")[0]: r.split("|", 1)[1] for r in sys.argv[4:]}
res = []
for n in names:
    m = json.load(open(f"{work}/mmlu-{n}.json"))
    s = json.load(open(f"{work}/sum-{n}.json"))
    row = {"format": n, "quantize_flags": flags[n], "mmlu_plain_accuracy": m["figures"]["accuracy"],
           **{k: s["figures"][k] for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}}
    if n != "bf16":
        for kind in ("mmlu", "sum"):
            row[f"compare_{kind}_exit"] = int(open(f"{work}/cmp-{kind}-{n}.rc").read())
    res.append(row)
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
json.dump({"model": "tests/data/models/tiny-code", "target": "cpu", "commit": commit,
           "command": "scripts/bench-eval-quantized.sh build/bin/kiln " + str(calib),
           "calibration": f"CPython 3.11 standard library, {calib} sequences x 512 tokens",
           "mmlu": "kiln eval mmlu --method continuation --continuation-format plain, tests/data/eval/code_mmlu (90)",
           "summarize": "tests/data/eval/code_docstrings.jsonl (40), --output-len 32, README settings",
           "compare_tolerance_points": 1.0, "rows": res}, open(out, "w"), indent=1)
for r in res:
    print(r)
PY
