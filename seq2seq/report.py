"""Evaluation reports a person reads: a JSON record, a Markdown page and their plots.

`build_report` turns outputs into a JSON-able dict; `write_report` renders it to a JSON file, a
Markdown page (`report_markdown.render_markdown`), attention heatmaps and a BLEU-by-length bar
chart, named by `rundir.ReportDir`. Systems are given in order of
preference: the last one (beam search, when it ran) is the primary system that examples and
significance tests are about.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from seq2seq.metrics import (
    bleu_by_length,
    check_parallel,
    length_ratio,
    paired_significance,
    score_corpus,
    sentence_chrf,
    tokenized_lowercase_bleu,
)
from seq2seq.report_markdown import render_markdown
from seq2seq.rundir import ReportDir


@dataclass
class SystemRun:
    """One system's outputs and how long it took to produce them."""

    name: str
    hypotheses: list[str]
    seconds: float
    output_tokens: int


@dataclass
class AttentionExample:
    """Attention of one translation: weights (len(output_pieces), len(source_pieces))."""

    source_pieces: list[str]
    output_pieces: list[str]
    weights: np.ndarray | list[list[float]] = field(repr=False)

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=float)
        expected = (len(self.output_pieces), len(self.source_pieces))
        if self.weights.shape != expected:
            raise ValueError(
                f"attention weights have shape {self.weights.shape}, expected {expected} "
                "(output pieces, source pieces)"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_pieces": self.source_pieces,
            "output_pieces": self.output_pieces,
            "weights": np.round(self.weights, 4).tolist(),
        }


# ---------------------------------------------------------------------------------------------
# Building the report dict


def _speed(run: SystemRun, num_sentences: int) -> dict[str, float | int | None]:
    per_second = run.seconds > 0
    return {
        "seconds": run.seconds,
        "output_tokens": run.output_tokens,
        "sentences_per_second": num_sentences / run.seconds if per_second else None,
        "tokens_per_second": run.output_tokens / run.seconds if per_second else None,
    }


def _system_section(
    run: SystemRun, sources: Sequence[str], references: Sequence[str], n_bootstrap: int
) -> dict[str, Any]:
    hyps = run.hypotheses
    scores = score_corpus(hyps, references, n_bootstrap)
    return {
        "name": run.name,
        "scores": {key: asdict(score) for key, score in scores.items()},
        "bleu_tok_lc": asdict(tokenized_lowercase_bleu(hyps, references, n_bootstrap)),
        "speed": _speed(run, len(hyps)),
        "length_ratio": length_ratio(hyps, references),
        "bleu_by_length": bleu_by_length(sources, hyps, references),
    }


def _example(
    index: int,
    score: float,
    sources: Sequence[str],
    references: Sequence[str],
    primary: SystemRun,
    others: Sequence[SystemRun],
) -> dict[str, Any]:
    return {
        "index": index,
        "chrf": score,
        "source": sources[index],
        "reference": references[index],
        "output": primary.hypotheses[index],
        "other_outputs": {run.name: run.hypotheses[index] for run in others},
    }


def _examples_section(
    sources: Sequence[str],
    references: Sequence[str],
    systems: Sequence[SystemRun],
    num_examples: int,
    seed: int,
) -> dict[str, Any]:
    primary, others = systems[-1], systems[:-1]
    scores = sentence_chrf(primary.hypotheses, references)
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))  # best first, stable
    best = ranked[:num_examples]
    worst = [i for i in reversed(ranked) if i not in best][:num_examples]  # worst first
    rest = sorted(set(ranked) - set(best) - set(worst))
    chosen = random.Random(seed).sample(rest, min(num_examples, len(rest)))

    def examples(indices: list[int]) -> list[dict[str, Any]]:
        return [_example(i, scores[i], sources, references, primary, others) for i in indices]

    return {
        "system": primary.name,
        "ranked_by": "sentence-level chrF",
        "best": examples(best),
        "worst": examples(worst),
        "random": examples(sorted(chosen)),
    }


def _jsonable(value: Any) -> Any:
    # model_info comes from elsewhere (paths, numpy numbers): keep what JSON can say as is.
    return json.loads(json.dumps(value, default=str))


def build_report(
    sources: Sequence[str],
    references: Sequence[str],
    systems: Sequence[SystemRun],
    *,
    perplexity: float | None,
    model_info: dict[str, Any],
    attention_examples: Sequence[AttentionExample],
    compare: tuple[str, list[str]] | None = None,
    n_bootstrap: int = 1000,
    num_examples: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Scores, speed, examples and model facts of one evaluation, as a JSON-able dict.

    Args:
        systems: in order of preference; the last (e.g. beam search) is the primary system.
        perplexity: of the model on the references, if known.
        model_info: parameters, configuration, training time, checkpoint path, ...
        attention_examples: stored with their weights so the JSON is complete.
        compare: (name, hypotheses) of another output, tested against the primary system by
            paired bootstrap resampling (n_bootstrap resamples, 1000 when n_bootstrap is 0).
        n_bootstrap: resamples for the 95% intervals; 0 gives none.
        num_examples: how many best, worst and random examples.
        seed: for the random examples.
    """
    if not systems:
        raise ValueError("no systems to report on: give at least one SystemRun")
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    for run in systems:
        check_parallel(run.hypotheses, references)
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    primary = systems[-1]
    significance = None
    if compare is not None:
        name, hyps = compare
        # A comparison was asked for, so it resamples even when intervals are off (n_bootstrap 0).
        significance = paired_significance(
            references,
            hyps,
            primary.hypotheses,
            names=(name, primary.name),
            n=n_bootstrap if n_bootstrap > 1 else 1000,
        )
    return {
        "num_sentences": len(sources),
        "primary_system": primary.name,
        "systems": [_system_section(run, sources, references, n_bootstrap) for run in systems],
        "perplexity": perplexity,
        "examples": _examples_section(sources, references, systems, num_examples, seed),
        "model": _jsonable(model_info),
        "significance": significance,
        "attention": [example.to_dict() for example in attention_examples],
    }


# ---------------------------------------------------------------------------------------------
# Plots


def plot_attention(example: AttentionExample) -> Figure:
    """Heatmap of attention weights: x = source subwords, y = output subwords.

    Built with the object-oriented API (no pyplot), so no global figure is left open.
    """
    weights = np.asarray(example.weights)
    num_out, num_src = weights.shape
    fig = Figure(figsize=(max(4.0, 0.35 * num_src + 2), max(3.0, 0.35 * num_out + 1.5)))
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(num_src), example.source_pieces, rotation=90)
    ax.set_yticks(range(num_out), example.output_pieces)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def plot_bleu_by_length(systems: Sequence[dict[str, Any]]) -> Figure:
    """Grouped bars: corpus BLEU per source-length bucket, one bar per system."""
    buckets = [row["bucket"] for row in systems[0]["bleu_by_length"]]
    width = 0.8 / len(systems)
    fig = Figure(figsize=(6.0, 3.5))
    ax = fig.add_subplot()
    for k, system in enumerate(systems):
        positions = [i + k * width for i in range(len(buckets))]
        ax.bar(
            positions,
            [row["bleu"] for row in system["bleu_by_length"]],
            width,
            label=system["name"],
        )
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(buckets))], buckets)
    ax.set_xlabel("source length (words)")
    ax.set_ylabel("BLEU")
    ax.legend()
    fig.tight_layout()
    return fig


def _save(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=100)
    return path.name  # links in the Markdown page are relative to it


def write_report(
    report: dict[str, Any], report_dir: Path, attention_examples: Sequence[AttentionExample]
) -> tuple[Path, Path]:
    """Writes the report's JSON, Markdown and PNGs into report_dir (named by `ReportDir`);
    returns the (json, md) paths."""
    files = ReportDir(report_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    images = [
        _save(plot_attention(example), files.attention(number))
        for number, example in enumerate(attention_examples, 1)
    ]
    chart = _save(plot_bleu_by_length(report["systems"]), files.bleu_by_length)
    json_path, md_path = files.json, files.markdown
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(report, images, chart) + "\n", encoding="utf-8")
    return json_path, md_path
