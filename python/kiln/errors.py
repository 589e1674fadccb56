"""kiln's exceptions: every error kiln raises is a :class:`kiln.Error`, carrying the C++ message unchanged."""
from __future__ import annotations

import contextlib
from typing import Iterator, Type

from . import _kiln

#: Base class of every kiln exception (the C++ ``kiln::Error``; its message names the file, field or limit).
Error = _kiln.Error
Error.__module__ = "kiln"


class InvalidArgumentError(Error, ValueError):
    """An argument is out of range or inconsistent; raised before anything runs."""


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type; raised before anything runs."""


class RequestError(InvalidArgumentError):
    """The engine refused a request (a limit it breaks: prompt length, max_seq_len, beam width, KV cache)."""


class ConvertError(Error):
    """``kiln.convert`` failed (a missing tensor, an unsupported architecture, an existing output ...)."""


class BuildError(Error):
    """``kiln.build`` failed (limits the model cannot hold, a target this kiln lacks ...)."""


class EngineError(Error):
    """Loading an engine failed (another target, a damaged engine folder, a bad runtime option)."""


class TokenizerError(Error):
    """The tokenizer refused its files, an id or a chat template."""


class GenerationError(Error):
    """A request failed after it was accepted, or the LLM was closed before it finished."""


@contextlib.contextmanager
def translate(cls: Type[Error], prefix: str = "") -> Iterator[None]:
    """Re-raises a plain ``kiln.Error`` from the C++ layer as ``cls`` (same message, optionally prefixed)."""
    try:
        yield
    except Error as e:
        if type(e) is not Error:
            raise
        raise cls(prefix + str(e)) from None
