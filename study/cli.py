"""The study's command line: ``python -m study`` trains the RNN/GRU/LSTM x attention grid on
Multi30k de->en, scores each model on test_2016_flickr (greedy decoding, sacreBLEU with bootstrap
intervals), measures its gradient flow, and writes one Markdown report with its plots, each
textbook claim marked confirmed / refuted / unclear by an explicit rule.

    python -m study [--budget-minutes M | --steps N] [--out DIR] [--report PATH] [--quick]

`run_study` is the whole study; the modules it calls are listed in the package's docstring.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from study.evaluation import collect
from study.grid import CELLS, DEFAULT_MIRROR, REPO, TEST_SET, Settings, load_pairs
from study.report import write_study
from study.training import run_cells, training_machine


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
        prog="python -m study",
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
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="Multi30k folder or URL")
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
