"""The study's plan: every run in the order it trains, where it stands (new, interrupted, extend,
finished) and about how many minutes it needs, and the wall-clock time with ``Settings.jobs``
runs at once. `study.cli` prints it before training; ``python -m study --plan`` prints only it.

Minutes are estimates from the study's own timings (below); a run's remaining steps come from
its last checkpoint, so a resumed study plans only what is left.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from seq2seq import checkpoint
from study.evaluation import EVAL_FILE
from study.grid import Run, Settings, run_config, run_dir
from study.training import run_state

# Training minutes per 1000 optimiser steps, validations included, two runs at once on one
# thread each (docs/study.md: 2500 steps on Multi30k, a 2-core AMD EPYC, 2026-11-23).
MINUTES_PER_1000_STEPS = {
    "rnn-none": 5.1,
    "gru-none": 6.8,
    "lstm-none": 6.7,
    "rnn-bahdanau": 7.5,
    "gru-bahdanau": 9.1,
    "lstm-bahdanau": 8.9,
    "gru-dot": 7.8,
    "gru-general": 7.4,
    "gru-bahdanau-uni": 9.4,
}
# Joined pairs cost more per step at the same tokens per batch: fewer, longer sentences run more
# recurrent steps one after another, and attention reads longer sources. Measured with a run on
# Multi30k and one on joined pairs training side by side: x1.03 (rnn-none), x1.14
# (gru-bahdanau); rounded up.
LONG_SLOWDOWN = {"none": 1.1, "attention": 1.25}
# A step with bfloat16 matrix products (Settings.cpu_bf16) takes this share of a float32 one:
# gru-bahdanau-uni's whole 2500-step runs, each beside another training job on the same 2-core
# AMD EPYC, median target tokens/s 4,240 in float32 and 5,662 in bfloat16. At the study's sizes
# (hidden 256, vocabulary 4000) the element-wise work weighs more than in the shipped models,
# where a step takes 0.53 of the time (bench/RESULTS.md).
BF16_STEP_TIME = 0.75
# Evaluation after training (measured: 14 s and 28 s): greedy decoding of the test set and the
# gradient profiles; for a run on joined pairs, the test set and the long test set.
EVAL_MINUTES = {False: 1.0, True: 1.5}


@dataclass(frozen=True)
class PlannedRun:
    run: Run
    state: str  # `study.training.run_state`
    steps: int  # the budget, or 0 for a budget in minutes
    done: int  # steps already trained
    minutes: float  # estimated minutes still needed, evaluation included


def plan_run(run: Run, s: Settings) -> PlannedRun:
    cfg = run_config(run, s)
    folder = run_dir(run, s)
    state = run_state(folder, cfg)
    info = checkpoint.load_config(folder)[1] if state != "new" else {}
    done = int(info.get("step") or 0)
    evaluated = state == "finished" and (folder / EVAL_FILE).is_file()
    minutes = 0.0 if evaluated else EVAL_MINUTES[run.long]
    if state != "finished" and cfg.train.max_steps:
        slowdown = LONG_SLOWDOWN["none" if run.cell.attention == "none" else "attention"]
        per_step = MINUTES_PER_1000_STEPS[run.cell.name] / 1000 * (slowdown if run.long else 1.0)
        per_step *= BF16_STEP_TIME if s.cpu_bf16 else 1.0
        minutes += max(cfg.train.max_steps - done, 0) * per_step
    elif state != "finished":
        minutes += max(cfg.train.max_minutes - info.get("train_seconds", 0.0) / 60, 0.0)
    return PlannedRun(run, state, cfg.train.max_steps, done, minutes)


def plan_study(s: Settings) -> list[PlannedRun]:
    """Every run of `Settings.runs`, in the order they train: the Multi30k grid, then the long
    runs seed by seed (a study stopped early has whole seeds); within each, the longest first,
    so that the short ones fill the last gaps while ``s.jobs`` run at once."""
    groups: dict[tuple[bool, int], list[PlannedRun]] = {}
    for run in s.runs():
        groups.setdefault((run.long, run.seed if run.long else 0), []).append(plan_run(run, s))
    return [p for group in groups.values() for p in sorted(group, key=lambda p: -p.minutes)]


def wall_minutes(minutes: Sequence[float], jobs: int) -> float:
    """Minutes until the last run ends when each, in order, starts as soon as one of ``jobs``
    workers is free."""
    free_at = [0.0] * jobs
    for needed in minutes:
        heapq.heappush(free_at, heapq.heappop(free_at) + needed)
    return max(free_at)


def format_plan(plan: Sequence[PlannedRun], s: Settings) -> str:
    total = wall_minutes([p.minutes for p in plan], s.jobs)
    left = sum(1 for p in plan if p.state != "finished")
    lines = [
        f"Plan: {len(plan)} runs ({left} to train), {s.jobs} at a time with {s.threads} torch "
        f"thread(s) each{', bfloat16 products' if s.cpu_bf16 else ''}: about {total:.0f} "
        "minutes, in this order:",
        f"{'#':>4}  {'run':<30} {'data':<16} {'seed':>4} {'steps':>11}  {'state':<11} {'min':>5}",
    ]
    for number, p in enumerate(plan, 1):
        data = "Multi30k+joined" if p.run.long else "Multi30k"
        steps = f"{p.done}/{p.steps}" if p.steps else f"{s.minutes:g} min"
        lines.append(
            f"{number:>4}  {p.run.label:<30} {data:<16} {p.run.seed:>4} {steps:>11}  "
            f"{p.state:<11} {p.minutes:>5.0f}"
        )
    lines.append(
        f"Then the report: {s.report}. Minutes are estimates from the study's own timings "
        "(two runs at once on a 2-core machine, one thread each); finished runs are skipped."
    )
    return "\n".join(lines)
