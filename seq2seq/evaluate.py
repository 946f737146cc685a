"""Evaluate a translator on a test set: decode greedily and with beam search, time both, score them,
and write a report with attention plots and the hypotheses.

The translator is anything that satisfies `TranslatorLike` (`seq2seq.translate.Translator` does),
so this module does not depend on the model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from seq2seq.report import AttentionExample, SystemRun, build_report, write_report
from seq2seq.rundir import ReportDir

ATTENTION_MAX_WORDS = 25  # longer sentences make unreadable heatmaps


class TranslationLike(Protocol):
    """What evaluation reads from one translation."""

    @property
    def text(self) -> str: ...
    @property
    def source_pieces(self) -> list[str]: ...
    @property
    def output_pieces(self) -> list[str]: ...
    @property
    def attention(self) -> np.ndarray | None: ...  # (len(output_pieces), len(source_pieces))


class TranslatorLike(Protocol):
    """The part of `seq2seq.translate.Translator` that evaluation uses."""

    def translate(
        self,
        sentences: list[str],
        beam_size: int = 5,
        nbest: int = 1,
        length_penalty: float = 1.0,
        batch_size: int = 64,
        with_attention: bool = False,
    ) -> Sequence[TranslationLike]: ...

    def perplexity(self, sources: list[str], references: list[str]) -> float: ...

    def describe(self) -> dict[str, Any]: ...


def decode_timed(
    translator: TranslatorLike,
    sources: list[str],
    name: str,
    *,
    beam_size: int,
    length_penalty: float,
    batch_size: int,
) -> SystemRun:
    """Translates sources and times it; output tokens are whitespace words of the output text,
    so speeds compare across tokenizers."""
    start = time.perf_counter()
    translations = translator.translate(
        sources, beam_size=beam_size, length_penalty=length_penalty, batch_size=batch_size
    )
    seconds = time.perf_counter() - start
    hyps = [t.text for t in translations]
    return SystemRun(name, hyps, seconds, output_tokens=sum(len(h.split()) for h in hyps))


def pick_attention_indices(sources: Sequence[str], count: int) -> list[int]:
    """The first `count` sentences short enough for a readable heatmap, else the first ones."""
    short = [i for i, s in enumerate(sources) if len(s.split()) <= ATTENTION_MAX_WORDS]
    return (short or list(range(len(sources))))[:count]


def attention_examples(
    translator: TranslatorLike, sentences: list[str], *, beam_size: int, length_penalty: float
) -> list[AttentionExample]:
    """Attention of the given sentences' translations; none for a model without attention."""
    if not sentences:
        return []
    translations = translator.translate(
        sentences, beam_size=beam_size, length_penalty=length_penalty, with_attention=True
    )
    return [
        AttentionExample(list(t.source_pieces), list(t.output_pieces), t.attention)
        for t in translations
        if t.attention is not None
    ]


def write_hypotheses(path: Path, hypotheses: Sequence[str]) -> None:
    """One hypothesis a line, the format `read_hypotheses` and sacrebleu's CLI read."""
    path.write_text("".join(f"{h}\n" for h in hypotheses), encoding="utf-8")


def read_hypotheses(path: Path) -> list[str]:
    """Hypotheses written by an earlier evaluation, for comparing against them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: `python -m seq2seq evaluate` writes "
            f"{ReportDir.HYPOTHESES_FILE} into its report directory"
        )
    return path.read_text(encoding="utf-8").splitlines()


def evaluate_translator(
    translator: TranslatorLike,
    sources: list[str],
    references: list[str],
    *,
    report_dir: Path,
    beam_size: int = 5,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    compare_hyps: list[str] | None = None,
    compare_name: str = "compare",
    n_bootstrap: int = 1000,
    num_attention: int = 3,
) -> dict[str, Any]:
    """Greedy and (if beam_size > 1) beam decoding, scored and written to report_dir.

    Writes the report (`ReportDir`: JSON, Markdown, PNGs), the primary hypotheses (beam, or
    greedy when beam_size is 1) and the greedy ones. compare_hyps, e.g. from `read_hypotheses`,
    are tested against the primary output. Returns the report dict.
    """
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    if not sources:
        raise ValueError("no sentences to evaluate")
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if compare_hyps is not None and len(compare_hyps) != len(sources):
        raise ValueError(
            f"{len(compare_hyps)} hypotheses to compare against but {len(sources)} sources"
        )
    runs = [
        decode_timed(
            translator,
            sources,
            "greedy",
            beam_size=1,
            length_penalty=length_penalty,
            batch_size=batch_size,
        )
    ]
    if beam_size > 1:
        runs.append(
            decode_timed(
                translator,
                sources,
                f"beam-{beam_size}",
                beam_size=beam_size,
                length_penalty=length_penalty,
                batch_size=batch_size,
            )
        )
    files = ReportDir(report_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    write_hypotheses(files.hypotheses, runs[-1].hypotheses)
    write_hypotheses(files.greedy_hypotheses, runs[0].hypotheses)
    indices = pick_attention_indices(sources, num_attention)
    examples = attention_examples(
        translator,
        [sources[i] for i in indices],
        beam_size=beam_size,
        length_penalty=length_penalty,
    )
    decoding = {"beam_size": beam_size, "length_penalty": length_penalty, "batch_size": batch_size}
    report = build_report(
        sources,
        references,
        runs,
        perplexity=translator.perplexity(sources, references),
        model_info={**translator.describe(), "decoding": decoding},
        attention_examples=examples,
        compare=(compare_name, compare_hyps) if compare_hyps is not None else None,
        n_bootstrap=n_bootstrap,
    )
    write_report(report, report_dir, examples)
    return report
