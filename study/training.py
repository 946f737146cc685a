"""The study's runs: each trained with `seq2seq.train.train` into its folder (`grid.run_dir`:
``<out>/runs/<cell>``, or ``<out>/long/runs/<cell>-seed<n>`` on joined pairs), resumably (a rerun
skips finished runs and resumes interrupted ones), then evaluated; two at a time
(``Settings.jobs``) in their own processes, one torch thread each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from seq2seq import checkpoint
from seq2seq.config import RunConfig
from seq2seq.machine import describe_machine
from seq2seq.rundir import RunDir
from seq2seq.train import train
from study.evaluation import evaluate_run
from study.grid import Run, Settings, run_config, run_dir

TRAIN_OUTPUT = "study_train.log"  # what training printed


class RunConflict(ValueError):
    """A run folder holds a run of another recipe: the study neither resumes nor overwrites it."""


def run_state(run_dir: Path, cfg: RunConfig) -> str:
    """Where a run stands: new, interrupted (resume it), finished (skip it) or extend (finished
    under another budget: resume it with this one)."""
    if not RunDir(run_dir).state.is_file():
        return "new"
    saved, info = checkpoint.load_config(run_dir)
    if _recipe(saved) != _recipe(cfg):
        raise RunConflict(
            f"{run_dir} holds a run with another model, data or precision config; "
            "choose another --out or delete it"
        )
    if not info.get("stopped"):
        return "interrupted"
    budget = (saved.train.max_steps, saved.train.max_minutes)
    return "finished" if budget == (cfg.train.max_steps, cfg.train.max_minutes) else "extend"


def _recipe(cfg: RunConfig) -> dict[str, Any]:
    """What makes a run this run: data, model and precision, less what training derives from
    the data."""
    model = dataclasses.asdict(cfg.model)
    for derived in ("src_vocab_size", "tgt_vocab_size", "share_embeddings"):
        del model[derived]
    return {"data": cfg.data, "subword": cfg.subword, "model": model, "bf16": cfg.train.cpu_bf16}


def train_run(run: Run, s: Settings) -> str:
    """Train, resume or skip one run; returns its `run_state` before training."""
    cfg = run_config(run, s)
    folder = run_dir(run, s)
    state = run_state(folder, cfg)
    if state == "finished":
        return state
    if state == "new" and folder.exists():
        shutil.rmtree(folder)  # killed before its first checkpoint: its log would be stale
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / TRAIN_OUTPUT).open("a", encoding="utf-8") as log:
        with contextlib.redirect_stderr(log):
            train(cfg, resume=state != "new")
    return state


def train_and_evaluate(run: Run, s: Settings) -> str:
    """Train (or resume, or skip) and evaluate one run; a line saying what happened."""
    started = time.perf_counter()
    state = train_run(run, s)
    result = evaluate_run(run, s)
    bleu = result["test"]["bleu"]["score"]
    minutes = (time.perf_counter() - started) / 60
    return f"{run.label}: {state} run, test BLEU {bleu:.2f} ({minutes:.1f} min)"


def run_all(runs: Sequence[Run], s: Settings) -> None:
    """All runs in their order, ``s.jobs`` at a time in their own processes (each starts when a
    worker is free); with one job, in this process, stopping at the first failure."""
    if s.jobs == 1:
        for run in runs:
            print(train_and_evaluate(run, s), flush=True)
        return
    failures = []
    context = multiprocessing.get_context("spawn")  # fork after torch threads start can hang
    with ProcessPoolExecutor(max_workers=s.jobs, mp_context=context) as pool:
        futures = {pool.submit(train_and_evaluate, run, s): run for run in runs}
        for future in as_completed(futures):
            try:
                print(future.result(), flush=True)
            except Exception as err:  # the other runs go on; rerunning resumes this one
                failures.append(f"{futures[future].label}: {err!r}")
                print(f"{futures[future].label} FAILED: {err!r}", file=sys.stderr, flush=True)
    if failures:
        raise SystemExit("runs failed (rerun to resume them):\n" + "\n".join(failures))


MACHINE_FILE = "machine.txt"


def training_machine(runs: Sequence[Run], s: Settings) -> str:
    """The machine line for the report: this machine and its load now, before training; when
    every run is already finished (a report-only rerun), the line saved when they trained."""
    saved = s.out / MACHINE_FILE
    states = [run_state(run_dir(run, s), run_config(run, s)) for run in runs]
    if saved.is_file() and all(state == "finished" for state in states):
        return saved.read_text(encoding="utf-8").strip()
    machine = describe_machine(s.threads)
    s.out.mkdir(parents=True, exist_ok=True)
    saved.write_text(machine + "\n", encoding="utf-8")
    return machine
