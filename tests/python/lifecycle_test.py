"""Cancellation frees KV blocks; the context manager and close() free the engine; Python threads submit concurrently;
the GIL is released while the Executor and the tokenizer work."""
from __future__ import annotations

import threading
import time

import pytest

import kiln
from conftest import run_jsonl

PROMPT = "def fibonacci(n):\n"


def stats_settle(llm, pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = llm.get_stats()
        if pred(s):
            return s
        time.sleep(0.01)
    return llm.get_stats()


def test_cancel_frees_kv_blocks(tiny_engine):
    with kiln.LLM(tiny_engine, num_threads=2, tokens_per_block=4) as llm:
        assert llm.get_stats()["kv_blocks_used"] == 0
        long = kiln.SamplingParams(max_tokens=400, ignore_eos=True)
        h = llm.generate_stream(PROMPT, long)
        it = iter(h)
        first = next(it)
        assert not first.finished
        running = llm.get_stats()
        assert running["running_requests"] == 1 and running["kv_blocks_used"] >= 3  # 11 prompt tokens, 4 per block
        assert h.cancel()
        rest = list(it)
        assert rest[-1].finished and rest[-1].outputs[0].finish_reason == "cancelled"
        got = sum(len(o.outputs[0].token_ids) for o in [first, *rest])
        assert 1 <= got < 400
        s = stats_settle(llm, lambda s: s["kv_blocks_used"] == 0)
        assert s["kv_blocks_used"] == 0 and s["running_requests"] == 0 and s["queued_requests"] == 0
        assert s["kv_blocks_free"] == s["kv_blocks_total"]
        assert not h.cancel()  # finished: nothing to cancel

        # A non-streamed request cancelled from another thread: result() returns what was generated.
        h = llm.submit(PROMPT, long)
        stats_settle(llm, lambda s: s["running_requests"] == 1)
        threading.Timer(0.05, h.cancel).start()
        out = h.result(timeout=60)
        assert out.outputs[0].finish_reason == "cancelled" and len(out.outputs[0].token_ids) < 400
        assert stats_settle(llm, lambda s: s["kv_blocks_used"] == 0)["kv_blocks_used"] == 0


def test_async_task_cancellation_cancels_the_request(tiny_engine):
    import asyncio
    with kiln.LLM(tiny_engine, num_threads=2) as llm:
        async def consume(started):
            async for _ in llm.generate_stream_async(PROMPT, kiln.SamplingParams(max_tokens=400, ignore_eos=True)):
                started.set()

        async def main():
            started = asyncio.Event()
            t = asyncio.ensure_future(consume(started))
            await started.wait()
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t

        asyncio.run(main())
        s = stats_settle(llm, lambda s: s["completed_requests"] == 1)
        assert s["running_requests"] == 0 and s["queued_requests"] == 0 and s["kv_blocks_used"] == 0
        assert s["completed_requests"] == 1 and s["steps"] < 400  # cancelled, it did not run its 400 tokens out


def test_context_manager_and_close(tiny_engine):
    with kiln.LLM(tiny_engine, num_threads=2) as llm:
        assert not llm.closed
        h = llm.generate_stream(PROMPT, kiln.SamplingParams(max_tokens=400, ignore_eos=True))
        next(iter(h))
    assert llm.closed
    with pytest.raises(kiln.GenerationError, match="closed before request"):
        h.result(timeout=10)
    with pytest.raises(kiln.Error, match="closed"):
        llm.generate(PROMPT)
    with pytest.raises(kiln.Error, match="closed"):
        llm.get_stats()
    llm.close()  # idempotent


def test_threads_submit_concurrently(tiny_engine, tiny_llm, tmp_path):
    """Eight Python threads generate at once on one LLM; each gets what kiln run gives for its request."""
    prompts = [PROMPT, "import os\n", "class A:\n", "x = [", "def main():\n", "if __name__", "# utils\n", "try:\n"]
    params = [dict(max_new_tokens=32, temperature=0.7, seed=i) for i in range(len(prompts))]
    refs = run_jsonl(tiny_engine, tmp_path, [{"prompt": p, **q} for p, q in zip(prompts, params)])
    results, errors = [None] * len(prompts), []
    barrier = threading.Barrier(len(prompts))

    def worker(i):
        try:
            barrier.wait()
            sp = kiln.SamplingParams(max_tokens=32, temperature=0.7, seed=i)
            results[i] = tiny_llm.generate(prompts[i], sp)[0]
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for r, ref in zip(results, refs):
        assert r.outputs[0].token_ids == ref["output_ids"]
        assert r.outputs[0].text == ref["text"]


def spin_rate(fn):
    """How many loops per second another Python thread runs while fn() blocks."""
    stop, n = threading.Event(), [0]

    def spin():
        while not stop.is_set():
            n[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    t0 = time.monotonic()
    try:
        fn()
    finally:
        seconds = time.monotonic() - t0
        stop.set()
        t.join()
    return n[0] / seconds


def test_gil_released_while_the_executor_waits_and_works(tiny_llm):
    """A call that held the GIL would stop the spinning thread for its whole duration (it would get only the
    interpreter's 5 ms switch slices at the start and end); one that releases it lets it spin as during a sleep."""
    baseline = spin_rate(lambda: time.sleep(0.3))
    # A 300 ms wait inside the Executor (no request in flight).
    assert spin_rate(lambda: tiny_llm._ex.await_responses(None, 300)) > baseline / 4
    # Encoding a long text in C++ (about half a second).
    text = "def f(x):\n    return x * 2\n" * 400000
    assert spin_rate(lambda: tiny_llm.tokenizer.encode(text)) > baseline / 4


def test_keyboard_interrupt_while_waiting_cancels(tiny_engine):
    import signal
    with kiln.LLM(tiny_engine, num_threads=2) as llm:
        main = threading.main_thread().ident

        def interrupt():  # once the request runs
            stats_settle(llm, lambda s: s["steps"] > 0)
            signal.pthread_kill(main, signal.SIGINT)

        threading.Thread(target=interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            llm.generate(PROMPT, kiln.SamplingParams(max_tokens=450, ignore_eos=True))
        s = stats_settle(llm, lambda s: s["completed_requests"] == 1)
        assert s["running_requests"] == 0 and s["queued_requests"] == 0 and s["kv_blocks_used"] == 0
        assert s["completed_requests"] == 1 and s["steps"] < 450
        [o] = llm.generate(PROMPT, kiln.SamplingParams(max_tokens=4))  # still serving
        assert len(o.outputs[0].token_ids) == 4
