"""The study's figures, drawn with matplotlib's object API (no pyplot, no global figures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from seq2seq.metrics import bucket_labels
from study.evaluation import CellResult, SeedResults, bucket_bleus
from study.grid import CORE_CELLS, LONG_EDGES

LONG_CURVE_PNG = "long_bleu_by_length.png"  # also shown near the top of the demo's About tab


def _style(result: CellResult, index: int) -> dict[str, Any]:
    dashed = result.cell.attention != "none"
    return {"color": f"C{index % 10}", "linestyle": "--" if dashed else "-", "label": result.name}


def _values(profile: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in profile]


def plot_learning_curves(results: dict[str, CellResult]) -> Figure:
    fig = Figure(figsize=(11, 4))
    bleu_ax, loss_ax = fig.subplots(1, 2)
    for index, result in enumerate(results.values()):
        valid = [r for r in result.records if "valid_bleu" in r]
        minutes = [r["seconds"] / 60 for r in valid]
        style = _style(result, index)
        bleu_ax.plot(minutes, [r["valid_bleu"] for r in valid], marker=".", **style)
        loss_ax.plot(minutes, [r["valid_loss"] for r in valid], marker=".", **style)
    xlabel = "training time, minutes (validations included)"
    bleu_ax.set(xlabel=xlabel, ylabel="validation BLEU (greedy)", title="validation BLEU")
    loss_ax.set(xlabel=xlabel, ylabel="cross-entropy per token", title="validation loss")
    loss_ax.legend(fontsize=7)
    return _finish(fig, bleu_ax, loss_ax)


def plot_length_curves(results: dict[str, CellResult]) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for index, result in enumerate(results.values()):
        rows = result.evaluation["bleu_by_length"]
        ax.plot(
            [r["bucket"] for r in rows],
            [r["bleu"] for r in rows],
            marker="o",
            **_style(result, index),
        )
    ax.set(xlabel="source length (words)", ylabel="test BLEU (greedy)", title="BLEU by length")
    ax.legend(fontsize=7)
    return _finish(fig, ax)


def plot_long_curves(by_seed: dict[int, SeedResults]) -> Figure:
    """Bahdanau et al. 2015, Fig. 2's form: BLEU against source length in buckets of 10 words,
    one line per core model (its mean over seeds, the band their range)."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    lows = [0, *LONG_EDGES[:-1]]
    middle = {
        label: (low + high + 1) / 2
        # the last label is the empty bucket past the last edge
        for label, low, high in zip(bucket_labels(LONG_EDGES)[:-1], lows, LONG_EDGES, strict=True)
    }
    for name in CORE_CELLS:
        seeds = [results.long[name] for results in by_seed.values() if name in results.long]
        if not seeds:
            continue
        by_bucket = bucket_bleus(seeds)
        buckets = [label for label in middle if label in by_bucket]
        x = [middle[label] for label in buckets]
        cell, attention = seeds[0].cell.cell, seeds[0].cell.attention
        style: dict[str, Any] = {
            "color": f"C{('rnn', 'gru', 'lstm').index(cell)}",
            "linestyle": "-" if attention == "none" else "--",
            "marker": "o" if attention == "none" else "^",
        }
        ax.plot(x, [np.mean(by_bucket[b]) for b in buckets], label=name, **style)
        ax.fill_between(
            x,
            [min(by_bucket[b]) for b in buckets],
            [max(by_bucket[b]) for b in buckets],
            color=style["color"],
            alpha=0.12,
        )
    ax.set(
        xlim=(0, LONG_EDGES[-1]),
        xticks=[0, *LONG_EDGES],
        xlabel="sentence length (source words, buckets of 10)",
        ylabel="BLEU (greedy)",
        title=f"BLEU by sentence length, long test set ({len(by_seed)} seed(s): mean and range)",
    )
    ax.legend(fontsize=7)
    return _finish(fig, ax)


def plot_gradient_flow(results: dict[str, CellResult]) -> Figure:
    fig = Figure(figsize=(11, 8))
    axes = fig.subplots(2, 2)
    panels = [
        ("recurrence", "trained", "encoder recurrence ||dh_T/dx_t||, trained"),
        ("recurrence", "init", "encoder recurrence ||dh_T/dx_t||, at initialisation"),
        ("loss", "trained", "loss ||dloss/dx_t||, trained"),
        ("loss", "init", "loss ||dloss/dx_t||, at initialisation"),
    ]
    for ax, (kind, state, title) in zip(axes.flat, panels, strict=True):
        for index, result in enumerate(results.values()):
            ax.plot(_values(result.profile(state, kind)), **_style(result, index))
        xlabel = (
            "distance from the end (tokens)"
            if kind == "recurrence"
            else "recurrent steps to the nearest final encoder state"
        )
        ax.set(yscale="log", xlabel=xlabel, ylabel="gradient norm", title=title)
    axes[0, 0].legend(fontsize=7)
    return _finish(fig, *axes.flat)


def plot_grad_norms(results: dict[str, CellResult], window: int = 25) -> Figure:
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    for index, result in enumerate(results.values()):
        steps = [r for r in result.records if "grad_norm" in r]
        norms = np.array([r["grad_norm"] for r in steps], dtype=float)
        if len(norms) >= window:  # a running median shows the trend; spikes stay in the table
            norms = np.array(
                [np.median(norms[max(0, i - window + 1) : i + 1]) for i in range(len(norms))]
            )
        ax.plot([r["step"] for r in steps], norms, lw=1, **_style(result, index))
    clip = next(iter(results.values())).cfg.train.clip_norm
    ax.axhline(clip, color="black", lw=0.8, linestyle=":", label=f"clip norm {clip:g}")
    ax.set(
        yscale="log",
        xlabel="step",
        ylabel="gradient norm before clipping",
        title=f"gradient norm over training (running median of {window} steps)",
    )
    ax.legend(fontsize=7)
    return _finish(fig, ax)


def _finish(fig: Figure, *axes: Axes) -> Figure:
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_plots(
    results: dict[str, CellResult], image_dir: Path, by_seed: dict[int, SeedResults]
) -> dict[str, str]:
    """Write the PNGs (the long-sentence curve if there are runs on joined pairs); their paths
    relative to the report, by section."""
    image_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "learning_curves": plot_learning_curves(results),
        "bleu_by_length": plot_length_curves(results),
        "gradient_flow": plot_gradient_flow(results),
        "grad_norm": plot_grad_norms(results),
    }
    if by_seed:
        figures[LONG_CURVE_PNG.removesuffix(".png")] = plot_long_curves(by_seed)
    paths = {}
    for name, fig in figures.items():
        fig.savefig(image_dir / f"{name}.png", dpi=100)
        paths[name] = f"{image_dir.name}/{name}.png"
    return paths
