"""Shared fixtures: the Multi30k files beside the project, one torch thread."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tests stay on one thread: two collapse when the other core is busy.
torch.set_num_threads(1)


CHROMIUM = Path("/usr/bin/chromium")


def missing(message: str, required_by: str) -> None:
    """Skip a test whose outside resource is missing, or fail it if env ``required_by`` is 1."""
    if os.environ.get(required_by) == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def multi30k_dir() -> Path:
    """The shared Multi30k files (env MULTI30K_DIR); skip without them, or fail if required."""
    path = Path(os.environ.get("MULTI30K_DIR", REPO.parent / "shared" / "data" / "multi30k"))
    if not path.is_dir():
        missing(
            f"Multi30k files not found in {path}: set MULTI30K_DIR to their folder",
            "REQUIRE_SHARED_DATA",
        )
    return path


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; skip without it, or fail if REQUIRE_BROWSER=1."""
    if not CHROMIUM.is_file():
        missing(
            f"{CHROMIUM} not found: install it with `apt-get install -y chromium`",
            "REQUIRE_BROWSER",
        )
    return CHROMIUM


def train_tiny_run(
    root: Path,
    multi30k_dir: Path,
    name: str,
    *,
    vocab: int,
    widths: tuple[int, int],
    steps: int,
    data: dict[str, Any],
    train: dict[str, Any] | None = None,
) -> Path:
    """A run of ``steps`` steps (validated twice) on a slice of Multi30k (``data``: which
    slice), with ``vocab`` subwords and (embedding, hidden) ``widths``, into ``root``."""
    from seq2seq.config import DataConfig, ModelConfig, RunConfig, SubwordConfig, TrainConfig
    from seq2seq.train import train as train_run

    cfg = RunConfig(
        data=DataConfig(mirror=str(multi30k_dir), data_dir=str(root / "data"), **data),
        subword=SubwordConfig(vocab_size=vocab),
        model=ModelConfig(
            embed_size=widths[0],
            hidden_size=widths[1],
            dropout=0.1,
            src_vocab_size=vocab,
            tgt_vocab_size=vocab,
        ),
        train=TrainConfig(
            name=name,
            out_dir=str(root / "runs"),
            max_tokens=1500,
            max_steps=steps,
            valid_every=steps // 2,
            checkpoint_every=steps // 2,
            lr=3e-3,
            progress="log",
            threads=1,
            **(train or {}),
        ),
    )
    return train_run(cfg)


@pytest.fixture(scope="session")
def trained_run(multi30k_dir, tmp_path_factory) -> Path:
    """A short real training run on a slice of Multi30k de->en (a few hundred steps).

    Small on purpose: it exists to be loaded by translate, evaluate and the demo, not to be good.
    """
    return train_tiny_run(
        tmp_path_factory.mktemp("trained"),
        multi30k_dir,
        "tiny-de-en",
        vocab=1000,
        widths=(64, 128),
        steps=250,
        data={"max_train_pairs": 4000, "max_valid_pairs": 100},
    )


@pytest.fixture(scope="session")
def trained_multilingual_run(multi30k_dir, tmp_path_factory) -> Path:
    """A multilingual run of seconds on a slice of Multi30k: all 12 directions between en, de,
    fr and cs, 300 pairs each. It exists to be loaded (by the translator, the CLI and the demo),
    not to translate well."""
    return train_tiny_run(
        tmp_path_factory.mktemp("trained-multilingual"),
        multi30k_dir,
        "tiny-multi",
        vocab=600,
        widths=(48, 96),
        steps=120,
        data={"directions": "all", "max_train_pairs": 300, "max_valid_pairs": 8},
        train={"average_last": 0},
    )
