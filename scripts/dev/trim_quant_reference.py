#!/usr/bin/env python3
"""Copies scripts/dev/quant_reference.py's output into tests/data/quant/reference, keeping only the last ROWS logits
rows of each sequence (every earlier position still shapes them through attention), so the tracked data stays
small: NAME.safetensors (tokens_i int32 [P], logits_i float32 [ROWS, V]) and versions.json.

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
    a = ap.parse_args()
    os.makedirs(a.dst, exist_ok=True)
    for f in sorted(os.listdir(a.src)):
        if not f.endswith(".safetensors"):
            continue
        t = read(os.path.join(a.src, f))
        out = {}
        for name, (dtype, shape, b) in t.items():
            if name.startswith("logits_"):
                rows, v = shape
                keep = min(a.rows, rows)
                out[name] = (dtype, [keep, v], b[(rows - keep) * v * 4:])
            else:
                out[name] = (dtype, shape, b)
        write(os.path.join(a.dst, f), out)
    shutil.copy(os.path.join(a.src, "versions.json"), a.dst)
    if os.path.exists(os.path.join(a.src, "perplexity_reference.json")):
        shutil.copy(os.path.join(a.src, "perplexity_reference.json"), a.dst)


if __name__ == "__main__":
    main()
