"""kiln.convert and kiln.build write what `kiln convert` and `kiln build` write; LLM(model folder) converts and builds
once into a cache folder keyed by its inputs."""
from __future__ import annotations

import filecmp
import os
import shutil

import pytest

import kiln
from conftest import MODELS, cli_error, kiln_cli


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


def test_progress_bars_on_a_terminal(tmp_path):
    """convert and build draw their progress bars when stderr is a terminal (a pty here), and not when told not to."""
    import pty
    import subprocess
    import sys

    def stderr_on_tty(code):
        master, slave = pty.openpty()
        p = subprocess.Popen([sys.executable, "-c", code], stderr=slave, stdout=subprocess.DEVNULL)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        assert p.wait(120) == 0
        return out.decode()

    ckpt, engine = tmp_path / "ckpt", tmp_path / "engine"
    err = stderr_on_tty(f"import kiln; kiln.convert({str(MODELS / 'llama')!r}, {str(ckpt)!r}); "
                        f"kiln.build({str(ckpt)!r}, {str(engine)!r}, target='cpu')")
    assert "convert [" in err and "build [" in err, err
    done, total = err.replace("\r", "\n").strip().splitlines()[-1].split()[-1].split("/")
    assert done == total, err  # the build's bar ends full
    quiet = stderr_on_tty(f"import kiln; kiln.convert({str(MODELS / 'llama')!r}, {str(tmp_path / 'c2')!r}, "
                          f"progress=False); kiln.build({str(ckpt)!r}, {str(tmp_path / 'e2')!r}, target='cpu', "
                          "progress=False)")
    assert "[" not in quiet, quiet


def test_quantize_equals_the_cli(tmp_path):
    """kiln.quantize writes what `kiln quantize` writes: weight-only int8 (no calibration), and fp8 with an fp8 KV
    cache calibrated on the same token sequences (the CLI cuts them from a pre-tokenized dataset)."""
    model = str(MODELS / "llama")
    kiln_cli("quantize", "--model", model, "--output", str(tmp_path / "cli-w8"), "--qformat", "int8_wo",
             "--no-progress")
    kiln.quantize(model, tmp_path / "py-w8", "int8_wo", progress=False)
    same_tree(tmp_path / "cli-w8", tmp_path / "py-w8")

    ids = [(7 * i + 3) % 300 + 4 for i in range(40)]
    data = tmp_path / "calib.jsonl"
    data.write_text('{"input_ids": %s}\n' % ids)
    kiln_cli("quantize", "--model", model, "--output", str(tmp_path / "cli-fp8"), "--qformat", "fp8",
             "--kv-cache-dtype", "fp8", "--calib-dataset", str(data), "--calib-size", "2",
             "--calib-max-seq-length", "16", "--no-progress")
    kiln.quantize(model, tmp_path / "py-fp8", "fp8", kv_cache_dtype="fp8", calib=[ids[:16], ids[16:32]],
                  calib_source="calib.jsonl", progress=False)
    same_tree(tmp_path / "cli-fp8", tmp_path / "py-fp8")
    with kiln.LLM(tmp_path / "py-fp8", target="cpu", cache_dir=tmp_path / "cache", num_threads=2) as llm:
        assert llm.generate([5, 6, 7], kiln.SamplingParams(max_tokens=4, ignore_eos=True))[0].outputs[0].token_ids

    with pytest.raises(kiln.InvalidArgumentError, match="qformat 'int3'"):
        kiln.quantize(model, tmp_path / "q", "int3")
    ref = cli_error("quantize", "--model", model, "--output", str(tmp_path / "q"), "--qformat", "int8_sq",
                    "--calib-dataset", str(data), "--calib-size", "1", "--calib-max-seq-length", "16",
                    "--exclude", "layers.9.mlp.down")
    with pytest.raises(kiln.QuantizeError) as e:
        kiln.quantize(model, tmp_path / "q", "int8_sq", calib=[ids[:16]], exclude=["layers.9.mlp.down"])
    assert str(e.value) == ref
    with pytest.raises(kiln.QuantizeError, match="needs calibration data"):
        kiln.quantize(model, tmp_path / "q", "fp8")
