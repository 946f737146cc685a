"""What every decoding method shares: the model it drives, the hypotheses it returns, the output
length limit and score, and log-prob processors.

The methods themselves are in `seq2seq.search` (greedy, beam; and the registry by name) and
`seq2seq.sampling`; the policy they all follow is written out in `seq2seq.search`'s docstring.
Shapes: N decoder rows (sentences x beams or samples), V target vocabulary, S source length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor

from seq2seq.config import DecodeConfig
from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID

NEVER_GENERATED = (PAD_ID, BOS_ID)


_Rows = TypeVar("_Rows", bound="Selectable")


class Selectable(Protocol):
    """A batch-first value (the decoder state, the encoder output) that search reorders."""

    def select(self: _Rows, rows: Tensor) -> _Rows:
        """The batch rows ``rows`` ``(N',)``: reordered, repeated or dropped."""
        ...


class EncoderOutputLike(Selectable, Protocol):
    @property  # read-only: a field (`model.EncoderOutput`) or a property (`ensemble`) will do
    def src_pad_mask(self) -> Tensor: ...  # (B, S) True at padding


class Decodable(Protocol):
    """What search needs of a model (``model.Seq2Seq`` is one)."""

    training: bool

    def train(self, mode: bool = True) -> Any: ...

    def encode(self, src_ids: Tensor, src_lengths: Tensor) -> EncoderOutputLike: ...

    def initial_state(self, enc: Any) -> Selectable: ...

    def decode_step(
        self, prev_ids: Tensor, state: Any, enc: Any
    ) -> tuple[Tensor, Selectable, Tensor]: ...


@dataclass
class Hypothesis:
    """One output sentence: ids without BOS/EOS, its ranking score and its attention."""

    token_ids: list[int]
    score: float  # log_prob / lp(n), what hypotheses are ranked by
    log_prob: float  # sum of the generated tokens' log-probs, EOS included when generated
    attention: Tensor  # (len(token_ids), src_len) on the CPU, one row per output token


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(n) = ((5 + n) / 6) ** alpha for n generated tokens (EOS counted)."""
    return float(((5 + length) / 6) ** alpha)


def max_output_lengths(src_lengths: Tensor, cfg: DecodeConfig) -> list[int]:
    """Most generated tokens (EOS included) allowed per sentence; at least 1."""
    ratio, offset = cfg.max_length_ratio, cfg.max_length_offset
    return [max(1, math.ceil(ratio * n) + offset) for n in src_lengths.tolist()]


def make_hypothesis(
    tokens: list[int], attention: Tensor, log_prob: float, src_len: int, alpha: float
) -> Hypothesis:
    """Build a finished hypothesis from its generated ``tokens`` and attention rows ``(t, S)``."""
    n = len(tokens)
    if tokens and tokens[-1] == EOS_ID:  # the EOS row is dropped; a truncated one has none
        tokens, attention = tokens[:-1], attention[:-1]
    return Hypothesis(
        token_ids=tokens,
        score=log_prob / length_penalty(n, alpha),
        log_prob=log_prob,
        attention=attention[:, :src_len].float().cpu(),  # (len(tokens), src_len)
    )


# A log-prob processor reshapes a step's next-token scores, ``(N, V) -> (N, V)``; -inf marks a
# token that cannot be chosen. Every method applies `mask_never_generated`; sampling adds its own
# (temperature, top-k, top-p) before it draws.
LogProbProcessor = Callable[[Tensor], Tensor]


def mask_never_generated(log_probs: Tensor) -> Tensor:
    """Float32 log-probs with PAD and BOS impossible. ``(N, V) -> (N, V)``."""
    specials = torch.tensor(NEVER_GENERATED, device=log_probs.device)
    return log_probs.float().index_fill(1, specials, -math.inf)


@contextmanager
def decoding_mode(model: Decodable) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd while decoding; the model's mode is restored."""
    was_training = model.training
    model.train(False)
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
