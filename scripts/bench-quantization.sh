#!/usr/bin/env bash
# The accuracy budget table of issue 16 on tiny-code: for each format, kiln quantize (calibrated on CPython's
# standard library, never on the evaluation text), kiln build (cpu), kiln eval perplexity on sympy
# (tests/data/quant/sympy-eval.jsonl, windows of 512 tokens); token perplexity relative to the unquantized engine,
# engine and checkpoint sizes. Writes bench/results/quantization-tiny-code.json.
#   usage: scripts/bench-quantization.sh [build/bin/kiln] [calib-size]
# With WORK=DIR the checkpoints, engines and per-row results are kept there, and a row whose result is already there
# is not run again (to redo one row, remove its ppl-NAME.json).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kiln="${1:-$root/build/bin/kiln}"
calib_size="${2:-128}"
model="$root/tests/data/models/tiny-code"
data="$root/tests/data/quant/sympy-eval.jsonl"
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
# name | quantize flags ("" for the unquantized baseline)
rows=(
  "bf16|"
  "fp8|--qformat fp8"
  "fp8_rowwise|--qformat fp8_rowwise"
  "int8_sq|--qformat int8_sq"
  "int8_wo|--qformat int8_wo"
  "int4_wo|--qformat int4_wo"
  "int4_awq|--qformat int4_awq"
  "kv_fp8|--qformat none --kv-cache-dtype fp8"
  "kv_int8|--qformat none --kv-cache-dtype int8"
  "fp8+kv_fp8|--qformat fp8 --kv-cache-dtype fp8"
  "int4_awq+kv_int8|--qformat int4_awq --kv-cache-dtype int8"
)
for r in "${rows[@]}"; do
  name="${r%%|*}"
  flags="${r#*|}"
  ck="$work/ck-$name"
  [ -f "$work/ppl-$name.json" ] && continue
  rm -rf "$ck" "$work/engine-$name"
  if [ -z "$flags" ]; then
    "$kiln" convert --model "$model" --output "$ck" > /dev/null
  else
    # shellcheck disable=SC2086
    "$kiln" quantize --model "$model" --output "$ck" $flags "${calib[@]}" --no-progress
  fi
  "$kiln" build --checkpoint "$ck" --output "$work/engine-$name" --max-seq-len 512 --max-batch-size 1 > /dev/null
  "$kiln" eval perplexity --engine "$work/engine-$name" --dataset "$data" --max-length 512 --no-progress \
    --json-out "$work/ppl-$name.json"
  echo "$name $(du -sb "$work/engine-$name" | cut -f1) $(du -sb "$ck" | cut -f1)" >> "$work/sizes.txt"
done
python3 - "$work" "$root/bench/results/quantization-tiny-code.json" "$calib_size" <<'PY'
import json, sys
work, out, calib_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
budget = {"fp8": 1.5, "fp8_rowwise": 1.0, "int8_sq": 2.0, "int8_wo": 0.5, "int4_awq": 6.0, "kv_fp8": 1.0,
          "kv_int8": 1.0}
sizes = {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in open(work + "/sizes.txt")}  # last wins
base = json.load(open(work + "/ppl-bf16.json"))
rows = []
for name, (engine, ckpt) in sizes.items():
    p = json.load(open(f"{work}/ppl-{name}.json"))
    ref = base
    if "+" in name:  # a KV cache on top of a format: judged against that format
        ref = json.load(open(f"{work}/ppl-{name.split('+')[0]}.json"))
    inc = 100.0 * (p["token_perplexity"] / ref["token_perplexity"] - 1.0)
    b = budget.get(name.split("+")[1] if "+" in name else name)
    rows.append({"format": name, "token_perplexity": p["token_perplexity"],
                 "ratio_to_unquantized": p["token_perplexity"] / base["token_perplexity"],
                 "increase_percent_vs_reference": inc, "reference": "bf16" if ref is base else name.split("+")[0],
                 "budget_percent": b, "within_budget": None if b is None else inc <= b,
                 "word_perplexity": p["word_perplexity"], "bits_per_byte": p["bits_per_byte"],
                 "engine_bytes": engine, "checkpoint_bytes": ckpt})
aw, wo = next(r for r in rows if r["format"] == "int4_awq"), next(r for r in rows if r["format"] == "int4_wo")
loss_wo, loss_awq = wo["token_perplexity"] - base["token_perplexity"], aw["token_perplexity"] - base["token_perplexity"]
res = {"model": "tiny-code", "dataset": "tests/data/quant/sympy-eval.jsonl", "tokens": base["tokens"],
       "max_length": 512, "window_policy": base["window_policy"],
       "calibration": {"text": "/usr/lib/python3.11/*.py (CPython 3.11 standard library, name order)",
                       "samples": calib_size, "max_seq_length": 512},
       "int4_awq_recovers_of_int4_wo_loss": (1.0 - loss_awq / loss_wo) if loss_wo > 0 else None,
       "command": "scripts/bench-quantization.sh build/bin/kiln " + str(calib_size), "rows": rows}
json.dump(res, open(out, "w"), indent=1)
for r in rows:
    print(f'{r["format"]:18s} {r["token_perplexity"]:9.4f} {r["ratio_to_unquantized"]:8.4f} '
          f'{r["increase_percent_vs_reference"]:+7.2f}% budget {r["budget_percent"]} {r["engine_bytes"]}')
print("int4_awq recovers", res["int4_awq_recovers_of_int4_wo_loss"], "of int4_wo's loss")
PY
