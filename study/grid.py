"""What the study trains: the grid of models, the settings they share, and each one's config.

Imported by every module of the study; `study.cli` is the command line that runs it.
"""

from __future__ import annotations

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
    seed: int = 1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.cells) - set(CELLS))
        if unknown:
            raise ValueError(f"unknown cell(s) {unknown}; the grid has {', '.join(CELLS)}")
        if (self.steps > 0) == (self.minutes > 0):
            raise ValueError("give exactly one budget: steps > 0 or minutes > 0")
        if self.jobs < 1 or self.threads < 1:
            raise ValueError(f"jobs and threads must be positive, got {self.jobs}, {self.threads}")

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


def run_config(cell: Cell, s: Settings) -> RunConfig:
    """The same recipe for every cell; only the cell type, attention and encoder differ."""
    return RunConfig(
        data=s.data(),
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
            name=cell.name,
            out_dir=str(s.out / "runs"),
            seed=s.seed,
            max_tokens=s.max_tokens,
            max_epochs=10_000,  # the budget decides
            max_steps=s.steps,
            max_minutes=s.minutes,
            patience=0,  # no early stopping: every model gets the whole budget
            valid_every=0,  # once per epoch
            checkpoint_every=s.checkpoint_every,
            log_every=1,  # every step's time and gradient norm (see training_speed)
            valid_max_pairs=s.valid_bleu_pairs,
            threads=s.threads,
            device="cpu",
            progress="log",
        ),
    )


def load_pairs(s: Settings, split: str, limit: int) -> list[Pair]:
    pairs = normalize_pairs(load_split(s.data(), split))
    return pairs[:limit] if limit else pairs
