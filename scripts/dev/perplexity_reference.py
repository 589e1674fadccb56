#!/usr/bin/env python3
"""transformers' perplexity of tiny-code on its held-out sympy text, with kiln eval perplexity's window policy
(issue 16, item 5), for tests/data/quant/perplexity_reference.json.

The policy is lm-eval's loglikelihood_rolling, written here from its definition: each document (one JSONL line's
"text") is encoded without special tokens; the first window is [BOS] + tokens[:L - 1] predicting tokens[:L]; each
next window predicts the next min(L, left) tokens, its input being the L tokens that end just before its last
predicted token (so it is scored with the previous tokens as context; windows never predict a token twice). The
sums over all windows and documents give token perplexity exp(nll / tokens), word perplexity exp(nll / words)
(words: re.split(r"\\s+", text)) and bits per byte nll / (utf-8 bytes * ln 2).

Run from the repository root on a machine with torch, transformers and tokenizers (CPU):
    python3 scripts/dev/perplexity_reference.py --out $OUT/perplexity_reference.json
"""
import argparse
import json
import math
import os
import re

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def windows(tokens, bos, L):
    """(input ids, predicted ids) per window: the input's last len(predicted) positions predict them."""
    n = len(tokens)
    first = min(L, n)
    yield [bos] + tokens[: first - 1], tokens[:first]
    predicted = first
    while predicted < n:
        pred = min(n - predicted, L)
        end = predicted + pred
        yield tokens[end - L - 1: end - 1], tokens[end - pred: end]
        predicted += pred


def evaluate(model_dir, dataset, L, dtype):
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    bos = json.load(open(os.path.join(model_dir, "config.json")))["bos_token_id"]
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    nll, tokens, words, nbytes, nwin, per_doc = 0.0, 0, 0, 0, 0, []
    with torch.no_grad():
        for line in open(dataset, encoding="utf-8"):
            if not line.strip():
                continue
            text = json.loads(line)["text"]
            ids = tok.encode(text, add_special_tokens=False).ids
            doc = 0.0
            for inp, cont in windows(ids, bos, L):
                logits = m(torch.tensor([inp])).logits[0].float()
                lp = torch.log_softmax(logits, dim=-1)
                n0 = len(inp) - len(cont)
                doc -= sum(lp[n0 + i, t].item() for i, t in enumerate(cont))
                nwin += 1
            per_doc.append(len(ids))
            nll += doc
            tokens += len(ids)
            words += len(re.split(r"\s+", text))
            nbytes += len(text.encode("utf-8"))
    return nll, tokens, words, nbytes, nwin, per_doc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default=os.path.join(ROOT, "tests/data/models/tiny-code"))
    ap.add_argument("--dataset", default=os.path.join(ROOT, "tests/data/quant/sympy-eval.jsonl"))
    ap.add_argument("--max-length", type=int, default=512)
    a = ap.parse_args()
    torch.set_num_threads(4)
    res = {"dataset": os.path.relpath(a.dataset, ROOT), "max_length": a.max_length,
           "window_policy": "lm-eval loglikelihood_rolling (disjoint windows, previous tokens as context)",
           "torch": torch.__version__, "transformers": transformers.__version__}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        nll, tokens, words, nbytes, nwin, per_doc = evaluate(a.model, a.dataset, a.max_length, dtype)
        res[name] = {"nll": nll, "tokens": tokens, "words": words, "bytes": nbytes, "windows": nwin,
                     "tokens_per_document": per_doc, "token_perplexity": math.exp(nll / tokens),
                     "word_perplexity": math.exp(nll / words), "bits_per_byte": nll / (nbytes * math.log(2))}
        print(name, res[name]["token_perplexity"], flush=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
