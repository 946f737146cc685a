"""What the study trains: the grid of models, the settings they share, its runs (a cell, a seed,
and the data: Multi30k, or Multi30k with joined pairs for the long-sentence test) and each run's
config.

Imported by every module of the study; `study.cli` is the command line that runs it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from seq2seq.config import (
    AttentionType,
    CellType,
    DataConfig,
    ModelConfig,
    RunConfig,
    SubwordConfig,
    TrainConfig,
)
from seq2seq.corpus import Pair, load_split, normalize_pairs

REPO = Path(__file__).resolve().parents[1]
TEST_SET = "test_2016_flickr"
# Multi30k beside the project, as the benchmarks and the tests find it.
DEFAULT_MIRROR = os.environ.get("MULTI30K_DIR", str(REPO.parent / "shared" / "data" / "multi30k"))
LENGTH_EDGES = (8, 12, 16)  # source words; Multi30k test: 280 / 443 / 202 / 75 sentences
# The long test's buckets: source words in tens up to 60, as Bahdanau et al. 2015, Fig. 2.
LONG_EDGES = (10, 20, 30, 40, 50, 60)


@dataclass(frozen=True)
class Cell:
    """One model of the grid."""

    name: str
    cell: CellType
    attention: AttentionType
    bidirectional: bool = True

    @property
    def encoder(self) -> str:
        return "bidirectional" if self.bidirectional else "unidirectional"


GRID: tuple[Cell, ...] = (
    Cell("rnn-none", "rnn", "none"),
    Cell("gru-none", "gru", "none"),
    Cell("lstm-none", "lstm", "none"),
    Cell("rnn-bahdanau", "rnn", "bahdanau"),
    Cell("gru-bahdanau", "gru", "bahdanau"),
    Cell("lstm-bahdanau", "lstm", "bahdanau"),
    Cell("gru-dot", "gru", "dot"),
    Cell("gru-general", "gru", "general"),
    Cell("gru-bahdanau-uni", "gru", "bahdanau", bidirectional=False),
)
CELLS = {cell.name: cell for cell in GRID}
# Trained again on joined pairs, with seeds: the six core models (cell x attention or none) and
# the one-way encoder that claim 8 compares with its two-way twin.
CORE_CELLS = ("rnn-none", "gru-none", "lstm-none", "rnn-bahdanau", "gru-bahdanau", "lstm-bahdanau")
LONG_CELLS = (*CORE_CELLS, "gru-bahdanau-uni")


@dataclass(frozen=True)
class Run:
    """One training run: a cell of the grid with its seed, on Multi30k or, ``long``, on Multi30k
    with joined pairs (`study.long_data`)."""

    cell: Cell
    seed: int
    long: bool = False

    @property
    def name(self) -> str:
        return f"{self.cell.name}-seed{self.seed}" if self.long else self.cell.name

    @property
    def label(self) -> str:
        """The run's name with its grid, as the plan prints it."""
        return f"long/{self.name}" if self.long else self.name


# Why the study trains in float32 unless told otherwise (its help and its report say this).
FLOAT32_WHY = (
    "under CPU autocast PyTorch runs the LSTM and Elman layers wholly in bfloat16 but keeps a "
    "GRU's state in float32 where it starts in float32, so the cells would not compare at one "
    "precision"
)


def _absolute(place: str) -> str:
    """A local folder as an absolute path; a URL (or nothing) as it is."""
    return place if not place or "://" in place else str(Path(place).resolve())


@dataclass(frozen=True)
class Settings:
    """Everything the study depends on; the defaults are the full study (about two hours)."""

    out: Path = REPO / "runs" / "study"
    report: Path = REPO / "docs" / "study.md"
    mirror: str = ""
    data_dir: str = str(REPO / "data")
    cells: tuple[str, ...] = tuple(CELLS)
    steps: int = 2500  # optimiser steps per model (~13 epochs); 0 = use minutes
    minutes: float = 0.0  # wall-clock training minutes per model (validations included)
    jobs: int = 2  # models trained at once, each in its own process
    threads: int = 1  # torch threads per model
    embed_size: int = 128
    hidden_size: int = 256
    vocab_size: int = 4000
    dropout: float = 0.3
    max_tokens: int = 3000
    checkpoint_every: int = 200
    train_pairs: int = 0  # 0 = all
    valid_pairs: int = 0  # validation loss on these (0 = all) ...
    valid_bleu_pairs: int = 500  # ... and validation BLEU on the first of them
    test_pairs: int = 0  # 0 = all 1000 of test_2016_flickr
    grad_pairs: int = 500  # validation sentences for the loss-gradient profile
    window: int = 40  # source tokens per text window for the recurrence gradient
    windows: int = 32
    bootstrap: int = 1000
    seed: int = 1  # of the Multi30k runs, and the long runs' first
    long: bool = False  # also train LONG_CELLS on Multi30k with joined pairs, seeds times each
    seeds: int = 1  # seeds of each long run: seed, seed + 1, ...
    long_steps: int = 1700  # per long run: the 21 long runs take about 3 hours (see the plan)
    cpu_bf16: bool = False  # train.cpu_bf16: bfloat16 matrix products (not by default: FLOAT32_WHY)

    def __post_init__(self) -> None:
        # Absolute paths: a run's saved config names its data by path, so the same folder given
        # relatively (or from another directory) still finds its runs the same.
        for name in ("out", "report"):
            object.__setattr__(self, name, Path(getattr(self, name)).resolve())
        for name in ("mirror", "data_dir"):
            object.__setattr__(self, name, _absolute(getattr(self, name)))
        unknown = sorted(set(self.cells) - set(CELLS))
        if unknown:
            raise ValueError(f"unknown cell(s) {unknown}; the grid has {', '.join(CELLS)}")
        if (self.steps > 0) == (self.minutes > 0):
            raise ValueError("give exactly one budget: steps > 0 or minutes > 0")
        if self.jobs < 1 or self.threads < 1:
            raise ValueError(f"jobs and threads must be positive, got {self.jobs}, {self.threads}")
        if self.seeds < 1 or self.long_steps < 1:
            raise ValueError(
                f"seeds and long_steps must be positive, got {self.seeds}, {self.long_steps}"
            )
        if self.seeds > 1 and not self.long:
            raise ValueError("seeds repeat the long runs: add --long")

    @property
    def budget(self) -> str:
        if self.steps:
            return f"{self.steps} optimiser steps per model"
        return f"{self.minutes:g} minutes of training per model (validations included)"

    def data(self) -> DataConfig:
        return DataConfig(
            src_lang="de",
            tgt_lang="en",
            data_dir=self.data_dir,
            mirror=self.mirror,
            max_train_pairs=self.train_pairs,
            max_valid_pairs=self.valid_pairs,
        )

    def long_data(self) -> DataConfig:
        """The long runs' data: the files `study.long_data.write_long_corpus` writes."""
        train, valid = long_corpus_files(self)
        return dataclasses.replace(
            self.data(), corpus="files", train=str(train), valid=str(valid), max_train_pairs=0
        )

    def runs(self) -> list[Run]:
        """Every run of the study: the grid's cells on Multi30k, then, with ``long``, the long
        cells among them on joined pairs, seed by seed."""
        runs = [Run(CELLS[name], self.seed) for name in self.cells]
        if self.long:
            long_cells = [CELLS[name] for name in LONG_CELLS if name in self.cells]
            seeds = range(self.seed, self.seed + self.seeds)
            runs += [Run(cell, seed, long=True) for seed in seeds for cell in long_cells]
        return runs


def runs_dir(s: Settings, long: bool) -> Path:
    return s.out / "long" / "runs" if long else s.out / "runs"


def run_dir(run: Run, s: Settings) -> Path:
    return runs_dir(s, run.long) / run.name


def long_corpus_files(s: Settings) -> tuple[Path, Path]:
    """The long runs' training and validation pairs, as TSV files."""
    folder = s.out / "long" / "data"
    return folder / "train.tsv", folder / "valid.tsv"


def run_config(run: Run, s: Settings) -> RunConfig:
    """The same recipe for every run; only the cell type, attention, encoder, seed and data
    differ."""
    cell = run.cell
    return RunConfig(
        data=s.long_data() if run.long else s.data(),
        subword=SubwordConfig(vocab_size=s.vocab_size),
        model=ModelConfig(
            cell=cell.cell,
            attention=cell.attention,
            bidirectional=cell.bidirectional,
            embed_size=s.embed_size,
            hidden_size=s.hidden_size,
            dropout=s.dropout,
            src_vocab_size=s.vocab_size,
            tgt_vocab_size=s.vocab_size,
        ),
        train=TrainConfig(
            name=run.name,
            out_dir=str(runs_dir(s, run.long)),
            seed=run.seed,
            max_tokens=s.max_tokens,
            max_epochs=10_000,  # the budget decides
            max_steps=s.long_steps if run.long else s.steps,
            max_minutes=0.0 if run.long else s.minutes,
            patience=0,  # no early stopping: every model gets the whole budget
            valid_every=0,  # once per epoch
            checkpoint_every=s.checkpoint_every,
            log_every=1,  # every step's time and gradient norm (see training_speed)
            valid_max_pairs=s.valid_bleu_pairs,
            threads=s.threads,
            cpu_bf16=s.cpu_bf16,
            device="cpu",
            progress="log",
        ),
    )


def load_pairs(s: Settings, split: str, limit: int) -> list[Pair]:
    pairs = normalize_pairs(load_split(s.data(), split))
    return pairs[:limit] if limit else pairs
