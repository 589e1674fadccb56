"""A fresh clone installs with the documented command (`pip install ./python --no-build-isolation` in a virtual
environment; no package registry is asked) within a time bound, and the installed package generates what the CLI
generates. It clones the committed HEAD of this repository (uncommitted changes are not in it), into the build folder
so that ccache (base_dir) serves the objects the build tree already compiled; the cuda backend is left out
(CMAKE_ARGS=-DKILN_CUDA=OFF) to bound the time."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from conftest import BUILD_DIR, SOURCE_DIR, run_prompt

BOUND_S = 1500  # the whole clone + venv + install, on the two-core CI machine with a cold ccache


def test_fresh_clone_installs_and_generates(tiny_engine, tmp_path):
    work = BUILD_DIR / "install-test"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "CMAKE_ARGS": "-DKILN_CUDA=OFF",
           "KILN_BUILD_JOBS": str(min(os.cpu_count() or 1, 4))}
    env.pop("PYTHONPATH", None)  # the build tree's package must not be the one imported
    try:
        t0 = time.monotonic()
        clone = work / "kiln"
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{SOURCE_DIR}", str(clone)], check=True,
                       timeout=BOUND_S)
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
        pip = subprocess.run([str(venv / "bin" / "pip"), "install", "./python", "--no-build-isolation"], cwd=clone,
                             env=env, capture_output=True, text=True, timeout=BOUND_S)
        assert pip.returncode == 0, pip.stdout[-4000:] + pip.stderr[-4000:]
        elapsed = time.monotonic() - t0
        assert elapsed < BOUND_S, f"the install took {elapsed:.0f} s"

        script = (
            "import json, sys, kiln\n"
            "llm = kiln.LLM(sys.argv[1], num_threads=2)\n"
            "o = llm.generate('def fibonacci(n):\\n', kiln.SamplingParams(max_tokens=24))[0]\n"
            "print(json.dumps({'file': kiln.__file__, 'ids': o.outputs[0].token_ids, 'text': o.outputs[0].text}))\n"
            "llm.close()\n")
        run = subprocess.run([str(venv / "bin" / "python"), "-c", script, tiny_engine], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout.splitlines()[-1])
        assert got["file"].startswith(str(venv)), got["file"]  # the installed package, not the source or build tree
        ref = run_prompt(tiny_engine, tmp_path, "--prompt", "def fibonacci(n):\n", "--max-new-tokens", "24")
        assert got["ids"] == ref["output_ids"] and got["text"] == ref["text"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
