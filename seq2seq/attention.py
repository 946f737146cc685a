"""Attention over encoder states: (query, keys, values, mask) -> (context, weights).

Keys are computed once per source sentence (`precompute`), not at every decoder step. All
types score queries of shape (B, T, H) so the same module serves one decoding step (T = 1)
and a whole teacher-forced target at once. Padding gets weight exactly 0: its score is -inf
before the softmax.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
    """Luong et al. 2015, §3.1 "dot": score = q · k."""

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class GeneralAttention(DotAttention):
    """Luong et al. 2015, §3.1 "general": score = q · W k, with W k precomputed per source."""

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
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
    if kind == "dot":
        if query_size != memory_size:
            raise ValueError(f"dot attention needs equal sizes, got {query_size}, {memory_size}")
        return DotAttention()
    if kind == "general":
        return GeneralAttention(query_size, memory_size)
    if kind == "bahdanau":
        return BahdanauAttention(query_size, memory_size, query_size)
    raise ValueError(f"unknown attention {kind!r}; choose none, bahdanau, dot or general")
