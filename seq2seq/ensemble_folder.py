"""An ensemble folder made from finished runs: ``seq2seq ensemble FOLDER RUN RUN ...``.

Each run's `RunDir.member_files` are copied to ``FOLDER/members/<run name>`` and listed in the
folder's ensemble.json, so the folder is self-contained: it can be moved, shipped
(``seq2seq ship FOLDER``) and served as one model. The folder is built under a temporary name
beside its place and renamed into it, so a half-built folder is never loaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from seq2seq import checkpoint
from seq2seq.rundir import RunDir


def check_members(runs: Sequence[Path]) -> list[str]:
    """The member names (the runs' folder names), once the runs are known to form an ensemble:
    at least two single runs with weights, distinct names, one SentencePiece model and language
    pair (`checkpoint.load_runs`)."""
    if len(runs) < 2:
        raise ValueError(f"an ensemble needs at least two runs, got {len(runs)}")
    for run in runs:
        if RunDir(run).is_ensemble():
            raise ValueError(f"{run} is an ensemble folder: list its member runs instead")
        if not RunDir(run).has_model():
            raise FileNotFoundError(
                f"{run} holds no trained model ({RunDir.CONFIG_FILE} and {RunDir.WEIGHTS_FILE}): "
                "train it first with `seq2seq train`"
            )
    names = [run.resolve().name for run in runs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"two runs share the folder name {repeated[0]!r}; members are kept by name, so "
            "rename one of the run folders"
        )
    checkpoint.load_runs(runs)
    return names


def assemble_ensemble(folder: Path, runs: Sequence[Path]) -> list[Path]:
    """Make ``folder`` (which must not exist) an ensemble of copies of ``runs``; return the
    members' folders in it."""
    folder, runs = Path(folder), [Path(run) for run in runs]
    names = check_members(runs)
    if folder.exists():
        raise FileExistsError(f"{folder} exists: give a new folder, or remove it first")
    building = folder.with_name(f".{folder.name}.building")
    shutil.rmtree(building, ignore_errors=True)  # what an interrupted build left
    for run, name in zip(runs, names, strict=True):
        member = RunDir(building).member(name)
        member.mkdir(parents=True)
        for path in RunDir(run).member_files():
            shutil.copy2(path, member / path.name)
    checkpoint.save_ensemble(building, [RunDir(building).member(name) for name in names])
    os.rename(building, folder)
    return [RunDir(folder).member(name) for name in names]
