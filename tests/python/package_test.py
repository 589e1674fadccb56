"""The package's surface: the .pyi stub declares exactly what the native module has, every public name is
documented, and the build tree's package is the one under test."""
from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import kiln
from kiln import _kiln
from conftest import BUILD_DIR, SOURCE_DIR, make_engine, run_prompt


def stub_names(tree):
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        if isinstance(node, ast.ClassDef):
            names = set()
            for n in node.body:
                if isinstance(n, ast.FunctionDef):
                    names.add(n.name)
                elif isinstance(n, ast.AnnAssign):
                    names.add(n.target.id)
            members[node.name] = names - {"__init__"}
    return top, members


def test_stub_matches_the_native_module():
    tree = ast.parse((SOURCE_DIR / "python" / "kiln" / "_kiln.pyi").read_text())
    top, members = stub_names(tree)
    assert top == {n for n in dir(_kiln) if not n.startswith("_")}
    for cls, names in members.items():
        if cls == "Error":
            continue
        have = {n for n in dir(getattr(_kiln, cls)) if not n.startswith("_")}
        assert names == have, cls


def test_public_api_is_documented():
    for name in kiln.__all__:
        obj = getattr(kiln, name)
        if name == "__version__":
            assert obj == _kiln.build_info()["version"]
            continue
        assert inspect.getdoc(obj), name
        if inspect.isclass(obj) and obj.__module__.startswith("kiln"):
            for m, f in vars(obj).items():
                if not m.startswith("_") and callable(f):
                    assert inspect.getdoc(f), f"{name}.{m}"
    assert Path(kiln.__file__).parent == BUILD_DIR / "python" / "kiln"
    assert (Path(kiln.__file__).parent / "py.typed").exists() and (Path(kiln.__file__).parent / "_kiln.pyi").exists()


def python_block(doc: Path, after: str) -> str:
    text = doc.read_text()
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start:text.index("```", start)]


def test_readme_example_runs_the_demo_model(tmp_path):
    """The README's example, run as written from the repository root (its cache in a temporary folder): its first
    output is what kiln run gives for the same request on the same engine."""
    code = python_block(SOURCE_DIR / "README.md", "## Python")
    assert len(code.strip().splitlines()) <= 12
    env = {**os.environ, "KILN_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(BUILD_DIR / "python")}
    p = subprocess.run([sys.executable, "-c", code], cwd=SOURCE_DIR, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    engine = make_engine(tmp_path, "tiny-code", max_seq_len=512)
    ref = run_prompt(engine, tmp_path, "--prompt", "def fibonacci(n):\n", "--max-new-tokens", "64", "--temperature",
                     "0.8", "--seed", "7")
    assert p.stdout.startswith(ref["text"] + "\n")
    assert len(p.stdout) > len(ref["text"]) + 20  # the streamed text and the last line follow


def test_docs_quick_start_runs(tmp_path):
    code = python_block(SOURCE_DIR / "docs" / "python.md", "## Quick start")
    env = {**os.environ, "KILN_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(BUILD_DIR / "python")}
    p = subprocess.run([sys.executable, "-c", code], cwd=SOURCE_DIR, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1].isdigit()
