"""Prepared corpora: a parallel corpus cleaned and tokenised once, stored as token arrays that
training reads from disk at every start, every resume and in every process (`data.TokenDataset`).

`prepare` streams the text and never holds the corpus as Python strings: it writes the cleaned
training sentences (and the normalised validation sentences) one a line, the text store that
subword sampling segments anew each epoch; trains SentencePiece on a random sample of them
(`subword.sample_sentences` per side); encodes them in worker processes (`encoding`); and writes
each side's ids flat, uint16 when the vocabulary fits, with int64 offsets. The manifest, written
last, records the input files (path, size, SHA-256, lines), the settings, the tokenizer's hash,
the counts and the cleaning report.

A directory is written whole or not at all (`staging`): one that exists is complete, and a killed
or failed prepare leaves only a hidden temporary folder, which the next prepare removes. `prepare`
reuses a directory whose manifest matches the inputs and settings, and rebuilds it otherwise.

A prepared directory (`PreparedDir` names its files; the tokenizer keeps a run's names):
    manifest.json                       what was prepared, from what, and the counts
    spm.model | spm.src.model, spm.tgt.model
    train.src.ids.bin       the ids, flat: uint16 when the vocabulary fits, else uint32
    train.src.offsets.bin   int64: sentence i is ids[offsets[i]:offsets[i + 1]]
    train.src.lengths.bin   int32: each sentence's number of ids (what a process holds)
    train.src.txt           the sentences as prepared, one a line
    (the same for train.tgt, valid.src and valid.tgt)
    valid.directions.txt    multilingual: each validation pair's direction (de-fr), one a line

A multilingual corpus (``data.directions``) is read, tagged and balanced by
`multilingual.load_training_corpus`, which holds it in memory (Multi30k's twelve directions are
350,000 pairs); its vocabulary is learnt from as many sentences of every language, with the
target-language tags as pieces of their own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq import staging
from seq2seq.config import SUBWORD_SAMPLING_FIELDS, CleanConfig, DataConfig, SubwordConfig
from seq2seq.corpus import (
    CleanStats,
    Pair,
    count_lines,
    iter_clean,
    iter_pairs,
    normalize,
    parallel_length_error,
    split_files,
)
from seq2seq.data import FileTokenArrays, TokenDataset, id_dtype
from seq2seq.encoding import LENGTH_DTYPE, TokenFiles, encode_file, read_text_lines
from seq2seq.multilingual import direction_data, load_training_corpus, run_directions
from seq2seq.tokenizer import Tokenizer

FORMAT = "seq2seq-prepared/1"
SPLITS = {"train": "train", "valid": "val"}  # a prepared split -> the corpus's name for it
SIDES = ("src", "tgt")
# The data settings a prepared folder records and gives a run that trains on it.
DATA_FIELDS = (
    "corpus",
    "src_lang",
    "tgt_lang",
    "train",
    "valid",
    "max_train_pairs",
    "directions",
    "direction_sampling",
)
# What draws a multilingual corpus's repeated pairs and vocabulary sentences: fixed, so that the
# prepared corpus depends on the data settings alone (train.seed still orders the batches).
DIRECTIONS_SEED = 1


@dataclass(frozen=True)
class PreparedDir:
    """The one place that names a prepared directory's files."""

    root: Path

    MANIFEST_FILE = "manifest.json"

    @property
    def manifest(self) -> Path:
        return self.root / self.MANIFEST_FILE

    def tokens(self, split: str, side: str) -> TokenFiles:
        """One side's ids (flat), offsets and lengths."""
        name = f"{split}.{side}"
        return TokenFiles(
            ids=self.root / f"{name}.ids.bin",
            offsets=self.root / f"{name}.offsets.bin",
            lengths=self.root / f"{name}.lengths.bin",
        )

    def text(self, split: str, side: str) -> Path:
        """The sentences as prepared (cleaned, normalised), UTF-8, one a line."""
        return self.root / f"{split}.{side}.txt"

    def directions(self, split: str) -> Path:
        """A multilingual corpus's direction of each pair (de-fr), one a line."""
        return self.root / f"{split}.directions.txt"


# --- Reading ------------------------------------------------------------------------------------


@dataclass
class PreparedCorpus:
    """A complete prepared directory, opened for training."""

    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> PreparedCorpus:
        """Raises:
        FileNotFoundError: no complete prepared directory there (names the command to run).
        ValueError: its manifest is damaged or of another format."""
        files = PreparedDir(Path(root))
        if not files.manifest.is_file():
            raise FileNotFoundError(
                f"{root} is not a prepared corpus (no {PreparedDir.MANIFEST_FILE}): create it "
                "with `seq2seq prepare --out DIR` and the data settings of the run"
            )
        try:
            manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{files.manifest} is damaged ({err}); prepare again") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"{files.manifest} is not a {FORMAT} manifest; prepare again")
        return cls(Path(root), manifest)

    def tokenizer(self) -> Tokenizer:
        return Tokenizer.load(self.root)

    def pairs(self, split: str) -> int:
        return int(self.manifest["counts"][split]["pairs"])

    def cleaning(self) -> CleanStats:
        return CleanStats(**self.manifest["cleaning"])

    def dataset(self, split: str) -> TokenDataset:
        """The split's arrays, read from disk as batches need them: only the lengths in memory."""
        files = PreparedDir(self.root)
        dtype = np.dtype(self.manifest["dtype"])
        src, tgt = (
            FileTokenArrays(
                tokens.ids,
                tokens.offsets,
                np.fromfile(tokens.lengths, dtype=LENGTH_DTYPE),  # the one part in memory
                dtype,
            )
            for tokens in (files.tokens(split, side) for side in SIDES)
        )
        return TokenDataset(src, tgt)

    def directions(self, split: str) -> list[str]:
        """Each pair's direction (de-fr) in a multilingual corpus; [] in a bilingual one."""
        path = PreparedDir(self.root).directions(split)
        return list(read_text_lines(path)) if path.is_file() else []

    def text_pairs(self, split: str) -> Iterator[Pair]:
        """The split's sentence pairs as prepared, streamed from the text store."""
        files = PreparedDir(self.root)
        yield from zip(
            read_text_lines(files.text(split, "src")),
            read_text_lines(files.text(split, "tgt")),
            strict=True,
        )


# --- Finding or building ------------------------------------------------------------------------


def prepare(
    data: DataConfig,
    clean: CleanConfig,
    subword: SubwordConfig,
    out: Path | None = None,
    tokenizer: Tokenizer | None = None,
    workers: int = 0,
    say: Callable[[str], None] = print,
) -> PreparedCorpus:
    """The corpus of ``data`` prepared: the directory ``out`` (by default a cache folder in
    ``data.data_dir`` named by the inputs and settings) if its manifest matches the inputs and
    settings, else built anew there.

    Args:
        tokenizer: encode with this vocabulary (a resumed run's) instead of training one; a
            prepared directory whose tokenizer is this one is reused.
        workers: encoding processes; 0 = one per CPU core.

    Raises:
        ValueError: files of a pair differ in line count (names both files and counts, before
            any work), a line is not UTF-8 (names file and line), nothing is left after cleaning.
        FileNotFoundError: an input file is missing.
    """
    inputs = describe_inputs(data)
    trained = _settings(data, clean, subword, None)
    candidates = [(out or cache_dir(data, trained, inputs), trained)]
    if tokenizer is not None:  # the folder prepared with it, or one prepared for it
        given = _settings(data, clean, subword, tokenizer)
        candidates.append((out or cache_dir(data, given, inputs), given))
    for folder, settings in candidates:
        if _is_current(folder, settings, inputs, tokenizer):
            say(f"prepared corpus up to date: {folder}")
            return PreparedCorpus.open(folder)
    folder, settings = candidates[-1]
    build(folder, Job(data, clean, subword, tokenizer, inputs, settings, workers), say)
    return PreparedCorpus.open(folder)


def describe_inputs(data: DataConfig) -> dict[str, list[dict[str, Any]]]:
    """Per split, `describe_input` of every file it reads (each direction's, multilingual)."""
    readers = [direction_data(data, direction) for direction in run_directions(data)]
    return {
        split: [item for one in readers for item in _describe_split(split_files(one, name))]
        for split, name in SPLITS.items()
    }


def _describe_split(files: list[Path]) -> list[dict[str, Any]]:
    """`describe_input` of each file; files of a pair must have as many lines."""
    described = [describe_input(path) for path in files]
    if len(described) == 2 and described[0]["lines"] != described[1]["lines"]:
        src, tgt = described
        raise ValueError(
            parallel_length_error(src["path"], src["lines"], tgt["path"], tgt["lines"])
        )
    return described


def describe_input(path: Path) -> dict[str, Any]:
    """What identifies an input file: its absolute path, size, SHA-256 and line count."""
    digest = hashlib.sha256()
    lines = count_lines(path)  # checks that it exists
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "path": str(path.resolve()),
        "size": path.stat().st_size,
        "sha256": digest.hexdigest(),
        "lines": lines,
    }


def _settings(
    data: DataConfig, clean: CleanConfig, subword: SubwordConfig, tokenizer: Tokenizer | None
) -> dict[str, Any]:
    """Every setting the prepared arrays depend on (subword sampling is not one of them)."""
    vocabulary = (
        {"given": tokenizer.sha256}
        if tokenizer is not None
        else {
            k: v for k, v in dataclasses.asdict(subword).items() if k not in SUBWORD_SAMPLING_FIELDS
        }
    )
    settings = {
        "corpus": data.corpus,
        "src_lang": data.src_lang,
        "tgt_lang": data.tgt_lang,
        "max_train_pairs": data.max_train_pairs,
        "clean": dataclasses.asdict(clean),
        "vocabulary": vocabulary,
    }
    if data.multilingual:  # its validation pairs are cut per direction when prepared
        settings.update(
            directions=data.directions,
            direction_sampling=data.direction_sampling,
            max_valid_pairs=data.max_valid_pairs,
            seed=DIRECTIONS_SEED,
        )
    return settings


def cache_dir(data: DataConfig, settings: dict[str, Any], inputs: dict[str, Any]) -> Path:
    """``DATA_DIR/prepared/CORPUS-SRC-TGT-HASH``: one folder per set of input paths and
    settings, so that a changed file is prepared again in place."""
    paths = {split: [item["path"] for item in items] for split, items in inputs.items()}
    key = json.dumps({"settings": settings, "paths": paths}, sort_keys=True).encode()
    languages = "multi" if data.multilingual else f"{data.src_lang}-{data.tgt_lang}"
    name = f"{data.corpus}-{languages}-{hashlib.sha256(key).hexdigest()[:12]}"
    return Path(data.data_dir) / "prepared" / name


def _is_current(
    out: Path, settings: dict[str, Any], inputs: dict[str, Any], tokenizer: Tokenizer | None
) -> bool:
    """Whether ``out`` is complete and was prepared from these inputs with these settings (and,
    given a tokenizer, with it)."""
    try:
        manifest = PreparedCorpus.open(out).manifest
    except (OSError, ValueError):
        return False
    same_vocabulary = tokenizer is None or manifest["tokenizer"]["sha256"] == tokenizer.sha256
    return manifest["settings"] == settings and manifest["inputs"] == inputs and same_vocabulary


# --- Writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What one prepared directory is built from, and how."""

    data: DataConfig
    clean: CleanConfig
    subword: SubwordConfig
    tokenizer: Tokenizer | None  # None: train one
    inputs: dict[str, Any]  # split -> `describe_input` of its files
    settings: dict[str, Any]  # `_settings`
    workers: int


def build(out: Path, job: Job, say: Callable[[str], None]) -> None:
    """Write the prepared directory ``out`` whole or not at all (`staging.build_folder`)."""

    def write(folder: Path) -> None:
        files = PreparedDir(folder)
        manifest = {"format": FORMAT, "settings": job.settings, "inputs": job.inputs}
        manifest.update(_write_splits(files, job, say))
        staging.write_file(files.manifest, json.dumps(manifest, indent=2).encode())  # last

    def done() -> bool:
        return _is_current(out, job.settings, job.inputs, job.tokenizer)

    if staging.build_folder(out, write, done):
        say(f"prepared corpus written to {out}")


@dataclass
class WrittenText:
    """What `_write_bilingual_text` or `_write_multilingual_text` wrote to the text stores."""

    train_pairs: int
    valid_pairs: int
    stats: CleanStats
    train_tokenizer: Callable[[SubwordConfig], Tokenizer]  # a vocabulary learnt from them


def _write_splits(files: PreparedDir, job: Job, say: Callable[[str], None]) -> dict[str, Any]:
    """Text stores, tokenizer and token arrays of both splits; the manifest's facts on them."""
    write_text = _write_multilingual_text if job.data.multilingual else _write_bilingual_text
    written = write_text(files, job, say)
    data, subword, tokenizer = job.data, job.subword, job.tokenizer
    kept, valid, stats = written.train_pairs, written.valid_pairs, written.stats
    if tokenizer is None:
        say(f"training SentencePiece ({subword.model_type}, {subword.vocab_size} pieces)")
        tokenizer = written.train_tokenizer(subword)
    tokenizer.save(files.root)
    dtype = id_dtype(max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size))
    counts: dict[str, Any] = {}
    for split, pairs in (("train", kept), ("valid", valid)):
        counts[split] = {"pairs": pairs}
        for side, proto in (("src", tokenizer.src_proto), ("tgt", tokenizer.tgt_proto)):
            say(f"encoding {split}.{side}")
            tokens, text = files.tokens(split, side), files.text(split, side)
            counts[split][f"{side}_tokens"] = encode_file(
                text, tokens, proto, dtype, job.workers, source=side == "src"
            )
    return {
        "data": {k: getattr(data, k) for k in DATA_FIELDS},
        "subword": dataclasses.asdict(subword),
        "tokenizer": {
            "sha256": tokenizer.sha256,
            "joint": tokenizer.joint,
            "src_vocab_size": tokenizer.src_vocab_size,
            "tgt_vocab_size": tokenizer.tgt_vocab_size,
        },
        "dtype": np.dtype(dtype).name,
        "counts": counts,
        "cleaning": stats.to_dict(),
    }


def _write_bilingual_text(files: PreparedDir, job: Job, say: Callable[[str], None]) -> WrittenText:
    """The cleaned training pairs and normalised validation pairs, streamed."""
    paths = {split: [Path(item["path"]) for item in items] for split, items in job.inputs.items()}
    stats = CleanStats()
    limit = job.data.max_train_pairs
    cleaned = iter_clean(iter_pairs(paths["train"]), job.clean, stats)
    kept = _write_text(files, "train", cleaned, limit)
    if not kept:
        raise ValueError(f"no training pairs left after cleaning ({stats.summary()})")
    say(f"train: {stats.summary()}" + (f"; the first {kept} used" if limit else ""))
    normalised = ((normalize(src), normalize(tgt)) for src, tgt in iter_pairs(paths["valid"]))
    valid = _write_text(files, "valid", normalised, 0)
    say(f"valid: {valid} pairs (normalised, none dropped)")

    def train_tokenizer(subword: SubwordConfig) -> Tokenizer:
        src, tgt = (read_text_lines(files.text("train", side)) for side in SIDES)
        return Tokenizer.train(src, tgt, subword, pairs=kept)

    return WrittenText(kept, valid, stats, train_tokenizer)


def _write_multilingual_text(
    files: PreparedDir, job: Job, say: Callable[[str], None]
) -> WrittenText:
    """Every direction's pairs, sources tagged, balanced as ``data.direction_sampling`` says;
    the validation pairs with their directions."""
    corpus = load_training_corpus(job.data, job.clean, DIRECTIONS_SEED)
    kept = _write_text(files, "train", iter(corpus.train), 0)
    directions = len(job.data.direction_names)
    say(
        f"train: {corpus.stats.summary()}; {kept} pairs in {directions} directions "
        f"({job.data.direction_sampling})"
    )
    valid = _write_text(files, "valid", iter(corpus.valid), 0)
    lines = "".join(f"{name}\n" for name in corpus.valid_directions)
    staging.write_file(files.directions("valid"), lines.encode("utf-8"))
    say(f"valid: {valid} pairs in {directions} directions (normalised, none dropped)")
    return WrittenText(kept, valid, corpus.stats, corpus.train_tokenizer)


def _write_text(files: PreparedDir, split: str, pairs: Iterator[Pair], limit: int) -> int:
    """Write the first ``limit`` pairs (0 = all; the rest are still read, to be counted) to the
    split's text store; return how many were written."""
    written = 0
    with files.text(split, "src").open("wb") as src, files.text(split, "tgt").open("wb") as tgt:
        for src_text, tgt_text in pairs:
            if limit and written >= limit:
                continue
            # normalize() left no line break inside a sentence: one line each
            staging.write_bytes(src, (src_text + "\n").encode("utf-8"))
            staging.write_bytes(tgt, (tgt_text + "\n").encode("utf-8"))
            written += 1
        staging.sync(src)
        staging.sync(tgt)
    return written
