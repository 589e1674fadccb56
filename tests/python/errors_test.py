"""Bad input raises a kiln.Error subclass before anything runs; errors from C++ carry its message, the same one the
CLI prints for the same input."""
from __future__ import annotations

import json
import shutil

import pytest

import kiln
from conftest import MODELS, cli_error, make_engine


def test_sampling_params_are_checked_when_made():
    with pytest.raises(kiln.InvalidArgumentError, match="unknown field 'temprature'"):
        kiln.SamplingParams(temprature=0.5)
    with pytest.raises(kiln.ArgumentTypeError, match=r"SamplingParams.temperature: expected a number, got 'hot'"):
        kiln.SamplingParams(temperature="hot")
    bad = [(dict(top_p=0), "top_p = 0: must be in \\(0, 1\\]"), (dict(max_tokens=0), "max_tokens = 0"),
           (dict(temperature=-1), "temperature = -1"), (dict(temperature=float("nan")), "temperature = nan"),
           (dict(seed=-1), "seed = -1"), (dict(min_p=2), "min_p = 2"), (dict(repetition_penalty=0), "repetition"),
           (dict(n=2), "n = 2 without beam search needs sampling"),
           (dict(beam_width=2, temperature=0.5), "beam search .* does not sample"),
           (dict(beam_width=2, n=3), "n = 3 exceeds beam_width 2"),
           (dict(early_stopping="sometimes"), "early_stopping"),
           (dict(end_id=-2), "end_id = -2"), (dict(top_k=-2), "top_k = -2")]
    for kwargs, msg in bad:
        with pytest.raises(kiln.InvalidArgumentError, match=msg):
            kiln.SamplingParams(**kwargs)
    for kwargs in (dict(max_tokens=2.5), dict(n=True), dict(stop=[1]), dict(stop_token_ids="12"),
                   dict(bad_words=[[1, "x"]]), dict(logprobs=1)):
        with pytest.raises(kiln.ArgumentTypeError):
            kiln.SamplingParams(**kwargs)
    # Every kiln error is a kiln.Error; argument errors are ValueError / TypeError too.
    assert issubclass(kiln.ArgumentTypeError, TypeError) and issubclass(kiln.InvalidArgumentError, ValueError)
    assert all(issubclass(c, kiln.Error) for c in (kiln.RequestError, kiln.ConvertError, kiln.BuildError,
                                                     kiln.EngineError, kiln.TokenizerError, kiln.GenerationError))
    # A field set to a bad value after construction is caught when the params are used.
    sp = kiln.SamplingParams()
    sp.top_k = "many"
    with pytest.raises(kiln.ArgumentTypeError, match="top_k"):
        sp.validate()


def test_bad_prompts_and_params(tiny_llm):
    for prompts in (3.5, [], [[]], ["ok", 7], [[1, "x"]], [None], b"bytes"):
        with pytest.raises(kiln.Error):
            tiny_llm.generate(prompts)
    with pytest.raises(kiln.InvalidArgumentError, match="2 given for 3 prompts"):
        tiny_llm.generate(["a", "b", "c"], [kiln.SamplingParams()] * 2)
    with pytest.raises(kiln.ArgumentTypeError, match="expected SamplingParams"):
        tiny_llm.generate("a", {"temperature": 0.5})


def test_limits_raise_before_anything_runs(tiny_engine, tiny_llm):
    """A batch with one request over a limit: the error names the prompt and the limit (the CLI's message for that
    request), and no request of the batch ran."""
    before = tiny_llm.get_stats()
    long_text = "x = 1\n" * 400
    n_tokens = len(tiny_llm.tokenizer.encode(long_text))
    cases = [
        (long_text, kiln.SamplingParams(), ["--prompt", long_text]),
        ("def f():", kiln.SamplingParams(max_tokens=600), ["--prompt", "def f():", "--max-new-tokens", "600"]),
        ("def f():", kiln.SamplingParams(beam_width=8), ["--prompt", "def f():", "--beam-width", "8"]),
        ([5000, 1], kiln.SamplingParams(), ["--input-ids", "5000,1"]),
    ]
    assert n_tokens > 512
    for prompt, sp, cli in cases:
        ref = cli_error("run", "--engine", tiny_engine, *cli)
        with pytest.raises(kiln.RequestError) as e:
            tiny_llm.generate(["def ok():", prompt], [kiln.SamplingParams(max_tokens=400, ignore_eos=True), sp])
        assert str(e.value) == "prompt 1: " + ref
    after = tiny_llm.get_stats()
    assert after["completed_requests"] == before["completed_requests"] and after["steps"] == before["steps"]


def test_text_without_tokenizer_and_chat_without_template(tmp_path, tiny_llm):
    engine = make_engine(tmp_path, "llama")
    with kiln.LLM(engine, num_threads=2) as llm:
        with pytest.raises(kiln.InvalidArgumentError, match="needs the engine's tokenizer"):
            llm.generate("hello")
        with pytest.raises(kiln.InvalidArgumentError, match="needs the engine's tokenizer"):
            llm.generate([1, 2], kiln.SamplingParams(stop="x"))
    with pytest.raises(kiln.InvalidArgumentError, match="no chat template"):
        tiny_llm.chat([{"role": "user", "content": "hi"}])


def test_llm_options_and_folders(tmp_path, tiny_engine):
    with pytest.raises(kiln.InvalidArgumentError, match="is not an engine"):
        kiln.LLM(tmp_path / "missing")
    with pytest.raises(kiln.InvalidArgumentError, match="max_seq_len configures a build"):
        kiln.LLM(tiny_engine, max_seq_len=64)
    for kwargs, msg in ((dict(tokens_per_block=0), "tokens_per_block = 0"),
                        (dict(scheduler_policy="fifo"), "scheduler_policy 'fifo'"),
                        (dict(kv_cache_fraction=2.0), "kv_cache_fraction = 2.0"),
                        (dict(kv_cache_bytes=1, kv_cache_fraction=0.5), "not both"),
                        (dict(max_batch_size=0), "max_batch_size = 0")):
        with pytest.raises(kiln.InvalidArgumentError, match=msg):
            kiln.LLM(tiny_engine, **kwargs)
    with pytest.raises(kiln.ArgumentTypeError):
        kiln.LLM(42)
    # Over the engine's own limit: the Executor's message (the CLI's flag name for the same limit).
    with pytest.raises(kiln.EngineError, match="must be in \\[1, 16\\] \\(the engine's max_batch_size\\)"):
        kiln.LLM(tiny_engine, max_batch_size=17)


def test_engine_load_errors_carry_the_cli_message(tmp_path, tiny_engine):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_engine, damaged)
    info = json.loads((damaged / "engine.json").read_text())
    info["model"]["num_layers"] = 2
    (damaged / "engine.json").write_text(json.dumps(info))
    ref = cli_error("run", "--engine", str(damaged), "--input-ids", "1,2")
    with pytest.raises(kiln.EngineError) as e:
        kiln.LLM(damaged)
    assert str(e.value) == ref


def test_convert_and_build_errors_carry_the_cli_message(tmp_path):
    missing = str(tmp_path / "no-such-model")
    ref = cli_error("convert", "--model", missing, "--output", str(tmp_path / "c1"))
    with pytest.raises(kiln.ConvertError) as e:
        kiln.convert(missing, tmp_path / "c1")
    assert str(e.value) == ref
    ckpt = kiln.convert(MODELS / "llama", tmp_path / "ckpt", progress=False)
    ref = cli_error("convert", "--model", str(MODELS / "llama"), "--output", ckpt)
    with pytest.raises(kiln.ConvertError) as e:
        kiln.convert(MODELS / "llama", ckpt)
    assert str(e.value) == ref
    out = str(tmp_path / "engine")
    ref = cli_error("build", "--checkpoint", ckpt, "--output", out, "--target", "cpu", "--max-seq-len", "100000")
    with pytest.raises(kiln.BuildError) as e:
        kiln.build(ckpt, out, target="cpu", max_seq_len=100000)
    assert str(e.value) == ref
    with pytest.raises(kiln.InvalidArgumentError, match="target 'tpu'"):
        kiln.build(ckpt, out, target="tpu")
    with pytest.raises(kiln.InvalidArgumentError, match="dtype 'int3'"):
        kiln.convert(MODELS / "llama", tmp_path / "c2", dtype="int3")


def test_tokenizer_errors_carry_the_cli_message(tiny_llm):
    ref = cli_error("detokenize", "--tokenizer", tiny_llm.engine_dir, "--ids", "1,99999")
    with pytest.raises(kiln.TokenizerError) as e:
        tiny_llm.tokenizer.decode([1, 99999])
    assert str(e.value) == ref
    with pytest.raises(kiln.ArgumentTypeError):
        tiny_llm.tokenizer.encode(b"bytes")
    with pytest.raises(kiln.ArgumentTypeError):
        tiny_llm.tokenizer.decode("1,2")
    with pytest.raises(kiln.TokenizerError):
        kiln.Tokenizer(MODELS / "llama")  # no tokenizer files there
