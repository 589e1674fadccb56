#!/usr/bin/env python3
"""Calibration text for kiln quantize: CPython's standard library modules in name order, one JSONL document each
({"text": ...}; never sympy, the evaluation text). Used by scripts/bench-quantization.sh and
scripts/bench-eval-quantized.sh.

    stdlib_calib.py OUT.jsonl [--stdlib /usr/lib/python3.11]
"""
import argparse
import glob
import json

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--stdlib", default="/usr/lib/python3.11")
a = ap.parse_args()
with open(a.out, "w") as f:
    for p in sorted(glob.glob(a.stdlib + "/*.py")):
        f.write(json.dumps({"text": open(p, encoding="utf-8", errors="replace").read()}) + "\n")
