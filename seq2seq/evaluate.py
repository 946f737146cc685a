"""Evaluate a translator on a test set: read the test set (`read_test_set`, `read_test_files`),
decode greedily and with beam search, time both, score them, write a report with attention plots
and the hypotheses, and sum it up in a few lines (`summary_lines`).

The translator is anything that satisfies `TranslatorLike` (`seq2seq.translate.Translator` does),
so this module does not depend on the model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from seq2seq.config import DataConfig
from seq2seq.corpus import load_split, read_lines
from seq2seq.report import AttentionExample, SystemRun, build_report, write_report
from seq2seq.rundir import ReportDir, RunDir

ATTENTION_MAX_WORDS = 25  # longer sentences make unreadable heatmaps
# A run's report folder (`RunDir.report`) for a test set read from the user's own files
CUSTOM_TEST_SET = "custom"


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


def read_test_set(
    language_pair: tuple[str, str], test_set: str, data_dir: str | Path = "data", mirror: str = ""
) -> tuple[list[str], list[str]]:
    """Sources and references of a Multi30k split (e.g. test_2016_flickr) in ``language_pair``,
    from the cache in ``data_dir`` or fetched and checked as `seq2seq prepare` does."""
    src_lang, tgt_lang = language_pair
    data = DataConfig(src_lang=src_lang, tgt_lang=tgt_lang, data_dir=str(data_dir), mirror=mirror)
    pairs = load_split(data, test_set)
    return [src for src, _ in pairs], [tgt for _, tgt in pairs]


def read_test_files(src: str | Path, ref: str | Path) -> tuple[list[str], list[str]]:
    """Sources and references from line-aligned files; ValueError if their lengths differ."""
    sources, references = read_lines(src), read_lines(ref)
    if len(sources) != len(references):
        raise ValueError(f"{src} has {len(sources)} lines but {ref} has {len(references)}")
    return sources, references


def default_report_dir(run_dir: str | Path, test_set: str | None, direction: str = "") -> Path:
    """Where a run's evaluation goes unless told: its report folder for ``test_set``, or for
    `CUSTOM_TEST_SET` when the test set came from the user's files (None); a multilingual
    model's for one ``direction`` ("de-fr") of it."""
    name = test_set or CUSTOM_TEST_SET
    return RunDir(Path(run_dir)).report(f"{name}.{direction}" if direction else name).root


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


def summary_lines(report: dict[str, Any], report_dir: Path) -> list[str]:
    """What `seq2seq evaluate` prints: where the report is, each system's BLEU and chrF, and
    sacreBLEU's signature of the primary system's BLEU."""
    lines = [f"report written to {ReportDir(report_dir).markdown}"]
    for system in report["systems"]:
        bleu, chrf = system["scores"]["bleu"], system["scores"]["chrf"]
        lines.append(f"{system['name']}: BLEU {bleu['score']:.2f} chrF {chrf['score']:.2f}")
    lines.append(report["systems"][-1]["scores"]["bleu"]["signature"])
    return lines
