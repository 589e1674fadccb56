"""kiln.convert and kiln.build (the CLI's convert and build), and the engine cache LLM uses for model folders."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

from . import _kiln
from .errors import ArgumentTypeError, BuildError, ConvertError, InvalidArgumentError, translate

PathLike = Union[str, "os.PathLike[str]"]
_DTYPES = ("float32", "float16", "bfloat16")
_LIMIT_MAX = 2**62


def _path(v: Any, what: str) -> str:
    if not isinstance(v, (str, os.PathLike)):
        raise ArgumentTypeError(f"{what}: expected a path, got {v!r}")
    return os.fspath(v)


def _opt_int(v: Any, what: str, lo: int = 1) -> int:
    """An optional positive limit as the C++ side takes it (0: the default)."""
    if v is None:
        return 0
    if not isinstance(v, int) or isinstance(v, bool):
        raise ArgumentTypeError(f"{what}: expected an integer, got {v!r}")
    if not lo <= v <= _LIMIT_MAX:
        raise InvalidArgumentError(f"{what} = {v}: must be at least {lo}")
    return v


def default_target() -> str:
    """"cuda" where this kiln was built with the cuda backend, else "cpu"."""
    return "cuda" if _kiln.build_info()["cuda"] else "cpu"


def convert(model_dir: PathLike, output_dir: PathLike, *, dtype: Optional[str] = None,
            rope_freq_dtype: str = "float32", tp_size: int = 1, pp_size: int = 1, progress: bool = True) -> str:
    """Converts a Hugging Face checkpoint folder into a kiln checkpoint (``kiln convert``); returns ``output_dir``.

    Args:
        model_dir: the Hugging Face folder (config.json, *.safetensors, tokenizer files).
        output_dir: the kiln checkpoint folder to create (must not exist; written atomically).
        dtype: "float32", "float16" or "bfloat16" (default: the checkpoint's).
        rope_freq_dtype: "float32" (as transformers' from_pretrained) or "checkpoint" (rounded to its dtype).
        tp_size, pp_size: the mapping (only 1 is supported yet).
        progress: draw a progress bar on stderr when it is a terminal.

    Raises kiln.ConvertError with the converter's message (naming the file, tensor or field).
    """
    src, out = _path(model_dir, "convert: model_dir"), _path(output_dir, "convert: output_dir")
    if dtype is not None and dtype not in _DTYPES:
        raise InvalidArgumentError(f"convert: dtype {dtype!r}: expected one of {', '.join(_DTYPES)}")
    if rope_freq_dtype not in ("float32", "checkpoint"):
        raise InvalidArgumentError(f"convert: rope_freq_dtype {rope_freq_dtype!r}: expected 'float32' or 'checkpoint'")
    tp, pp = _opt_int(tp_size, "convert: tp_size"), _opt_int(pp_size, "convert: pp_size")
    with translate(ConvertError):
        _kiln.convert(src, out, dtype, rope_freq_dtype, tp, pp, bool(progress))
    return out


def build(checkpoint_dir: PathLike, output_dir: PathLike, *, target: Optional[str] = None,
          dtype: Optional[str] = None, max_batch_size: Optional[int] = None, max_input_len: Optional[int] = None,
          max_seq_len: Optional[int] = None, max_num_tokens: Optional[int] = None,
          max_beam_width: Optional[int] = None, batch_invariant: bool = False) -> str:
    """Builds an engine for one target from a kiln checkpoint (``kiln build``); returns ``output_dir``.

    Args:
        target: "cpu" or "cuda" (default: "cuda" where this kiln has the cuda backend, else "cpu").
        dtype: cuda compute dtype, "float16" or "bfloat16".
        max_batch_size, max_input_len, max_seq_len, max_num_tokens, max_beam_width: the engine's limits (None: the
            defaults of ``kiln build``: 8, max_seq_len, the model's positions, min(8192, B x S), 1).
        batch_invariant: outputs independent of the batch (cuda; cpu engines always are).

    Raises kiln.BuildError with the builder's message (naming the limit or file).
    """
    src, out = _path(checkpoint_dir, "build: checkpoint_dir"), _path(output_dir, "build: output_dir")
    target = default_target() if target is None else target
    if target not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"build: target {target!r}: expected 'cpu' or 'cuda'")
    if dtype is not None and dtype not in _DTYPES:
        raise InvalidArgumentError(f"build: dtype {dtype!r}: expected one of {', '.join(_DTYPES)}")
    limits = _kiln.EngineLimits()
    limits.max_batch_size = _opt_int(max_batch_size, "build: max_batch_size") or 8
    limits.max_input_len = _opt_int(max_input_len, "build: max_input_len")
    limits.max_seq_len = _opt_int(max_seq_len, "build: max_seq_len")
    limits.max_num_tokens = _opt_int(max_num_tokens, "build: max_num_tokens")
    limits.max_beam_width = _opt_int(max_beam_width, "build: max_beam_width") or 1
    if not isinstance(batch_invariant, bool):
        raise ArgumentTypeError(f"build: batch_invariant: expected True or False, got {batch_invariant!r}")
    with translate(BuildError):
        _kiln.build(src, out, target, dtype, limits, batch_invariant)
    return out


def model_kind(path: str) -> str:
    """"engine", "checkpoint" (kiln) or "hf" for a model folder; InvalidArgumentError otherwise."""
    p = Path(path)
    if (p / "engine.json").is_file():
        return "engine"
    cfg = p / "config.json"
    if not cfg.is_file():
        raise InvalidArgumentError(f"LLM: {path} is not an engine (engine.json), a kiln checkpoint or a Hugging Face "
                                   "model folder (config.json)")
    try:
        fmt = json.loads(cfg.read_text()).get("format")
    except (ValueError, OSError, AttributeError):
        fmt = None  # the converter names what is wrong with it
    return "checkpoint" if fmt == "kiln-checkpoint" else "hf"


def cache_root(cache_dir: Optional[PathLike]) -> Path:
    if cache_dir is not None:
        return Path(_path(cache_dir, "LLM: cache_dir"))
    if os.environ.get("KILN_CACHE_DIR"):
        return Path(os.environ["KILN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kiln"


def _fingerprint(folder: str) -> list:
    """Every file of a model folder by relative path, size and modification time."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            st = os.stat(os.path.join(root, f))
            out.append([os.path.relpath(os.path.join(root, f), folder), st.st_size, st.st_mtime_ns])
    return out


def cached_engine(model: str, kind: str, cache_dir: Optional[PathLike], convert_opts: Dict[str, Any],
                  build_opts: Dict[str, Any]) -> str:
    """The engine for a Hugging Face folder or kiln checkpoint, converted and built into the cache once: its folder
    is named by a hash of the inputs (the folder's path and files, the options and the kiln version)."""
    target = build_opts.get("target") or default_target()
    key = json.dumps({"kiln": _kiln.build_info()["version"], "model": os.path.abspath(model), "kind": kind,
                      "files": _fingerprint(model), "convert": convert_opts, "build": {**build_opts, "target": target}},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    root = cache_root(cache_dir)
    engine = root / "engines" / f"{Path(os.path.abspath(model)).name}-{target}-{digest}"
    if (engine / "engine.json").is_file():
        return str(engine)
    engine.parent.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".work-", dir=engine.parent)
    try:
        ckpt = model
        if kind == "hf":
            ckpt = convert(model, os.path.join(work, "checkpoint"), **convert_opts)
        try:
            build(ckpt, str(engine), **{**build_opts, "target": target})
        except BuildError:
            if (engine / "engine.json").is_file():  # another process built the same engine meanwhile
                return str(engine)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return str(engine)
