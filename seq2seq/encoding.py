"""Tokenising text stores into token arrays, in worker processes.

A text store is UTF-8, one sentence a line (`prepare` writes them). `encode_lines` reads one in
chunks and encodes each chunk with SentencePiece, in-process or in a pool of worker processes,
keeping only a few chunks in flight so that memory stays bounded whatever the corpus's size; the
chunks come back in order, as flat id arrays with their lengths, which `encode_file` writes out
(`data.TokenArrays` reads them back). Source sides are encoded as `Tokenizer.encode_src` does: a
leading target-language tag the vocabulary knows becomes its own id.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from pathlib import Path

import numpy as np
import sentencepiece as spm

from seq2seq import staging
from seq2seq.tokenizer import encode_tagged

CHUNK_LINES = 50_000
OFFSET_DTYPE = np.int64
LENGTH_DTYPE = np.int32
Encoded = tuple[np.ndarray, np.ndarray]  # lengths (N,) int32, ids (sum of lengths,)


def read_text_lines(path: Path) -> Iterator[str]:
    """The lines of a text store, streamed."""
    with path.open("rb") as f:
        for raw in f:
            yield raw.removesuffix(b"\n").decode("utf-8")


def _line_chunks(path: Path, size: int) -> Iterator[list[str]]:
    lines = read_text_lines(path)
    while chunk := list(itertools.islice(lines, size)):
        yield chunk


def encode_chunk(
    processor: spm.SentencePieceProcessor, lines: list[str], dtype: type, source: bool
) -> Encoded:
    encoded = encode_tagged(processor, lines) if source else processor.encode(lines, out_type=int)
    lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
    ids: np.ndarray = np.fromiter(
        itertools.chain.from_iterable(encoded), dtype=dtype, count=int(lengths.sum())
    )
    return lengths, ids


_worker_processor: spm.SentencePieceProcessor | None = None


def _start_worker(proto: bytes) -> None:
    global _worker_processor
    _worker_processor = spm.SentencePieceProcessor()
    _worker_processor.LoadFromSerializedProto(proto)


def _encode_in_worker(lines: list[str], dtype: type, source: bool) -> Encoded:
    assert _worker_processor is not None, "the pool's initializer loads the model"
    return encode_chunk(_worker_processor, lines, dtype, source)


def encode_lines(
    path: Path,
    proto: bytes,
    dtype: type,
    workers: int = 0,
    chunk_lines: int = 0,
    source: bool = False,
) -> Iterator[Encoded]:
    """The text store at ``path`` encoded by the SentencePiece model ``proto``, chunk by chunk,
    in order.

    Args:
        workers: processes that encode (0 = one per CPU core); with one, or a single chunk, the
            encoding runs here, sparing the pool's start.
        chunk_lines: lines encoded per task (0 = `CHUNK_LINES`).
        source: the lines are source sentences (`tokenizer.encode_tagged`).
    """
    workers = workers or os.cpu_count() or 1
    chunks = _line_chunks(path, chunk_lines or CHUNK_LINES)
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    chunks = itertools.chain([first], [second] if second is not None else [], chunks)
    if workers == 1 or second is None:
        _start_worker(proto)
        for lines in chunks:
            yield _encode_in_worker(lines, dtype, source)
        return
    # spawn, not fork: the caller may hold torch's threads, which a forked child would inherit
    # in whatever state they were.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(proto,)) as pool:
        pending: deque[AsyncResult[Encoded]] = deque()
        for lines in chunks:  # at most two chunks per worker in flight: bounded memory
            pending.append(pool.apply_async(_encode_in_worker, (lines, dtype, source)))
            if len(pending) > 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


@dataclass(frozen=True)
class TokenFiles:
    """Where one side of a split goes: flat ids, int64 offsets (sentence i is
    ``ids[offsets[i]:offsets[i + 1]]``) and int32 lengths."""

    ids: Path
    offsets: Path
    lengths: Path


def encode_file(
    text: Path, out: TokenFiles, proto: bytes, dtype: type, workers: int, source: bool = False
) -> int:
    """Encode the text store ``text`` (of source sentences: ``source``) into ``out`` (ids of
    ``dtype``); return the number of ids. Every write goes through `staging.write_bytes`."""
    parts = []
    with out.ids.open("wb") as f:
        for chunk_lengths, ids in encode_lines(text, proto, dtype, workers, source=source):
            staging.write_bytes(f, ids.tobytes())
            parts.append(chunk_lengths)
        staging.sync(f)
    lengths = np.concatenate(parts).astype(LENGTH_DTYPE) if parts else np.zeros(0, LENGTH_DTYPE)
    offsets = np.zeros(len(lengths) + 1, dtype=OFFSET_DTYPE)
    np.cumsum(lengths, out=offsets[1:])
    staging.write_file(out.offsets, offsets.tobytes())
    staging.write_file(out.lengths, lengths.tobytes())
    return int(offsets[-1])
