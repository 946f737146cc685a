"""Checkpoint averaging: the weight snapshots a run keeps, and the mean of the last of them.

At each validation the trainer writes the model's weights as a snapshot (`RunDir.snapshot`) and
deletes all but the last ``train.average_last``, so the disk holds at most that many. A resumed
run first deletes the snapshots its killed predecessor wrote after the state it resumes from.
`try_average` scores the element-wise mean of some snapshots and keeps it as the run's weights
only if it beats them: the trainer calls it when training ends, `averaging.average_run`
(``seq2seq average``) on a finished run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seq2seq import checkpoint
from seq2seq.rundir import RunDir


def save_snapshot(model: torch.nn.Module, run: RunDir, step: int, keep: int) -> None:
    """Write ``model``'s weights as the snapshot of ``step`` (atomically), then delete all but
    the last ``keep`` snapshots."""
    assert keep >= 1, keep
    checkpoint.save_weights(model, run.snapshot(step))
    for path in list(run.snapshots().values())[:-keep]:
        path.unlink()


def drop_snapshots_after(run: RunDir, step: int) -> None:
    """Delete the snapshots of steps after ``step``: a killed run wrote them after the state a
    resumed run starts from, which will write its own when it gets there."""
    for snapshot_step, path in run.snapshots().items():
        if snapshot_step > step:
            path.unlink()


def last_snapshots(run: RunDir, count: int) -> list[Path]:
    """The last ``count`` snapshots of the run, oldest first."""
    return list(run.snapshots().values())[-count:]


@dataclass(frozen=True)
class AveragingOutcome:
    """What averaging measured and chose; one line of `RunDir.log` (`log_record`)."""

    averaged: list[str]  # the files averaged, relative to the run directory where inside it
    best_valid_bleu: float  # of the weights the average competed with: the best checkpoint's
    average_valid_bleu: float

    @property
    def kept(self) -> bool:
        return self.average_valid_bleu > self.best_valid_bleu

    def log_record(self, step: int) -> dict[str, Any]:
        return {
            "step": step,
            "averaged": self.averaged,
            "average_valid_bleu": self.average_valid_bleu,
            "best_valid_bleu": self.best_valid_bleu,
            "kept": "average" if self.kept else "best",
        }

    @classmethod
    def from_log_record(cls, record: dict[str, Any]) -> AveragingOutcome:
        return cls(record["averaged"], record["best_valid_bleu"], record["average_valid_bleu"])

    def summary(self) -> str:
        kept = "kept as the run's weights" if self.kept else "the best checkpoint stays"
        return (
            f"average of {len(self.averaged)} snapshots: validation BLEU "
            f"{self.average_valid_bleu:.2f} vs {self.best_valid_bleu:.2f} for the best "
            f"checkpoint; {kept}"
        )


def last_averaging(records: list[dict[str, Any]]) -> AveragingOutcome | None:
    """The latest averaging in a run's log records (`checkpoint.read_log`), if any."""
    found = [r for r in records if "average_valid_bleu" in r]
    return AveragingOutcome.from_log_record(found[-1]) if found else None


def try_average(
    model: torch.nn.Module,
    paths: list[Path],
    best_valid_bleu: float,
    score: Callable[[], float],
    run: RunDir,
) -> AveragingOutcome:
    """Load the mean of the weight files ``paths`` into ``model``, score it with ``score`` (its
    validation BLEU), and write it as the run's weights if it beats ``best_valid_bleu``, the
    score of the weights the run holds. ``model`` gets its own weights back either way."""
    own = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    checkpoint.set_weights(model, checkpoint.average_weights(paths), f"the mean of {paths}")
    try:
        outcome = AveragingOutcome(
            [_name_in_run(path, run) for path in paths], best_valid_bleu, score()
        )
        if outcome.kept:
            checkpoint.save_weights(model, run.weights)
    finally:
        model.load_state_dict(own)
    return outcome


def _name_in_run(path: Path, run: RunDir) -> str:
    resolved, root = path.resolve(), run.root.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)
