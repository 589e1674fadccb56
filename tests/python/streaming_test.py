"""Streaming: the pieces concatenate to the final text and tokens (sync and asyncio), also under 50 concurrent
requests; streamed text equals `kiln run`'s."""
from __future__ import annotations

import asyncio

import pytest

import kiln
from conftest import run_jsonl, run_prompt

PROMPTS = ["def fibonacci(n):\n", "import os\n\nclass Config:\n", "for i in range(10):", "    return ", "# é ✓ \n"]


def concat(outputs, k=0):
    """The text, tokens and log-probs of sequence k over a stream's outputs."""
    text, ids, lps, reasons = "", [], [], []
    for o in outputs:
        c = o.outputs[k]
        text += c.text
        ids += c.token_ids
        lps += c.logprobs or []
        reasons.append(c.finish_reason)
    return text, ids, lps, reasons


def test_stream_concatenates_to_kiln_run_text(tiny_engine, tiny_llm, tmp_path):
    for p in PROMPTS[:3]:
        ref = run_prompt(tiny_engine, tmp_path, "--prompt", p, "--max-new-tokens", "48")
        outs = list(tiny_llm.generate_stream(p, kiln.SamplingParams(max_tokens=48)))
        assert len(outs) > 1 and [o.finished for o in outs] == [False] * (len(outs) - 1) + [True]
        text, ids, _, reasons = concat(outs)
        assert ids == ref["output_ids"]
        assert text == ref["text"]
        assert reasons[:-1] == [None] * (len(outs) - 1) and reasons[-1] == ref["finish_reason"]
        assert all(o.request_id == outs[0].request_id and o.prompt == p for o in outs)


def test_stream_of_samples_equals_whole_output(tiny_llm):
    sp = kiln.SamplingParams(max_tokens=40, temperature=0.9, seed=11, n=2, logprobs=True)
    whole = tiny_llm.generate(PROMPTS[1], sp)[0]
    stream = tiny_llm.generate_stream(PROMPTS[1], sp)
    outs = list(stream)
    assert stream.finished
    for k in range(2):
        text, ids, lps, reasons = concat(outs, k)
        c = whole.outputs[k]
        assert (text, ids, reasons[-1]) == (c.text, c.token_ids, c.finish_reason)
        assert lps == pytest.approx(c.logprobs, abs=1e-7)
        assert outs[-1].outputs[k].cumulative_logprob == pytest.approx(c.cumulative_logprob, abs=1e-5)
    assert stream.result().outputs[0].text == whole.outputs[0].text  # the whole output after the stream


def test_stream_result_without_iterating(tiny_llm):
    sp = kiln.SamplingParams(max_tokens=30, temperature=0.8, seed=3)
    h = tiny_llm.generate_stream(PROMPTS[4], sp)
    got = h.result(timeout=60)
    [whole] = tiny_llm.generate(PROMPTS[4], sp)
    assert got.finished and got.outputs[0].text == whole.outputs[0].text
    assert got.outputs[0].token_ids == whole.outputs[0].token_ids


def test_async_streams_under_50_concurrent_requests(tiny_engine, tiny_llm, tmp_path):
    """50 requests in flight at once from one event loop, each streamed with async for; each one's concatenation equals
    kiln run's result for the same request (seeded, so the batch does not change it)."""
    params = [dict(max_new_tokens=24 + i % 9, temperature=0.5 + (i % 5) / 5, seed=100 + i) for i in range(50)]
    lines = [{"prompt": PROMPTS[i % len(PROMPTS)], **p} for i, p in enumerate(params)]
    refs = run_jsonl(tiny_engine, tmp_path, lines)

    async def one(i, started):
        p = params[i]
        sp = kiln.SamplingParams(max_tokens=p["max_new_tokens"], temperature=p["temperature"], seed=p["seed"])
        outs = []
        async for out in tiny_llm.generate_stream_async(PROMPTS[i % len(PROMPTS)], sp):
            started.add(i)
            outs.append(out)
        return outs

    async def main():
        started = set()
        tick, in_flight = 0, 0

        async def ticker():  # the event loop is never blocked while requests run
            nonlocal tick, in_flight
            while len(started) < 50 or tick < 3:
                tick += 1
                s = tiny_llm.get_stats()
                in_flight = max(in_flight, s["running_requests"] + s["queued_requests"])
                await asyncio.sleep(0.001)

        t = asyncio.ensure_future(ticker())
        results = await asyncio.gather(*(one(i, started) for i in range(50)))
        await t
        return results, tick, in_flight

    results, tick, in_flight = asyncio.run(main())
    assert tick >= 3
    assert in_flight >= 16  # the engine's whole batch (16) was busy at once, the rest queued
    for i, outs in enumerate(results):
        text, ids, _, reasons = concat(outs)
        assert ids == refs[i]["output_ids"], i
        assert text == refs[i]["text"], i
        assert reasons[-1] == refs[i]["finish_reason"]


def test_generate_async_and_await(tiny_llm):
    sp = kiln.SamplingParams(max_tokens=20)

    async def main():
        a = tiny_llm.generate_async(PROMPTS[0], sp)
        b = tiny_llm.submit(PROMPTS[1], sp)
        return await a, await b

    a, b = asyncio.run(main())
    ref = tiny_llm.generate(PROMPTS[:2], sp)
    assert a.outputs[0].token_ids == ref[0].outputs[0].token_ids
    assert b.outputs[0].text == ref[1].outputs[0].text


def test_beam_search_does_not_stream(tiny_llm):
    with pytest.raises(kiln.InvalidArgumentError, match="streaming is not supported with beam search"):
        tiny_llm.generate_stream(PROMPTS[0], kiln.SamplingParams(beam_width=2))


def test_result_after_part_of_a_stream(tiny_llm):
    """Some outputs iterated, then result() inside the loop: the whole output (what was iterated and the rest)."""
    sp = kiln.SamplingParams(max_tokens=30, temperature=0.8, seed=9)
    [whole] = tiny_llm.generate(PROMPTS[0], sp)
    h = tiny_llm.generate_stream(PROMPTS[0], sp)
    for first in h:
        got = h.result(timeout=60)
        break
    n = len(first.outputs[0].token_ids)
    assert not first.finished and first.outputs[0].token_ids == whole.outputs[0].token_ids[:n]
    assert got.outputs[0].token_ids == whole.outputs[0].token_ids and got.outputs[0].text == whole.outputs[0].text
    assert list(h) == []  # nothing left to iterate
