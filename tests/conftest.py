"""Shared fixtures: the Multi30k files beside the project, one torch thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tests stay on one thread: two collapse when the other core is busy.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def multi30k_dir() -> Path:
    """The shared Multi30k files (env MULTI30K_DIR); skip without them, or fail if required."""
    path = Path(os.environ.get("MULTI30K_DIR", REPO.parent / "shared" / "data" / "multi30k"))
    if not path.is_dir():
        message = f"Multi30k files not found in {path}: set MULTI30K_DIR to their folder"
        if os.environ.get("REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path
