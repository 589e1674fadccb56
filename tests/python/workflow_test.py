"""kiln.convert and kiln.build write what `kiln convert` and `kiln build` write; LLM(model folder) converts and builds
once into a cache folder keyed by its inputs."""
from __future__ import annotations

import filecmp
import os
import shutil

import kiln
from conftest import MODELS, kiln_cli


def same_tree(a, b):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


def test_convert_and_build_equal_the_cli(tmp_path):
    for model, dtype in (("tiny-code", None), ("qwen2", "float16")):
        cli_ckpt, py_ckpt = tmp_path / f"{model}-cli-ckpt", tmp_path / f"{model}-py-ckpt"
        args = ["convert", "--model", str(MODELS / model), "--output", str(cli_ckpt)]
        kiln_cli(*args, *(["--dtype", dtype] if dtype else []))
        assert kiln.convert(MODELS / model, py_ckpt, dtype=dtype, progress=False) == str(py_ckpt)
        same_tree(cli_ckpt, py_ckpt)
        cli_engine, py_engine = tmp_path / f"{model}-cli-engine", tmp_path / f"{model}-py-engine"
        kiln_cli("build", "--checkpoint", str(cli_ckpt), "--output", str(cli_engine), "--target", "cpu",
                 "--max-batch-size", "4", "--max-seq-len", "256", "--max-beam-width", "2")
        kiln.build(py_ckpt, py_engine, target="cpu", max_batch_size=4, max_seq_len=256, max_beam_width=2)
        same_tree(cli_engine, py_engine)


def test_llm_from_a_model_folder_uses_a_cache(tmp_path):
    model = tmp_path / "tiny-code"
    shutil.copytree(MODELS / "tiny-code", model)
    cache = tmp_path / "cache"
    opts = dict(target="cpu", cache_dir=cache, max_seq_len=256, rope_freq_dtype="checkpoint", num_threads=2)
    with kiln.LLM(model, **opts) as llm:
        first = llm.engine_dir
        out = llm.generate("def f(x):", kiln.SamplingParams(max_tokens=16))[0].outputs[0]
    assert first.startswith(str(cache / "engines"))
    # The same engine as the CLI's convert + build with those options.
    kiln_cli("convert", "--model", str(model), "--output", str(tmp_path / "ckpt"), "--rope-freq-dtype", "checkpoint")
    kiln_cli("build", "--checkpoint", str(tmp_path / "ckpt"), "--output", str(tmp_path / "engine"), "--target", "cpu",
             "--max-seq-len", "256")
    same_tree(first, tmp_path / "engine")
    assert [p.name for p in (cache / "engines").iterdir()] == [os.path.basename(first)]  # no work folder left
    # Loaded again: the cached engine, not rebuilt.
    stamp = os.stat(os.path.join(first, "engine.json")).st_mtime_ns
    with kiln.LLM(model, **opts) as llm:
        assert llm.engine_dir == first
        assert llm.generate("def f(x):", kiln.SamplingParams(max_tokens=16))[0].outputs[0].token_ids == out.token_ids
    assert os.stat(os.path.join(first, "engine.json")).st_mtime_ns == stamp
    # Another option, or a changed model file: another engine.
    with kiln.LLM(model, **{**opts, "max_seq_len": 128}) as llm:
        assert llm.engine_dir != first and llm.limits["max_seq_len"] == 128
    os.utime(model / "config.json", ns=(stamp, stamp + 1))
    with kiln.LLM(model, **opts) as llm:
        assert llm.engine_dir not in (first,)
    # A kiln checkpoint is built (not converted) into the cache too.
    with kiln.LLM(tmp_path / "ckpt", target="cpu", cache_dir=cache, max_seq_len=256, num_threads=2) as llm:
        same_tree(llm.engine_dir, tmp_path / "engine")
