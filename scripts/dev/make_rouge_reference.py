#!/usr/bin/env python3
"""ROUGE references for tests/data/eval/rouge_pairs.jsonl from torchmetrics, for the agreement test of kiln's ROUGE
(tests/eval/rouge_agreement_test.cpp). Needs torch and torchmetrics; NLTK and rouge-score are used when present.

    make_rouge_reference.py OUT_DIR [--pairs tests/data/eval/rouge_pairs.jsonl]
                                    [--stems tests/data/eval/porter_reference.tsv]

Writes OUT_DIR/rouge_reference.json with, per pair (id, in file order), for each of rouge1, rouge2, rougeL,
rougeLsum: {precision, recall, fmeasure} from torchmetrics.functional.text.rouge.rouge_score (float32 values):
  stemmed:   with Porter stemming as rouge-score does it (lower-case, [^a-z0-9]+ -> separator, tokens longer than 3
             characters stemmed by NLTK's PorterStemmer in its default mode). Without NLTK on this machine the
             stems come from the committed table of NLTK's stems (porter_reference.tsv, made by
             scripts/dev/make_porter_reference.py with Debian's python3-nltk): torchmetrics gets a tokenizer that
             splits its normalized text and looks each word up; torchmetrics does the rest (n-grams, LCS, union LCS).
             With NLTK here, use_stemmer=True is run too and must give the same figures (checked here).
  unstemmed: use_stemmer=False, torchmetrics' own tokenizer throughout.
plus the tokens torchmetrics scored (pred_tokens, ref_tokens, stemmed), the means over all pairs (float64 means of
the per-pair values; and torchmetrics' ROUGEScore aggregate, float32, for the keys it can compute here), and, when
the rouge-score package is importable, its stemmed figures (float64).

ROUGE-Lsum sentences: rouge-score (which Hugging Face `evaluate` and TensorRT-LLM's summarize.py use) splits a summary
into sentences at newlines ("\\n", empty pieces dropped). torchmetrics instead calls nltk.sent_tokenize (the punkt
model, absent offline, and another split); this script makes torchmetrics split at newlines as rouge-score does.
"""
import argparse
import json
import os
import re

import torch
import torchmetrics
import torchmetrics.functional.text.rouge as tm_rouge
from torchmetrics.text.rouge import ROUGEScore

KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
FIELDS = ("precision", "recall", "fmeasure")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def newline_sentences(text):
    return [s for s in text.split("\n") if len(s)]


def scores(res):
    return {k: {t: float(res[f"{k}_{t}"]) for t in FIELDS} for k in KEYS}


def means(rows):
    return {k: {t: sum(r[k][t] for r in rows) / len(rows) for t in FIELDS} for k in KEYS}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--pairs", default=os.path.join(ROOT, "tests", "data", "eval", "rouge_pairs.jsonl"))
    ap.add_argument("--stems", default=os.path.join(ROOT, "tests", "data", "eval", "porter_reference.tsv"))
    args = ap.parse_args()
    if not hasattr(tm_rouge, "_split_sentence"):
        raise SystemExit("torchmetrics.functional.text.rouge has no _split_sentence to set to newline splitting")
    tm_rouge._split_sentence = newline_sentences
    pairs = [json.loads(line) for line in open(args.pairs, encoding="utf-8") if line.strip()]
    stems = dict(line.rstrip("\n").split("\t") for line in open(args.stems, encoding="utf-8"))

    def stem_tokenizer(normalized):  # torchmetrics passes the text lower-cased with [^a-z0-9]+ replaced by " "
        out = []
        for w in re.split(r"\s+", normalized):
            if len(w) > 3 and w not in stems:
                raise SystemExit(f"{w!r} is not in {args.stems}: rerun scripts/dev/make_porter_reference.py")
            out.append(stems[w] if len(w) > 3 else w)
        return out

    try:
        import nltk
        nltk_version = nltk.__version__
    except ImportError:
        nltk = None
        nltk_version = "absent (stems from " + os.path.relpath(args.stems, ROOT) + ")"
    out = {"source": f"torchmetrics {torchmetrics.__version__}, torch {torch.__version__}, nltk {nltk_version}",
           "pairs_file": os.path.relpath(args.pairs, ROOT), "pairs": []}
    for p in pairs:
        pred, ref = p["prediction"], p["reference"]
        row = {"id": p["id"],
               "pred_tokens": list(tm_rouge._normalize_and_tokenize_text(pred, stemmer=None, tokenizer=stem_tokenizer)),
               "ref_tokens": list(tm_rouge._normalize_and_tokenize_text(ref, stemmer=None, tokenizer=stem_tokenizer)),
               "stemmed": scores(tm_rouge.rouge_score(pred, ref, tokenizer=stem_tokenizer, rouge_keys=KEYS)),
               "unstemmed": scores(tm_rouge.rouge_score(pred, ref, use_stemmer=False, rouge_keys=KEYS))}
        if nltk is not None:
            direct = scores(tm_rouge.rouge_score(pred, ref, use_stemmer=True, rouge_keys=KEYS))
            if direct != row["stemmed"]:
                raise SystemExit(f"pair {p['id']}: use_stemmer=True gives {direct}, the stem table {row['stemmed']}")
        out["pairs"].append(row)
    out["mean_f64"] = {v: means([r[v] for r in out["pairs"]]) for v in ("stemmed", "unstemmed")}
    keys3 = KEYS[:3]  # ROUGEScore refuses rougeLsum without NLTK installed
    metric = ROUGEScore(tokenizer=stem_tokenizer, rouge_keys=keys3)
    metric.update([p["prediction"] for p in pairs], [p["reference"] for p in pairs])
    agg = metric.compute()
    out["aggregate_stemmed"] = {k: {t: float(agg[f"{k}_{t}"]) for t in FIELDS} for k in keys3}
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        rouge_scorer = None
    if rouge_scorer is not None:
        scorer = rouge_scorer.RougeScorer(list(KEYS), use_stemmer=True)
        rows = []
        for p in pairs:
            s = scorer.score(p["reference"], p["prediction"])
            rows.append({k: {"precision": s[k].precision, "recall": s[k].recall, "fmeasure": s[k].fmeasure}
                         for k in KEYS})
        out["rouge_score_stemmed"] = rows
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "rouge_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
    print(f"wrote {path}: {len(pairs)} pairs; {out['source']}; rouge-score: {'yes' if rouge_scorer else 'no'}")
    print({k: round(v["fmeasure"] * 100, 4) for k, v in out["mean_f64"]["stemmed"].items()})


if __name__ == "__main__":
    main()
