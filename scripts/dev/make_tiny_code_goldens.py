#!/usr/bin/env python3
"""tiny-code's greedy goldens from a fresh from_pretrained, as users load the model (RoPE frequencies in float32).

    make_tiny_code_goldens.py [MODEL_DIR]     default: tests/data/models/tiny-code; rewrites its golden.safetensors
                                              and golden.json in place (written beside, then renamed)

The shared fixture's goldens were computed after casting the model to bf16 in memory, which rounds RoPE's
inv_freq; the other fixtures' goldens were regenerated from a fresh from_pretrained, tiny-code's were not. This
script keeps the same prompts (the prompt ids of tokens_i: the tokenizer's encoding with <|bos|>) and the same
layout: tokens_i int32 [P + 48] (prompt, then 48 greedy tokens: the argmax of the last row of a full forward over
the sequence so far, float32 on the CPU, no end-of-sequence stop), logits_i float32 [P + 48, V] for the cases that
had logits (every position of the whole sequence, one forward), and golden.json's completions decoded by the
tokenizers library. Deterministic: CPU, one thread, float32.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NEW_TOKENS = 48


def main(argv):
    d = argv[1] if len(argv) > 1 else os.path.join(ROOT, "tests", "data", "models", "tiny-code")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    meta = json.load(open(os.path.join(d, "golden.json")))
    old = load_file(os.path.join(d, "golden.safetensors"))
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    out = {}
    changed = 0
    for i, sample in enumerate(meta["samples"]):
        P = int(sample["prompt_len"])
        ids = old[f"tokens_{i}"][:P].to(torch.long).tolist()
        with torch.no_grad():
            for _ in range(NEW_TOKENS):
                logits = model(torch.tensor([ids])).logits[0, -1]
                ids.append(int(torch.argmax(logits)))
            full = model(torch.tensor([ids])).logits[0].float()
        # The last forward must agree with the step-by-step choices (a near-tie would make the golden ambiguous).
        for j in range(NEW_TOKENS):
            if int(torch.argmax(full[P - 1 + j])) != ids[P + j]:
                sys.exit(f"case {i}: token {j} is not the argmax of its row in the whole-sequence forward (near-tie)")
        out[f"tokens_{i}"] = torch.tensor(ids, dtype=torch.int32)
        if f"logits_{i}" in old:
            out[f"logits_{i}"] = full[: len(ids)].contiguous()
        completion = tok.decode(ids[P:], skip_special_tokens=False)
        changed += completion != sample["completion"]
        sample["completion"] = completion
    meta["goldens"] = ("greedy tokens and logits from a fresh from_pretrained(dtype=float32) on the CPU "
                       "(scripts/dev/make_tiny_code_goldens.py)")
    meta["transformers"] = __import__("transformers").__version__
    meta["torch"] = torch.__version__
    tmp = os.path.join(d, ".golden.tmp")
    save_file(out, tmp + ".safetensors")
    with open(tmp + ".json", "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp + ".safetensors", os.path.join(d, "golden.safetensors"))
    os.replace(tmp + ".json", os.path.join(d, "golden.json"))
    print(f"tiny-code goldens written to {d}: {changed} of {len(meta['samples'])} completions changed")


if __name__ == "__main__":
    main(sys.argv)
