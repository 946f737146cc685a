"""Gradio demo: translate with the trained runs under a checkpoints folder.

Run ``python app.py`` (options: ``--host``/``SEQ2SEQ_HOST``, default 127.0.0.1; ``--port``/
``SEQ2SEQ_PORT``, default 7860; ``--checkpoints``/``SEQ2SEQ_CHECKPOINTS``, default
``checkpoints/``; ``--int8``/``SEQ2SEQ_INT8=1`` serves dynamic int8 models: faster on a CPU,
test BLEU unchanged on the shipped de-en model, see bench/RESULTS.md). Every subfolder holding
a trained run (its config and best weights: `RunDir.has_model`) or an ensemble (its
ensemble.json: `RunDir.is_ensemble`) is a model; each is loaded once, at start-up.

API (``gradio_client``)::

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    text, nbest, timing = client.predict(
        "Ein Hund läuft.", "multi30k-de-en", "beam", 5, 1.0, api_name="/translate"
    )

``/translate`` parameters, in order:
    text (str): one sentence per line; each line is translated, all lines in one batch.
    model (str): a run's folder name (the Model dropdown's choices).
    mode (str): "greedy", "beam" or "sample".
    beam_size (int, 1-10): beams kept in "beam" mode, outputs drawn per line in "sample" mode;
        ignored by "greedy".
    length_penalty (float, 0-2): GNMT alpha; 0 ranks by raw log-probability.
    source_lang, target_lang (str): only when the page serves a multilingual model (trained with
        ``data.directions``), after ``length_penalty``: the direction a multilingual model
        translates, as language codes (``"fr"``, ``"cs"``); target_lang ``"all"`` translates
        into every language the model was trained to reach from source_lang, and the
        translation then holds a line ``Language: text`` per language and input line. Default:
        the page's first choice. A bilingual model translates its own pair and ignores both; a
        direction the model was not trained on is a readable error naming its directions.
Returns ``(translation, nbest, timing)``: the translations, one line per input line; the n-best
table (``{"headers": [...], "data": [[line, rank, text, score], ...]}``: the best beams, or every
sample, best first; scores are length-normalised log-probabilities); a Markdown line saying how
long decoding took. "sample" draws with the page's sampling settings (temperature, top-k, top-p,
seed: at first the first model's saved ones), which the page's controls change.
Bad input (empty text, a line over the length limit, too many lines, an unknown model or mode,
a beam size or length penalty that is not a number in its range) raises
``gradio_client.exceptions.AppError`` with a readable message; on the page it also clears the
previous request's timing line and attention plot.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import gzip
import math
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio: no calls outside

import gradio as gr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from seq2seq.config import DECODE_METHODS, MAX_LENGTH_PENALTY, DecodeConfig  # noqa: E402
from seq2seq.download import language_name, language_pair_name  # noqa: E402
from seq2seq.report import AttentionExample, plot_attention  # noqa: E402
from seq2seq.rundir import RunDir  # noqa: E402
from seq2seq.translate import MAX_INPUT_CHARS, Translator  # noqa: E402
from study.plots import LONG_CURVE_PNG  # noqa: E402

REPO = Path(__file__).resolve().parent
STUDY_REPORT = REPO / "docs" / "study.md"  # its PNGs are in docs/study/
TRAIN_COMMAND = "seq2seq train --config configs/multi30k-de-en.yaml"
MAX_LINES = 32  # lines per request: a CPU model serves many users one request at a time
MAX_NBEST = 5  # n-best rows shown per line
MAX_BEAM = 10  # also the most samples per line
# The sampling controls' ranges: wide enough to see what each setting does, no wider.
TEMPERATURE_RANGE = (0.05, 2.0)
TOP_P_RANGE = (0.05, 1.0)
MAX_TOP_K = 100
MAX_SEED = 2**31 - 1
SAMPLING_SETTINGS = ("temperature", "top_k", "top_p", "seed")
QUEUE_SIZE = 256  # waiting requests before the queue turns new ones away
NUM_EXAMPLES = 8
EXAMPLE_DIRS = (REPO / "data" / "multi30k", REPO.parent / "shared" / "data" / "multi30k")
BUILTIN_EXAMPLES = {
    "de": [
        "Ein Mann fährt mit dem Fahrrad die Straße entlang.",
        "Zwei Kinder spielen im Sand am Strand.",
        "Eine Frau in einem roten Kleid singt auf einer Bühne.",
        "Ein schwarzer Hund rennt über eine grüne Wiese.",
    ],
    "en": [
        "A man rides his bike down the street.",
        "Two children are playing in the sand on the beach.",
        "A woman in a red dress is singing on a stage.",
        "A black dog runs across a green meadow.",
    ],
    "fr": [
        "Un homme descend la rue à vélo.",
        "Deux enfants jouent dans le sable sur la plage.",
        "Une femme en robe rouge chante sur une scène.",
        "Un chien noir court dans un pré vert.",
    ],
    "cs": [
        "Muž jede na kole po ulici.",
        "Dvě děti si hrají v písku na pláži.",
        "Žena v červených šatech zpívá na pódiu.",
        "Černý pes běží přes zelenou louku.",
    ],
}
ALL_TARGETS = "all"  # target_lang: every language the model reaches from the source
MODES = DECODE_METHODS
NBEST_HEADERS = ["line", "rank", "translation", "score"]
CSS = "#attention img { max-width: 100%; height: auto; }"


class SetupError(Exception):
    """The checkpoints folder holds no usable run; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# Loading runs


def find_runs(folder: Path) -> list[Path]:
    """Subfolders holding a run's config and best weights, or an ensemble, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and (RunDir(p).has_model() or RunDir(p).is_ensemble())
    )


def _no_runs_message(folder: Path) -> str:
    subfolders = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    unfinished = sorted(p.name for p in subfolders if RunDir(p).config.is_file())
    lines = [
        f"No trained model found in {folder}/ (a run folder holds {RunDir.CONFIG_FILE} and "
        f"{RunDir.WEIGHTS_FILE}; an ensemble folder, {RunDir.ENSEMBLE_FILE})."
    ]
    if unfinished:
        lines.append(
            f"These runs have no {RunDir.WEIGHTS_FILE} yet (still training?): "
            f"{', '.join(unfinished)}"
        )
    lines.append(
        f"Train one with `{TRAIN_COMMAND}`, or point --checkpoints at a run folder's "
        "parent (env SEQ2SEQ_CHECKPOINTS)."
    )
    return "\n".join(lines)


def load_run(run_dir: Path, int8: bool = False) -> Translator:
    """One run on the CPU (int8 weights if asked); SetupError naming the folder if it cannot be
    loaded."""
    try:
        return Translator.from_run(run_dir, device="cpu", quantize=int8)
    except Exception as err:  # a broken run can fail in many ways; say which and move on
        raise SetupError(
            f"Cannot load the run in {run_dir}/: {err}\n"
            f"Retrain it with `{TRAIN_COMMAND}` (or move the folder away)."
        ) from err


def load_translators(folder: str | Path, int8: bool = False) -> dict[str, Translator]:
    """Every run under ``folder``, by folder name; SetupError if none or one is broken."""
    folder = Path(folder)
    runs = find_runs(folder)
    if not runs:
        raise SetupError(_no_runs_message(folder))
    return {run.name: load_run(run, int8) for run in runs}


# ---------------------------------------------------------------------------------------------
# Translating


@dataclass
class Request:
    """One validated request from the page or the API."""

    lines: list[str]
    decoding: dict[str, Any]  # changes to the model's saved DecodeConfig


def pair_label(translator: Translator) -> str:
    return language_pair_name(*translator.language_pair)


def pick_translator(translators: dict[str, Translator], model: Any) -> Translator:
    if model is None or model == "":
        return next(iter(translators.values()))
    if not isinstance(model, str) or model not in translators:
        raise gr.Error(f"Unknown model {model!r}; choose one of: {', '.join(translators)}.")
    return translators[model]


def check_lines(text: str | None) -> list[str]:
    """The input's lines; gr.Error for empty, too long or too many lines."""
    if not isinstance(text, str) or not text.strip():
        raise gr.Error("Please enter a sentence to translate.")
    lines = text.replace("\r\n", "\n").split("\n")  # not splitlines: it splits on \x1c too
    if len(lines) > MAX_LINES:
        raise gr.Error(f"Please enter at most {MAX_LINES} lines at once (got {len(lines)}).")
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_INPUT_CHARS:
            raise gr.Error(
                f"Line {number} is {len(line)} characters long; "
                f"the limit is {MAX_INPUT_CHARS} characters per line."
            )
    return lines


def check_number(value: Any, name: str, low: float, high: float, whole: bool = False) -> float:
    """``value`` if it is a finite number in [low, high] (a whole one if ``whole``); else
    gr.Error naming the parameter, its range and the value received."""
    kind = "a whole number" if whole else "a number"
    wrong = f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}."
    # The API hands over raw JSON: a string, null, true or NaN can arrive, not only numbers.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise gr.Error(wrong)
    if not math.isfinite(value) or not low <= value <= high or (whole and value != int(value)):
        raise gr.Error(wrong)
    return float(value)


def count_label(mode: str) -> str:
    """What the beam slider counts in ``mode``: beams, or samples (greedy ignores it)."""
    return "Samples" if mode == "sample" else "Beam size"


def count_slider(mode: str) -> dict[str, Any]:
    """The beam slider's label and lock in ``mode``."""
    return {"label": count_label(mode), "interactive": mode != "greedy"}


def check_sampling(sampling: Any) -> dict[str, Any]:
    """The page's sampling settings, checked as the other inputs are (None: the model's own)."""
    if sampling is None:
        return {}
    if not isinstance(sampling, dict) or set(sampling) != set(SAMPLING_SETTINGS):
        raise gr.Error(f"Sampling settings must give {', '.join(SAMPLING_SETTINGS)}.")
    return {
        "temperature": check_number(sampling["temperature"], "Temperature", *TEMPERATURE_RANGE),
        "top_k": int(check_number(sampling["top_k"], "Top-k", 0, MAX_TOP_K, whole=True)),
        "top_p": check_number(sampling["top_p"], "Top-p", *TOP_P_RANGE),
        "seed": int(check_number(sampling["seed"], "Seed", 0, MAX_SEED, whole=True)),
    }


def make_request(
    text: Any, mode: Any, beam_size: Any, length_penalty: Any, sampling: Any = None
) -> Request:
    """The validated request; gr.Error naming the first bad input."""
    lines = check_lines(text)
    if not isinstance(mode, str) or mode not in MODES:
        raise gr.Error(f"Unknown mode {mode!r}; choose {', '.join(MODES)}.")
    # Checked in greedy mode too: a malformed request is refused whatever it asks for.
    count = int(check_number(beam_size, count_label(mode), 1, MAX_BEAM, whole=True))
    penalty = check_number(length_penalty, "Length penalty", 0.0, MAX_LENGTH_PENALTY)
    decoding: dict[str, Any] = {"method": mode, "length_penalty": penalty, "nbest": 1}
    if mode == "beam":
        decoding |= {"beam_size": count, "nbest": min(count, MAX_NBEST)}
    elif mode == "sample":  # every sample is shown: seeing them side by side is the point
        decoding |= {"num_samples": count, "nbest": count, **check_sampling(sampling)}
    return Request(lines, decoding)


def nbest_rows(results: list[Any]) -> list[list[Any]]:
    return [
        [line, rank, text, round(score, 2)]
        for line, result in enumerate(results, start=1)
        for rank, (text, score) in enumerate(result.nbest, start=1)
    ]


def attention_of(results: list[Any]) -> dict[str, Any] | None:
    """The first translated line's attention, as plain data for a gr.State."""
    for result in results:
        if result.attention is not None and result.output_pieces:
            return {
                "source_pieces": result.source_pieces,
                "output_pieces": result.output_pieces,
                "weights": result.attention.tolist(),
            }
    return None


def decoding_label(decode: DecodeConfig) -> str:
    """How a request was decoded, in a few words ("beam 5", "4 samples, temperature 0.7 ...")."""
    method = decode.resolved_method
    if method == "beam":
        return f"beam {decode.beam_size}"
    if method == "sample":
        return (
            f"{decode.num_samples} samples, temperature {decode.temperature:g}, "
            f"top-k {decode.top_k or 'off'}, top-p {decode.top_p:g}, seed {decode.seed}"
        )
    return method


def timing_line(
    seconds: float, request: Request, decode: DecodeConfig, int8: bool = False, languages: int = 1
) -> str:
    how = decoding_label(decode)
    where = "CPU, int8" if int8 else "CPU"
    count = len([line for line in request.lines if line.strip()])
    into = f" into {languages} languages" if languages > 1 else ""
    return f"Translated {count} line(s){into} in **{seconds * 1000:.0f} ms** ({how}, {where})."


# ---------------------------------------------------------------------------------------------
# Directions of a multilingual model


def source_languages(translator: Translator) -> list[str]:
    return list(dict.fromkeys(d.src for d in translator.directions))


def target_languages(translator: Translator, source_lang: str) -> list[str]:
    """The languages the model was trained to reach from ``source_lang``."""
    return [d.tgt for d in translator.directions if d.src == source_lang]


def language_choices(codes: list[str]) -> list[tuple[str, str]]:
    """Dropdown choices: a language's name shown, its code the value."""
    return [(language_name(code), code) for code in codes]


def target_choices(translator: Translator, source_lang: str) -> list[tuple[str, str]]:
    targets = language_choices(target_languages(translator, source_lang))
    return targets + [("All other languages", ALL_TARGETS)]


def direction_label(source_lang: str, target_lang: str) -> str:
    if target_lang == ALL_TARGETS:
        return f"{language_name(source_lang)} → all other languages"
    return language_pair_name(source_lang, target_lang)


def pick_directions(translator: Translator, source_lang: Any, target_lang: Any) -> list[Translator]:
    """The translator toward each target a request asks for: one, or every language reached
    from ``source_lang`` for "all"; a bilingual model's own pair whatever is asked. gr.Error
    naming the model's directions for one it was not trained on."""
    if not translator.multilingual:
        return [translator]
    for name, value in (("source_lang", source_lang), ("target_lang", target_lang)):
        if not isinstance(value, str) or not value:
            raise gr.Error(f"{name} must be a language code such as 'fr', got {value!r}.")
    trained = ", ".join(str(d) for d in translator.directions)
    if target_lang == ALL_TARGETS:
        targets = target_languages(translator, source_lang)
        if not targets:
            raise gr.Error(
                f"Unknown source language {source_lang!r}: the model translates {trained}."
            )
    else:
        targets = [target_lang]
    try:
        return [translator.toward(target, source_lang) for target in targets]
    except ValueError as err:
        raise gr.Error(f"Unknown language pair: {err}.") from err


def labelled(language: str, results: list[Any], multiple: bool) -> list[Any]:
    """The results with their language's name before each text (several targets) or as they
    are (one)."""
    if not multiple:
        return results
    name = language_name(language)
    return [
        dataclasses.replace(
            result,
            text=f"{name}: {result.text}",
            nbest=[(f"{name}: {text}", score) for text, score in result.nbest],
        )
        for result in results
    ]


@dataclass
class PageResult:
    """What a request shows: the translations (with "all" targets, a line per language and
    input line), the n-best table, the timing line, line 1's attention, and each target
    language's translations on their own (several targets only)."""

    output: str
    table: dict[str, Any]
    timing: str
    attention: dict[str, Any] | None
    by_language: dict[str, str]


def translate_request(
    translators: dict[str, Translator],
    text: Any,
    model: Any,
    mode: Any,
    beam_size: Any,
    length_penalty: Any,
    sampling: Any = None,
    source_lang: Any = None,
    target_lang: Any = None,
) -> PageResult:
    """Translate every line into each target asked for (`pick_directions`).

    Takes the request's raw values (Gradio's own preprocessing is off for this event) and
    raises gr.Error with a readable message for any bad one. ``sampling`` holds the page's
    sampling settings (`SAMPLING_SETTINGS`), or None for the model's saved ones. An input that
    looks written in the target language already gets a warning (a multilingual model only).
    """
    translator = pick_translator(translators, model)
    views = pick_directions(translator, source_lang, target_lang)
    request = make_request(text, mode, beam_size, length_penalty, sampling)
    start = time.perf_counter()
    by_target: dict[str, list[Any]] = {}
    try:
        decode = translator.decode_config(**request.decoding)
        for view in views:
            by_target[view.language_pair[1]] = view.translate(
                request.lines, decode=decode, with_attention=True, check_source=view.multilingual
            )
    except ValueError as err:  # the translator's own checks (input length, decoding settings)
        raise gr.Error(f"Could not translate: {err}") from err
    seconds = time.perf_counter() - start
    for warning in dict.fromkeys(r.warning for rs in by_target.values() for r in rs if r.warning):
        gr.Warning(warning[0].upper() + warning[1:] + ".")
    several = len(by_target) > 1
    shown = [labelled(lang, results, several) for lang, results in by_target.items()]
    return PageResult(
        output="\n".join(result.text for results in shown for result in results),
        table={"headers": NBEST_HEADERS, "data": [row for rs in shown for row in nbest_rows(rs)]},
        timing=timing_line(seconds, request, decode, translator.quantized, len(by_target)),
        attention=attention_of(next(iter(by_target.values()))),
        by_language=(
            {lang: "\n".join(r.text for r in rs) for lang, rs in by_target.items()}
            if several
            else {}
        ),
    )


def run_translation(
    translators: dict[str, Translator], *request: Any
) -> tuple[str, dict[str, Any], str, dict[str, Any] | None]:
    """(translations, n-best table, timing, attention of line 1) of `translate_request` with
    the same arguments (text, model, mode, beam_size, length_penalty, [sampling, source_lang,
    target_lang])."""
    result = translate_request(translators, *request)
    return result.output, result.table, result.timing, result.attention


def draw_attention(attention: dict[str, Any] | None) -> Figure | None:
    """The heatmap of a stored attention matrix (None clears the plot)."""
    if not attention:
        return None
    return plot_attention(AttentionExample(**attention))


def cleared_results() -> tuple[str, None, None]:
    """After a failed request: no timing line, no stored attention, no plot (the previous
    request's would describe a translation that is not the one asked for)."""
    return "", None, None


# ---------------------------------------------------------------------------------------------
# Examples and the About tab


def read_examples(lang: str, count: int = NUM_EXAMPLES) -> list[str]:
    """The first validation lines in ``lang`` if Multi30k is at hand, else built-in ones."""
    for folder in EXAMPLE_DIRS:
        path = folder / f"val.{lang}.gz"
        if path.is_file():
            try:
                with gzip.open(path, "rt", encoding="utf-8") as f:
                    lines = [line.strip() for _, line in zip(range(count), f, strict=False)]
            except (OSError, UnicodeDecodeError, EOFError):
                continue
            return [line for line in lines if line]
    return BUILTIN_EXAMPLES.get(lang, [])


def _number(value: Any, digits: int = 2) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "–"


def _or_dash(value: Any) -> Any:
    return "–" if value is None else value


def ensemble_rows(members: tuple[Path, ...]) -> list[tuple[str, str]]:
    """The facts table's row for an ensemble (none for a single model): its members, and that
    the rows below describe the first."""
    if len(members) < 2:
        return []
    names = ", ".join(member.name for member in members)
    return [("Ensemble", f"{len(members)} models ({names}); the facts below are the first's")]


def languages_row(translator: Translator) -> tuple[str, str]:
    """The facts table's first row: the language pair, or a multilingual model's directions."""
    if not translator.multilingual:
        return ("Language pair", language_pair_name(*translator.language_pair))
    names = ", ".join(language_name(lang) for lang in multilingual_languages({"": translator}))
    return ("Directions", f"{len(translator.directions)} between {names}")


def facts_table(translator: Translator) -> str:
    """`Translator.facts` as a Markdown table: size, architecture, training, validation BLEU."""
    facts = translator.facts()
    cfg, info = facts.config, facts.training
    model, decode = cfg.model, cfg.decode
    minutes = info.train_seconds
    bleu = info.best_valid_bleu
    rows = [
        languages_row(translator),
        ("Parameters", f"{facts.parameters:,}"),
        *ensemble_rows(facts.members),
        (
            "Architecture",
            f"{model.cell.upper()} {model.num_layers}-layer "
            f"{'bidirectional ' if model.bidirectional else ''}encoder, "
            f"{model.attention} attention, "
            f"{'conditional GRU decoder, ' if model.decoder == 'cgru' else ''}"
            f"embeddings {model.embed_size}, "
            f"hidden {model.hidden_size}",
        ),
        ("Subwords", f"{cfg.subword.model_type} {cfg.subword.vocab_size:,}"),
        ("Training pairs", _number(info.train_pairs, 0)),
        ("Training time", f"{_number(minutes / 60, 1)} min" if minutes else "–"),
        ("Steps (best at)", f"{_or_dash(info.step)} ({_or_dash(info.best_step)})"),
        (
            "Best validation BLEU",
            _number(bleu) if isinstance(bleu, int | float) and bleu >= 0 else "–",
        ),
        ("Stopped because", info.stopped or "–"),
        ("Default decoding", f"beam {decode.beam_size}, length penalty {decode.length_penalty}"),
    ]
    lines = ["| Fact | Value |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines)


IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def inline_images(markdown: str, base: Path) -> str:
    """Embed relative PNG links as data URIs: the page cannot fetch files from the run folder."""

    def embed(match: re.Match[str]) -> str:
        alt, target = match.group(1), match.group(2)
        path = (base / target).resolve()
        if "://" in target or not path.is_file() or path.stat().st_size > 2_000_000:
            return f"*[{alt}: {target}]*"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"![{alt}](data:image/png;base64,{data})"

    return IMAGE_LINK.sub(embed, markdown)


def read_markdown(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return inline_images(path.read_text(encoding="utf-8"), path.parent)
    except (OSError, UnicodeDecodeError) as err:
        return f"*Could not read {path}: {err}*"


def about_run(name: str, translator: Translator) -> None:
    """One run's section: facts, learning curve, model card, test report."""
    gr.Markdown(f"## {name}\n\n{facts_table(translator)}")
    run = RunDir(translator.run_dir or Path(name))
    if run.learning_curve.is_file():
        with gr.Accordion(f"Learning curve — {name}", open=False):
            curve = run.relative(run.learning_curve)
            gr.Markdown(inline_images(f"![learning curve]({curve})", run.root))
    for title, path in (
        ("Model card", run.model_card),
        ("Test report (Multi30k test 2016 Flickr)", run.report("test_2016_flickr").markdown),
    ):
        text = read_markdown(path)
        if text:
            with gr.Accordion(f"{title} — {name}", open=False):
                gr.Markdown(text)


def long_curve(report: Path) -> str | None:
    """The study's BLEU-by-sentence-length curve (``python -m study --long``) as Markdown with
    the image inlined; None before the study has drawn it."""
    image = report.with_suffix("") / LONG_CURVE_PNG
    if not image.is_file():
        return None
    return inline_images(
        "## Attention and long sentences\n\n"
        f"![BLEU by sentence length]({image.name})\n\n"
        "BLEU against source length in words, as in Bahdanau et al. 2015 (Fig. 2): the study's "
        "small models, trained with and without attention on Multi30k plus joined pairs, tested "
        "on joined test pairs up to 60 words. Solid: no attention; dashed: Bahdanau attention. "
        "The whole study is at the end of this tab.",
        image.parent,
    )


def about_tab(translators: dict[str, Translator]) -> None:
    with gr.Tab("About the models"):
        curve = long_curve(STUDY_REPORT)
        if curve:
            gr.Markdown(curve)
        for name, translator in translators.items():
            about_run(name, translator)
        study = read_markdown(STUDY_REPORT)
        gr.Markdown("## Study\n\n" + (study or "*No study yet: `docs/study.md` will appear here.*"))


# ---------------------------------------------------------------------------------------------
# The page


def example_blocks(translators: dict[str, Translator], source: gr.Textbox) -> dict[str, Any]:
    """One examples block per source language; only the current model's is visible."""
    first = next(iter(translators.values())).language_pair[0]
    blocks = {}
    for lang in dict.fromkeys(lang for t in translators.values() for lang in source_languages(t)):
        sentences = read_examples(lang)
        with gr.Column(visible=lang == first) as column:
            if sentences:
                gr.Examples(
                    [[s] for s in sentences],
                    inputs=[source],
                    label=f"Examples ({language_name(lang)}): click one",
                    api_visibility="private",
                    examples_per_page=NUM_EXAMPLES,
                )
        blocks[lang] = column
    return blocks


def multilingual_languages(translators: dict[str, Translator]) -> list[str]:
    """Every language a multilingual model among ``translators`` reads or writes."""
    return list(
        dict.fromkeys(
            lang
            for t in translators.values()
            if t.multilingual
            for direction in t.directions
            for lang in direction
        )
    )


def language_dropdowns(translators: dict[str, Translator]) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The source and target dropdowns, shown while a multilingual model is chosen. They start
    at the first multilingual model's first direction, which is also what an API call that
    names no language gets."""
    first = next(iter(translators.values()))
    multilingual = next(t for t in translators.values() if t.multilingual)
    src, tgt = multilingual.language_pair
    with gr.Row():
        source = gr.Dropdown(
            language_choices(source_languages(multilingual)),
            value=src,
            label="From",
            visible=first.multilingual,
            elem_id="src-lang",
        )
        target = gr.Dropdown(
            target_choices(multilingual, src),
            value=tgt,
            label="To",
            visible=first.multilingual,
            elem_id="tgt-lang",
        )
    return source, target


def language_boxes(translators: dict[str, Translator]) -> tuple[gr.Row, dict[str, gr.Textbox]]:
    """The "all languages" row: a translation box per language, side by side (hidden until a
    multilingual model translates into all its languages)."""
    with gr.Row(visible=False, elem_id="all-languages") as row:
        boxes = {
            lang: gr.Textbox(
                lines=4, label=language_name(lang), interactive=False, elem_id=f"output-{lang}"
            )
            for lang in multilingual_languages(translators)
        }
    return row, boxes


def direction_updates(
    translator: Translator,
    source_lang: Any,
    target_lang: Any,
    example_langs: list[str],
    box_langs: list[str],
) -> list[Any]:
    """The page after choosing a model or a direction: [pair label, *examples, source
    dropdown, target dropdown, "all" row, output box, *language boxes]. A choice the model
    cannot translate falls back to its first source and that source's first target."""
    if not translator.multilingual:
        src, label = translator.language_pair[0], pair_label(translator)
        hidden = gr.update(visible=False)
        examples = [gr.update(visible=lang == src) for lang in example_langs]
        rest = [gr.update(visible=True)] + [gr.update() for _ in box_langs]
        return [gr.update(value=f"### {label}"), *examples, hidden, hidden, hidden, *rest]
    sources = source_languages(translator)
    src = source_lang if source_lang in sources else sources[0]
    targets = [code for _, code in target_choices(translator, src)]
    tgt = target_lang if target_lang in targets else targets[0]
    every = tgt == ALL_TARGETS
    reached = target_languages(translator, src)
    return [
        gr.update(value=f"### {direction_label(src, tgt)}"),
        *[gr.update(visible=lang == src) for lang in example_langs],
        gr.update(choices=language_choices(sources), value=src, visible=True),
        gr.update(choices=target_choices(translator, src), value=tgt, visible=True),
        gr.update(visible=every),
        gr.update(visible=not every),
        *[gr.update(visible=lang in reached, value="") for lang in box_langs],
    ]


@dataclass
class DirectionBlocks:
    """What choosing a model or a direction changes on the page (`direction_updates`)."""

    model: gr.Dropdown
    pair: gr.Markdown
    examples: dict[str, Any]  # examples block by source language
    source_lang: gr.Dropdown
    target_lang: gr.Dropdown
    all_row: Any  # gr.Row
    output: gr.Textbox
    boxes: dict[str, gr.Textbox]  # translation box by language, in the "all" row

    def outputs(self) -> list[Any]:
        return [
            self.pair,
            *self.examples.values(),
            self.source_lang,
            self.target_lang,
            self.all_row,
            self.output,
            *self.boxes.values(),
        ]


def wire_multilingual_page(
    translators: dict[str, Translator],
    read_controls: Any,
    inputs: list[Any],
    results: list[Any],
    plot: gr.Plot,
    direction_blocks: DirectionBlocks,
) -> None:
    """The events of a page that serves a multilingual model: /translate with source_lang and
    target_lang; the "all languages" boxes filled after each translation; the dropdowns and
    boxes following the chosen model and direction."""
    blocks = direction_blocks
    by_language = gr.State(None)
    attention = results[-1]

    def translate(
        text: str,
        model_name: str,
        mode_name: str,
        beam_size: float,
        length_penalty: float,
        source_lang: str,
        target_lang: str,
        sampling_settings: dict[str, Any],
    ) -> tuple[str, dict[str, Any], str, dict[str, Any] | None, dict[str, str]]:
        result = translate_request(
            translators, text, model_name, mode_name, beam_size, length_penalty,
            sampling_settings, source_lang, target_lang,
        )  # fmt: skip
        return result.output, result.table, result.timing, result.attention, result.by_language

    def fill_boxes(texts: dict[str, str] | None) -> list[str]:
        return [(texts or {}).get(lang, "") for lang in blocks.boxes]

    event = read_controls.then(
        translate,
        inputs=inputs,
        outputs=[*results, by_language],
        api_name="translate",
        concurrency_limit=1,
        preprocess=False,
    )
    drawn = event.success(draw_attention, attention, plot, api_visibility="private")
    drawn.then(fill_boxes, by_language, list(blocks.boxes.values()), api_visibility="private")
    event.failure(
        lambda: [*cleared_results(), None, *fill_boxes(None)],
        None,
        [results[2], attention, plot, by_language, *blocks.boxes.values()],
        api_visibility="private",
    )

    def choose(name: str, source_lang: str, target_lang: str) -> list[Any]:
        translator = pick_translator(translators, name)
        langs = list(blocks.examples)
        return direction_updates(translator, source_lang, target_lang, langs, list(blocks.boxes))

    chosen = [blocks.model, blocks.source_lang, blocks.target_lang]
    for trigger in chosen:
        trigger.change(choose, chosen, blocks.outputs(), api_visibility="private")


def build_demo(translators: dict[str, Translator]) -> gr.Blocks:
    """The page and its API over already loaded translators (name → Translator)."""
    if not translators:
        raise SetupError(_no_runs_message(Path("checkpoints")))
    names = list(translators)
    first = translators[names[0]]
    decode = first.cfg.decode
    default_beam = max(1, min(decode.beam_size, MAX_BEAM))
    first_mode = decode.resolved_method
    first_sampling = {  # the first model's, inside the controls' ranges
        "temperature": min(max(decode.temperature, TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1]),
        "top_k": min(decode.top_k, MAX_TOP_K),
        "top_p": max(decode.top_p, TOP_P_RANGE[0]),
        "seed": min(decode.seed, MAX_SEED),
    }
    with gr.Blocks(title="seq2seq translator") as demo:
        gr.Markdown("# RNN seq2seq translator\nAn attentional GRU encoder-decoder, on the CPU.")
        with gr.Tab("Translate"):
            pair = gr.Markdown(f"### {pair_label(first)}", elem_id="pair")
            model = gr.Dropdown(
                names, value=names[0], label="Model", visible=len(names) > 1, elem_id="model"
            )
            # A multilingual model's direction: only on a page that serves one, so that a page
            # of bilingual models keeps its API as it was.
            multilingual = any(t.multilingual for t in translators.values())
            languages = language_dropdowns(translators) if multilingual else None
            with gr.Row():
                source = gr.Textbox(
                    lines=4,
                    label="Source (one sentence per line)",
                    placeholder="Type or paste sentences, one per line",
                    elem_id="source",
                )
                output = gr.Textbox(
                    lines=4, label="Translation", interactive=False, elem_id="output"
                )
            all_row, boxes = language_boxes(translators) if multilingual else (None, {})
            with gr.Row():
                mode = gr.Radio(list(MODES), value=first_mode, label="Decoding", elem_id="mode")
                beam = gr.Slider(
                    1, MAX_BEAM, value=default_beam, step=1, **count_slider(first_mode)
                )
                penalty = gr.Slider(
                    0,
                    MAX_LENGTH_PENALTY,
                    value=first.cfg.decode.length_penalty,
                    step=0.1,
                    label="Length penalty",
                )
            with gr.Row(visible=first_mode == "sample", elem_id="sampling") as sampling_row:
                sampling_controls = [
                    gr.Slider(
                        *TEMPERATURE_RANGE,
                        value=first_sampling["temperature"],
                        step=0.05,
                        label="Temperature",
                    ),
                    gr.Slider(
                        0, MAX_TOP_K, value=first_sampling["top_k"], step=1, label="Top-k (0: off)"
                    ),
                    gr.Slider(
                        *TOP_P_RANGE, value=first_sampling["top_p"], step=0.05, label="Top-p"
                    ),
                    gr.Number(
                        value=first_sampling["seed"],
                        precision=0,
                        minimum=0,
                        maximum=MAX_SEED,
                        label="Seed",
                    ),
                ]
            button = gr.Button("Translate", variant="primary", elem_id="translate")
            timing = gr.Markdown(elem_id="timing")
            examples = example_blocks(translators, source)
            with gr.Row():
                nbest = gr.Dataframe(
                    headers=NBEST_HEADERS,
                    label=f"n-best (the {MAX_NBEST} best beams, or every sample, per line; "
                    "score: length-normalised log-probability)",
                    interactive=False,
                    wrap=True,
                    column_widths=["13%", "13%", "56%", "18%"],
                    elem_id="nbest",
                )
                plot = gr.Plot(label="Attention, first line", format="png", elem_id="attention")
        about_tab(translators)
        attention = gr.State(None)
        # The sampling controls reach translate through a State, which the API does not list:
        # its parameters stay the five above, and an API call samples with the page's settings.
        sampling = gr.State(first_sampling)

        def translate(
            text: str,
            model_name: str,
            mode_name: str,
            beam_size: float,
            length_penalty: float,
            sampling_settings: dict[str, Any],
        ) -> tuple[str, dict[str, Any], str, dict[str, Any] | None]:
            # Raw values: run_translation checks them, so a string, null or NaN sent through the
            # API gets a message naming the parameter instead of a failure inside Gradio.
            return run_translation(
                translators,
                text,
                model_name,
                mode_name,
                beam_size,
                length_penalty,
                sampling_settings,
            )

        def keep_sampling(*values: Any) -> dict[str, Any]:
            return dict(zip(SAMPLING_SETTINGS, values, strict=True))

        # The controls' values are copied at each request, just before it is translated.
        read_controls = gr.on(
            [button.click, source.submit],
            keep_sampling,
            inputs=sampling_controls,
            outputs=sampling,
            api_visibility="private",
        )
        inputs = [source, model, mode, beam, penalty, sampling]
        if languages is None:
            event = read_controls.then(
                translate,
                inputs=inputs,
                outputs=[output, nbest, timing, attention],
                api_name="translate",
                concurrency_limit=1,  # one CPU model: requests wait in the queue, not in threads
                preprocess=False,
            )
            event.success(draw_attention, attention, plot, api_visibility="private")
            event.failure(
                cleared_results, None, [timing, attention, plot], api_visibility="private"
            )

            def switch_model(name: str) -> list[Any]:
                translator = pick_translator(translators, name)
                lang = translator.language_pair[0]
                return [gr.update(value=f"### {pair_label(translator)}")] + [
                    gr.update(visible=key == lang) for key in examples
                ]

            model.change(switch_model, model, [pair, *examples.values()], api_visibility="private")
        else:
            wire_multilingual_page(
                translators,
                read_controls,
                inputs=[source, model, mode, beam, penalty, *languages, sampling],
                results=[output, nbest, timing, attention],
                plot=plot,
                direction_blocks=DirectionBlocks(
                    model, pair, examples, *languages, all_row, output, boxes
                ),
            )
        mode.change(
            lambda m: [gr.update(**count_slider(m)), gr.update(visible=m == "sample")],
            mode,
            [beam, sampling_row],
            api_visibility="private",
        )
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo


# ---------------------------------------------------------------------------------------------
# Command line


def port_number(text: str) -> int:
    """A TCP port from --port or SEQ2SEQ_PORT; a bad one is argparse's one-line usage error."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"the port must be a whole number from 1 to 65535 (--port or SEQ2SEQ_PORT), "
            f"got {text!r}"
        )
    return port


def port_problem(host: str, port: int) -> str | None:
    """Why the demo cannot listen on host:port (None if it can), as a one-line message."""
    address = host.strip("[]")  # Gradio accepts "[::1]"; sockets want the bare address
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family) as sock:
            # As Gradio's server does: a port left in TIME_WAIT by an earlier run is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            return None
    except OSError as err:
        return cannot_listen(host, port, err.strerror or str(err))


def cannot_listen(host: str, port: int, reason: str) -> str:
    return (
        f"cannot listen on {host}:{port}: {reason}. Choose another port with --port N "
        "(or env SEQ2SEQ_PORT=N), or another address with --host (SEQ2SEQ_HOST)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Gradio demo for the trained seq2seq runs.")
    parser.add_argument("--host", default=env.get("SEQ2SEQ_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port",
        type=port_number,
        default=env.get("SEQ2SEQ_PORT", "7860"),  # a string default goes through type= too
        help="port to serve on (env SEQ2SEQ_PORT; default 7860)",
    )
    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=Path(env.get("SEQ2SEQ_CHECKPOINTS", "checkpoints")),
        help="folder whose subfolders are trained runs",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        default=env.get("SEQ2SEQ_INT8", "") not in ("", "0"),
        help="serve dynamic int8 models (faster on a CPU; env SEQ2SEQ_INT8=1)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Checked before loading the models, so a taken port fails at once, not after the load.
    problem = port_problem(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        translators = load_translators(args.checkpoints, args.int8)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    precision = " (int8)" if args.int8 else ""
    demo = build_demo(translators)
    try:
        demo.launch(server_name=args.host, server_port=args.port, css=CSS, prevent_thread_lock=True)
    except OSError:  # Gradio's "Cannot find empty port": taken since the check above
        print(
            f"error: {cannot_listen(args.host, args.port, 'the port is in use')}", file=sys.stderr
        )
        return 2
    print(f"Loaded {', '.join(translators)}{precision}; serving on http://{args.host}:{args.port}/")
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
