#!/usr/bin/env python3
"""Writes tests/data/eval/porter_reference.tsv: word<TAB>stem for the Porter stemmer test, stems by NLTK's
PorterStemmer in its default mode (NLTK_EXTENSIONS: what rouge-score uses).

Words: every distinct [a-z0-9]+ run longer than 3 characters in the lower-cased text of Debian's python3.11
stdlib modules listed below (docstrings, comments and identifiers: English and code words) and of the ROUGE pairs
(tests/data/eval/rouge_pairs.jsonl, lower-cased as rouge-score does), and a list of words chosen for the rules'
edge cases. scripts/dev/make_rouge_reference.py stems the pairs' tokens with this table on a machine without NLTK.
NLTK from Debian: `apt-get install python3-nltk`, run with /usr/bin/python3.

Usage: /usr/bin/python3 scripts/dev/make_porter_reference.py [OUT.tsv] [--stdlib /usr/lib/python3.11]
                                                              [--pairs tests/data/eval/rouge_pairs.jsonl]
"""
import argparse
import json
import os
import re

from nltk.stem.porter import PorterStemmer

FILES = ["textwrap.py", "difflib.py", "argparse.py", "calendar.py", "statistics.py", "shutil.py", "datetime.py",
         "fractions.py", "heapq.py", "inspect.py", "typing.py", "tarfile.py", "zipfile.py", "ssl.py",
         "subprocess.py", "pydoc.py", "locale.py", "email/message.py", "http/client.py", "asyncio/tasks.py"]
EDGE = """caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized
hopping tanned falling hissing fizzed failing filing happy sky skies dying lying tying news innings inning outings
outing cannings canning howe proceed exceed succeed relational conditional rational valenci hesitanci digitizer
conformabli radicalli differentli vileli analogousli vietnamization predication operator feudalism decisiveness
hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative formalize electriciti electrical
hopeful goodness revival allowance inference airliner gyroscopic adjustable defensible irritant replacement
adjustment dependent adoption homologou communism activate angulariti homologous effective bowdlerize probate
rate cease controll roll generalizations generalization oscillators archaeology geology theology fully
carefully hopefully dried cried spied tied died lied studied emptied skied yelled fizzing 1990s abcs says
play plays played playing toy toys cry crying cried buy buying boy boys enjoy enjoyed""".split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="tests/data/eval/porter_reference.tsv")
    ap.add_argument("--stdlib", default="/usr/lib/python3.11")
    ap.add_argument("--pairs", default="tests/data/eval/rouge_pairs.jsonl")
    args = ap.parse_args()
    words = set(w for w in EDGE if len(w) > 3)
    for rel in FILES:
        with open(os.path.join(args.stdlib, rel), encoding="utf-8") as f:
            text = re.sub(r"[^a-z0-9]+", " ", f.read().lower())
        words.update(w for w in text.split() if len(w) > 3)
    with open(args.pairs, encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            for text in (p["prediction"], p["reference"]):
                words.update(w for w in re.sub(r"[^a-z0-9]+", " ", text.lower()).split() if len(w) > 3)
    stemmer = PorterStemmer()
    with open(args.out, "w", encoding="utf-8") as f:
        for w in sorted(words):
            f.write(f"{w}\t{stemmer.stem(w)}\n")
    print(f"wrote {len(words)} words to {args.out}")


if __name__ == "__main__":
    main()
