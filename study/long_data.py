"""The long-sentence data: Multi30k pairs joined into longer ones, for training and for a test set
with Bahdanau et al. 2015's sentence lengths (Fig. 2: BLEU against length up to 60 words).

Multi30k's sentences are short (about 11 words), so a long one is made by joining k consecutive
pairs, the sources with a space and the targets alike: both sides stay real text and stay aligned.

- `training_mix`: every training pair alone and in non-overlapping runs of 2, 3 and 4;
- `long_test_set`: test_2016_flickr joined 1 to 5 at a time into every 10-word bucket of source
  length up to 60 words, no sentence twice within a bucket;
- `write_long_corpus`: the mixed training and validation pairs as the TSV files the long runs
  read.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from seq2seq.checkpoint import write_text_atomically
from seq2seq.corpus import Pair, to_tsv
from seq2seq.metrics import bucket_index
from study.grid import LONG_EDGES, Settings, load_pairs, long_corpus_files

MIX_KS = (1, 2, 3, 4)  # pairs per joined training pair: about 11 to 45 words, a few past 60
# Five Multi30k sentences are needed to reach 51-60 words: with at most four, only 61 disjoint
# runs of test_2016_flickr land there.
TEST_MAX_K = 5
PER_BUCKET = 200  # test pairs kept per length bucket; the scarcest bucket has 170
MIN_PER_BUCKET = 150  # the fewest a bucket may hold for its BLEU to mean something


def join_run(pairs: Sequence[Pair], start: int, k: int) -> Pair:
    """Pairs ``start`` to ``start + k - 1`` as one: the sources joined by a space, the targets
    alike."""
    run = pairs[start : start + k]
    if len(run) != k:
        raise ValueError(f"{len(pairs)} pairs hold no run of {k} from {start}")
    return " ".join(src for src, _ in run), " ".join(tgt for _, tgt in run)


def concatenate(pairs: Sequence[Pair], k: int, offset: int = 0) -> list[Pair]:
    """Consecutive pairs joined k at a time from ``offset``, without overlap; a tail of fewer
    than k pairs is left out."""
    if k < 1 or offset < 0:
        raise ValueError(f"k must be >= 1 and offset >= 0, got k={k}, offset={offset}")
    return [join_run(pairs, start, k) for start in range(offset, len(pairs) - k + 1, k)]


def mix_composition(num_pairs: int, ks: Sequence[int] = MIX_KS) -> dict[int, int]:
    """How many pairs `training_mix` makes of each k from ``num_pairs`` pairs."""
    return {k: num_pairs // k for k in ks}


def training_mix(pairs: Sequence[Pair], ks: Sequence[int] = MIX_KS) -> list[Pair]:
    """Every pair alone and joined in non-overlapping runs of each k (`concatenate` from offset
    0), interleaved so that any prefix, such as the first N validation pairs that validation BLEU
    reads, holds every k."""
    joined = [concatenate(pairs, k) for k in ks]
    return [pair for row in itertools.zip_longest(*joined) for pair in row if pair is not None]


@dataclass(frozen=True)
class Span:
    """Test pairs ``start`` to ``start + k - 1``, joined into one."""

    start: int
    k: int

    @property
    def end(self) -> int:
        return self.start + self.k


def long_bucket(words: int, edges: Sequence[int] = LONG_EDGES) -> int | None:
    """The bucket of a source of ``words`` words (`seq2seq.metrics.bucket_index`); None when it
    is empty or longer than the last edge."""
    bucket = bucket_index(words, edges)
    return None if words < 1 or bucket == len(edges) else bucket


def long_test_spans(
    lengths: Sequence[int],
    edges: Sequence[int] = LONG_EDGES,
    max_k: int = TEST_MAX_K,
    per_bucket: int = PER_BUCKET,
) -> list[list[Span]]:
    """Per length bucket, runs of 1 to ``max_k`` consecutive sentences whose words (``lengths``)
    add up to that bucket, no two in a bucket sharing a sentence.

    Each bucket takes the runs earliest-ending first, skipping any that overlaps one it took
    (interval scheduling: the most disjoint runs there are), then keeps ``per_bucket`` of them
    spread evenly over the test set.
    """
    words_before = [0, *itertools.accumulate(lengths)]
    spans = [Span(start, k) for k in range(1, max_k + 1) for start in range(len(lengths) - k + 1)]
    spans.sort(key=lambda span: (span.end, span.start))
    chosen: list[list[Span]] = [[] for _ in edges]
    for span in spans:
        bucket = long_bucket(words_before[span.end] - words_before[span.start], edges)
        if bucket is not None and (not chosen[bucket] or chosen[bucket][-1].end <= span.start):
            chosen[bucket].append(span)
    return [_spread(taken, per_bucket) for taken in chosen]


def _spread(items: list[Span], count: int) -> list[Span]:
    """``count`` of ``items`` at even intervals (all of them if there are no more)."""
    if len(items) <= count:
        return items
    return [items[i * len(items) // count] for i in range(count)]


def long_test_set(
    pairs: Sequence[Pair], max_k: int = TEST_MAX_K, per_bucket: int = PER_BUCKET
) -> list[Pair]:
    """The joined test pairs of `long_test_spans`, bucket by bucket."""
    lengths = [len(src.split()) for src, _ in pairs]
    spans = long_test_spans(lengths, LONG_EDGES, max_k, per_bucket)
    return [join_run(pairs, span.start, span.k) for bucket in spans for span in bucket]


def write_long_corpus(s: Settings) -> None:
    """The long runs' training and validation pairs (`training_mix` of the first
    ``s.train_pairs`` training pairs and of the validation pairs), written once; unchanged files
    are left alone, so that a resumed run reads what it started with."""
    train_file, valid_file = long_corpus_files(s)
    for path, split, limit in ((train_file, "train", s.train_pairs), (valid_file, "val", 0)):
        text = to_tsv(training_mix(load_pairs(s, split, limit)))
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(path, text)
