"""Datasets of id pairs, padded batches and length-bucketed batching.

Training reads a `Dataset`: `ParallelDataset` holds Python lists (validation sets, tests, small
experiments); `TokenDataset` holds each side as flat token arrays with offsets, in memory
(`TokenArrays`) or in the files of a prepared corpus (`FileTokenArrays`), of which a process
keeps only the lengths in memory and reads a batch's rows when it is built, through the page
cache that the processes of one machine share. Batches are cut by a token budget from
length-sorted pairs, so a batch of short sentences holds many of them and nothing is wasted on
padding; the batch order is shuffled, deterministic under a seed, and sharded by rank for
distributed training.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

Lengths = Sequence[int] | np.ndarray
OFFSET_SIZE = np.dtype(np.int64).itemsize  # offsets are int64 in memory and in files
EXACT_SHUFFLE_PAIRS = 1_000_000  # see `_Shuffler`


def id_dtype(vocab_size: int) -> type:
    """The smallest unsigned integer type that holds every id of a vocabulary."""
    return np.uint16 if vocab_size <= 2**16 else np.uint32


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


class Dataset(Protocol):
    """What training, validation and `TokenBatchSampler` read: aligned source and target id
    sequences (no BOS/EOS), their lengths, and batches of them."""

    def __len__(self) -> int: ...
    @property
    def src_lengths(self) -> Lengths: ...
    @property
    def tgt_lengths(self) -> Lengths: ...  # + 1: the BOS of tgt_in, or the EOS of tgt_out
    def collate(self, indices: Sequence[int]) -> Batch: ...


def pad(sequences: Sequence[Sequence[int] | np.ndarray]) -> Tensor:
    """(B, max length) long tensor, PAD_ID after each sequence."""
    width = max((len(s) for s in sequences), default=0)
    out = np.full((len(sequences), width), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
    return torch.from_numpy(out)


def collate_rows(
    src: Sequence[Sequence[int] | np.ndarray],
    tgt: Sequence[Sequence[int] | np.ndarray],
    indices: Sequence[int],
) -> Batch:
    """The batch of these source and target rows: BOS before and EOS after each target."""
    width = max((len(t) for t in tgt), default=0) + 1
    tgt_in = np.full((len(tgt), width), PAD_ID, dtype=np.int64)
    tgt_out = np.full((len(tgt), width), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(tgt):
        n = len(seq)
        tgt_in[row, 0], tgt_in[row, 1 : n + 1] = BOS_ID, seq
        tgt_out[row, :n], tgt_out[row, n] = seq, EOS_ID
    return Batch(
        src_ids=pad(src),
        src_lengths=torch.tensor([len(s) for s in src], dtype=torch.long),
        tgt_in=torch.from_numpy(tgt_in),
        tgt_out=torch.from_numpy(tgt_out),
        indices=list(indices),
    )


def _check_aligned(src: Lengths, tgt_count: int) -> None:
    if len(src) != tgt_count:
        raise ValueError(f"{len(src)} source but {tgt_count} target sequences")
    empty = np.flatnonzero(np.asarray(src) == 0)
    if len(empty):
        raise ValueError(f"empty source sequence at index {empty[0]} ({len(empty)} in all)")


class ParallelDataset:
    """Source and target id sequences (no BOS/EOS) as Python lists, aligned by index."""

    def __init__(self, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> None:
        _check_aligned([len(s) for s in src], len(tgt))
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
        return collate_rows([self.src[i] for i in indices], [self.tgt[i] for i in indices], indices)


class TokenStore:
    """Sentences of token ids stored flat: sentence i is ``ids[offsets[i]:offsets[i + 1]]``,
    and its length ``lengths[i]``, which are always in memory."""

    _lengths: np.ndarray

    def __len__(self) -> int:
        return len(self._lengths)

    def lengths(self) -> np.ndarray:
        """(N,) int32: each sentence's number of ids."""
        return np.asarray(self._lengths, dtype=np.int32)

    def rows(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The ids of sentences ``indices``."""
        raise NotImplementedError

    def to_lists(self, count: int | None = None) -> list[list[int]]:
        """The first ``count`` sentences (all by default) as lists."""
        return [row.tolist() for row in self.rows(range(len(self) if count is None else count))]


class TokenArrays(TokenStore):
    """A `TokenStore` in memory. ``lengths`` (N,), if given, spares computing them."""

    def __init__(
        self, ids: np.ndarray, offsets: np.ndarray, lengths: np.ndarray | None = None
    ) -> None:
        if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(ids):
            raise ValueError(
                f"offsets must run from 0 to the {len(ids)} ids, got {len(offsets)} offsets"
            )
        self.ids = ids
        self.offsets = offsets
        self._lengths = np.diff(offsets).astype(np.int32) if lengths is None else lengths
        if len(self._lengths) != len(offsets) - 1:
            raise ValueError(f"{len(self._lengths)} lengths for {len(offsets) - 1} sentences")

    @classmethod
    def from_lists(cls, sequences: Sequence[Sequence[int]], dtype: type = np.int64) -> TokenArrays:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int32, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids: np.ndarray = np.fromiter(
            (i for s in sequences for i in s), dtype=dtype, count=int(offsets[-1])
        )
        return cls(ids, offsets, lengths)

    @classmethod
    def concatenate(cls, parts: Sequence[TokenArrays]) -> TokenArrays:
        """One store of ``parts``' sentences, in their order (in memory)."""
        ids = np.concatenate([part.ids for part in parts])
        starts = np.cumsum([0] + [len(part.ids) for part in parts[:-1]])
        offsets = np.concatenate(
            [[0]] + [part.offsets[1:] + start for part, start in zip(parts, starts, strict=True)]
        )
        return cls(ids, offsets.astype(np.int64), np.concatenate([p.lengths() for p in parts]))

    def rows(self, indices: Sequence[int]) -> list[np.ndarray]:
        return _slice_rows(self.ids, self.offsets, indices)


def _slice_rows(ids: np.ndarray, offsets: np.ndarray, indices: Sequence[int]) -> list[np.ndarray]:
    where = np.asarray(indices, dtype=np.int64)
    starts, ends = offsets[where].tolist(), offsets[where + 1].tolist()
    return [np.array(ids[start:end]) for start, end in zip(starts, ends, strict=True)]


class FileTokenArrays(TokenStore):
    """A `TokenStore` in files (`encoding.TokenFiles`), of which only the lengths are in memory:
    each batch reads its rows (offsets, then ids) with ``pread``.

    The reads go through the page cache, whose pages the processes of a machine share, and leave
    nothing behind in the process. (`numpy.memmap` reads the same pages, but the kernel maps
    whole page-cache folios around each row read, about 200 KB here, into the reading process,
    whose RSS then holds them: over an epoch, the whole file, in every process.)
    """

    def __init__(self, ids: Path, offsets: Path, lengths: np.ndarray, dtype: npt.DTypeLike) -> None:
        self.ids_path, self.offsets_path, self.dtype = ids, offsets, np.dtype(dtype)
        self._lengths = lengths
        expected = (len(lengths) + 1) * OFFSET_SIZE
        if offsets.stat().st_size != expected:
            raise ValueError(f"{offsets} holds {offsets.stat().st_size} bytes, not {expected}")

    def rows(self, indices: Sequence[int]) -> list[np.ndarray]:
        if len(indices) == 0:
            return []
        rows = []
        size = self.dtype.itemsize
        with self.offsets_path.open("rb") as offsets, self.ids_path.open("rb") as ids:
            for i in indices:
                start, end = np.frombuffer(
                    os.pread(offsets.fileno(), 2 * OFFSET_SIZE, i * OFFSET_SIZE), np.int64
                ).tolist()
                raw = os.pread(ids.fileno(), (end - start) * size, start * size)
                rows.append(np.frombuffer(raw, dtype=self.dtype))
        return rows


class TokenDataset:
    """Source and target `TokenStore`s, aligned by index: a `Dataset` whose memory is its two
    length arrays, and the ids too unless they are in files (`FileTokenArrays`)."""

    def __init__(self, src: TokenStore, tgt: TokenStore) -> None:
        self.src, self.tgt = src, tgt
        self._src_lengths = src.lengths()
        _check_aligned(self._src_lengths, len(tgt))
        self._tgt_lengths = tgt.lengths() + 1  # + BOS or EOS

    def __len__(self) -> int:
        return len(self.src)

    @property
    def src_lengths(self) -> np.ndarray:
        return self._src_lengths

    @property
    def tgt_lengths(self) -> np.ndarray:
        return self._tgt_lengths

    def collate(self, indices: Sequence[int]) -> Batch:
        return collate_rows(self.src.rows(indices), self.tgt.rows(indices), indices)


class TokenBatchSampler:
    """Length-bucketed batches under a token budget.

    A batch's cost is ``len(batch) * longest side`` in padded tokens (source or target + EOS);
    every batch stays within ``max_tokens`` unless one pair alone exceeds it. Each epoch:
    shuffle, sort by length (ties stay shuffled), cut into batches, shuffle the batches; ranks
    take every ``num_replicas``-th batch so that all ranks do the same number of steps.

    The plan of an epoch is numpy arrays (an order of the pairs and where each batch starts), so
    that millions of pairs cost a few bytes each; batches become lists only as they are taken.
    """

    def __init__(
        self,
        src_lengths: Lengths,
        tgt_lengths: Lengths,
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
        self.src_lengths = np.asarray(src_lengths, dtype=np.int32)
        self.tgt_lengths = np.asarray(tgt_lengths, dtype=np.int32)
        self.max_tokens = max_tokens
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self._plan: tuple[int, np.ndarray, np.ndarray] | None = None  # epoch, order, bounds

    def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The pairs in batch order, and this rank's batches as (start, end) rows into it."""
        if self._plan is not None and self._plan[0] == epoch:
            return self._plan[1], self._plan[2]
        count = len(self.src_lengths)
        shuffled = _Shuffler(self.seed * 100_003 + epoch, exact=count <= EXACT_SHUFFLE_PAIRS)
        order = shuffled(count) if self.shuffle else np.arange(count)
        # lexsort is stable: pairs of equal lengths keep their shuffled order
        order = order[np.lexsort((self.src_lengths[order], self.tgt_lengths[order]))]
        ends = _cut(np.maximum(self.src_lengths, self.tgt_lengths)[order], self.max_tokens)
        starts = np.concatenate([[0], ends[:-1]])[: len(ends)]
        bounds = np.stack([starts, ends], axis=1)  # (batches, 2): [start, end) into order
        if self.shuffle:
            bounds = bounds[shuffled(len(bounds))]
        usable = len(bounds) - len(bounds) % self.num_replicas
        if usable == 0 and len(bounds):
            raise ValueError(
                f"{len(bounds)} batches cannot be shared by {self.num_replicas} processes"
            )
        mine = bounds[self.rank : usable : self.num_replicas]
        self._plan = (epoch, order, mine)
        return order, mine

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of dataset indices for an epoch (deterministic per seed/epoch)."""
        return list(self.iter_epoch(epoch))

    def __len__(self) -> int:
        return len(self._epoch_plan(0)[1])

    def iter_epoch(self, epoch: int, start: int = 0) -> Iterator[list[int]]:
        """Batches of ``epoch`` from position ``start`` (to resume mid-epoch)."""
        order, bounds = self._epoch_plan(epoch)
        for first, end in bounds[start:].tolist():
            yield order[first:end].tolist()


class _Shuffler:
    """Random permutations of range(n), drawn one after the other from one seed.

    Up to `EXACT_SHUFFLE_PAIRS` pairs, Python's generator shuffles a list, which gives the
    batches that every earlier version gave; above, numpy's permutes an array: Python's costs
    seconds per million pairs and 36 bytes a pair, numpy's a hundredth of the time and 4 bytes.
    """

    def __init__(self, seed: int, exact: bool) -> None:
        self.python = random.Random(seed) if exact else None
        self.numpy = np.random.default_rng(seed)

    def __call__(self, n: int) -> np.ndarray:
        if self.python is None:
            return self.numpy.permutation(n).astype(np.int32 if n < 2**31 else np.int64)
        positions = list(range(n))
        self.python.shuffle(positions)
        return np.array(positions, dtype=np.int64)


def _cut(longest: np.ndarray, max_tokens: int) -> np.ndarray:
    """Where each batch of length-sorted pairs ends: a pair joins the current batch while
    (pairs + 1) x the longest side stays within ``max_tokens``."""
    ends: list[int] = []
    count, batch_longest = 0, 0
    step = 1 << 20  # as Python ints a million at a time: the loop is Python's, the memory not
    pieces = (longest[start : start + step].tolist() for start in range(0, len(longest), step))
    for position, length in enumerate(itertools.chain.from_iterable(pieces)):
        new_longest = length if length > batch_longest else batch_longest
        if count and new_longest * (count + 1) > max_tokens:
            ends.append(position)
            count, new_longest = 0, length
        count += 1
        batch_longest = new_longest
    if count:
        ends.append(len(longest))
    return np.asarray(ends, dtype=np.int64)
