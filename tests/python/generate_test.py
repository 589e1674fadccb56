"""llm.generate equals `kiln run` for the same requests (greedy, seeded sampling, n, beams, log-probs), and
transformers' goldens where the fixtures have them."""
from __future__ import annotations

import json

import pytest

import kiln
from conftest import MODELS, make_engine, read_i32, run_jsonl, run_prompt

PROMPTS = ["def fibonacci(n):\n", "import os\n\nclass Config:\n", "for i in range(10):"]


def test_greedy_text_equals_kiln_run(tiny_engine, tiny_llm, tmp_path):
    outs = tiny_llm.generate(PROMPTS, kiln.SamplingParams(max_tokens=40))
    assert len(outs) == len(PROMPTS)
    for p, o in zip(PROMPTS, outs):
        ref = run_prompt(tiny_engine, tmp_path, "--prompt", p, "--max-new-tokens", "40")
        assert o.prompt == p
        assert o.prompt_token_ids == tiny_llm.tokenizer.encode(p)
        assert o.finished and len(o.outputs) == 1
        c = o.outputs[0]
        assert c.token_ids == ref["output_ids"]
        assert c.text == ref["text"]
        assert c.finish_reason == ref["finish_reason"]
        assert c.logprobs is None and c.cumulative_logprob is None


def test_greedy_equals_transformers_golden(tiny_llm):
    """tiny-code's golden.safetensors: the prompt with BOS, then transformers' 48 greedy tokens."""
    cases = json.loads((MODELS / "tiny-code" / "golden.json").read_text())["samples"]
    for i, case in enumerate(cases):
        tokens = read_i32(MODELS / "tiny-code" / "golden.safetensors", f"tokens_{i}")
        P = case["prompt_len"]
        assert tiny_llm.tokenizer.encode(case["prompt"]) == tokens[:P]
        [o] = tiny_llm.generate(case["prompt"], kiln.SamplingParams(max_tokens=len(tokens) - P, ignore_eos=True))
        assert o.outputs[0].token_ids == tokens[P:], case["prompt"]
        assert o.outputs[0].text == case["completion"]


SAMPLED = [
    dict(temperature=0.8, seed=1),
    dict(temperature=1.0, top_k=20, seed=2),
    dict(temperature=0.7, top_p=0.9, min_p=0.05, seed=3),
    dict(temperature=1.2, repetition_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.2, seed=4),
    dict(temperature=0.9, seed=5, n=3),
]


def test_seeded_sampling_equals_kiln_run(tiny_engine, tiny_llm, tmp_path):
    lines, params = [], []
    for i, s in enumerate(SAMPLED):
        line = {"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": 32, "return_log_probs": True, **s}
        if "n" in line:
            line["num_return_sequences"] = line.pop("n")
        lines.append(line)
        params.append(kiln.SamplingParams(max_tokens=32, logprobs=True, **s))
    refs = run_jsonl(tiny_engine, tmp_path, lines)
    outs = tiny_llm.generate([PROMPTS[i % len(PROMPTS)] for i in range(len(SAMPLED))], params)
    for ref, o, s in zip(refs, outs, SAMPLED):
        n = s.get("n", 1)
        as_list = (lambda v: v) if n > 1 else (lambda v: [v])
        assert len(o.outputs) == n
        for k, c in enumerate(o.outputs):
            assert c.token_ids == as_list(ref["output_ids"])[k]
            assert c.text == as_list(ref["text"])[k]
            assert c.finish_reason == as_list(ref["finish_reason"])[k]
            assert c.logprobs == pytest.approx(as_list(ref["log_probs"])[k], abs=1e-6)
            assert c.cumulative_logprob == pytest.approx(sum(as_list(ref["log_probs"])[k]), abs=1e-5)
    # Same seed, same output, whatever else runs: alone, the third request gives the same tokens.
    [alone] = tiny_llm.generate(PROMPTS[2], params[2])
    assert alone.outputs[0].token_ids == outs[2].outputs[0].token_ids


def test_beam_search_equals_kiln_run(tiny_engine, tiny_llm, tmp_path):
    ref = run_prompt(tiny_engine, tmp_path, "--prompt", PROMPTS[0], "--max-new-tokens", "24", "--beam-width", "4",
                     "--num-return-sequences", "3", "--return-log-probs")
    [o] = tiny_llm.generate(PROMPTS[0], kiln.SamplingParams(max_tokens=24, beam_width=4, n=3, logprobs=True))
    assert [c.token_ids for c in o.outputs] == ref["output_ids"]
    assert [c.text for c in o.outputs] == ref["text"]
    assert [c.finish_reason for c in o.outputs] == ref["finish_reason"]
    assert [c.score for c in o.outputs] == pytest.approx(ref["scores"], abs=1e-6)
    for c, lps in zip(o.outputs, ref["log_probs"]):
        assert c.logprobs == pytest.approx(lps, abs=1e-6)


@pytest.mark.parametrize("model", ["llama", "qwen2", "gpt2", "mixtral"])
def test_fixture_models_greedy_and_beams(model, tmp_path):
    """Token-id prompts on the fixture models (no tokenizer): greedy equals transformers' golden tokens and kiln run;
    beams equal transformers' generate(num_beams=4) sequences and scores (beam_golden.json) and kiln run's."""
    engine = make_engine(tmp_path, model, max_beam_width=4)
    with kiln.LLM(engine, num_threads=2) as llm:
        assert llm.tokenizer is None
        golden = json.loads((MODELS / model / "golden.json").read_text())["cases"]
        for case in golden:
            tokens = read_i32(MODELS / model / "golden.safetensors", f"tokens_{case['index']}")
            P = case["prompt_len"]
            [o] = llm.generate(tokens[:P], kiln.SamplingParams(max_tokens=case["new_tokens"], ignore_eos=True))
            assert o.prompt is None and o.prompt_token_ids == tokens[:P]
            assert o.outputs[0].token_ids == tokens[P:]
            assert o.outputs[0].text == ""
            ref = run_prompt(engine, tmp_path, "--input-ids", ",".join(map(str, tokens[:P])), "--max-new-tokens",
                             str(case["new_tokens"]), "--ignore-eos")
            assert o.outputs[0].token_ids == ref["output_ids"]
        beams = json.loads((MODELS / model / "beam_golden.json").read_text())["cases"]
        for c in beams:
            sp = kiln.SamplingParams(max_tokens=c["max_new_tokens"], beam_width=c["num_beams"],
                                     n=c["num_return_sequences"], end_id=c["eos_token_id"],
                                     length_penalty=c["length_penalty"], early_stopping=c["early_stopping"])
            [o] = llm.generate(c["prompt"], sp)
            assert [x.token_ids for x in o.outputs] == c["sequences"]
            assert [x.score for x in o.outputs] == pytest.approx(c["sequences_scores"], abs=1e-4)
        # Seeded sampling from token ids, several requests at once, against kiln run --input-file.
        prompt = read_i32(MODELS / model / "golden.safetensors", "tokens_1")[:golden[1]["prompt_len"]]
        sampled = [dict(temperature=0.9, seed=21, max_new_tokens=20),
                   dict(temperature=0.6, top_k=8, top_p=0.9, seed=22, max_new_tokens=16, return_log_probs=True),
                   dict(temperature=1.1, seed=23, max_new_tokens=12, num_return_sequences=2)]
        refs = run_jsonl(engine, tmp_path, [{"input_ids": prompt, "ignore_eos": True, **s} for s in sampled])
        params = [kiln.SamplingParams(ignore_eos=True, max_tokens=s["max_new_tokens"], temperature=s["temperature"],
                                      top_k=s.get("top_k", 0), top_p=s.get("top_p", 1.0), seed=s["seed"],
                                      n=s.get("num_return_sequences", 1), logprobs=s.get("return_log_probs", False))
                  for s in sampled]
        outs = llm.generate([prompt] * 3, params)
        assert outs[0].outputs[0].token_ids == refs[0]["output_ids"]
        assert outs[1].outputs[0].token_ids == refs[1]["output_ids"]
        assert outs[1].outputs[0].logprobs == pytest.approx(refs[1]["log_probs"], abs=1e-6)
        assert [c.token_ids for c in outs[2].outputs] == refs[2]["output_ids"]
        c = beams[0]
        ref = run_prompt(engine, tmp_path, "--input-ids", ",".join(map(str, c["prompt"])), "--max-new-tokens",
                         str(c["max_new_tokens"]), "--beam-width", "4", "--num-return-sequences", "4", "--end-id",
                         str(c["eos_token_id"]))
        [o] = llm.generate(c["prompt"], kiln.SamplingParams(max_tokens=c["max_new_tokens"], beam_width=4, n=4,
                                                            end_id=c["eos_token_id"]))
        assert [x.token_ids for x in o.outputs] == ref["output_ids"]
        assert [x.score for x in o.outputs] == pytest.approx(ref["scores"], abs=1e-6)


def test_stop_strings_and_token_ids_equal_kiln_run(tiny_engine, tiny_llm, tmp_path):
    lines = [{"prompt": PROMPTS[0], "max_new_tokens": 40, "stop": ["\n\n"]},
             {"prompt": PROMPTS[1], "max_new_tokens": 40, "stop": [[201]], "bad_words": ["self"]},
             {"prompt": PROMPTS[2], "max_new_tokens": 40, "end_id": 201}]
    refs = run_jsonl(tiny_engine, tmp_path, lines)
    outs = tiny_llm.generate(PROMPTS, [kiln.SamplingParams(max_tokens=40, stop="\n\n"),
                                       kiln.SamplingParams(max_tokens=40, stop_token_ids=[201], bad_words=["self"]),
                                       kiln.SamplingParams(max_tokens=40, end_id=201)])
    for ref, o in zip(refs, outs):
        assert o.outputs[0].token_ids == ref["output_ids"]
        assert o.outputs[0].finish_reason == ref["finish_reason"]
    assert outs[0].outputs[0].finish_reason in ("stop", "length")
