#!/usr/bin/env python3
"""Helpers of scripts/gpu-check.sh.

  gpu_check_util.py record OUT.json NAME GPU COMMIT RC T0 T1 STDOUT STDERR CMD
      one run's record: the last stdout line that parses as JSON is its result
  gpu_check_util.py gtest GTEST.json          summary of a gtest JSON report (one JSON line)
  gpu_check_util.py memcheck LOG FILTER RC    summary of a compute-sanitizer log (one JSON line)
"""
import json
import re
import sys


def record(out, name, gpu, commit, rc, t0, t1, log, err, cmd):
    lines = open(log, errors="replace").read().splitlines()
    result = None
    for line in reversed(lines):
        try:
            result = json.loads(line)
            break
        except ValueError:
            pass
    rec = {"name": name, "gpu": gpu, "commit": commit, "command": cmd, "exit_code": int(rc),
           "wall_s": round(float(t1) - float(t0), 3), "result": result}
    if result is None or int(rc) != 0:
        rec["log_tail"] = "\n".join((lines + open(err, errors="replace").read().splitlines())[-40:])
    with open(out, "w") as f:
        json.dump(rec, f, indent=1)
    shown = json.dumps(result)[:400] if result is not None else "(no JSON result)"
    print(f"{name}: exit {rc}, {rec['wall_s']} s, {shown}")


def gtest(path):
    j = json.load(open(path))
    cases = [t for s in j["testsuites"] for t in s["testsuite"]]
    print(json.dumps({"tests": j["tests"], "failures": j["failures"], "disabled": j["disabled"],
                      "skipped": sum(1 for t in cases if t.get("result") == "SKIPPED"),
                      "failed": [t["classname"] + "." + t["name"] for t in cases if t.get("failures")],
                      "seconds": j.get("time")}))


def memcheck(log, filt, rc):
    t = open(log, errors="replace").read()
    m = re.search(r"ERROR SUMMARY: (\d+) error", t)
    p = re.search(r"\[  PASSED  \] (\d+) test", t)
    f = re.findall(r"\[  FAILED  \] (\S+)", t)
    print(json.dumps({"tool": "memcheck", "filter": filt, "errors": int(m.group(1)) if m else None,
                      "tests_passed": int(p.group(1)) if p else 0, "tests_failed": sorted(set(f)),
                      "exit_code": int(rc)}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"record": record, "gtest": gtest, "memcheck": memcheck}[cmd](*args)
