"""Shared helpers of the Python tests: the kiln CLI (the reference every Python result is compared with), engines
built by it, and fixture data. ctest sets PYTHONPATH to BUILD/python and KILN_BINARY / KILN_SOURCE_DIR; run by hand:

    PYTHONPATH=build/python python3 -m pytest tests/python
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

SOURCE_DIR = Path(os.environ.get("KILN_SOURCE_DIR") or Path(__file__).resolve().parents[2]).resolve()
BUILD_DIR = Path(os.environ.get("KILN_BUILD_DIR") or SOURCE_DIR / "build").resolve()
KILN = os.environ.get("KILN_BINARY") or str(BUILD_DIR / "bin" / "kiln")
MODELS = SOURCE_DIR / "tests" / "data" / "models"
TOKENIZERS = SOURCE_DIR / "third_party" / "tokenizers"
THREADS = "2"  # the CI machine has two cores

if str(BUILD_DIR / "python") not in sys.path and "PYTHONPATH" not in os.environ:
    sys.path.insert(0, str(BUILD_DIR / "python"))


def kiln_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the kiln CLI; returns the completed process (stdout and stderr as text)."""
    p = subprocess.run([KILN, *args], capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"kiln {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def cli_error(*args: str) -> str:
    """The message of the CLI's `error: ...` line for a command that must fail."""
    p = kiln_cli(*args, check=False)
    assert p.returncode != 0, f"kiln {' '.join(args)} succeeded"
    lines = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert lines, p.stderr
    return lines[-1][len("error: "):]


def make_engine(out: Path, model: str, *, rope_checkpoint: bool = False, **limits: Any) -> str:
    """Converts and builds a fixture model with the CLI into out/engine (cpu target); returns the engine folder."""
    ckpt, engine = out / "checkpoint", out / "engine"
    args = ["convert", "--model", str(MODELS / model), "--output", str(ckpt)]
    if rope_checkpoint:
        args += ["--rope-freq-dtype", "checkpoint"]
    kiln_cli(*args)
    build = ["build", "--checkpoint", str(ckpt), "--output", str(engine), "--target", "cpu"]
    for k, v in limits.items():
        build += ["--" + k.replace("_", "-"), str(v)]
    kiln_cli(*build)
    return str(engine)


def run_prompt(engine: str, out: Path, *args: str) -> Dict[str, Any]:
    """`kiln run --engine ENGINE ARGS --output-file F`: the result object."""
    f = out / f"result-{len(list(out.glob('result-*')))}.json"
    kiln_cli("run", "--engine", engine, "--threads", THREADS, *args, "--output-file", str(f))
    return json.loads(f.read_text())


def run_jsonl(engine: str, out: Path, requests: List[Dict[str, Any]], *args: str) -> List[Dict[str, Any]]:
    """`kiln run --input-file` with these requests: one result per request, in order."""
    n = len(list(out.glob("requests-*")))
    src, dst = out / f"requests-{n}.jsonl", out / f"results-{n}.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in requests))
    kiln_cli("run", "--engine", engine, "--threads", THREADS, "--input-file", str(src), "--output-file", str(dst),
             *args)
    return [json.loads(line) for line in dst.read_text().splitlines()]


def read_i32(path: Path, name: str) -> List[int]:
    """An int32 tensor of a safetensors file, flattened (the format: u64 header size, JSON header, data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        t = header[name]
        assert t["dtype"] == "I32", t
        begin, end = t["data_offsets"]
        f.seek(8 + n + begin)
        data = f.read(end - begin)
    return list(struct.unpack(f"<{len(data) // 4}i", data))


@pytest.fixture(scope="session")
def tiny_engine(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tiny-code (the trained demo model, with its tokenizer) built by the CLI: beams up to 4, 512 positions, its
    goldens' rounded RoPE frequencies."""
    return make_engine(tmp_path_factory.mktemp("tiny"), "tiny-code", rope_checkpoint=True, max_beam_width=4,
                       max_seq_len=512, max_batch_size=16)


@pytest.fixture(scope="session")
def tiny_llm(tiny_engine: str):
    import kiln
    with kiln.LLM(tiny_engine, num_threads=2) as llm:
        yield llm
