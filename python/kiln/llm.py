"""kiln.LLM: an engine and its Executor, with generate, chat and streaming as vLLM and TensorRT-LLM users know them."""
from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _kiln
from .errors import ArgumentTypeError, EngineError, Error, InvalidArgumentError, RequestError, translate
from .outputs import RequestOutput
from .requests import GenerationRequest, Router
from .sampling_params import SamplingParams
from .tokenizer import Tokenizer, chat_pairs
from .workflow import PathLike, cached_engine, model_kind

Prompt = Union[str, Sequence[int]]
Message = Dict[str, str]
_POLICIES = ("guaranteed_no_evict", "max_utilization")


def _check_int(v: Any, what: str, lo: int, hi: int = 2**62) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ArgumentTypeError(f"LLM: {what}: expected an integer, got {v!r}")
    if not lo <= v <= hi:
        raise InvalidArgumentError(f"LLM: {what} = {v}: must be in [{lo}, {hi}]")
    return v


def _shutdown(router: Router, executor: _kiln.Executor) -> None:
    router.close()
    executor.close()


class LLM:
    """An engine loaded for generation.

    ``model`` is an engine folder (``kiln build``'s output), a kiln checkpoint, or a Hugging Face model folder; the
    last two are converted and built once into a cache folder named by a hash of the inputs (``cache_dir``, else
    ``$KILN_CACHE_DIR``, else ``~/.cache/kiln``) and loaded from there afterwards.

    Build options (for a checkpoint or Hugging Face folder only): ``target``, ``dtype``, ``max_input_len``,
    ``max_seq_len``, ``max_beam_width``, ``rope_freq_dtype``, ``convert_dtype``; ``max_batch_size`` and
    ``max_num_tokens`` are build limits there, and for an engine folder the Executor's (at most the engine's).

    Executor options: ``kv_cache_bytes`` or ``kv_cache_fraction`` (of free memory; default 0.9), ``tokens_per_block``,
    ``scheduler_policy`` ("guaranteed_no_evict" or "max_utilization"), ``enable_prefix_reuse``, ``seed`` (of requests
    that set none), ``num_threads`` (cpu; 0: all cores).

    Every method may be called from several threads at once; the GIL is released while the engine works. Use it as
    a context manager, or call :meth:`close`, to free the engine.
    """

    def __init__(self, model: PathLike, *, tokenizer: Optional[PathLike] = None, target: Optional[str] = None,
                 dtype: Optional[str] = None, convert_dtype: Optional[str] = None, rope_freq_dtype: str = "float32",
                 max_batch_size: Optional[int] = None, max_input_len: Optional[int] = None,
                 max_seq_len: Optional[int] = None, max_num_tokens: Optional[int] = None,
                 max_beam_width: Optional[int] = None, cache_dir: Optional[PathLike] = None,
                 kv_cache_bytes: Optional[int] = None, kv_cache_fraction: Optional[float] = None,
                 tokens_per_block: int = 32, scheduler_policy: str = "guaranteed_no_evict",
                 enable_prefix_reuse: bool = False, seed: int = 0, num_threads: int = 0) -> None:
        self._router: Optional[Router] = None
        if not isinstance(model, (str, os.PathLike)):
            raise ArgumentTypeError(f"LLM: model: expected a path, got {model!r}")
        model = os.fspath(model)
        cfg = _kiln.ExecutorConfig()
        if kv_cache_bytes is not None and kv_cache_fraction is not None:
            raise InvalidArgumentError("LLM: give kv_cache_bytes or kv_cache_fraction, not both")
        if kv_cache_bytes is not None:
            cfg.kv_cache_bytes = _check_int(kv_cache_bytes, "kv_cache_bytes", 1)
        if kv_cache_fraction is not None:
            if not isinstance(kv_cache_fraction, (int, float)) or isinstance(kv_cache_fraction, bool):
                raise ArgumentTypeError(f"LLM: kv_cache_fraction: expected a number, got {kv_cache_fraction!r}")
            if not 0 < kv_cache_fraction <= 1:
                raise InvalidArgumentError(f"LLM: kv_cache_fraction = {kv_cache_fraction}: must be in (0, 1]")
            cfg.kv_cache_fraction = float(kv_cache_fraction)
        cfg.tokens_per_block = _check_int(tokens_per_block, "tokens_per_block", 1, 4096)
        if scheduler_policy not in _POLICIES:
            raise InvalidArgumentError(f"LLM: scheduler_policy {scheduler_policy!r}: expected one of "
                                       f"{', '.join(_POLICIES)}")
        cfg.scheduler_policy = scheduler_policy
        if not isinstance(enable_prefix_reuse, bool):
            raise ArgumentTypeError(f"LLM: enable_prefix_reuse: expected True or False, got {enable_prefix_reuse!r}")
        cfg.enable_prefix_reuse = enable_prefix_reuse
        cfg.seed = _check_int(seed, "seed", 0, 2**64 - 1)
        cfg.num_threads = _check_int(num_threads, "num_threads", 0, 1024)

        kind = model_kind(model)
        build_opts = {"target": target, "dtype": dtype, "max_batch_size": max_batch_size,
                      "max_input_len": max_input_len, "max_seq_len": max_seq_len, "max_num_tokens": max_num_tokens,
                      "max_beam_width": max_beam_width}
        convert_opts = {"dtype": convert_dtype, "rope_freq_dtype": rope_freq_dtype}
        if kind == "engine":
            given = [k for k in ("target", "dtype", "max_input_len", "max_seq_len", "max_beam_width")
                     if build_opts[k] is not None] + (["convert_dtype"] if convert_dtype is not None else []) + \
                (["rope_freq_dtype"] if rope_freq_dtype != "float32" else [])
            if given:
                raise InvalidArgumentError(f"LLM: {given[0]} configures a build, but {model} is an engine already")
            if max_batch_size is not None:
                cfg.max_batch_size = _check_int(max_batch_size, "max_batch_size", 1)
            if max_num_tokens is not None:
                cfg.max_num_tokens = _check_int(max_num_tokens, "max_num_tokens", 1)
            engine_dir = model
        else:
            engine_dir = cached_engine(model, kind, cache_dir, convert_opts if kind == "hf" else {}, build_opts)
        self.engine_dir = engine_dir

        self._tokenizer: Optional[Tokenizer] = None
        tok_path = tokenizer if tokenizer is not None else engine_dir
        if tokenizer is not None or any((Path(engine_dir) / f).is_file() for f in ("tokenizer.json", "vocab.json")):
            self._tokenizer = Tokenizer(tok_path)
        with translate(EngineError):
            self._ex = _kiln.Executor(engine_dir, cfg)
        self._info = self._ex.info()
        self._router = Router(self._ex)
        self._finalizer = weakref.finalize(self, _shutdown, self._router, self._ex)

    # ---- properties and lifetime ----

    @property
    def tokenizer(self) -> Optional[Tokenizer]:
        """The engine's tokenizer (None when the engine folder has none and none was given)."""
        return self._tokenizer

    @property
    def limits(self) -> Dict[str, Any]:
        """The engine's target and limits, and the KV pool's size (blocks, tokens per block)."""
        return dict(self._info)

    def get_stats(self) -> Dict[str, Any]:
        """The Executor's statistics: running and queued requests, KV blocks (total, used, free, cached, peak),
        reused prefix blocks, preemptions, copy-on-write copies, steps and tokens per step, completed requests."""
        with translate(Error):
            return self._ex.stats()

    def close(self) -> None:
        """Stops the engine's loop and frees it. Requests still running raise kiln.GenerationError; later calls
        raise kiln.Error. Idempotent."""
        if self._router is not None:
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._router is None or not self._finalizer.alive

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- requests ----

    def _prompt(self, p: Any, what: str) -> Tuple[Optional[str], List[int]]:
        if isinstance(p, str):
            if self._tokenizer is None:
                raise InvalidArgumentError(f"{what}: a text prompt needs the engine's tokenizer (the engine has none; "
                                           "give token ids or LLM(tokenizer=...))")
            ids = self._tokenizer.encode(p, True)
            if not ids:
                raise InvalidArgumentError(f"{what}: {p!r} encodes to no tokens")
            return p, ids
        if isinstance(p, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in p):
            if not p:
                raise InvalidArgumentError(f"{what}: the prompt is empty")
            return None, list(p)
        raise ArgumentTypeError(f"{what}: expected a str or a list of token ids, got {p!r}")

    def _params(self, params: Any, count: int) -> List[SamplingParams]:
        if params is None:
            return [SamplingParams()] * count
        if isinstance(params, SamplingParams):
            return [params] * count
        if isinstance(params, (list, tuple)) and all(isinstance(s, SamplingParams) for s in params):
            if len(params) != count:
                raise InvalidArgumentError(f"sampling_params: {len(params)} given for {count} prompts")
            return list(params)
        raise ArgumentTypeError(f"sampling_params: expected SamplingParams or a list of them, got {params!r}")

    def _submit_all(self, prompts: List[Tuple[Optional[str], List[int]]], params: List[SamplingParams],
                    streaming: bool) -> List[GenerationRequest]:
        """Checks every request, then submits them all: a bad one stops the batch before any of it runs."""
        if self.closed:
            raise Error("the LLM is closed")
        tok = self._tokenizer._tok if self._tokenizer is not None else None
        reqs = []
        for i, ((_, ids), sp) in enumerate(zip(prompts, params)):
            what = f"prompt {i}: " if len(prompts) > 1 else ""
            if streaming and sp.beam_width > 1:
                raise InvalidArgumentError(f"{what}streaming is not supported with beam search (beam_width "
                                           f"{sp.beam_width})")
            r = sp._to_request(ids, tok, streaming)
            with translate(RequestError, what):
                self._ex.check(r)
            reqs.append(r)
        out = []
        assert self._router is not None
        try:
            for i, ((text, ids), sp, r) in enumerate(zip(prompts, params, reqs)):
                rid, sink = self._router.submit(r, f"prompt {i}: " if len(prompts) > 1 else "")
                out.append(GenerationRequest(self._router, rid, sink, text, ids, tok, sp.skip_special_tokens,
                                             streaming, sp.logprobs))
        except BaseException:
            for g in out:
                g.cancel()
            raise
        return out

    def _batch(self, prompts: Any) -> Tuple[List[Tuple[Optional[str], List[int]]], bool]:
        """(text, ids) per prompt, and whether a single prompt was given."""
        if isinstance(prompts, str) or (isinstance(prompts, (list, tuple)) and prompts and
                                        all(isinstance(i, int) and not isinstance(i, bool) for i in prompts)):
            return [self._prompt(prompts, "prompt")], True
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise ArgumentTypeError("prompts: expected a str, a list of token ids, or a non-empty list of those, got "
                                    f"{prompts!r}")
        return [self._prompt(p, f"prompt {i}") for i, p in enumerate(prompts)], False

    def _run_all(self, batch, sampling_params) -> List[RequestOutput]:
        """Submits every (text, ids) of `batch` at once and waits for all; cancels the rest if one wait fails."""
        handles = self._submit_all(batch, self._params(sampling_params, len(batch)), streaming=False)
        try:
            return [h.result() for h in handles]
        except BaseException:
            for h in handles:
                h.cancel()
            raise

    def generate(self, prompts: Union[Prompt, Sequence[Prompt]],
                 sampling_params: Union[None, SamplingParams, Sequence[SamplingParams]] = None
                 ) -> List[RequestOutput]:
        """Generates for one prompt or a list (text, or token ids), all in flight at once; returns one
        RequestOutput per prompt, in order. ``sampling_params``: one for all, or one per prompt."""
        batch, _ = self._batch(prompts)
        return self._run_all(batch, sampling_params)

    def _chat_prompts(self, messages: Any, add_generation_prompt: bool) -> Tuple[List[Tuple[str, List[int]]], bool]:
        if self._tokenizer is None or not self._tokenizer.has_chat_template:
            raise InvalidArgumentError("chat: the engine's tokenizer has no chat template (tokenizer_config.json "
                                       "'chat_template')")
        single = isinstance(messages, (list, tuple)) and bool(messages) and isinstance(messages[0], dict)
        convs = [messages] if single else messages
        if not isinstance(convs, (list, tuple)) or not convs:
            raise ArgumentTypeError(f"chat: expected a conversation (a list of messages) or a list of them, got "
                                    f"{messages!r}")
        out = []
        for i, c in enumerate(convs):
            pairs = chat_pairs(c, "chat" if single else f"chat: conversation {i}")
            with translate(InvalidArgumentError, "chat: "):
                text = self._tokenizer._tok.apply_chat_template(pairs, bool(add_generation_prompt))
            # The rendered template carries its own special tokens, as kiln run --chat encodes it.
            ids = self._tokenizer.encode(text, add_special_tokens=False)
            if not ids:
                raise InvalidArgumentError(f"chat: conversation {i} renders to no tokens")
            out.append((text, ids))
        return out, single

    def chat(self, messages: Union[Sequence[Message], Sequence[Sequence[Message]]],
             sampling_params: Union[None, SamplingParams, Sequence[SamplingParams]] = None, *,
             add_generation_prompt: bool = True) -> List[RequestOutput]:
        """Generates replies to one conversation (``[{"role": "user", "content": ...}, ...]``) or a list of them,
        rendered through the tokenizer's chat template (as ``kiln run --chat``)."""
        batch, _ = self._chat_prompts(messages, add_generation_prompt)
        return self._run_all(list(batch), sampling_params)

    def submit(self, prompt: Prompt, sampling_params: Optional[SamplingParams] = None, *,
               stream: bool = False) -> GenerationRequest:
        """Starts one request and returns its handle at once (``result()``, ``cancel()``, iteration)."""
        if not isinstance(stream, bool):
            raise ArgumentTypeError(f"submit: stream: expected True or False, got {stream!r}")
        return self._submit_all([self._prompt(prompt, "prompt")], self._params(sampling_params, 1), stream)[0]

    def generate_stream(self, prompt: Prompt, sampling_params: Optional[SamplingParams] = None) -> GenerationRequest:
        """Streams one request: ``for out in llm.generate_stream(...)`` yields the new tokens and text of each step
        (``out.outputs[k].text``; the pieces concatenate to the whole text); the last output has ``finished`` set.
        The returned handle can be cancelled. Not with beam search."""
        return self.submit(prompt, sampling_params, stream=True)

    def generate_stream_async(self, prompt: Prompt,
                              sampling_params: Optional[SamplingParams] = None) -> GenerationRequest:
        """As generate_stream, for asyncio: ``async for out in llm.generate_stream_async(...)``. The request is
        submitted at the call; waiting never blocks the event loop."""
        return self.submit(prompt, sampling_params, stream=True)

    async def generate_async(self, prompt: Prompt, sampling_params: Optional[SamplingParams] = None) -> RequestOutput:
        """One request, awaited: ``out = await llm.generate_async(...)``."""
        return await self.submit(prompt, sampling_params)
