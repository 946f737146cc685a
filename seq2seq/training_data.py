"""A run's data: the prepared corpus it trains on (`prepare`), its vocabulary, its validation
set, and what each epoch trains on with its batches.

Training never reads the text corpus itself: rank 0 prepares it (or finds it prepared) and every
process reads the same token arrays from disk, at every start and every resume. With subword
sampling, each epoch segments the prepared text store anew instead, into compact arrays.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist

from seq2seq.config import SUBWORD_SAMPLING_FIELDS, RunConfig, SubwordConfig, TrainConfig
from seq2seq.corpus import Pair
from seq2seq.data import (
    Dataset,
    ParallelDataset,
    TokenArrays,
    TokenBatchSampler,
    TokenDataset,
    id_dtype,
)
from seq2seq.distributed import Distributed
from seq2seq.prepare import PreparedCorpus, prepare
from seq2seq.rundir import RunDir
from seq2seq.tokenizer import Tokenizer

SAMPLED_CHUNK_PAIRS = 50_000  # pairs segmented per SentencePiece call with subword sampling


@dataclass
class RunData:
    """What `load_run_data` gives a run."""

    prepared: PreparedCorpus
    tokenizer: Tokenizer
    train: TokenDataset  # its ids on disk, its lengths in memory
    valid: ParallelDataset
    valid_refs: list[str]
    valid_directions: list[str]  # each validation pair's (de-fr); [] for a bilingual run


def with_prepared_settings(cfg: RunConfig) -> RunConfig:
    """With ``data.prepared``: the corpus, languages and vocabulary settings that the prepared
    folder's manifest records, so that the run describes what it trains on."""
    if not cfg.data.prepared:
        return cfg
    manifest = PreparedCorpus.open(cfg.data.prepared).manifest
    data = dataclasses.replace(cfg.data, **manifest["data"])
    vocabulary = {k: v for k, v in manifest["subword"].items() if k not in SUBWORD_SAMPLING_FIELDS}
    return dataclasses.replace(
        cfg, data=data, subword=dataclasses.replace(cfg.subword, **vocabulary)
    )


def find_or_prepare(cfg: RunConfig, tokenizer: Tokenizer | None, loud: bool) -> PreparedCorpus:
    """``data.prepared``, or the corpus prepared from the data settings into the cache (reused
    when up to date). ``tokenizer``: a resumed run's vocabulary, which the arrays must share."""
    if cfg.data.prepared:
        prepared = PreparedCorpus.open(cfg.data.prepared)
        if tokenizer is not None and prepared.manifest["tokenizer"]["sha256"] != tokenizer.sha256:
            raise ValueError(
                f"{cfg.data.prepared} was prepared with another vocabulary than the run's: "
                "prepare the corpus for this run (train without --data.prepared) or start a new run"
            )
        return prepared

    def say(line: str) -> None:
        if loud:
            print(line, file=sys.stderr)

    return prepare(cfg.data, cfg.clean, cfg.subword, tokenizer=tokenizer, say=say)


def load_run_data(cfg: RunConfig, run_dir: Path, ranks: Distributed, resume: bool) -> RunData:
    """Prepare the corpus (rank 0; the others then find it prepared), give a fresh run the
    prepared vocabulary (a resumed run keeps its own), and open the arrays.

    Raises:
        ValueError: the validation set is empty (before any step), or a corpus error of
            `prepare.prepare`.
    """
    run = RunDir(run_dir)
    tokenizer = Tokenizer.load(run_dir) if resume else None
    prepared = find_or_prepare(cfg, tokenizer, loud=True) if ranks.is_main else None
    if ranks.enabled:
        dist.barrier()
    prepared = prepared or find_or_prepare(cfg, tokenizer, loud=False)
    if not prepared.pairs("valid"):  # found now, before any step, not at the first validation
        where = cfg.data.valid or f"{cfg.data.corpus} val"
        raise ValueError(
            f"the validation set ({where}) holds no sentence pairs: training needs it to pick "
            "the best weights; correct --data.valid (with --resume too, to go on)"
        )
    stats, used = prepared.cleaning(), prepared.pairs("train")
    if ranks.is_main:
        first = f"; training on the first {used}" if cfg.data.max_train_pairs else ""
        print(f"training pairs: {stats.summary()}{first}", file=sys.stderr)
    if ranks.is_main and not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        prepared.tokenizer().save(run_dir)
        run.clean_stats.write_text(json.dumps(stats.to_dict(), indent=2), encoding="utf-8")
    if ranks.enabled:
        dist.barrier()
    valid = prepared.dataset("valid")
    directions = prepared.directions("valid")  # multilingual: cut per direction when prepared
    count = len(valid) if directions else min(cfg.data.max_valid_pairs or len(valid), len(valid))
    refs = [tgt for _, tgt in itertools.islice(prepared.text_pairs("valid"), count)]
    return RunData(
        prepared=prepared,
        tokenizer=Tokenizer.load(run_dir),
        train=prepared.dataset("train"),
        valid=ParallelDataset(valid.src.to_lists(count), valid.tgt.to_lists(count)),
        valid_refs=refs,
        valid_directions=directions,
    )


def build_sampler(
    data: Dataset, tc: TrainConfig, ranks: Distributed | None = None
) -> TokenBatchSampler:
    """The sampler that cuts ``data`` into this process's batches (``train.max_tokens``)."""
    ranks = ranks or Distributed()
    return TokenBatchSampler(
        data.src_lengths,
        data.tgt_lengths,
        tc.max_tokens,
        seed=tc.seed,
        num_replicas=ranks.world_size,
        rank=ranks.rank,
    )


def build_data(
    tokenizer: Tokenizer,
    pairs: Sequence[Pair],
    tc: TrainConfig,
    ranks: Distributed | None = None,
    sampling: SubwordConfig | None = None,
    epoch: int = 0,
) -> tuple[Dataset, TokenBatchSampler]:
    """Text pairs encoded, and the sampler that cuts them into this process's batches.

    With ``sampling`` (subword settings whose ``sampling_alpha`` > 0), each sentence is segmented
    as sampled for ``epoch`` (the same in every process); the sampler's token budget counts
    those segmentations, which are longer than the plain ones.
    """
    data: Dataset
    if sampling is not None and sampling.sampling_alpha:
        data = sampled_dataset(tokenizer, pairs, sampling, sampling_seed(tc.seed, epoch))
    else:
        data = ParallelDataset.from_pairs(tokenizer, pairs)
    return data, build_sampler(data, tc, ranks)


def sampled_dataset(
    tokenizer: Tokenizer,
    pairs: Iterable[Pair],
    sampling: SubwordConfig,
    seed: int,
    chunk_pairs: int = SAMPLED_CHUNK_PAIRS,
) -> TokenDataset:
    """``pairs`` (streamed) segmented by sampling, chunk by chunk, into in-memory arrays: a few
    bytes per token rather than a Python list per sentence. Chunk k draws with its own seed
    (chunk 0 with ``seed``), so that the segmentation depends only on ``seed``."""
    dtype = id_dtype(max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size))
    src_parts, tgt_parts = [], []
    stream = iter(pairs)
    for k in itertools.count():
        chunk = list(itertools.islice(stream, chunk_pairs))
        if not chunk:
            break
        chunk_seed = (seed + k * 7_919) % (2**32 - 1)
        src, tgt = tokenizer.encode_sampled(
            chunk, sampling.sampling_alpha, sampling.nbest_size, chunk_seed
        )
        src_parts.append(TokenArrays.from_lists(src, dtype))
        tgt_parts.append(TokenArrays.from_lists(tgt, dtype))
    return TokenDataset(TokenArrays.concatenate(src_parts), TokenArrays.concatenate(tgt_parts))


def sampling_seed(train_seed: int, epoch: int) -> int:
    """The seed of ``epoch``'s subword sampling: one per run seed and epoch, and a valid
    SentencePiece seed (an unsigned 32-bit number other than 2**32 - 1, which means "random")."""
    return (train_seed * 1_000_003 + epoch) % (2**32 - 1)
