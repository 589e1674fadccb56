#!/usr/bin/env python3
"""Writes tests/data/quant/sympy-eval.jsonl: tiny-code's held-out evaluation text (../shared/fixtures/README.md),
four files of sympy as Debian's python3-sympy 1.11.1 installs them, one JSONL document {"text": ...} per file, in
this order. The accuracy table (bench/results/quantization-tiny-code.json) and the perplexity reference
(scripts/dev/perplexity_reference.py) read it; no calibration ever does.

    apt-get install python3-sympy && python3 scripts/dev/make_sympy_eval.py
"""
import json
import os

SRC = "/usr/lib/python3/dist-packages/sympy"
FILES = ["core/add.py", "core/relational.py", "core/power.py", "sets/sets.py"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with open(os.path.join(ROOT, "tests/data/quant/sympy-eval.jsonl"), "w", encoding="utf-8") as f:
    for rel in FILES:
        with open(os.path.join(SRC, rel), encoding="utf-8") as src:
            f.write(json.dumps({"text": src.read(), "source": "sympy/" + rel}) + "\n")
