#!/usr/bin/env python3
"""Writes tests/data/eval/rouge_pairs.jsonl: prediction/reference pairs for the ROUGE agreement test.

References are real English: docstrings of Debian's python3.11 stdlib (punctuation, numbers, code words,
several sentences). Predictions are seeded edits of them (dropped, swapped, inflected and replaced words, sentences
reordered, split on newlines or joined, numbers changed, Unicode inserted) or unrelated text, and a hand-written
list of edge cases comes first: empty and whitespace-only strings, one word, punctuation only, Unicode whose
lower case is ASCII (U+0130, U+212A), stems the Porter stemmer treats specially, newline-separated sentences.

Usage: python3 scripts/dev/make_rouge_pairs.py [OUT.jsonl] [--stdlib /usr/lib/python3.11]
Deterministic (seeded); rerun it to check the committed file.
"""
import argparse
import ast
import json
import os
import random

EDGE_CASES = [
    ("", ""),
    ("", "The cat sat on the mat."),
    ("The cat sat on the mat.", ""),
    ("   ", "\n\n"),
    ("\n", "word"),
    ("word", "word"),
    ("word", "other"),
    ("running", "runs"),
    ("Running!", "ran"),
    ("...", "!!!"),
    ("?!", "a"),
    ("a", "a a a a"),
    ("the the the the", "the"),
    ("3.14159 is pi", "pi is 3,14159"),
    ("In 1990s, 42 people paid $1,000.50 each.", "42 people paid 1000.50 dollars in the 1990s"),
    ("naïve café résumé", "naive cafe resume"),
    ("İstanbul İzmir", "i stanbul izmir"),
    ("5\u212a 10\u212a", "5k 10K"),
    ("\u00c5ngstr\u00f6m \u212bngstr\u00f6m", "angstrom"),
    ("日本語のテキスト and English", "English text 日本語"),
    ("emoji 🙂 test 🚀 launch", "test launch emoji"),
    ("Ｆｕｌｌｗｉｄｔｈ １２３ letters", "fullwidth 123 letters"),
    ("ΑΒΓ δέλτα alpha", "alpha beta gamma"),
    ("don't can't won't", "do not cannot will not"),
    ("state-of-the-art e-mail co-operate", "state of the art email cooperate"),
    ("The skies were dying; innings and news proceed.", "sky die inning news proceeded"),
    ("generalizations conditional relational hopping hoped", "generalize condition relate hop hope"),
    ("happily agreed feed plastered motoring sing", "happy agree fee plaster motor sang"),
    ("controlling rolling filing failing troubled sized", "control roll file fail trouble size"),
    ("electrical hopefulness goodness formality sensitivity", "electric hopeful good formal sensitive"),
    ("adjustable defensible irritant replacement adjustment", "adjust defense irritate replace adjusting"),
    ("dependent adoption homologou communism activate angulariti", "depend adopt homolog commune active angular"),
    ("probate rate cease controll roll", "probat rat ceas control rol"),
    ("analogous effective bowdlerize gyroscopic", "analog effect bowdler gyroscope"),
    ("First sentence here.\nSecond sentence there.\nThird one.",
     "First sentence here. Second sentence there. Third one."),
    ("One.\nTwo.\nThree.", "Three.\nTwo.\nOne."),
    ("a b c d\ne f g h", "e f g h\na b c d"),
    ("alpha beta\n\n\ngamma delta", "alpha beta gamma delta"),
    ("x y z x y z", "z y x\nz y x"),
    ("Tabs\tand\tspaces   mixed\r\nwith CRLF", "tabs and spaces mixed with crlf"),
    ("UPPER lower MiXeD", "upper LOWER mixed"),
    ("snake_case camelCase kebab-case", "snake case camel case kebab case"),
    ("version 3.11.7 released 2023-12-04", "released version 3 11 7 on 2023 12 04"),
    ("a" * 40, "a" * 40),
    ("0 00 000 0000 00000", "0000 000 00 0"),
]

WORD_SUBS = ["the", "a", "and", "of", "value", "values", "returned", "returning", "objects", "string",
             "1", "2024", "3.5", "None", "café", "naïve", "İ", "\u212a", "x", "é"]
INFLECT = ["s", "es", "ed", "ing", "ly", "ness", "ation", "er", "ies", "ment", "ful", "ive", "able"]
UNICODE_BITS = ["é", "ü", "ß", "—", "“quoted”", "日本", "🙂", "ℕ", "İ", "\u212a", "Ω", "ﬁ", "\u00a0", "\u2028"]


def docstrings(stdlib, files):
    out = []
    for rel in files:
        with open(os.path.join(stdlib, rel), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef, ast.Module)):
                doc = ast.get_docstring(node)
                if doc and 40 <= len(doc) <= 900:
                    out.append(doc)
    return out


def sentences(text):
    parts, cur = [], []
    for word in text.split():
        cur.append(word)
        if word.endswith((".", "!", "?", ":")):
            parts.append(" ".join(cur))
            cur = []
    if cur:
        parts.append(" ".join(cur))
    return parts


def edit(ref, other, rng):
    kind = rng.randrange(9)
    words = ref.split()
    if kind == 0:  # drop words
        return " ".join(w for w in words if rng.random() > 0.3)
    if kind == 1:  # swap neighbours
        for _ in range(max(1, len(words) // 5)):
            if len(words) > 1:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    if kind == 2:  # inflect and substitute
        return " ".join(w + rng.choice(INFLECT) if rng.random() < 0.25 else
                        (rng.choice(WORD_SUBS) if rng.random() < 0.1 else w) for w in words)
    if kind == 3:  # sentences reordered, one per line
        s = sentences(ref)
        rng.shuffle(s)
        return "\n".join(s)
    if kind == 4:  # sentences on lines, some dropped
        return "\n".join(x for x in sentences(ref) if rng.random() > 0.3)
    if kind == 5:  # unicode and punctuation inserted
        return " ".join(w + rng.choice(UNICODE_BITS) if rng.random() < 0.2 else w for w in words)
    if kind == 6:  # numbers changed, case changed
        return " ".join(str(rng.randrange(1000)) if rng.random() < 0.1 else
                        (w.upper() if rng.random() < 0.2 else w) for w in words)
    if kind == 7:  # first half of this, second half of another
        ow = other.split()
        return " ".join(words[:len(words) // 2] + ow[len(ow) // 2:])
    return other  # unrelated text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="tests/data/eval/rouge_pairs.jsonl")
    ap.add_argument("--stdlib", default="/usr/lib/python3.11")
    args = ap.parse_args()
    rng = random.Random("kiln-rouge-pairs")
    docs = docstrings(args.stdlib, ["textwrap.py", "difflib.py", "heapq.py", "fractions.py", "statistics.py",
                                    "calendar.py", "shutil.py", "argparse.py", "datetime.py"])
    rng.shuffle(docs)
    docs = docs[:200]
    pairs = [{"prediction": p, "reference": r} for p, r in EDGE_CASES]
    for i, ref in enumerate(docs):
        # Half the references keep their newlines (sentences per line for ROUGE-Lsum), half are one line.
        ref = ref if i % 2 else " ".join(ref.split())
        pairs.append({"prediction": edit(ref, docs[(i + 7) % len(docs)], rng), "reference": ref})
    with open(args.out, "w", encoding="utf-8") as f:
        for i, p in enumerate(pairs):
            f.write(json.dumps({"id": i, **p}, ensure_ascii=False) + "\n")
    print(f"wrote {len(pairs)} pairs to {args.out}")


if __name__ == "__main__":
    main()
