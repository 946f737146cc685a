"""The translate command's lines in and out: every line of a file or stdin translated
(`translate_lines`), with a warning for each line that could not be; the plain and n-best output
formats (`format_translations`); and the output written whole or not at all
(`write_translations`)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from seq2seq import checkpoint
from seq2seq.config import DecodeConfig
from seq2seq.corpus import read_text_lines
from seq2seq.translate import Translation, Translator


@dataclass(frozen=True)
class TranslatedLines:
    """A file's or stream's translations, and why any line was not translated."""

    results: list[Translation]  # one per input line, in order
    warnings: list[str]  # "line N not translated: why", N counted from 1


def translate_lines(
    translator: Translator,
    source: str | Path | BinaryIO,
    decode: DecodeConfig,
    batch_size: int = 64,
    check_source: bool = False,
) -> TranslatedLines:
    """Translate every line of a file (plain or gzip) or binary stream (stdin).

    A blank line gives an empty translation; so does a line that cannot be translated (not
    UTF-8, over a length limit), with a warning naming it. The output keeps one entry per line.
    ``check_source`` also warns of each line that looks written in the target language.
    """
    lines, read_errors = read_text_lines(source)
    settings: dict[str, Any] = {"decode": decode, "batch_size": batch_size, "skip_invalid": True}
    if check_source:  # asked only when wanted: off is the translator's default
        settings["check_source"] = True
    results = translator.translate(lines, **settings)
    warnings = []
    for number, (result, read_error) in enumerate(zip(results, read_errors, strict=True), 1):
        if read_error or result.error:
            warnings.append(f"line {number} not translated: {read_error or result.error}")
        elif result.warning:
            warnings.append(f"line {number}: {result.warning}")
    return TranslatedLines(results, warnings)


def format_translations(results: list[Translation], nbest: int) -> str:
    """The output text: a line per input line, or with ``nbest`` > 1 exactly ``nbest`` lines
    ``INDEX<TAB>SCORE<TAB>TEXT`` per input line (INDEX from 0), best first; a slot without a
    hypothesis (blank or refused input) has score -inf and no text."""
    if nbest == 1:
        return "".join(result.text + "\n" for result in results)
    rows: list[str] = []
    for index, result in enumerate(results):
        slots = [*result.nbest, *[("", -math.inf)] * (nbest - len(result.nbest))]
        rows.extend(f"{index}\t{score:.4f}\t{text}\n" for text, score in slots[:nbest])
    return "".join(rows)


def write_translations(text: str, output: Path | None) -> None:
    """``text`` to ``output``, or to stdout if None.

    Call it once every line is translated: the file is written through a temporary file, so a
    failure before or while writing leaves an existing file (the input too, when both are the
    same path) as it was.
    """
    if output is None:
        sys.stdout.write(text)
    else:
        checkpoint.write_text_atomically(output, text)
