#!/usr/bin/env python3
"""Writes a byte-level BPE tokenizer.json with VOCAB tokens into an engine folder, so that a synthetic engine (random
weights, no tokenizer) can be served by kiln serve: kiln bench --url sends its prompts as token ids, and the server
detokenizes every generated token as it would a real model's (a Llama-3-sized vocabulary costs what Llama 3's does).

    synthetic_tokenizer.py VOCAB ENGINE_DIR

Tokens: the 256 byte-level characters (GPT-2's byte-to-unicode table), then "Ġ" + a base-26 word for each further id
(decoded as " " + the word). No merges (encoding text gives bytes; the benchmark never encodes text) and no special
tokens (kiln bench sends ignore_eos).
"""
import json
import os
import sys


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def word(i):
    s = ""
    while True:
        s = chr(ord("a") + i % 26) + s
        i //= 26
        if i == 0:
            return s


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    vocab_size, out = int(sys.argv[1]), sys.argv[2]
    if vocab_size < 256:
        sys.exit(f"VOCAB {vocab_size}: at least the 256 byte tokens")
    tokens = byte_chars() + ["\u0120" + word(i) for i in range(vocab_size - 256)]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": []},
    }
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
