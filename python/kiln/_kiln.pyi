# Type stub of the native module kiln._kiln (python/src/*.cpp): thin bindings over kiln's C++ API. Use the `kiln`
# package (LLM, SamplingParams, Tokenizer, convert, build) rather than this module directly.
from typing import Dict, List, Optional, Sequence, Tuple, Union

class Error(Exception):
    """kiln::Error: one line naming the file, tensor, field or limit that was wrong."""

def build_info() -> Dict[str, Union[str, bool]]:
    """{"version": kiln's version, "cuda": whether this build has the cuda backend}."""

def convert(model_dir: str, output_dir: str, dtype: Optional[str], rope_freq_dtype: str, tp_size: int, pp_size: int,
            progress: bool) -> None: ...

class QuantizeOptions:
    model_dir: str
    output_dir: str
    qformat: str
    kv_cache_dtype: str
    group_size: int
    smoothquant_alpha: float
    exclude: List[str]
    quantize_lm_head: bool
    calib: List[List[int]]
    calib_source: str
    rope_freq_checkpoint_dtype: bool
    progress: bool
    def __init__(self) -> None: ...

def quantize(options: QuantizeOptions) -> None: ...
def needs_calibration(qformat: str, kv_cache_dtype: str) -> bool: ...

class EngineLimits:
    max_batch_size: int
    max_input_len: int
    max_seq_len: int
    max_num_tokens: int
    max_beam_width: int
    def __init__(self) -> None: ...

def build(checkpoint_dir: str, output_dir: str, target: str, dtype: Optional[str], limits: EngineLimits,
          batch_invariant: bool, progress: bool) -> None: ...

class Tokenizer:
    @staticmethod
    def load(path: str) -> "Tokenizer": ...
    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...
    @property
    def vocab_size(self) -> int: ...
    def token_to_id(self, token: str) -> Optional[int]: ...
    def id_to_token(self, id: int) -> Optional[str]: ...
    def is_special(self, id: int) -> bool: ...
    @property
    def bos_id(self) -> Optional[int]: ...
    @property
    def eos_id(self) -> Optional[int]: ...
    @property
    def stop_ids(self) -> List[int]: ...
    @property
    def has_chat_template(self) -> bool: ...
    def apply_chat_template(self, messages: Sequence[Tuple[str, str]], add_generation_prompt: bool) -> str: ...

class IncrementalDecoder:
    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool) -> None: ...
    def push(self, id: int) -> str: ...
    def flush(self) -> str: ...

class ExecutorConfig:
    scheduler_policy: str
    kv_cache_bytes: Optional[int]
    kv_cache_fraction: float
    tokens_per_block: int
    max_num_tokens: int
    max_batch_size: int
    enable_prefix_reuse: bool
    seed: int
    num_threads: int
    warm_up: bool
    def __init__(self) -> None: ...

class Request:
    input_ids: List[int]
    max_new_tokens: int
    end_id: Optional[int]
    pad_id: Optional[int]
    stop_sequences: List[List[int]]
    bad_words: List[List[int]]
    beam_width: int
    num_return_sequences: int
    return_log_probs: bool
    streaming: bool
    early_stopping: Union[bool, str]
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repetition_penalty: float
    presence_penalty: float
    frequency_penalty: float
    seed: Optional[int]
    ignore_eos: bool
    length_penalty: float
    def __init__(self) -> None: ...

class Response:
    @property
    def request_id(self) -> int: ...
    @property
    def is_final(self) -> bool: ...
    @property
    def error(self) -> str: ...
    @property
    def output_ids(self) -> List[List[int]]: ...
    @property
    def log_probs(self) -> List[List[float]]: ...
    @property
    def scores(self) -> List[float]: ...
    @property
    def finish_reasons(self) -> List[str]: ...

class Executor:
    def __init__(self, engine_dir: str, config: ExecutorConfig) -> None: ...
    def check(self, request: Request) -> None: ...
    def enqueue(self, request: Request) -> int: ...
    def cancel(self, request_id: int) -> bool: ...
    def await_responses(self, request_id: Optional[int], timeout_ms: int) -> List[Response]: ...
    def stats(self) -> Dict[str, Union[int, float]]: ...
    def info(self) -> Dict[str, Union[str, int, List[int]]]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
