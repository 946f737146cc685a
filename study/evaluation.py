"""The study, one finished run at a time: test scores with their intervals, BLEU by source
length and gradient flow, or, for a run on joined pairs, the same scores on the long test set
instead of gradient flow (cached in the run directory); and what its training log says."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sacrebleu import BLEU

from seq2seq import checkpoint
from seq2seq.config import RunConfig
from seq2seq.corpus import Pair
from seq2seq.data import ParallelDataset, TokenBatchSampler
from seq2seq.metrics import bleu_by_length, score_corpus, sentence_statistics
from seq2seq.model import Seq2Seq
from seq2seq.session import build_model
from seq2seq.tokenizer import Tokenizer
from seq2seq.translate import Translator
from study.gradflow import DistanceFrom, gradient_by_distance, recurrence_gradient, text_windows
from study.grid import (
    LENGTH_EDGES,
    LONG_EDGES,
    TEST_SET,
    Cell,
    Run,
    Settings,
    load_pairs,
    run_dir,
)
from study.long_data import PER_BUCKET, TEST_MAX_K, long_test_set

MIN_POSITIONS = 20  # source positions a distance needs before its mean gradient is shown
EVAL_FILE = "study_eval.json"  # a run's scores and gradient profiles, reused while it holds


def gradient_profiles(
    model: Seq2Seq, tokenizer: Tokenizer, pairs: list[Pair], s: Settings
) -> dict[str, list[float | None]]:
    """The loss's gradient by distance on validation batches, and the encoder recurrence's own
    gradient on windows of validation text; see `study.gradflow`."""
    data = ParallelDataset.from_pairs(tokenizer, [(src, tgt) for src, tgt in pairs if src])
    sampler = TokenBatchSampler(data.src_lengths, data.tgt_lengths, s.max_tokens, shuffle=False)
    batches = [data.collate(indices) for indices in sampler.batches(0)]
    measure_from: DistanceFrom = "final_state" if model.cfg.bidirectional else "end"
    loss = gradient_by_distance(model, batches, measure_from, min_count=MIN_POSITIONS)
    windows = text_windows(data.src, s.window, s.windows)  # (N, window)
    with torch.no_grad():
        embedded = model.encoder.embedding(windows)  # (N, window, E)
    recurrence = recurrence_gradient(model.encoder.rnn, embedded).flip(0)  # by distance
    return {"loss": _finite_list(loss), "recurrence": _finite_list(recurrence)}


def _finite_list(values: torch.Tensor) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def evaluate_run(run: Run, s: Settings) -> dict[str, Any]:
    """Test scores and BLEU by length of a trained run, with its gradient profiles, or, for a run
    on joined pairs, the long test set's scores under ``"long"``; cached in its directory as long
    as the run and the evaluation settings are the same."""
    folder = run_dir(run, s)
    cfg, info = checkpoint.load_config(folder)
    key: dict[str, Any] = {
        "step": info.get("step"),
        "test_pairs": s.test_pairs,
        "bootstrap": s.bootstrap,
        "grad_pairs": s.grad_pairs,
        "window": [s.window, s.windows],
    }
    if run.long:
        key["long_test"] = {"edges": list(LONG_EDGES), "max_k": TEST_MAX_K, "kept": PER_BUCKET}
    cache = folder / EVAL_FILE
    if cache.is_file():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached
    torch.set_num_threads(s.threads)
    translator = Translator.from_run(folder, device="cpu")
    assert isinstance(translator.model, Seq2Seq)  # a study run is one model, not an ensemble
    test = load_pairs(s, TEST_SET, s.test_pairs)
    result = {"key": key, "name": run.name, **score_translations(translator, test, LENGTH_EDGES, s)}
    if run.long:
        result["long"] = score_translations(translator, long_test_set(test), LONG_EDGES, s)
    else:
        valid = load_pairs(s, "val", s.grad_pairs)
        initial = build_model(cfg, torch.device("cpu")).eval()  # the run's very first weights
        result["gradients"] = {
            "trained": gradient_profiles(translator.model, translator.tokenizer, valid, s),
            "init": gradient_profiles(initial, translator.tokenizer, valid, s),
        }
    checkpoint.write_text_atomically(cache, json.dumps(result, indent=1, ensure_ascii=False))
    return result


def score_translations(
    translator: Translator, test: list[Pair], edges: Sequence[int], s: Settings
) -> dict[str, Any]:
    """Greedy translations of a test set: ``"test"`` (`score_test_set`), ``"bleu_by_length"``
    over ``edges``, and the ``"hypotheses"``."""
    sources, refs = [src for src, _ in test], [tgt for _, tgt in test]
    hyps = [t.text for t in translator.translate(sources, beam_size=1, batch_size=64)]
    return {
        "test": score_test_set(hyps, refs, s.bootstrap),
        "bleu_by_length": bleu_by_length(sources, hyps, refs, edges),
        "hypotheses": hyps,
    }


def score_test_set(hyps: list[str], refs: list[str], n: int) -> dict[str, dict[str, Any]]:
    """BLEU and chrF with their 95% bootstrap intervals over the test sentences (n resamples) and
    signatures, as `seq2seq.metrics.score_corpus` gives them."""
    scores = score_corpus(hyps, refs, n)
    return {key: dataclasses.asdict(scores[key]) for key in ("bleu", "chrf")}


# ---------------------------------------------------------------------------------------------
# What the training logs say


def training_speed(records: list[dict[str, Any]], checkpoint_every: int) -> dict[str, Any]:
    """Tokens/s and seconds per epoch of pure training, from a log with one record per step.

    Steps right after a validation or a checkpoint carry that pause and are left out. The rate
    is the median of the remaining steps' rates, so a minority of steps slowed by something else
    on the machine does not move it; an epoch takes its steps' mean tokens at that rate.
    """
    steps = [r for r in records if "tokens_per_s" in r]
    paused = {r["step"] + 1 for r in records if "valid_bleu" in r}
    clean = [
        r
        for r in steps
        if r["step"] not in paused and (r["step"] - 1) % checkpoint_every and r["tokens_per_s"] > 0
    ]
    if not clean:
        return {"tokens_per_s": None, "seconds_per_epoch": None, "steps_per_epoch": None}
    rate = float(np.median([r["tokens_per_s"] for r in clean]))
    tokens_per_step = float(np.mean([r["tokens"] for r in clean]))
    epoch_done = any(r["epoch"] >= 1 for r in steps)
    steps_per_epoch = sum(1 for r in steps if r["epoch"] == 0) if epoch_done else None
    return {
        "tokens_per_s": rate,
        "seconds_per_epoch": steps_per_epoch * tokens_per_step / rate if steps_per_epoch else None,
        "steps_per_epoch": steps_per_epoch,
    }


def grad_norm_summary(records: list[dict[str, Any]], clip_norm: float) -> dict[str, float]:
    """Gradient norm before clipping over training (the first 100 steps' transient left out
    when there are more than 200)."""
    norms = np.array([r["grad_norm"] for r in records if "grad_norm" in r], dtype=float)
    if len(norms) > 200:
        norms = norms[100:]
    if len(norms) == 0:
        return {}
    median, p99 = np.percentile(norms, [50, 99])
    return {
        "median": float(median),
        "p99": float(p99),
        "max": float(norms.max()),
        "spikiness": float(p99 / median) if median > 0 else float("inf"),
        "clipped": float(np.mean(norms > clip_norm)) if clip_norm > 0 else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Everything about one cell that the report reads


@dataclass
class CellResult:
    cell: Cell
    cfg: RunConfig
    info: dict[str, Any]
    records: list[dict[str, Any]]
    evaluation: dict[str, Any]
    stats: np.ndarray = field(repr=False)  # (N, 10) BLEU statistics of its test output

    @property
    def name(self) -> str:
        return self.cell.name

    @property
    def speed(self) -> dict[str, Any]:
        return training_speed(self.records, self.cfg.train.checkpoint_every)

    @property
    def epochs(self) -> float | None:
        """Epochs trained; None before the first epoch ends (its length is unknown)."""
        per_epoch = self.speed["steps_per_epoch"]
        return (self.info.get("step") or 0) / per_epoch if per_epoch else None

    @property
    def grad_norms(self) -> dict[str, float]:
        return grad_norm_summary(self.records, self.cfg.train.clip_norm)

    def profile(self, state: str, kind: str) -> list[float | None]:
        return self.evaluation["gradients"][state][kind]

    def ratio(self, state: str, kind: str, distance: int) -> float | None:
        """Gradient at `distance` over gradient at distance 0."""
        values = self.profile(state, kind)
        if distance >= len(values):
            return None
        near, far = values[0], values[distance]
        return None if not near or far is None else far / near


def cell_result(
    run: Run, s: Settings, evaluation: dict[str, Any], refs: Sequence[str]
) -> CellResult:
    """A run as the report reads it, scored on the test set whose ``evaluation`` (an
    `evaluate_run` result or its ``"long"`` part) and references ``refs`` are given."""
    folder = run_dir(run, s)
    cfg, info = checkpoint.load_config(folder)
    stats = sentence_statistics(BLEU(), evaluation["hypotheses"], refs)
    return CellResult(run.cell, cfg, info, checkpoint.read_log(folder), evaluation, stats)


def collect(runs: Sequence[Run], s: Settings, refs: Sequence[str]) -> dict[str, CellResult]:
    """The runs on Multi30k, by cell name."""
    return {run.cell.name: cell_result(run, s, evaluate_run(run, s), refs) for run in runs}


@dataclass
class SeedResults:
    """One seed's runs on joined pairs, by cell name: scored on the test set and on the long
    test set."""

    test: dict[str, CellResult] = field(default_factory=dict)
    long: dict[str, CellResult] = field(default_factory=dict)


def bucket_bleus(results: Sequence[CellResult]) -> dict[str, list[float]]:
    """Each length bucket's BLEU in every one of ``results`` (a model's seeds), by bucket."""
    by_bucket: dict[str, list[float]] = {}
    for result in results:
        for row in result.evaluation["bleu_by_length"]:
            by_bucket.setdefault(row["bucket"], []).append(row["bleu"])
    return by_bucket


def collect_seeds(
    runs: Sequence[Run], s: Settings, refs: Sequence[str], long_refs: Sequence[str]
) -> dict[int, SeedResults]:
    """The runs on joined pairs, by seed."""
    by_seed: dict[int, SeedResults] = {}
    for run in runs:
        evaluation = evaluate_run(run, s)
        seed = by_seed.setdefault(run.seed, SeedResults())
        seed.test[run.cell.name] = cell_result(run, s, evaluation, refs)
        seed.long[run.cell.name] = cell_result(run, s, evaluation["long"], long_refs)
    return by_seed
