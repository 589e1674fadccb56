#!/usr/bin/env python3
"""Per-layer sensitivity of a quantized kiln checkpoint: writes checkpoints in which only the linear layers matching
a pattern stay quantized (the others take their float weights from the unquantized checkpoint), so that kiln eval
perplexity can tell which layers lose the accuracy.

    quant_sensitivity.py FLOAT_CKPT QUANT_CKPT OUT_DIR PATTERN...   (fnmatch patterns over kiln module names,
                                                                     e.g. 'layers.0.*' '*.mlp.down')
writes OUT_DIR/<n>/ (config.json, rank0.safetensors, tokenizer files) for the n-th pattern.
"""
import fnmatch
import json
import os
import shutil
import struct
import sys

QUANT_SUFFIXES = (".weight", ".weight_scale", ".weight_zero", ".input_scale", ".pre_quant_scale")


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}, meta


def write(path, tensors, meta):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, b = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    fdir, qdir, out, patterns = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    ft, _ = read(os.path.join(fdir, "rank0.safetensors"))
    qt, meta = read(os.path.join(qdir, "rank0.safetensors"))
    cfg = json.load(open(os.path.join(qdir, "config.json")))
    modules = sorted({k[: -len(".weight_scale")] for k in qt if k.endswith(".weight_scale")})
    for n, pat in enumerate(patterns):
        keep = [m for m in modules if fnmatch.fnmatchcase(m, pat)]
        tensors = {k: v for k, v in qt.items()
                   if not any(k == m + s for m in modules if m not in keep for s in QUANT_SUFFIXES)}
        for m in modules:
            if m not in keep:
                tensors[m + ".weight"] = ft[m + ".weight"]
        c = json.loads(json.dumps(cfg))
        c["quantization"]["exclude_modules"] = sorted(set(cfg["quantization"]["exclude_modules"]) |
                                                      {m for m in modules if m not in keep})
        c.pop("quantization_summary", None)
        d = os.path.join(out, str(n))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=1)
        write(os.path.join(d, "rank0.safetensors"), tensors, meta)
        for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            if os.path.exists(os.path.join(qdir, f)):
                shutil.copy(os.path.join(qdir, f), d)
        print(n, pat, len(keep), "modules quantized")


if __name__ == "__main__":
    main()
