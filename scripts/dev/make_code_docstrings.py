#!/usr/bin/env python3
"""Writes tests/data/eval/code_docstrings.jsonl: a small summarization set for the demo model (tiny-code, a Python
model): per record the `def` line of a documented module-level function of Debian's python3.11 stdlib
("signature") and the first sentence of its docstring ("docstring"). `kiln eval summarize --input-field signature
--reference-field docstring` with a prompt suffix of a newline, four spaces and three double quotes asks the model
to write the docstring, and scores it against the real one.

Usage: python3 scripts/dev/make_code_docstrings.py [OUT.jsonl] [--stdlib /usr/lib/python3.11]   (deterministic)
"""
import argparse
import ast
import json
import os
import random

FILES = ["textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "bisect.py", "colorsys.py", "base64.py",
         "quopri.py", "uu.py", "netrc.py"]


def first_sentence(doc):
    text = " ".join(doc.strip().split("\n\n")[0].split())
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="tests/data/eval/code_docstrings.jsonl")
    ap.add_argument("--stdlib", default="/usr/lib/python3.11")
    args = ap.parse_args()
    records = []
    for rel in FILES:
        path = os.path.join(args.stdlib, rel)
        src = open(path, encoding="utf-8").read()
        lines = src.split("\n")
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or not ast.get_docstring(node):
                continue
            body0 = node.body[0]
            head = "\n".join(lines[node.lineno - 1:body0.lineno - 1]).rstrip()
            if not head.endswith(":") or len(head) > 200:
                continue
            if head.startswith(" "):
                continue
            records.append({"signature": head,
                            "docstring": first_sentence(ast.get_docstring(node)), "source": rel})
    rng = random.Random("kiln-code-docstrings")
    rng.shuffle(records)
    records = [r for r in records if 10 <= len(r["docstring"]) <= 200][:40]
    with open(args.out, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records to {args.out}")


if __name__ == "__main__":
    main()
