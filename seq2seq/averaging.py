"""Checkpoint averaging on a finished run: ``seq2seq average RUN --last N`` (or ``--files``).

Does after training what training does at its end: rebuilds what the trainer validates with (the
run's model, tokenizer and validation set, from its config), scores the run's weights and the
mean of its last snapshots (or of given weight files) as the trainer scores them
(`train.validate`), keeps the mean only if it scores higher (`snapshots.try_average`), and logs
both scores in the run's training log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seq2seq import checkpoint, train
from seq2seq.config import RunConfig
from seq2seq.data import ParallelDataset
from seq2seq.model import Seq2Seq
from seq2seq.multilingual import load_validation
from seq2seq.rundir import RunDir, RunInfo
from seq2seq.snapshots import AveragingOutcome, last_snapshots, try_average
from seq2seq.tokenizer import Tokenizer


@dataclass
class RunValidation:
    """A finished run as `train.validate` reads it: its best weights and validation set."""

    cfg: RunConfig
    model: Seq2Seq
    tokenizer: Tokenizer
    valid_data: ParallelDataset
    valid_refs: list[str]
    device: torch.device
    valid_directions: list[str] = field(default_factory=list)  # per pair; multilingual runs

    @classmethod
    def load(cls, run_dir: Path) -> RunValidation:
        """The run's model (on the CPU) and the validation pairs its config names."""
        model, cfg = checkpoint.load_model(run_dir, "cpu")
        tokenizer = Tokenizer.load(run_dir)
        pairs, directions = load_validation(cfg.data)
        if not pairs:
            raise ValueError(f"the validation set of {run_dir} holds no sentence pairs")
        data = ParallelDataset.from_pairs(tokenizer, pairs)
        refs = [tgt for _, tgt in pairs]
        return cls(cfg, model, tokenizer, data, refs, torch.device("cpu"), directions)


def files_to_average(run: RunDir, last: int | None, files: Sequence[Path] = ()) -> list[Path]:
    """``files`` if given, else the run's last ``last`` snapshots (by default as many as its
    ``train.average_last`` says); at least two of them."""
    if files:
        paths = [Path(path) for path in files]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: nothing to average")
        what = f"{len(paths)} file(s) given"
    else:
        if last is None:
            cfg, _ = checkpoint.load_config(run.root)
            last = cfg.train.average_last
        paths = last_snapshots(run, last) if last else []
        what = f"{len(run.snapshots())} weight snapshot(s) in {run.snapshot_dir}"
    if len(paths) < 2:
        raise ValueError(
            f"averaging needs at least 2 weight files, but there are {what}: a run keeps "
            "snapshots when trained with --train.average_last N (N >= 2); or give files with "
            "--files"
        )
    return paths


def average_files(run_dir: Path, paths: list[Path]) -> AveragingOutcome:
    """Keep the mean of ``paths`` as the run's weights if it validates better than them; log
    both scores. The caller holds the run's lock (`checkpoint.lock_run_dir`)."""
    validation = RunValidation.load(run_dir)
    # Scored now rather than read from the log: the weights may already be an average.
    current_bleu = train.validate(validation)["valid_bleu"]
    outcome = try_average(
        validation.model,
        paths,
        current_bleu,
        lambda: train.validate(validation)["valid_bleu"],
        RunDir(run_dir),
    )
    _, info = checkpoint.load_config(run_dir)
    checkpoint.append_log(run_dir, outcome.log_record(RunInfo.from_dict(info).step or 0))
    return outcome


def average_run(
    run_dir: Path, last: int | None = None, files: Sequence[Path] = ()
) -> AveragingOutcome:
    """`average_files` of the run's last ``last`` snapshots, or of ``files``, under the run's
    lock (so never while a trainer writes the run)."""
    run_dir = Path(run_dir)
    checkpoint.load_config(run_dir)  # a clear error if run_dir is no run, before it is locked
    paths = files_to_average(RunDir(run_dir), last, files)
    with checkpoint.lock_run_dir(run_dir):
        return average_files(run_dir, paths)
