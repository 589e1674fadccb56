#!/usr/bin/env python3
"""Copies scripts/dev/quant_reference.py's output into tests/data/quant/reference, keeping only ROWS logits rows of
each sequence, so the tracked data stays small: the last ROWS before the first position whose rounding margin is
below --margin (tests/e2e/quant_reference_test.cpp's kTieMargin; every position when the file has no margins), from
first_row_i on: NAME.safetensors (tokens_i int32 [P], logits_i float32 [ROWS, V], first_row_i, margins_i), and,
where the source has the float64 run, the last TAIL rows of both runs (tail_logits_i, tail_logits64_i float32
[TAIL, V]: transformers' float32 logits and its float64 forward's, for the test's comparison past the ties), and
versions.json.

    python3 scripts/dev/trim_quant_reference.py /work/gpu-out/quant tests/data/quant/reference [--rows 8]
"""
import argparse
import json
import os
import shutil
import struct


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def write(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, b = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--margin", type=float, default=4e-6)
    ap.add_argument("--tail-rows", type=int, default=8)
    a = ap.parse_args()
    os.makedirs(a.dst, exist_ok=True)
    for f in sorted(os.listdir(a.src)):
        if not f.endswith(".safetensors"):
            continue
        t = read(os.path.join(a.src, f))
        out = {}
        for name, (dtype, shape, b) in t.items():
            if name.startswith("logits_"):
                i = name.split("_")[1]
                rows, v = shape
                safe = rows
                if "margins_" + i in t:
                    m = struct.unpack("<%df" % rows, t["margins_" + i][2])
                    safe = next((p for p, x in enumerate(m) if x < a.margin), rows)
                end = max(safe, 1)
                start = max(0, end - a.rows)
                out[name] = (dtype, [end - start, v], b[start * v * 4:end * v * 4])
                out["first_row_" + i] = ("I32", [1], struct.pack("<i", start))
                if "logits64_" + i in t:  # the last TAIL rows of both runs: transformers' own float32 error
                    tail = min(a.tail_rows, rows)
                    b64 = t["logits64_" + i][2]
                    out["tail_logits_" + i] = (dtype, [tail, v], b[(rows - tail) * v * 4:])
                    out["tail_logits64_" + i] = (dtype, [tail, v], b64[(rows - tail) * v * 4:])
            elif name.startswith("logits64_"):
                pass
            elif not name.startswith("first_unsafe_"):
                out[name] = (dtype, shape, b)
        write(os.path.join(a.dst, f), out)
    shutil.copy(os.path.join(a.src, "versions.json"), a.dst)
    if os.path.exists(os.path.join(a.src, "perplexity_reference.json")):
        shutil.copy(os.path.join(a.src, "perplexity_reference.json"), a.dst)


if __name__ == "__main__":
    main()
