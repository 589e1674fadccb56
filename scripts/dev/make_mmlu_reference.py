#!/usr/bin/env python3
"""MMLU references for tests/data/eval/code_mmlu with tiny-code in transformers (float32, CPU), for the agreement
test of `kiln eval mmlu`, methods loglikelihood and continuation (tests/eval/mmlu_agreement_test.cpp).

    make_mmlu_reference.py OUT_DIR [--model tests/data/models/tiny-code] [--data-dir tests/data/eval/code_mmlu]
                           [--ntrain 5] [--max-input-len 2048]

Writes OUT_DIR/mmlu_reference.json: per subject (sorted), per test question, its answer and for each method
  loglikelihood: the log-likelihood of each of " A", " B", " C", " D" after the letter prompt, and the choice (the
      largest, first of equals);
  continuation_qa, continuation_plain: the log-likelihood of each cloze candidate after the cloze prompt of that
      format, its UTF-8 byte count, the choice (largest log-likelihood per byte, first of equals) and choice_sum
      (largest sum);
  each with k (examples used) and the prompt's token count; and per subject / overall accuracy of each method.

The prompt is kiln's (src/eval/mmlu.cpp), Hendrycks' and TensorRT-LLM's mmlu.py format, built here independently:
  "The following are multiple choice questions (with answers) about {}.\\n\\n" with format_subject(SUBJECT), which
  puts a space before each "_"-separated word (so two spaces after "about", as the original), then k dev examples,
  each question + "\\nA. " + a + "\\nB. " + b + "\\nC. " + c + "\\nD. " + d + "\\nAnswer:" + " " + answer + "\\n\\n",
  then the test question the same way up to "\\nAnswer:". CSV fields are taken as they are (no type conversion).
  k = ntrain, lowered while the prompt's tokens exceed max_input_len.
The cloze prompts (kiln eval mmlu --method continuation --continuation-format qa|plain):
  qa, lm-eval's mmlu_continuation format: "The following are questions (with answers) about " + subject with
  "_" -> " " + ".\\n\\n", then k dev examples "Question: " + question + "\\nAnswer:" + " " + the answer's text +
  "\\n\\n", then "Question: " + question + "\\nAnswer:"; the candidates are " " + each choice's text;
  plain: no header; k dev examples question + "\\n" + the answer's text + "\\n\\n", then the question; the candidates
  are "\\n" + each choice's text.
  k is lowered while the prompt's tokens plus the longest candidate's (encoded alone, no special tokens) exceed
  max_input_len.
Log-likelihood of a continuation C (" A" for letter A), as lm-eval: ctx = encode(prompt), whole =
encode(prompt + C) (the tokenizer adds <|bos|> as its post-processor says); C's tokens are whole[len(ctx):] (ctx
must be a proper prefix); its log-likelihood is the sum over them of log_softmax(logits of the position before
it), one forward over `whole`.
"""
import argparse
import csv
import json
import os

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LETTERS = "ABCD"


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [row for row in csv.reader(f)]


def format_example(row, include_answer):
    s = row[0]
    for j, letter in enumerate(LETTERS):
        s += f"\n{letter}. {row[j + 1]}"
    s += "\nAnswer:"
    if include_answer:
        s += f" {row[5]}\n\n"
    return s


def format_subject(subject):
    return "".join(" " + part for part in subject.split("_"))


def build_prompt(subject, dev, row, k):
    s = "The following are multiple choice questions (with answers) about {}.\n\n".format(format_subject(subject))
    for i in range(k):
        s += format_example(dev[i], True)
    return s + format_example(row, False)


def format_cloze(row, include_answer, fmt):
    s = "Question: " + row[0] + "\nAnswer:" if fmt == "qa" else row[0]
    if include_answer:
        s += cloze_candidate(row, LETTERS.index(row[5]), fmt) + "\n\n"
    return s


def cloze_candidate(row, j, fmt):
    return (" " if fmt == "qa" else "\n") + row[1 + j]


def build_cloze_prompt(subject, dev, row, k, fmt):
    s = "The following are questions (with answers) about " + " ".join(subject.split("_")) + ".\n\n" \
        if fmt == "qa" else ""
    for i in range(k):
        s += format_cloze(dev[i], True, fmt)
    return s + format_cloze(row, False, fmt)


def loglikelihoods(tok, model, prompt, continuations):
    """Sum of log-probs of each continuation's tokens after the prompt, one forward over prompt + continuation."""
    ctx = tok.encode(prompt).ids
    out = []
    for c in continuations:
        whole = tok.encode(prompt + c).ids
        if whole[:len(ctx)] != ctx or len(whole) == len(ctx):
            raise SystemExit(f"the prompt's tokens are not a proper prefix of prompt + {c!r}")
        with torch.no_grad():
            logits = model(torch.tensor([whole])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        out.append(sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(whole[len(ctx):])))
    return out, len(ctx)


def argmax_first(values):
    return LETTERS[max(range(len(values)), key=lambda i: (values[i], -i))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--model", default=os.path.join(ROOT, "tests", "data", "models", "tiny-code"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "tests", "data", "eval", "code_mmlu"))
    ap.add_argument("--ntrain", type=int, default=5)
    ap.add_argument("--max-input-len", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    subjects = sorted(f[:-len("_test.csv")] for f in os.listdir(os.path.join(args.data_dir, "test"))
                      if f.endswith("_test.csv"))
    out = {"source": f"transformers {transformers.__version__}, torch {torch.__version__}, float32 cpu",
           "model": os.path.relpath(args.model, ROOT), "data_dir": os.path.relpath(args.data_dir, ROOT),
           "ntrain": args.ntrain, "max_input_len": args.max_input_len, "subjects": {}}
    methods = ["loglikelihood", "continuation_qa", "continuation_plain"]
    total, correct = 0, {m: 0 for m in methods}
    for subject in subjects:
        dev = read_csv(os.path.join(args.data_dir, "dev", f"{subject}_dev.csv"))
        test = read_csv(os.path.join(args.data_dir, "test", f"{subject}_test.csv"))
        rows = []
        for row in test:
            k = min(args.ntrain, len(dev))
            prompt = build_prompt(subject, dev, row, k)
            while k > 0 and len(tok.encode(prompt).ids) > args.max_input_len:
                k -= 1
                prompt = build_prompt(subject, dev, row, k)
            lls, ctx_len = loglikelihoods(tok, model, prompt, [" " + letter for letter in LETTERS])
            q = {"answer": row[5], "loglikelihood": {"loglikelihoods": lls, "choice": argmax_first(lls), "k": k,
                                                     "prompt_tokens": ctx_len}}
            for fmt in ("qa", "plain"):
                conts = [cloze_candidate(row, j, fmt) for j in range(4)]
                kc = min(args.ntrain, len(dev))
                longest = max(len(tok.encode(c, add_special_tokens=False).ids) for c in conts)
                cloze = build_cloze_prompt(subject, dev, row, kc, fmt)
                while kc > 0 and len(tok.encode(cloze).ids) + longest > args.max_input_len:
                    kc -= 1
                    cloze = build_cloze_prompt(subject, dev, row, kc, fmt)
                clls, cloze_len = loglikelihoods(tok, model, cloze, conts)
                nbytes = [len(c.encode("utf-8")) for c in conts]
                q["continuation_" + fmt] = {"loglikelihoods": clls, "bytes": nbytes, "k": kc,
                                            "prompt_tokens": cloze_len,
                                            "choice": argmax_first([l / b for l, b in zip(clls, nbytes)]),
                                            "choice_sum": argmax_first(clls)}
            rows.append(q)
            total += 1
            for m in methods:
                correct[m] += q[m]["choice"] == row[5]
        acc = {m: sum(r[m]["choice"] == r["answer"] for r in rows) / len(rows) for m in methods}
        out["subjects"][subject] = {"accuracy": acc, "questions": rows}
        print(f"{subject}: " + ", ".join(f"{m} {a:.3f}" for m, a in acc.items()) + f" ({len(rows)} questions)",
              flush=True)
    out["accuracy"] = {m: c / total for m, c in correct.items()}
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "mmlu_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: {total} questions, accuracy " + ", ".join(f"{m} {a:.4f}" for m, a in out["accuracy"].items()))


if __name__ == "__main__":
    main()
