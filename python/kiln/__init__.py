"""kiln: convert, build and run LLM engines from Python.

    import kiln
    with kiln.LLM("tests/data/models/tiny-code", target="cpu") as llm:
        out = llm.generate("def fibonacci(n):\\n", kiln.SamplingParams(max_tokens=64))
        print(out[0].outputs[0].text)

See docs/python.md.
"""
from . import _kiln
from .errors import (ArgumentTypeError, BuildError, ConvertError, EngineError, Error, GenerationError,
                     InvalidArgumentError, RequestError, TokenizerError)
from .llm import LLM
from .outputs import CompletionOutput, RequestOutput
from .requests import GenerationRequest
from .sampling_params import SamplingParams
from .tokenizer import Tokenizer
from .workflow import build, convert

__version__ = _kiln.build_info()["version"]

__all__ = ["LLM", "SamplingParams", "RequestOutput", "CompletionOutput", "GenerationRequest", "Tokenizer", "convert",
           "build", "Error", "InvalidArgumentError", "ArgumentTypeError", "RequestError", "ConvertError", "BuildError",
           "EngineError", "TokenizerError", "GenerationError", "__version__"]
