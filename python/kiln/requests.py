"""Requests in flight: the thread that routes the Executor's responses, and the handle a caller holds.

One router thread per LLM waits on the Executor for the responses of every request (the GIL released while it
waits) and hands each to its request's sink; a caller waits on its sink, from a thread (``for``/``result``) or from
an asyncio task (``async for``/``await``). So any number of Python threads and tasks can submit and consume at once.
"""
from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any, AsyncIterator, Deque, Dict, Generator, Iterator, List, Optional, Tuple

from . import _kiln
from .errors import Error, GenerationError, RequestError, translate
from .outputs import CompletionOutput, RequestOutput

_POLL_MS = 50  # the router's wait; close() waits at most this long for it


class _Sink:
    """Responses of one request, waited for from a thread or from an event loop."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._items: Deque[_kiln.Response] = collections.deque()
        self._closed: Optional[str] = None
        self._waiter: Optional[Tuple[asyncio.AbstractEventLoop, asyncio.Event]] = None

    def put(self, r: Optional[_kiln.Response], closed: Optional[str] = None) -> None:
        with self._cv:
            if r is not None:
                self._items.append(r)
            if closed is not None:
                self._closed = closed
            self._cv.notify_all()
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                waiter[0].call_soon_threadsafe(waiter[1].set)
            except RuntimeError:  # its event loop is closed: nobody waits any more
                pass

    def get(self, timeout: Optional[float]) -> _kiln.Response:
        with self._cv:
            if not self._cv.wait_for(lambda: self._items or self._closed, timeout):
                raise TimeoutError("no response within the timeout")
            if self._items:
                return self._items.popleft()
            raise GenerationError(self._closed or "closed")

    async def aget(self) -> _kiln.Response:
        loop = asyncio.get_running_loop()
        while True:
            with self._cv:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    raise GenerationError(self._closed)
                event = asyncio.Event()
                self._waiter = (loop, event)
            await event.wait()


class Router:
    """Submits requests to the Executor and routes its responses to their sinks."""

    def __init__(self, executor: _kiln.Executor) -> None:
        self._ex = executor
        self._lock = threading.Lock()
        self._sinks: Dict[int, _Sink] = {}
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiln-responses", daemon=True)
        self._thread.start()

    def submit(self, request: _kiln.Request, what: str) -> Tuple[int, _Sink]:
        sink = _Sink()
        with self._lock:  # held across enqueue, so that no response arrives before its sink is registered
            if self._closed:
                raise Error("the LLM is closed")
            with translate(RequestError, what):
                rid = self._ex.enqueue(request)
            self._sinks[rid] = sink
        return rid, sink

    def cancel(self, rid: int) -> bool:
        with self._lock:
            if self._closed:
                return False
        return self._ex.cancel(rid)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                responses = self._ex.await_responses(None, _POLL_MS)
            except Error:  # closed under us
                return
            if not responses:
                continue
            with self._lock:
                for r in responses:
                    sink = self._sinks.get(r.request_id)
                    if sink is None:
                        continue
                    if r.is_final:
                        del self._sinks[r.request_id]
                    sink.put(r)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            self._closed = True
            sinks, self._sinks = self._sinks, {}
        for rid, sink in sinks.items():
            sink.put(None, closed=f"the LLM was closed before request {rid} finished")


class GenerationRequest:
    """A request in flight, as :meth:`LLM.submit`, :meth:`LLM.generate_stream` and
    :meth:`LLM.generate_stream_async` return it.

    Iterate it (``for`` or ``async for``) for its outputs: a streamed request yields one :class:`RequestOutput` per
    engine step holding the new tokens and text (the pieces concatenate to the final text), the last one with
    ``finished`` set; a request that does not stream yields its one final output. :meth:`result` (or ``await``)
    returns the whole output. :meth:`cancel` stops it: its final output then says ``"cancelled"`` and holds the
    tokens generated so far, and its KV blocks are freed.
    """

    def __init__(self, router: Router, rid: int, sink: _Sink, prompt: Optional[str], prompt_ids: List[int],
                 tokenizer: Optional[_kiln.Tokenizer], skip_special_tokens: bool, streaming: bool,
                 logprobs: bool) -> None:
        self.request_id = rid
        self.streaming = streaming
        self._router = router
        self._sink = sink
        self._prompt = prompt
        self._prompt_ids = prompt_ids
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._want_lp = logprobs
        self._ids: List[List[int]] = []
        self._logprobs: List[List[float]] = []
        self._texts: List[str] = []
        self._decoders: List[_kiln.IncrementalDecoder] = []
        self._final: Optional[RequestOutput] = None
        self._lock = threading.Lock()  # one consumer at a time

    @property
    def finished(self) -> bool:
        return self._final is not None

    def cancel(self) -> bool:
        """Stops the request; False when it had already finished."""
        return not self.finished and self._router.cancel(self.request_id)

    def _absorb(self, r: _kiln.Response) -> RequestOutput:
        """The output for one response: new tokens and text (streaming), or everything (final, not streaming)."""
        if r.error:
            raise GenerationError(f"request {self.request_id}: {r.error}")
        k_seqs = max(len(r.output_ids), len(self._ids))
        while len(self._ids) < k_seqs:
            self._ids.append([])
            self._logprobs.append([])
            self._texts.append("")
            if self._tok is not None and self.streaming:
                self._decoders.append(_kiln.IncrementalDecoder(self._tok, self._skip))
        outs = []
        for k in range(k_seqs):
            new = list(r.output_ids[k]) if k < len(r.output_ids) else []
            new_lp = list(r.log_probs[k]) if k < len(r.log_probs) else []
            self._ids[k] += new
            self._logprobs[k] += new_lp
            if self.streaming:
                text = ""
                if self._decoders:
                    text = "".join(self._decoders[k].push(t) for t in new)
                    if r.is_final:
                        text += self._decoders[k].flush()
                self._texts[k] += text
            elif self._tok is not None:
                text = self._texts[k] = self._tok.decode(self._ids[k], self._skip)
            else:
                text = ""
            reason = r.finish_reasons[k] if r.is_final and k < len(r.finish_reasons) else None
            outs.append(CompletionOutput(
                index=k, text=text, token_ids=new if self.streaming else list(self._ids[k]),
                cumulative_logprob=sum(self._logprobs[k]) if self._want_lp else None,
                logprobs=(new_lp if self.streaming else list(self._logprobs[k])) if self._want_lp else None,
                finish_reason=reason or None, score=r.scores[k] if r.is_final and k < len(r.scores) else None))
        out = RequestOutput(self.request_id, self._prompt, self._prompt_ids, outs, r.is_final)
        if r.is_final:
            self._final = self._whole(r)
        return out

    def _whole(self, r: _kiln.Response) -> RequestOutput:
        outs = []
        for k in range(len(self._ids)):
            lps = self._logprobs[k]
            outs.append(CompletionOutput(
                index=k, text=self._texts[k], token_ids=list(self._ids[k]),
                cumulative_logprob=sum(lps) if self._want_lp else None, logprobs=list(lps) if self._want_lp else None,
                finish_reason=(r.finish_reasons[k] if k < len(r.finish_reasons) else "") or None,
                score=r.scores[k] if k < len(r.scores) else None))
        return RequestOutput(self.request_id, self._prompt, self._prompt_ids, outs, True)

    def __iter__(self) -> Iterator[RequestOutput]:
        return self._outputs()

    def _outputs(self) -> Generator[RequestOutput, None, None]:
        while not self.finished:
            try:
                r = self._sink.get(None)
            except BaseException:  # KeyboardInterrupt while waiting: the request stops too
                self.cancel()
                raise
            with self._lock:
                out = self._absorb(r)
            yield out

    def result(self, timeout: Optional[float] = None) -> RequestOutput:
        """Waits for the end of the request (at most ``timeout`` seconds between two responses) and returns the
        whole output (for a streamed request: what the outputs not yet iterated add up to, with the rest)."""
        while not self.finished:
            try:
                r = self._sink.get(timeout)
            except KeyboardInterrupt:
                self.cancel()
                raise
            with self._lock:
                self._absorb(r)
        assert self._final is not None
        return self._final

    def __aiter__(self) -> AsyncIterator[RequestOutput]:
        return self._aoutputs()

    async def _aoutputs(self) -> AsyncIterator[RequestOutput]:
        while not self.finished:
            try:
                r = await self._sink.aget()
            except asyncio.CancelledError:  # the task was cancelled: so is the request
                self.cancel()
                raise
            yield self._absorb(r)

    async def aresult(self) -> RequestOutput:
        """The whole output, awaited without blocking the event loop."""
        async for _ in self:
            pass
        assert self._final is not None
        return self._final

    def __await__(self) -> Generator[Any, None, RequestOutput]:
        return self.aresult().__await__()
