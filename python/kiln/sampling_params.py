"""SamplingParams: how one request decodes (``kiln::Request``'s fields, named as vLLM and TensorRT-LLM name them)."""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Union

from . import _kiln
from .errors import ArgumentTypeError, InvalidArgumentError

_U64_MAX = 2**64 - 1
_I32_MAX = 2**31 - 1


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class SamplingParams:
    """Decoding parameters of one request.

    Greedy by default (``temperature=0``), as ``kiln run`` is. Every field is checked when the object is made (and
    again when it is used), so a bad value raises :class:`kiln.InvalidArgumentError` (or
    :class:`kiln.ArgumentTypeError`) naming the field before anything runs; an unknown field is refused by name.

    Args:
        max_tokens: tokens to generate at most (``kiln run --max-new-tokens``).
        temperature: 0: greedy (argmax); > 0: sample from softmax(logits / temperature).
        top_k: keep the k most likely tokens (0 or -1: no limit).
        top_p: nucleus threshold in (0, 1].
        min_p: drop tokens less likely than ``min_p`` times the most likely one.
        repetition_penalty: on prompt and output tokens (1: none).
        presence_penalty: subtracted from a token's logit once it occurs in the output.
        frequency_penalty: subtracted per occurrence in the output.
        seed: same seed, same output, whatever else the engine runs (None: derived from the LLM's seed and the id).
        n: sequences returned: the best ``n`` beams with beam search, else ``n`` independent samples (needs
            ``temperature > 0``).
        beam_width: > 1: beam search with this many beams (greedy only; at most the engine's max_beam_width).
        length_penalty: beam score = sum of log-probs / length ** length_penalty.
        early_stopping: beam search stopping as transformers': False, True or ``"never"``.
        stop: strings whose tokens (encoded without special tokens) end generation once the output ends with them;
            the stop tokens stay in the output.
        stop_token_ids: token ids that end generation (kept in the output).
        bad_words: strings or token-id lists never completed (their last token is banned after the rest).
        ignore_eos: do not stop at the tokenizer's (or model's) end-of-sequence tokens.
        end_id: stop at this id only (-1: never); overrides the tokenizer's stop ids.
        logprobs: return each generated token's log-probability (and ``cumulative_logprob``).
        skip_special_tokens: leave special tokens out of the text (as ``kiln run`` does).
    """

    __slots__ = ("max_tokens", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                 "frequency_penalty", "seed", "n", "beam_width", "length_penalty", "early_stopping", "stop",
                 "stop_token_ids", "bad_words", "ignore_eos", "end_id", "logprobs", "skip_special_tokens")

    def __init__(self, *, max_tokens: int = 16, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                 min_p: float = 0.0, repetition_penalty: float = 1.0, presence_penalty: float = 0.0,
                 frequency_penalty: float = 0.0, seed: Optional[int] = None, n: int = 1, beam_width: int = 1,
                 length_penalty: float = 1.0, early_stopping: Union[bool, str] = False,
                 stop: Union[None, str, Sequence[str]] = None, stop_token_ids: Optional[Sequence[int]] = None,
                 bad_words: Optional[Sequence[Union[str, Sequence[int]]]] = None, ignore_eos: bool = False,
                 end_id: Optional[int] = None, logprobs: bool = False, skip_special_tokens: bool = True,
                 **unknown: Any) -> None:
        if unknown:
            raise InvalidArgumentError(f"SamplingParams: unknown field '{sorted(unknown)[0]}' (fields: "
                                       f"{', '.join(self.__slots__)})")
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.min_p = min_p
        self.repetition_penalty = repetition_penalty
        self.presence_penalty = presence_penalty
        self.frequency_penalty = frequency_penalty
        self.seed = seed
        self.n = n
        self.beam_width = beam_width
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.stop = stop
        self.stop_token_ids = stop_token_ids
        self.bad_words = bad_words
        self.ignore_eos = ignore_eos
        self.end_id = end_id
        self.logprobs = logprobs
        self.skip_special_tokens = skip_special_tokens
        self.validate()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"SamplingParams({fields})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SamplingParams) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    @property
    def use_beam_search(self) -> bool:
        return self.beam_width > 1

    def validate(self) -> None:
        """Raises kiln.InvalidArgumentError / kiln.ArgumentTypeError naming the first bad field."""
        def integer(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if not _is_int(v):
                raise ArgumentTypeError(f"SamplingParams.{name}: expected an integer, got {v!r}")
            if not lo <= v <= hi:
                raise InvalidArgumentError(f"SamplingParams.{name} = {v}: must be in [{lo}, {hi}]")

        def number(name: str, ok: bool, what: str) -> None:
            v = getattr(self, name)
            if not _is_number(v):
                raise ArgumentTypeError(f"SamplingParams.{name}: expected a number, got {v!r}")
            if not math.isfinite(v) or not ok:
                raise InvalidArgumentError(f"SamplingParams.{name} = {v}: {what}")

        def flag(name: str) -> None:
            if not isinstance(getattr(self, name), bool):
                raise ArgumentTypeError(f"SamplingParams.{name}: expected True or False, got {getattr(self, name)!r}")

        integer("max_tokens", 1, _I32_MAX)
        number("temperature", _is_number(self.temperature) and self.temperature >= 0, "must be 0 (greedy) or positive")
        integer("top_k", -1, _I32_MAX)
        number("top_p", _is_number(self.top_p) and 0 < self.top_p <= 1, "must be in (0, 1]")
        number("min_p", _is_number(self.min_p) and 0 <= self.min_p <= 1, "must be in [0, 1]")
        number("repetition_penalty", _is_number(self.repetition_penalty) and self.repetition_penalty > 0,
               "must be positive (1: none)")
        number("presence_penalty", True, "must be finite")
        number("frequency_penalty", True, "must be finite")
        number("length_penalty", True, "must be finite")
        if self.seed is not None:
            integer("seed", 0, _U64_MAX)
        integer("n", 1, _I32_MAX)
        integer("beam_width", 1, _I32_MAX)
        if self.early_stopping not in (True, False, "never") or not isinstance(self.early_stopping, (bool, str)):
            raise InvalidArgumentError(f"SamplingParams.early_stopping = {self.early_stopping!r}: expected True, "
                                       "False or 'never'")
        for name in ("ignore_eos", "logprobs", "skip_special_tokens"):
            flag(name)
        if self.end_id is not None:
            integer("end_id", -1, _I32_MAX)
        _strings("stop", self.stop)
        _ids("stop_token_ids", self.stop_token_ids)
        if self.bad_words is not None:
            if isinstance(self.bad_words, (str, bytes)) or not isinstance(self.bad_words, (list, tuple)):
                raise ArgumentTypeError("SamplingParams.bad_words: expected a list of strings or token-id lists, got "
                                        f"{self.bad_words!r}")
            for i, w in enumerate(self.bad_words):
                if not isinstance(w, str):
                    _ids(f"bad_words[{i}]", w)
        if self.beam_width > 1:
            if self.temperature > 0:
                raise InvalidArgumentError(f"SamplingParams: beam search (beam_width {self.beam_width}) does not "
                                           f"sample: temperature must be 0, not {self.temperature}")
            if self.n > self.beam_width:
                raise InvalidArgumentError(f"SamplingParams.n = {self.n} exceeds beam_width {self.beam_width}")
        elif self.n > 1 and self.temperature == 0:
            raise InvalidArgumentError(f"SamplingParams.n = {self.n} without beam search needs sampling "
                                       "(temperature > 0): greedy outputs would be identical")

    def _to_request(self, input_ids: List[int], tokenizer: Optional[_kiln.Tokenizer], streaming: bool) -> _kiln.Request:
        """The kiln::Request for a prompt, as `kiln run` makes it (stop ids from the tokenizer unless ignore_eos or
        end_id)."""
        self.validate()
        r = _kiln.Request()
        r.input_ids = input_ids
        r.max_new_tokens = self.max_tokens
        r.temperature = float(self.temperature)
        r.top_k = 0 if self.top_k == -1 else self.top_k
        r.top_p = float(self.top_p)
        r.min_p = float(self.min_p)
        r.repetition_penalty = float(self.repetition_penalty)
        r.presence_penalty = float(self.presence_penalty)
        r.frequency_penalty = float(self.frequency_penalty)
        r.length_penalty = float(self.length_penalty)
        r.early_stopping = self.early_stopping
        r.seed = self.seed
        r.ignore_eos = self.ignore_eos
        r.beam_width = self.beam_width
        r.num_return_sequences = self.n
        r.return_log_probs = self.logprobs
        r.streaming = streaming
        stops: List[List[int]] = []
        if self.end_id is not None:
            r.end_id = self.end_id
        elif tokenizer is not None and not self.ignore_eos:
            ids = list(tokenizer.stop_ids)  # the first is the end id, the others one-token stop sequences
            if ids:
                r.end_id = ids[0]
                stops += [[i] for i in ids[1:]]
        for s in _as_list(self.stop):
            stops.append(_encode_field("stop", s, tokenizer))
        stops += [[int(i)] for i in self.stop_token_ids or []]
        r.stop_sequences = stops
        r.bad_words = [_encode_field("bad_words", w, tokenizer) if isinstance(w, str) else [int(i) for i in w]
                       for w in self.bad_words or []]
        return r


def _as_list(v: Union[None, str, Sequence[str]]) -> List[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def _strings(name: str, v: Any) -> None:
    if v is None or isinstance(v, str):
        return
    if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) for s in v):
        raise ArgumentTypeError(f"SamplingParams.{name}: expected a string or a list of strings, got {v!r}")


def _ids(name: str, v: Any) -> None:
    if v is None:
        return
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or not all(_is_int(i) for i in v):
        raise ArgumentTypeError(f"SamplingParams.{name}: expected a list of token ids, got {v!r}")
    for i in v:
        if not 0 <= i <= _I32_MAX:
            raise InvalidArgumentError(f"SamplingParams.{name}: {i} is not a token id")


def _encode_field(name: str, text: str, tokenizer: Optional[_kiln.Tokenizer]) -> List[int]:
    if tokenizer is None:
        raise InvalidArgumentError(f"SamplingParams.{name}: text needs the engine's tokenizer (give token ids)")
    ids = tokenizer.encode(text, False)
    if not ids:
        raise InvalidArgumentError(f"SamplingParams.{name}: {text!r} encodes to no tokens")
    return ids
