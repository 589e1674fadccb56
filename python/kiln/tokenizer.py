"""kiln.Tokenizer: the C++ tokenizer (Hugging Face tokenizer.json, bit-exact with the tokenizers library)."""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Union

from . import _kiln
from .errors import ArgumentTypeError, InvalidArgumentError, TokenizerError, translate


def _check_ids(ids: object, what: str) -> List[int]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple)):
        raise ArgumentTypeError(f"{what}: expected a list of token ids, got {ids!r}")
    for i in ids:
        if not isinstance(i, int) or isinstance(i, bool):
            raise ArgumentTypeError(f"{what}: {i!r} is not a token id")
        if not 0 <= i < 2**31:
            raise InvalidArgumentError(f"{what}: {i} is not a token id")
    return list(ids)


class Tokenizer:
    """A tokenizer loaded from a ``tokenizer.json``, a ``vocab.json`` (``merges.txt`` beside it), or a folder
    holding either (``tokenizer_config.json`` and ``generation_config.json`` beside it give the chat template, the
    special tokens and the stop ids). Safe to use from several threads; encode and decode release the GIL."""

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentTypeError(f"Tokenizer: expected a path, got {path!r}")
        with translate(TokenizerError):
            self._tok = _kiln.Tokenizer.load(os.fspath(path))

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        """Token ids of ``text`` (with the post-processor's special tokens, e.g. BOS, unless told not to)."""
        if not isinstance(text, str):
            raise ArgumentTypeError(f"Tokenizer.encode: expected a str, got {text!r}")
        with translate(TokenizerError):
            return self._tok.encode(text, bool(add_special_tokens))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """The text of ``ids``; an id outside the vocabulary raises kiln.TokenizerError."""
        ids = _check_ids(ids, "Tokenizer.decode")
        with translate(TokenizerError):
            return self._tok.decode(ids, bool(skip_special_tokens))

    @property
    def vocab_size(self) -> int:
        return self._tok.vocab_size

    @property
    def bos_token_id(self) -> Optional[int]:
        return self._tok.bos_id

    @property
    def eos_token_id(self) -> Optional[int]:
        return self._tok.eos_id

    @property
    def stop_token_ids(self) -> List[int]:
        """The ids generation stops at by default: EOS and generation_config.json's eos ids."""
        return list(self._tok.stop_ids)

    def token_to_id(self, token: str) -> Optional[int]:
        """The id of a vocabulary or added token (None when there is none)."""
        return self._tok.token_to_id(token)

    def id_to_token(self, id: int) -> Optional[str]:
        """The token string of an id (None outside the vocabulary)."""
        return self._tok.id_to_token(id)

    @property
    def has_chat_template(self) -> bool:
        return self._tok.has_chat_template

    def apply_chat_template(self, messages: Sequence[Dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Renders ``[{"role": ..., "content": ...}, ...]`` through the chat template of tokenizer_config.json."""
        pairs = chat_pairs(messages, "apply_chat_template")
        with translate(TokenizerError):
            return self._tok.apply_chat_template(pairs, bool(add_generation_prompt))


def chat_pairs(messages: object, what: str) -> List[tuple]:
    """(role, content) pairs of a conversation, checked."""
    if isinstance(messages, (str, bytes, dict)) or not isinstance(messages, (list, tuple)) or not messages:
        raise ArgumentTypeError(f"{what}: expected a non-empty list of {{'role': ..., 'content': ...}} messages, "
                                f"got {messages!r}")
    pairs = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ArgumentTypeError(f"{what}: message {i} must be a dict with str 'role' and 'content', got {m!r}")
        extra = sorted(set(m) - {"role", "content"})
        if extra:
            raise InvalidArgumentError(f"{what}: message {i} has field '{extra[0]}' (only 'role' and 'content' are "
                                       "supported)")
        pairs.append((m["role"], m["content"]))
    return pairs
