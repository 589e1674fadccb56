#!/usr/bin/env python3
"""Writes tests/data/eval/code_mmlu: a small MMLU-layout set (Hendrycks: dev/SUBJECT_dev.csv, test/SUBJECT_test.csv,
no header, columns question,A,B,C,D,answer) built from real Python source, the stdlib of Debian's python3.11.

Each question is a code fragment (the 6 lines before a chosen line of a stdlib file) and four candidate next
lines: the real one and three other lines of the same file, taken from far away. A code model that reads the
fragment tells the real line apart when it scores each candidate as the fragment's next line (kiln eval mmlu
--method continuation --continuation-format plain): tiny-code scores far above chance (25%) so. Answering with a
letter (the standard prompt) asks more of a model than tiny-code has: it scores about chance that way.

Usage: python3 scripts/dev/make_code_mmlu.py [OUT_DIR] [--stdlib /usr/lib/python3.11] [--question-prefix TEXT]
  --question-prefix TEXT puts TEXT before each question's code (the first reference run used
  $'Which line comes next in this Python code?\n'; tests/data/eval/code_mmlu has none).
Deterministic (seeded); rerun it to check the committed files.
"""
import argparse
import csv
import os
import random

# subject -> stdlib files (relative to the stdlib root)
SUBJECTS = {
    "python_json_pickle": ["json/__init__.py", "json/decoder.py", "json/encoder.py", "json/scanner.py", "json/tool.py",
                    "pickle.py"],
    "python_email": ["email/_header_value_parser.py", "email/message.py", "email/utils.py", "email/feedparser.py"],
    "python_asyncio": ["asyncio/base_events.py", "asyncio/tasks.py", "asyncio/streams.py", "asyncio/queues.py"],
    "python_http": ["http/client.py", "http/server.py", "http/cookiejar.py", "http/cookies.py"],
    "python_unittest": ["unittest/case.py", "unittest/mock.py", "unittest/loader.py", "unittest/result.py"],
    "python_text": ["textwrap.py", "difflib.py", "string.py", "shlex.py", "csv.py"],
}
NUM_DEV = 5
NUM_TEST = 15
CONTEXT_LINES = 6
LETTERS = "ABCD"


def good_line(line):
    s = line.strip()
    if not (12 <= len(s) <= 70):
        return False
    if s.startswith(("#", '"', "'", "@")) or s.endswith(('"""', "'''")):
        return False
    return line.isascii() and "\t" not in line and "\r" not in line


def in_docstring_flags(lines):
    """True for each line inside (or opening/closing) a triple-quoted string, by a simple scan."""
    flags, inside = [], False
    for line in lines:
        n = line.count('"""') + line.count("'''")
        flags.append(inside or n > 0)
        if n % 2 == 1:
            inside = not inside
    return flags


def questions_from_file(path, rng, want, prefix):
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n").rstrip() for l in f]
    doc = in_docstring_flags(lines)
    usable = [i for i, l in enumerate(lines) if good_line(l) and not doc[i]]
    candidates = [i for i in usable if i >= CONTEXT_LINES and
                  all(lines[j].strip() and not doc[j] and "\t" not in lines[j] and lines[j].isascii()
                      for j in range(i - CONTEXT_LINES, i))]
    rng.shuffle(candidates)
    out, used = [], set()
    for i in candidates:
        if len(out) == want:
            break
        if any(abs(i - u) < 30 for u in used):
            continue
        real = lines[i]
        far = [j for j in usable if abs(j - i) > 40 and lines[j].strip() != real.strip()]
        distractors, seen = [], {real.strip()}
        rng.shuffle(far)
        for j in far:
            if lines[j].strip() not in seen:
                seen.add(lines[j].strip())
                distractors.append(lines[j])
            if len(distractors) == 3:
                break
        if len(distractors) < 3:
            continue
        used.add(i)
        fragment = "\n".join(lines[i - CONTEXT_LINES:i])
        options = [real] + distractors
        rng.shuffle(options)
        answer = LETTERS[options.index(real)]
        out.append([prefix + fragment] + options + [answer])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir", nargs="?", default="tests/data/eval/code_mmlu")
    ap.add_argument("--stdlib", default="/usr/lib/python3.11")
    ap.add_argument("--question-prefix", default="", help="text before each code fragment")
    args = ap.parse_args()
    for split in ("dev", "test"):
        os.makedirs(os.path.join(args.out_dir, split), exist_ok=True)
    for subject, files in SUBJECTS.items():
        rng = random.Random("kiln-code-mmlu-" + subject)
        rows = []
        per_file = (NUM_DEV + NUM_TEST + len(files) - 1) // len(files) + 2
        for rel in files:
            rows += questions_from_file(os.path.join(args.stdlib, rel), rng, per_file, args.question_prefix)
        rng.shuffle(rows)
        if len(rows) < NUM_DEV + NUM_TEST:
            raise SystemExit(f"{subject}: only {len(rows)} questions")
        for split, part in (("dev", rows[:NUM_DEV]), ("test", rows[NUM_DEV:NUM_DEV + NUM_TEST])):
            path = os.path.join(args.out_dir, split, f"{subject}_{split}.csv")
            with open(path, "w", encoding="utf-8", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows(part)
    print(f"wrote {len(SUBJECTS)} subjects to {args.out_dir}")


if __name__ == "__main__":
    main()
