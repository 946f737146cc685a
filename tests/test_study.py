"""bench/study.py and its study_* modules: the whole study on a tiny budget, its resuming, its
statistics and its rules."""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from sacrebleu import BLEU, CHRF

from seq2seq import checkpoint
from seq2seq.config import RunConfig
from seq2seq.metrics import bootstrap, sentence_statistics

BENCH = Path(__file__).resolve().parents[1] / "bench"
SECTIONS = (
    "## Setup",
    "## Results",
    "## Learning curves",
    "## BLEU by source length",
    "## Gradient flow",
    "## Gradient norm during training",
    "## Conclusions",
)


@pytest.fixture(scope="module")
def bench_on_path() -> Iterator[None]:
    """bench/ is not a package; it goes on sys.path (which spawned workers inherit)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def study(bench_on_path: None) -> ModuleType:
    """The command line and the running of the runs."""
    return importlib.import_module("study")


@pytest.fixture(scope="module")
def grid(bench_on_path: None) -> ModuleType:
    return importlib.import_module("study_grid")


@pytest.fixture(scope="module")
def evaluation(bench_on_path: None) -> ModuleType:
    return importlib.import_module("study_eval")


@pytest.fixture(scope="module")
def claims(bench_on_path: None) -> ModuleType:
    return importlib.import_module("study_claims")


def tiny_settings(grid: ModuleType, root: Path, multi30k_dir: Path, **changes: Any) -> Any:
    values = {
        "out": root / "out",
        "report": root / "docs" / "study.md",
        "mirror": str(multi30k_dir),
        "data_dir": str(root / "data"),
        "steps": 3,
        "jobs": 1,
        "embed_size": 16,
        "hidden_size": 32,
        "vocab_size": 600,
        "train_pairs": 300,
        "valid_pairs": 20,
        "valid_bleu_pairs": 20,
        "test_pairs": 60,
        "grad_pairs": 20,
        "window": 12,
        "windows": 4,
        "bootstrap": 50,
    }
    return grid.Settings(**(values | changes))


@pytest.fixture(scope="module")
def tiny_study(study, grid, multi30k_dir, tmp_path_factory) -> Any:
    """Every cell of the grid, three steps each, on a slice of Multi30k."""
    settings = tiny_settings(grid, tmp_path_factory.mktemp("study"), multi30k_dir)
    study.run_study(settings)
    return settings


def run_files(settings: Any, name: str) -> Path:
    return settings.out / "runs" / name


def log_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in checkpoint.read_log(run_dir) if "tokens_per_s" in r]


@pytest.mark.slow
def test_study_writes_every_section_with_its_images(grid, claims, tiny_study):
    text = tiny_study.report.read_text(encoding="utf-8")
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(images) == 4
    for image in images:
        assert (tiny_study.report.parent / image).read_bytes()[:4] == b"\x89PNG"
    for cell in grid.GRID:
        assert f"| {cell.name} | {cell.cell} | {cell.attention} |" in text
        assert log_steps(run_files(tiny_study, cell.name)) == [1, 2, 3]
    verdicts = re.findall(r"^### \d+\. .*: (\w+)$", text, flags=re.MULTILINE)
    assert len(verdicts) == len(claims.CLAIMS) and set(verdicts) <= set(claims.VERDICTS)
    assert "A GRU has fewer parameters than an LSTM: confirmed" in text  # counted, not measured
    assert "**3 optimiser steps per model**" in text
    summary = json.loads((tiny_study.out / "study.json").read_text(encoding="utf-8"))
    assert set(summary["models"]) == set(grid.CELLS)


@pytest.mark.slow
def test_rerunning_skips_finished_runs_and_resumes_the_others(study, grid, tiny_study):
    # 1. Everything finished: nothing trains again (two workers, as the real study runs).
    states = {c.name: (run_files(tiny_study, c.name) / "last.pt").stat() for c in grid.GRID}
    logs = {c.name: checkpoint.read_log(run_files(tiny_study, c.name)) for c in grid.GRID}
    machine_file = tiny_study.out / study.MACHINE_FILE
    machine_file.write_text("the machine it trained on\n", encoding="utf-8")
    study.run_study(dataclasses.replace(tiny_study, jobs=2))
    for cell in grid.GRID:
        run_dir = run_files(tiny_study, cell.name)
        assert (run_dir / "last.pt").stat().st_mtime_ns == states[cell.name].st_mtime_ns
        assert checkpoint.read_log(run_dir) == logs[cell.name]
    # ... and the report names the machine the runs trained on, not the one rewriting it
    assert "Machine: the machine it trained on" in tiny_study.report.read_text(encoding="utf-8")

    # 2. A run killed after its last checkpoint is resumed, not trained from scratch.
    killed = run_files(tiny_study, "gru-none")
    cfg, info = checkpoint.load_config(killed)
    checkpoint.save_config(killed, cfg, {**info, "stopped": ""})
    assert study.run_state(killed, grid.run_config(grid.CELLS["gru-none"], tiny_study)) == (
        "interrupted"
    )
    one = dataclasses.replace(tiny_study, cells=("gru-none",))
    study.run_study(one)
    assert "the machine it trained on" not in machine_file.read_text(encoding="utf-8")
    assert checkpoint.read_log(killed)[:3] == logs["gru-none"][:3]
    assert checkpoint.load_config(killed)[1]["stopped"]

    # 3. A larger budget continues where the run stopped.
    study.run_study(dataclasses.replace(one, steps=5))
    assert log_steps(killed) == [1, 2, 3, 4, 5]
    assert checkpoint.read_log(killed)[:3] == logs["gru-none"][:3]


@pytest.mark.slow
def test_run_state_tells_the_cases_apart(study, grid, tiny_study, tmp_path):
    cell = grid.CELLS["rnn-none"]
    run_dir = run_files(tiny_study, cell.name)
    cfg = grid.run_config(cell, tiny_study)
    assert study.run_state(run_dir, cfg) == "finished"
    longer = grid.run_config(cell, dataclasses.replace(tiny_study, steps=9))
    assert study.run_state(run_dir, longer) == "extend"
    assert study.run_state(tmp_path / "nothing", cfg) == "new"
    other = grid.run_config(grid.CELLS["lstm-none"], tiny_study)
    with pytest.raises(ValueError, match="another model"):
        study.run_state(run_dir, other)


def test_test_set_scores_carry_intervals_and_signatures(evaluation):
    hyps = ["a dog runs on the grass .", "two men talk", "a red car", "~~~~"]
    refs = ["a dog is running on the grass .", "two men are talking", "the red car", "a cat"]
    scores = evaluation.score_test_set(hyps, refs, n=100)
    for key, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        score = scores[key]
        assert score["score"] == pytest.approx(metric.corpus_score(hyps, [refs]).score)
        assert score["ci_low"] <= score["score"] <= score["ci_high"]
        assert "nrefs:1" in score["signature"]
    degenerate = evaluation.score_test_set(["~~~~"] * 5, refs + ["x"], n=20)
    assert degenerate["chrf"]["score"] == 0.0


def test_bleu_gain_from_sentence_statistics(claims):
    hyps = ["a dog runs on the grass .", "two men talk", "a red car"]
    worse = ["a dog", "men", "car"]
    refs = ["a dog is running on the grass .", "two men are talking", "the red car"]
    stats, worse_stats = (sentence_statistics(BLEU(), h, refs) for h in (hyps, worse))
    bleu = BLEU().corpus_score(hyps, [refs]).score
    assert claims.corpus_bleu(stats.sum(0)) == pytest.approx(bleu)
    expected = bleu - BLEU().corpus_score(worse, [refs]).score
    assert claims.gain(stats, worse_stats, np.arange(3)) == pytest.approx(expected)
    same = np.ones((5, 10), dtype=np.int64)
    no_gain = bootstrap(lambda g: claims.gain(same, same, g[0]), [np.arange(5)], n=20)
    assert no_gain is not None and (no_gain.value, no_gain.low, no_gain.high) == (0.0, 0.0, 0.0)


def test_training_speed_counts_only_clean_steps(evaluation):
    records = [
        {"step": s, "epoch": 0 if s <= 6 else 1, "tokens": 100, "tokens_per_s": 100.0}
        for s in range(1, 9)
    ]
    records[3]["tokens_per_s"] = 10.0  # step 4 follows the validation at step 3: 10 s, left out
    records[5]["tokens_per_s"] = 20.0  # step 6 follows the checkpoint at step 5: left out
    records.insert(3, {"step": 3, "epoch": 0, "valid_bleu": 1.0, "valid_loss": 5.0})
    speed = evaluation.training_speed(records, checkpoint_every=5)
    assert speed == {"tokens_per_s": 100.0, "seconds_per_epoch": 6.0, "steps_per_epoch": 6}
    assert evaluation.training_speed(records[:2], 5)["seconds_per_epoch"] is None  # no epoch done


def test_training_speed_ignores_a_minority_of_slowed_steps(evaluation):
    records = [
        {"step": s, "epoch": (s - 1) // 10, "tokens": 100, "tokens_per_s": 100.0}
        for s in range(1, 31)
    ]
    for record in records[5:12]:  # something else ran on the machine for a while
        record["tokens_per_s"] = 60.0
    speed = evaluation.training_speed(records, checkpoint_every=1000)
    assert speed["tokens_per_s"] == 100.0 and speed["seconds_per_epoch"] == 10.0


def fake_result(grid: ModuleType, evaluation: ModuleType, name: str, **measured: Any) -> Any:
    gradients = {
        state: {
            "recurrence": measured.get("recurrence", [1.0] * 21),
            "loss": measured.get("loss", [1.0]),
        }
        for state in ("trained", "init")
    }
    return evaluation.CellResult(
        grid.CELLS[name],
        RunConfig(),
        {"parameters": measured.get("parameters", 1000)},
        measured.get("records", []),
        {"gradients": gradients},
        np.zeros((4, 10), dtype=np.int64),
    )


def evidence(claims: ModuleType, results: dict[str, Any]) -> Any:
    rows = np.arange(4)
    return claims.Evidence(results, rows[:2], rows[2:], rows, n=10, distance=20)


@pytest.mark.parametrize(
    ("rnn_decay", "gated_decay", "verdict"),
    [(0.5, 0.95, "confirmed"), (0.5, 0.85, "unclear"), (0.99, 0.95, "refuted")],
)
def test_vanishing_claim_follows_its_rule(
    grid, evaluation, claims, rnn_decay, gated_decay, verdict
):
    decays = {"rnn-none": rnn_decay, "gru-none": gated_decay, "lstm-none": gated_decay}
    results = {
        name: fake_result(grid, evaluation, name, loss=[decay**d for d in range(10)])
        for name, decay in decays.items()
    }
    claim = claims.claim_vanishing(evidence(claims, results))
    # L at d=6: rnn 0.016 or 0.94; gated 0.74 (does not vanish) or 0.38 (vanishes too)
    assert claim.verdict == verdict
    assert "%" in claim.plain


def test_claims_without_their_cells_are_unclear_and_say_why(claims):
    decided = [decide(evidence(claims, {})) for decide in claims.CLAIMS]
    assert {c.verdict for c in decided} == {"unclear"}
    assert all("not measured" in c.evidence[0] for c in decided)


@pytest.mark.parametrize(("gru", "verdict"), [(900, "confirmed"), (1000, "refuted")])
def test_parameter_claim_counts(grid, evaluation, claims, gru, verdict):
    results = {
        "gru-none": fake_result(grid, evaluation, "gru-none", parameters=gru),
        "lstm-none": fake_result(grid, evaluation, "lstm-none", parameters=1000),
    }
    assert claims.claim_gru_parameters(evidence(claims, results)).verdict == verdict


def test_command_line_budgets_and_quick_mode(study, grid):
    quick = study.parse_settings(["--quick", "--cells", "rnn-none", "gru-none"])
    assert quick.steps == study.QUICK["steps"] and quick.cells == ("rnn-none", "gru-none")
    assert quick.report == quick.out / "study.md" and quick.out.name == "study-quick"
    full = study.parse_settings(["--budget-minutes", "12.5", "--out", "somewhere"])
    assert (full.minutes, full.steps, full.out) == (12.5, 0, Path("somewhere"))
    assert full.report.name == "study.md" and full.report.parent.name == "docs"
    assert study.parse_settings([]).steps == grid.Settings().steps > 0
    with pytest.raises(SystemExit):
        study.parse_settings(["--steps", "10", "--budget-minutes", "3"])
    with pytest.raises(SystemExit):
        study.parse_settings(["--cells", "transformer"])
    with pytest.raises(ValueError, match="exactly one budget"):
        grid.Settings(steps=0)
