"""What generation returns: RequestOutput (one per prompt) holding CompletionOutputs (one per returned sequence)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class CompletionOutput:
    """One returned sequence.

    In a streamed output, ``text``, ``token_ids`` and ``logprobs`` hold what is new since the previous output (the
    text as the incremental decoder releases it: the pieces concatenate to the whole text); otherwise everything.
    """

    index: int
    text: str
    token_ids: List[int]
    #: Sum of the sequence's token log-probabilities (None unless SamplingParams.logprobs).
    cumulative_logprob: Optional[float]
    #: Each generated token's log-probability (None unless SamplingParams.logprobs).
    logprobs: Optional[List[float]]
    #: None while running; then "length", "stop" (a stop sequence or stop id), "eos", "cancelled".
    finish_reason: Optional[str]
    #: Beam search: the beam's score (sum of log-probs / length ** length_penalty).
    score: Optional[float] = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestOutput:
    """The result of one prompt: its sequences (beam search: best first)."""

    request_id: int
    #: The prompt text (for chat: the rendered template), or None when the prompt was token ids.
    prompt: Optional[str]
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput] = field(default_factory=list)
    finished: bool = False
