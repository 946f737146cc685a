"""Attention over encoder states: (query, keys, values, mask) -> (context, weights).

Keys are computed once per source sentence (`precompute`), not at every decoder step. All
types score queries of shape (B, T, H) so the same module serves one decoding step (T = 1)
and a whole teacher-forced target at once. Padding gets weight exactly 0: its score is -inf
before the softmax.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.config import ATTENTION_TYPES


class Attention(nn.Module):
    """Base class; subclasses define `precompute` and `score`."""

    def precompute(self, memory: Tensor) -> Tensor:
        """Keys from encoder states (B, S, H) -> (B, S, K)."""
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """(B, T, H) queries against (B, S, K) keys -> (B, T, S) scores."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, src_pad_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Context (B, T, H) and weights (B, T, S) for queries (B, T, H).

        Args:
            src_pad_mask: (B, S), True at padding.
        """
        scores = self.score(query, keys)  # (B, T, S)
        scores = scores.masked_fill(src_pad_mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, values), weights


class DotAttention(Attention):
    """Luong et al. 2015, §3.1 "dot": score = q · k, times ``scale``.

    Scaled by 1/sqrt(H) (Vaswani et al. 2017, §3.2.1), the scores of H-wide random vectors keep
    a variance near 1 whatever H; unscaled they grow with H and saturate the softmax to nearly
    one-hot weights, where its gradient vanishes.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        return scores if self.scale == 1.0 else scores * self.scale


class GeneralAttention(DotAttention):
    """Luong et al. 2015, §3.1 "general": score = q · W k, with W k precomputed per source;
    times ``scale`` as `DotAttention`."""

    def __init__(self, query_size: int, memory_size: int, scale: float = 1.0) -> None:
        super().__init__(scale)
        self.key_proj = nn.Linear(memory_size, query_size, bias=False)

    def precompute(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)


class BahdanauAttention(Attention):
    """Bahdanau et al. 2015, A.1.2 (additive): score = v · tanh(W q + U k)."""

    def __init__(self, query_size: int, memory_size: int, attention_size: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_size, attention_size, bias=False)
        self.query_proj = nn.Linear(query_size, attention_size, bias=True)
        self.energy = nn.Linear(attention_size, 1, bias=False)

    def precompute(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_proj(query).unsqueeze(2)  # (B, T, 1, A)
        return self.energy(torch.tanh(q + keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)


def build_attention(kind: str, query_size: int, memory_size: int) -> Attention | None:
    """The attention module for ``ModelConfig.attention``; None for "none"."""
    if kind == "none":
        return None
    if kind == "bahdanau":
        return BahdanauAttention(query_size, memory_size, query_size)
    unscaled = kind.removeprefix("scaled_")
    # 1/sqrt of the width of the queries, which is the keys' too (dot products need both equal)
    scale = query_size**-0.5 if unscaled != kind else 1.0
    if unscaled == "dot":
        if query_size != memory_size:
            raise ValueError(f"dot attention needs equal sizes, got {query_size}, {memory_size}")
        return DotAttention(scale)
    if unscaled == "general":
        return GeneralAttention(query_size, memory_size, scale)
    raise ValueError(f"unknown attention {kind!r}; choose {', '.join(ATTENTION_TYPES)}")
