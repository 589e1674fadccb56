#!/usr/bin/env python3
"""ROUGE references for tests/data/eval/rouge_pairs.jsonl, from torchmetrics (and Google's rouge-score when it
is installed), for the agreement test of kiln's ROUGE (tests/eval/rouge_test.cpp).

    make_rouge_reference.py OUT_DIR [--pairs tests/data/eval/rouge_pairs.jsonl]

Writes OUT_DIR/rouge_reference.json:
  pairs[i]: {id, pred_tokens, ref_tokens, rouge1|rouge2|rougeL|rougeLsum: {precision, recall, fmeasure}}
      from torchmetrics.functional.text.rouge.rouge_score(pred, ref, use_stemmer=True) per pair (its values are
      float32 tensors), and the tokens torchmetrics scores (lower-cased [a-z0-9]+ runs, Porter-stemmed when longer
      than 3 characters, by nltk's PorterStemmer in its default mode, as rouge-score does);
  aggregate: torchmetrics.text.ROUGEScore over all pairs (mean per key, float32), and aggregate_f64: the float64
      mean of the per-pair values;
  rouge_score (when the package is importable): rouge_scorer.RougeScorer(keys, use_stemmer=True) per pair,
      float64, and its float64 means.

ROUGE-Lsum sentences: rouge-score (which Hugging Face `evaluate` and TensorRT-LLM's summarize.py use) splits a
summary into sentences at newlines ("\\n", empty pieces dropped). torchmetrics instead calls nltk.sent_tokenize,
which needs the punkt model (absent on a machine without network) and splits differently; this script makes
torchmetrics split at newlines as rouge-score does, so both follow rouge-score's definition.
"""
import argparse
import json
import os

import nltk
import torch
import torchmetrics
import torchmetrics.functional.text.rouge as tm_rouge
from torchmetrics.text.rouge import ROUGEScore

KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def newline_sentences(text):
    return [s for s in text.split("\n") if len(s)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--pairs", default=os.path.join(ROOT, "tests", "data", "eval", "rouge_pairs.jsonl"))
    args = ap.parse_args()
    if not hasattr(tm_rouge, "_split_sentence"):
        raise SystemExit("torchmetrics.functional.text.rouge has no _split_sentence to set to newline splitting")
    tm_rouge._split_sentence = newline_sentences
    pairs = [json.loads(line) for line in open(args.pairs, encoding="utf-8") if line.strip()]
    stemmer = nltk.stem.porter.PorterStemmer()
    out = {"source": f"torchmetrics {torchmetrics.__version__}, nltk {nltk.__version__}, torch {torch.__version__}",
           "pairs_file": os.path.relpath(args.pairs, ROOT), "pairs": []}
    sums = {k: {"precision": 0.0, "recall": 0.0, "fmeasure": 0.0} for k in KEYS}
    for p in pairs:
        res = tm_rouge.rouge_score(p["prediction"], p["reference"], use_stemmer=True, rouge_keys=KEYS)
        row = {"id": p["id"],
               "pred_tokens": list(tm_rouge._normalize_and_tokenize_text(p["prediction"], stemmer)),
               "ref_tokens": list(tm_rouge._normalize_and_tokenize_text(p["reference"], stemmer))}
        for k in KEYS:
            row[k] = {t: float(res[f"{k}_{t}"]) for t in ("precision", "recall", "fmeasure")}
            for t in row[k]:
                sums[k][t] += row[k][t]
        out["pairs"].append(row)
    metric = ROUGEScore(use_stemmer=True, rouge_keys=KEYS)
    metric.update([p["prediction"] for p in pairs], [p["reference"] for p in pairs])
    agg = metric.compute()
    out["aggregate"] = {k: {t: float(agg[f"{k}_{t}"]) for t in ("precision", "recall", "fmeasure")} for k in KEYS}
    out["aggregate_f64"] = {k: {t: v / len(pairs) for t, v in sums[k].items()} for k in KEYS}
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        rouge_scorer = None
    if rouge_scorer is not None:
        scorer = rouge_scorer.RougeScorer(list(KEYS), use_stemmer=True)
        rows, rsums = [], {k: 0.0 for k in KEYS}
        for p in pairs:
            s = scorer.score(p["reference"], p["prediction"])
            rows.append({"id": p["id"], **{k: {"precision": s[k].precision, "recall": s[k].recall,
                                                "fmeasure": s[k].fmeasure} for k in KEYS}})
            for k in KEYS:
                rsums[k] += s[k].fmeasure
        out["rouge_score"] = {"pairs": rows, "mean_fmeasure": {k: v / len(pairs) for k, v in rsums.items()}}
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "rouge_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    print(f"wrote {path}: {len(pairs)} pairs; rouge_score package: {'yes' if rouge_scorer else 'no'}")
    print({k: round(v["fmeasure"] * 100, 4) for k, v in out["aggregate"].items()})


if __name__ == "__main__":
    main()
