"""The study: RNN vs GRU vs LSTM, attention vs none, measured on Multi30k de->en.

    python bench/study.py [--budget-minutes M | --steps N] [--out DIR] [--report PATH] [--quick]

Trains a grid of small, comparable models with one budget each, every one with
`seq2seq.train.train` into ``<out>/runs/<name>``; rerunning the command skips finished runs and
resumes interrupted ones. Each model is then scored on test_2016_flickr (greedy decoding,
sacreBLEU with bootstrap intervals) and its gradient flow measured (`seq2seq.gradflow`); finally
one Markdown report with its plots is written, each textbook claim marked confirmed / refuted /
unclear by an explicit rule. Runs go two at a time (``--jobs``), one torch thread each.

This module is the command line and the running of the runs; the rest of the study is in
study_grid.py (the models and settings), study_eval.py (scoring a finished run),
study_claims.py (the rules), study_plots.py and study_report.py (the report).
"""

from __future__ import annotations

import argparse
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

import common
from study_eval import collect, evaluate_cell
from study_grid import CELLS, REPO, TEST_SET, Cell, Settings, load_pairs, run_config
from study_report import write_study

from seq2seq import checkpoint
from seq2seq.config import RunConfig
from seq2seq.rundir import RunDir
from seq2seq.train import train

TRAIN_OUTPUT = "study_train.log"  # what training printed


# ---------------------------------------------------------------------------------------------
# Training, resumable


def run_state(run_dir: Path, cfg: RunConfig) -> str:
    """Where a run stands: new, interrupted (resume it), finished (skip it) or extend (finished
    under another budget: resume it with this one)."""
    if not RunDir(run_dir).state.is_file():
        return "new"
    saved, info = checkpoint.load_config(run_dir)
    if _recipe(saved) != _recipe(cfg):
        raise ValueError(
            f"{run_dir} holds a run with another model or data config; "
            "choose another --out or delete it"
        )
    if not info.get("stopped"):
        return "interrupted"
    budget = (saved.train.max_steps, saved.train.max_minutes)
    return "finished" if budget == (cfg.train.max_steps, cfg.train.max_minutes) else "extend"


def _recipe(cfg: RunConfig) -> dict[str, Any]:
    """What makes a run this run: data and model, less what training derives from the data."""
    model = dataclasses.asdict(cfg.model)
    for derived in ("src_vocab_size", "tgt_vocab_size", "share_embeddings"):
        del model[derived]
    return {"data": cfg.data, "subword": cfg.subword, "model": model}


def train_cell(cell: Cell, s: Settings) -> str:
    """Train, resume or skip one cell's run; returns its `run_state` before training."""
    cfg = run_config(cell, s)
    run_dir = s.out / "runs" / cell.name
    state = run_state(run_dir, cfg)
    if state == "finished":
        return state
    if state == "new" and run_dir.exists():
        shutil.rmtree(run_dir)  # killed before its first checkpoint: its log would be stale
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / TRAIN_OUTPUT).open("a", encoding="utf-8") as log:
        with contextlib.redirect_stderr(log):
            train(cfg, resume=state != "new")
    return state


def run_cell(cell: Cell, s: Settings) -> str:
    """Train (or resume, or skip) and evaluate one cell; a line saying what happened."""
    started = time.perf_counter()
    state = train_cell(cell, s)
    result = evaluate_cell(cell, s)
    bleu = result["test"]["bleu"]["score"]
    minutes = (time.perf_counter() - started) / 60
    return f"{cell.name}: {state} run, test BLEU {bleu:.2f} ({minutes:.1f} min)"


def run_cells(cells: Sequence[Cell], s: Settings) -> None:
    """All cells, ``s.jobs`` at a time in their own processes; with one job, in this process,
    stopping at the first failure."""
    if s.jobs == 1:
        for cell in cells:
            print(run_cell(cell, s), flush=True)
        return
    failures = []
    context = multiprocessing.get_context("spawn")  # fork after torch threads start can hang
    with ProcessPoolExecutor(max_workers=s.jobs, mp_context=context) as pool:
        futures = {pool.submit(run_cell, cell, s): cell for cell in cells}
        for future in as_completed(futures):
            try:
                print(future.result(), flush=True)
            except Exception as err:  # the other cells go on; rerunning resumes this one
                failures.append(f"{futures[future].name}: {err!r}")
                print(f"{futures[future].name} FAILED: {err!r}", file=sys.stderr, flush=True)
    if failures:
        raise SystemExit("cells failed (rerun to resume them):\n" + "\n".join(failures))


# ---------------------------------------------------------------------------------------------
# Command line


MACHINE_FILE = "machine.txt"


def training_machine(cells: Sequence[Cell], s: Settings) -> str:
    """The machine line for the report: this machine and its load now, before training; when
    every run is already finished (a report-only rerun), the line saved when they trained."""
    saved = s.out / MACHINE_FILE
    states = [run_state(s.out / "runs" / c.name, run_config(c, s)) for c in cells]
    if saved.is_file() and all(state == "finished" for state in states):
        return saved.read_text(encoding="utf-8").strip()
    machine = common.machine(s.threads)
    s.out.mkdir(parents=True, exist_ok=True)
    saved.write_text(machine + "\n", encoding="utf-8")
    return machine


def run_study(s: Settings) -> Path:
    """Train, evaluate and report every cell of `s`; returns the report's path."""
    started = time.perf_counter()
    cells = [CELLS[name] for name in s.cells]
    print(f"study: {len(cells)} models, {s.budget}, {s.jobs} at a time -> {s.out}", flush=True)
    load_pairs(s, "train", 0)  # fetch every split into the cache before workers race for it
    load_pairs(s, "val", 0)
    test = load_pairs(s, TEST_SET, s.test_pairs)
    machine = training_machine(cells, s)
    run_cells(cells, s)
    report = write_study(collect(cells, s, [tgt for _, tgt in test]), test, s, machine)
    print(f"report: {report} ({(time.perf_counter() - started) / 60:.1f} min)", flush=True)
    return report


QUICK = {  # a smoke test on real data: minutes, not hours
    "steps": 40,
    "train_pairs": 3000,
    "valid_pairs": 200,
    "valid_bleu_pairs": 100,
    "test_pairs": 200,
    "grad_pairs": 100,
    "vocab_size": 1000,
    "bootstrap": 200,
}


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        description="Train the RNN/GRU/LSTM x attention grid on Multi30k de->en and write "
        "docs/study.md. Rerun to resume.",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="optimiser steps per model (default 2500)")
    budget.add_argument("--budget-minutes", type=float, help="training minutes per model")
    parser.add_argument("--out", type=Path, help="where runs go (default runs/study)")
    parser.add_argument("--report", type=Path, help="the Markdown report (default docs/study.md)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny budget and data slice: checks the pipeline"
    )
    parser.add_argument("--cells", nargs="+", choices=list(CELLS), help="a subset of the grid")
    parser.add_argument("--jobs", type=int, default=2, help="models trained at once (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per model")
    parser.add_argument("--mirror", default=common.DEFAULT_MIRROR, help="Multi30k folder or URL")
    parser.add_argument("--data-dir", default=str(REPO / "data"), help="Multi30k cache")
    parser.add_argument("--test-pairs", type=int, help="test sentences (default all 1000)")
    parser.add_argument("--bootstrap", type=int, help="bootstrap resamples (default 1000)")
    args = parser.parse_args(argv)
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    out = args.out or REPO / "runs" / ("study-quick" if args.quick else "study")
    values |= {
        "out": out,
        "report": args.report or (out / "study.md" if args.quick else REPO / "docs" / "study.md"),
        "mirror": args.mirror,
        "data_dir": args.data_dir,
        "jobs": args.jobs,
        "threads": args.threads,
    }
    if args.budget_minutes is not None:
        values |= {"minutes": args.budget_minutes, "steps": 0}
    elif args.steps is not None:
        values["steps"] = args.steps
    for name in ("cells", "test_pairs", "bootstrap"):
        if getattr(args, name) is not None:
            values[name] = tuple(args.cells) if name == "cells" else getattr(args, name)
    try:
        return Settings(**values)
    except ValueError as err:
        parser.error(str(err))


def main(argv: Sequence[str] | None = None) -> None:
    run_study(parse_settings(argv))


if __name__ == "__main__":
    main()
