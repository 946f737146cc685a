"""Id pairs, padded batches and length-bucketed batching.

Batches are built by a token budget from length-sorted pairs, so a batch of short sentences holds
many of them and nothing is wasted on padding; the batch order is shuffled, deterministic under a
seed, and sharded by rank for distributed training.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer


@dataclass
class Batch:
    """Padded tensors of one batch (B sentences, S source and T target positions)."""

    src_ids: Tensor  # (B, S)
    src_lengths: Tensor  # (B,)
    tgt_in: Tensor  # (B, T) BOS + y
    tgt_out: Tensor  # (B, T) y + EOS
    indices: list[int]  # positions of these pairs in the dataset

    @property
    def src_pad_mask(self) -> Tensor:
        return self.src_ids == PAD_ID  # (B, S) True at padding

    @property
    def num_tgt_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.src_ids.to(device, non_blocking=True),
            self.src_lengths.to(device),
            self.tgt_in.to(device, non_blocking=True),
            self.tgt_out.to(device, non_blocking=True),
            self.indices,
        )


def pad(sequences: Sequence[Sequence[int]]) -> Tensor:
    """(B, max length) long tensor, PAD_ID after each sequence."""
    width = max((len(s) for s in sequences), default=0)
    out = torch.full((len(sequences), width), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


class ParallelDataset:
    """Source and target id sequences (no BOS/EOS), aligned by index."""

    def __init__(self, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> None:
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} source but {len(tgt)} target sequences")
        empty = [i for i, s in enumerate(src) if not s]
        if empty:
            raise ValueError(f"empty source sequence at index {empty[0]} ({len(empty)} in all)")
        self.src = [list(s) for s in src]
        self.tgt = [list(t) for t in tgt]

    @classmethod
    def from_pairs(cls, tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]]) -> ParallelDataset:
        """(source, target) text pairs, each side encoded by its SentencePiece model."""
        return cls(
            tokenizer.encode_src([src for src, _ in pairs]),
            tokenizer.encode_tgt([tgt for _, tgt in pairs]),
        )

    def __len__(self) -> int:
        return len(self.src)

    @property
    def src_lengths(self) -> list[int]:
        return [len(s) for s in self.src]

    @property
    def tgt_lengths(self) -> list[int]:
        return [len(t) + 1 for t in self.tgt]  # + BOS or EOS

    def collate(self, indices: Sequence[int]) -> Batch:
        src = [self.src[i] for i in indices]
        tgt = [self.tgt[i] for i in indices]
        return Batch(
            src_ids=pad(src),
            src_lengths=torch.tensor([len(s) for s in src], dtype=torch.long),
            tgt_in=pad([[BOS_ID, *t] for t in tgt]),
            tgt_out=pad([[*t, EOS_ID] for t in tgt]),
            indices=list(indices),
        )


class TokenBatchSampler:
    """Length-bucketed batches under a token budget.

    A batch's cost is ``len(batch) * longest side`` in padded tokens (source or target + EOS);
    every batch stays within ``max_tokens`` unless one pair alone exceeds it. Each epoch:
    shuffle, sort by length (ties stay shuffled), cut into batches, shuffle the batches; ranks
    take every ``num_replicas``-th batch so that all ranks do the same number of steps.
    """

    def __init__(
        self,
        src_lengths: Sequence[int],
        tgt_lengths: Sequence[int],
        max_tokens: int,
        *,
        seed: int = 1,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if len(src_lengths) != len(tgt_lengths):
            raise ValueError("src_lengths and tgt_lengths differ in length")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} is not in [0, {num_replicas})")
        self.lengths = [max(s, t) for s, t in zip(src_lengths, tgt_lengths, strict=True)]
        self.sort_keys = list(zip(tgt_lengths, src_lengths, strict=True))
        self.max_tokens = max_tokens
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of dataset indices for an epoch (deterministic per seed/epoch)."""
        rng = random.Random(self.seed * 100_003 + epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        order.sort(key=lambda i: self.sort_keys[i])  # stable: ties keep their shuffled order
        batches = self._cut(order)
        if self.shuffle:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.num_replicas
        if usable == 0 and batches:
            raise ValueError(
                f"{len(batches)} batches cannot be shared by {self.num_replicas} processes"
            )
        return batches[self.rank : usable : self.num_replicas]

    def _cut(self, order: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order:
            new_longest = max(longest, self.lengths[i])
            if current and new_longest * (len(current) + 1) > self.max_tokens:
                batches.append(current)
                current, new_longest = [], self.lengths[i]
            current.append(i)
            longest = new_longest
        if current:
            batches.append(current)
        return batches

    def __len__(self) -> int:
        return len(self.batches(0))

    def iter_epoch(self, epoch: int, start: int = 0) -> Iterator[list[int]]:
        """Batches of ``epoch`` from position ``start`` (to resume mid-epoch)."""
        yield from self.batches(epoch)[start:]
