"""Figures of a training run, drawn with matplotlib's object API (a `Figure` of its own: no
pyplot, no global figure state, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def plot_learning_curves(records: list[dict[str, Any]], path: Path) -> None:
    """Training loss, validation perplexity and validation BLEU against steps, as one PNG."""
    train = [r for r in records if "loss" in r]
    valid = [r for r in records if "valid_bleu" in r]
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    axes[0].set(title="training loss (label-smoothed)", xlabel="step")
    axes[1].plot([r["step"] for r in valid], [r["valid_ppl"] for r in valid], marker="o")
    axes[1].set(title="validation perplexity", xlabel="step", yscale="log")
    axes[2].plot([r["step"] for r in valid], [r["valid_bleu"] for r in valid], marker="o")
    axes[2].set(title="validation BLEU", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    tmp.replace(path)
