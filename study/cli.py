"""The study's command line: ``python -m study`` trains the RNN/GRU/LSTM x attention grid on
Multi30k de->en, scores each model on test_2016_flickr (greedy decoding, sacreBLEU with bootstrap
intervals), measures its gradient flow, and writes one Markdown report with its plots, each
textbook claim marked confirmed / refuted / unclear by an explicit rule. With ``--long`` it also
trains the six core models and the one-way encoder on Multi30k with joined pairs, ``--seeds``
times each, scores them on test_2016_flickr and on a long test set (source lengths up to 60
words), and decides claims 5 to 9 again over those seeds.

    python -m study [--budget-minutes M | --steps N] [--long [--seeds K] [--long-steps N]]
                    [--out DIR] [--report PATH] [--quick] [--plan]

It prints its plan (runs, order, minutes) before training; ``--plan`` prints only that.

`run_study` is the whole study; the modules it calls are listed in the package's docstring.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from study.evaluation import collect, collect_seeds
from study.grid import (
    CELLS,
    DEFAULT_MIRROR,
    FLOAT32_WHY,
    REPO,
    TEST_SET,
    Settings,
    load_pairs,
)
from study.long_data import long_test_set, write_long_corpus
from study.plan import format_plan, plan_study
from study.report import write_study
from study.training import RunConflict, run_all, training_machine


def run_study(s: Settings) -> Path:
    """Print the plan, then train, evaluate and report every run of `s`; returns the report's
    path."""
    started = time.perf_counter()
    plan = plan_study(s)
    print(f"study: {s.budget} -> {s.out}\n{format_plan(plan, s)}", flush=True)
    runs = [p.run for p in plan]
    load_pairs(s, "train", 0)  # fetch every split into the cache before workers race for it
    load_pairs(s, "val", 0)
    test = load_pairs(s, TEST_SET, s.test_pairs)
    if s.long:
        write_long_corpus(s)
    machine = training_machine(runs, s)
    run_all(runs, s)
    refs = [tgt for _, tgt in test]
    results = collect([run for run in runs if not run.long], s, refs)
    long_test = long_test_set(test)
    seeds = collect_seeds([run for run in runs if run.long], s, refs, [tgt for _, tgt in long_test])
    report = write_study(results, test, s, machine, seeds, long_test)
    print(f"report: {report} ({(time.perf_counter() - started) / 60:.1f} min)", flush=True)
    return report


QUICK = {  # a smoke test on real data: minutes, not hours
    "steps": 40,
    "long_steps": 40,
    "train_pairs": 3000,
    "valid_pairs": 200,
    "valid_bleu_pairs": 100,
    "test_pairs": 200,
    "grad_pairs": 100,
    "vocab_size": 1000,
    "bootstrap": 200,
}


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    return parse_command(argv)[0]


def parse_command(argv: Sequence[str] | None = None) -> tuple[Settings, bool]:
    """The study's settings, and whether only the plan is wanted (``--plan``)."""
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
    parser.add_argument(
        "--long",
        action="store_true",
        help="also train the core models on Multi30k with joined pairs and test them on long "
        "sentences",
    )
    parser.add_argument("--seeds", type=int, help="seeds of each --long run (default 1)")
    parser.add_argument(
        "--long-steps",
        type=int,
        help=f"optimiser steps per --long run (default {Settings.long_steps})",
    )
    parser.add_argument("--plan", action="store_true", help="print the plan and stop")
    parser.add_argument("--jobs", type=int, default=2, help="models trained at once (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per model")
    parser.add_argument(
        "--cpu-bf16",
        action=argparse.BooleanOptionalAction,
        help="bfloat16 matrix products in training (train.cpu_bf16; about 1.3x the steps per "
        f"second at the study's sizes). Default: off, because {FLOAT32_WHY}",
    )
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
        "long": args.long,
        "cpu_bf16": bool(args.cpu_bf16),
    }
    if args.budget_minutes is not None:
        values |= {"minutes": args.budget_minutes, "steps": 0}
    elif args.steps is not None:
        values["steps"] = args.steps
    for name in ("cells", "test_pairs", "bootstrap", "seeds", "long_steps"):
        if getattr(args, name) is not None:
            values[name] = tuple(args.cells) if name == "cells" else getattr(args, name)
    try:
        return Settings(**values), args.plan
    except ValueError as err:
        parser.error(str(err))


def main(argv: Sequence[str] | None = None) -> None:
    settings, plan_only = parse_command(argv)
    try:
        if plan_only:
            print(format_plan(plan_study(settings), settings))
        else:
            run_study(settings)
    except RunConflict as err:
        raise SystemExit(f"error: {err}") from None
