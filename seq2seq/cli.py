"""Command line: `seq2seq prepare | train | average | ensemble | ship | translate | evaluate`,
and ``--version``.

Parses arguments into the config dataclasses and calls the module that owns the job; no logic of
its own. Config flags are built from the dataclass fields as ``--SECTION.FIELD VALUE`` (for
example ``--model.cell lstm --train.lr 1e-3``), each with the field's help text, default and
choices; a YAML file given with ``--config`` is applied first.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seq2seq.config import (
    DECODE_METHODS,
    MAX_LENGTH_PENALTY,
    DecodeConfig,
    RunConfig,
    ShipConfig,
    build,
    choices,
    load_yaml,
)
from seq2seq.download import DownloadError
from seq2seq.rundir import ReportDir, RunDir

if TYPE_CHECKING:  # loaded by the commands that need it: torch is slow to import
    from seq2seq.translate import Translator

SECTIONS = ("data", "clean", "subword", "model", "train", "decode")
PREPARE_SECTIONS = ("data", "clean", "subword")
# The demo caps its beam at 10; here 64 leaves room for search experiments. Decoding time grows
# with the beam, and memory is bounded separately by `search.decode_batch_size`.
MAX_BEAM = 64
# translate's and evaluate's decoding flags: DecodeConfig field -> (argparse dest, flag). A flag
# left out keeps the run's saved setting.
DECODE_FLAGS = {
    "method": ("method", "--method"),
    "beam_size": ("beam", "--beam"),
    "nbest": ("nbest", "--nbest"),
    "length_penalty": ("length_penalty", "--length-penalty"),
    "num_samples": ("samples", "--samples"),
    "temperature": ("temperature", "--temperature"),
    "top_k": ("topk", "--topk"),
    "top_p": ("topp", "--topp"),
    "seed": ("seed", "--seed"),
}
# Flags whose range DecodeConfig checks on their own, before anything is loaded.
RANGED_DECODE_FIELDS = ("length_penalty", "temperature", "top_k", "top_p", "seed")
# What a user can cause and fix (bad values, missing or damaged files, no network): one line
# on stderr. Anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ValueError, OSError, DownloadError)


def package_version() -> str:
    """The installed package's version; `seq2seq.__version__` when run from a source tree that
    is not installed."""
    try:
        return importlib.metadata.version("seq2seq")
    except importlib.metadata.PackageNotFoundError:
        from seq2seq import __version__

        return __version__


def _parse_value(text: str, default: Any, flag: str) -> Any:
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise SystemExit(f"error: {flag} takes true or false, got {text!r}")
        return lowered in ("true", "1", "yes")
    try:
        return type(default)(text)
    except ValueError:
        raise SystemExit(f"error: {flag} takes a {type(default).__name__}, got {text!r}") from None


def flag_help(settings: object, f: dataclasses.Field[Any]) -> str:
    """A config flag's help: what the setting means (`config.setting`), its choices when its
    type is a ``Literal``, and its default."""
    default = getattr(settings, f.name)
    options = choices(type(settings), f.name)
    listed = f"one of {', '.join(map(str, options))}; " if options else ""
    meaning = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
    return f"{meaning} ({listed}default: {default!r})".lstrip()


def add_config_flags(parser: argparse.ArgumentParser, sections: Sequence[str]) -> None:
    """A ``--SECTION.FIELD`` flag per config field, with the field's meaning, its default and,
    for a ``Literal`` type, its choices, also as the metavar (``{rnn,gru,lstm}``), so that the
    flag's line shows them."""
    defaults = RunConfig()
    meanings = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(RunConfig)}
    for section in sections:
        settings = getattr(defaults, section)
        group = parser.add_argument_group(f"{section} settings", description=meanings[section])
        for f in dataclasses.fields(settings):
            default = getattr(settings, f.name)
            options = choices(type(settings), f.name)
            metavar = "{" + ",".join(options) + "}" if options else type(default).__name__.upper()
            group.add_argument(
                f"--{section}.{f.name}",
                dest=f"{section}.{f.name}",
                metavar=metavar,
                default=None,
                help=flag_help(settings, f),
            )


def config_from_args(
    args: argparse.Namespace, sections: Sequence[str], base: dict[str, Any] | None = None
) -> RunConfig:
    """``base`` (default: the dataclass defaults), then the YAML file, then the flags; every
    value validated by the dataclasses."""
    raw: dict[str, Any] = {section: dict(values) for section, values in (base or {}).items()}
    given: dict[str, Any] = load_yaml(args.config) if getattr(args, "config", None) else {}
    defaults = RunConfig()
    for section in sections:
        for f in dataclasses.fields(getattr(defaults, section)):
            text = getattr(args, f"{section}.{f.name}")
            if text is not None:
                default = getattr(getattr(defaults, section), f.name)
                flag = f"--{section}.{f.name}"
                given.setdefault(section, {})[f.name] = _parse_value(text, default, flag)
    for section, values in given.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section].update(values)
        else:
            raw[section] = values
    try:
        return build(RunConfig, raw, where="config")
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def cmd_prepare(args: argparse.Namespace) -> None:
    from seq2seq.corpus import prepare_corpus
    from seq2seq.prepare import prepare

    cfg = config_from_args(args, PREPARE_SECTIONS)
    splits = args.splits or ["train", "val"]
    counted = {}
    if {"train", "val"} <= set(splits):  # what training needs: binarise it
        if args.workers < 0:
            raise SystemExit(f"error: --workers must be >= 0, got {args.workers}")
        out = Path(cfg.data.prepared) if cfg.data.prepared else None
        prepared = prepare(cfg.data, cfg.clean, cfg.subword, out=out, workers=args.workers)
        counted = {
            "train": prepared.manifest["cleaning"],
            "val": {"total": prepared.pairs("valid")},
        }
        print(f"train on it with --data.prepared {prepared.root}, or with these data settings")
    rest = [split for split in splits if split not in counted]
    if not cfg.data.multilingual:
        print(f"counts saved to {prepare_corpus(cfg.data, cfg.clean, rest, counted=counted)}")
        return
    from seq2seq.multilingual import direction_data, fill_direction, run_directions

    print(f"counts saved to {prepare_corpus(cfg.data, cfg.clean, [], counted=counted)}")
    for direction in run_directions(cfg.data) if rest else ():  # other splits, by direction
        named = [fill_direction(split, direction) for split in rest]  # files: test.{src},...
        saved = prepare_corpus(direction_data(cfg.data, direction), cfg.clean, named)
        print(f"{direction}: counts saved to {saved}")


def cmd_train(args: argparse.Namespace) -> None:
    from seq2seq.train import train

    cfg = config_from_args(args, SECTIONS)
    if args.resume:  # the run's own settings, then what this command changes
        from seq2seq.checkpoint import load_config

        saved, _ = load_config(Path(cfg.train.out_dir) / cfg.train.name)
        cfg = config_from_args(args, SECTIONS, base=saved.to_dict())
    run_dir = train(cfg, resume=args.resume)
    print(run_dir)


def check_decoding_args(args: argparse.Namespace) -> None:
    """Refuse bad decoding flags before any model, input or output file is touched."""
    beam, samples = args.beam, getattr(args, "samples", None)
    if beam is not None and not 1 <= beam <= MAX_BEAM:
        raise SystemExit(f"error: --beam must be from 1 (greedy) to {MAX_BEAM}, got {beam}")
    if samples is not None and not 1 <= samples <= MAX_BEAM:
        raise SystemExit(f"error: --samples must be from 1 to {MAX_BEAM}, got {samples}")
    nbest = getattr(args, "nbest", 1)
    if nbest < 1:
        raise SystemExit(f"error: --nbest must be at least 1, got {nbest}")
    if beam is not None and getattr(args, "method", None) != "sample" and nbest > beam:
        raise SystemExit(f"error: --nbest must be from 1 to --beam ({beam}), got {nbest}")
    if args.batch_size < 1:
        raise SystemExit(f"error: --batch-size must be at least 1, got {args.batch_size}")
    for name in RANGED_DECODE_FIELDS:
        dest, flag = DECODE_FLAGS[name]
        value = getattr(args, dest, None)
        if value is not None:
            try:  # DecodeConfig owns the rule, so the demo and the API refuse the same values
                DecodeConfig(**{name: value})
            except ValueError as err:
                raise SystemExit(f"error: {flag}: {err}") from None


def decode_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding flags given, by DecodeConfig field (None where left out: the run's)."""
    return {name: getattr(args, dest, None) for name, (dest, _) in DECODE_FLAGS.items()}


def check_output_file(path: Path) -> None:
    """Refuse an output path that could not be written, before any work is done."""
    folder = path.parent
    if path.is_dir():
        raise SystemExit(f"error: --output {path} is a folder; give a file name")
    if not folder.is_dir():
        raise SystemExit(f"error: --output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):  # the temporary file goes beside the output
        raise SystemExit(f"error: --output folder {folder} is not writable")


def cmd_translate(args: argparse.Namespace) -> None:
    from seq2seq.translate import Translator
    from seq2seq.translate_io import format_translations, translate_lines, write_translations

    check_decoding_args(args)
    output = Path(args.output) if args.output else None
    if output is not None:
        check_output_file(output)
    translator = chosen_direction(
        Translator.from_runs(args.checkpoint, device=args.device, quantize=args.int8), args
    )
    try:
        decode = translator.decode_config(**decode_changes(args))
    except ValueError as err:  # a combination, such as --nbest above the run's beam size
        raise SystemExit(f"error: the run's decoding settings with these flags: {err}") from None
    done = translate_lines(
        translator,
        args.input or sys.stdin.buffer,
        decode,
        batch_size=args.batch_size,
        check_source=args.check_source,
    )
    for warning in done.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    write_translations(format_translations(done.results, args.nbest), output)


def chosen_direction(translator: Translator, args: argparse.Namespace) -> Translator:
    """The translator toward ``--to`` (from ``--src-lang``), or as loaded without them."""
    if args.to is None and args.src_lang is None:
        return translator
    return translator.toward(args.to or translator.language_pair[1], args.src_lang)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from seq2seq.corpus import read_lines
    from seq2seq.evaluate import (
        default_report_dir,
        evaluate_translator,
        read_test_files,
        read_test_set,
        summary_lines,
    )
    from seq2seq.translate import Translator

    check_decoding_args(args)
    if len(args.checkpoint) > 1 and not args.report_dir:
        raise SystemExit(
            "error: an ensemble of several --checkpoint runs has no run directory of its own to "
            "write its report into; give --report-dir"
        )
    translator = chosen_direction(
        Translator.from_runs(args.checkpoint, device=args.device, quantize=args.int8), args
    )
    if args.test_set:
        sources, references = read_test_set(
            translator.language_pair, args.test_set, args.data_dir, args.mirror
        )
    elif args.src and args.ref:
        sources, references = read_test_files(args.src, args.ref)
    else:
        raise SystemExit("error: give --src and --ref, or --test-set NAME")
    compare = read_lines(args.compare) if args.compare else None
    direction = "-".join(translator.language_pair) if translator.multilingual else ""
    report_dir = (
        Path(args.report_dir)
        if args.report_dir
        else default_report_dir(args.checkpoint[0], args.test_set, direction)
    )
    decode = translator.decode_config(
        beam_size=args.beam, nbest=1, length_penalty=args.length_penalty
    )
    report = evaluate_translator(
        translator,
        sources,
        references,
        beam_size=decode.beam_size,
        length_penalty=decode.length_penalty,
        batch_size=args.batch_size,
        report_dir=report_dir,
        compare_hyps=compare,
        n_bootstrap=args.bootstrap,
    )
    print("\n".join(summary_lines(report, report_dir)))


def cmd_average(args: argparse.Namespace) -> None:
    from seq2seq.averaging import average_run

    print(average_run(Path(args.run), last=args.last, files=args.files).summary())


def cmd_ensemble(args: argparse.Namespace) -> None:
    from seq2seq.ensemble_folder import assemble_ensemble

    members = assemble_ensemble(Path(args.folder), [Path(run) for run in args.runs])
    print(f"{args.folder}: an ensemble of {', '.join(member.name for member in members)}")


def cmd_ship(args: argparse.Namespace) -> None:
    import torch

    from seq2seq.ship import rewrite_card, ship

    if args.card_only:
        print(f"model card written to {rewrite_card(Path(args.run))}")
        return
    torch.set_num_threads(args.threads)
    ship(Path(args.run), ship_config(args))


def ship_config(args: argparse.Namespace) -> ShipConfig:
    """The `ShipConfig` of ``seq2seq ship``'s parsed flags (`ShipConfig.as_flags` writes them)."""
    given: dict[str, Any] = {
        f.name: tuple(value) if isinstance(value, list) else value
        for f in dataclasses.fields(ShipConfig)
        if (value := getattr(args, f.name)) is not None
    }
    return ShipConfig(**given)


def _add_ship_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    ship = sub.add_parser(
        "ship",
        parents=[common],
        help="make a finished run a shipped model: averaging, decoding, float16, tests, card",
        description="Turn a finished run into a shipped model, choosing everything on the "
        "validation set: report (or do) checkpoint averaging; score beam sizes x length "
        "penalties and save the cheapest setting near the best as the run's decoding; store "
        "float16 weights if validation BLEU holds; write the test reports, "
        f"{RunDir.SHIP_FILE} and the model card ({RunDir.MODEL_CARD_FILE}).",
    )
    ship.add_argument("run", help="run directory or ensemble folder (checkpoints/NAME)")
    defaults = ShipConfig()
    for f in dataclasses.fields(defaults):  # --beams 1 5 10, --valid-pairs N, ...
        default = getattr(defaults, f.name)
        many = isinstance(default, tuple)
        kind = type(default[0]) if many and default else str if many else type(default)
        ship.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=kind,
            nargs="+" if many else None,
            default=None,
            help=f"{f.metadata['help']} (default: {default!r})",
        )
    ship.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ship.add_argument(
        "--card-only",
        action="store_true",
        help=f"only rewrite {RunDir.MODEL_CARD_FILE} from {RunDir.SHIP_FILE} and the reports",
    )
    ship.set_defaults(func=cmd_ship)


def _add_decoding_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        help="run directory (checkpoints/NAME) or ensemble folder; repeat it to decode several "
        "runs as one ensemble (they must share one SentencePiece model; the first run's decoding "
        "settings are the defaults)",
    )
    parser.add_argument(
        "--beam",
        type=int,
        default=None,
        help=f"beam size, 1 (greedy) to {MAX_BEAM} (default: the run's decode.beam_size)",
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=None,
        help=f"GNMT alpha in [0, {MAX_LENGTH_PENALTY:g}] (default: the run's "
        "decode.length_penalty)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="sentences per batch (fewer when beam x batch would need too much memory)",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--int8", action="store_true", help="int8 dynamic quantisation (CPU; see bench/RESULTS.md)"
    )
    parser.add_argument(
        "--to",
        metavar="LANG",
        help="the target language of a multilingual model, e.g. fr (default: its first "
        "direction's; a bilingual model's own)",
    )
    parser.add_argument(
        "--src-lang",
        metavar="LANG",
        help="the source language, e.g. de: the direction SRC-LANG to --to must be one the model "
        "was trained on (evaluate: --test-set reads this side)",
    )


def _add_sampling_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        choices=DECODE_METHODS,
        default=None,
        help="decoding method (default: the run's decode.method; for runs that name none, beam "
        "search, greedy at --beam 1); --beam alone means beam search",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help=f"sample: outputs drawn per sentence, 1 to {MAX_BEAM}; --nbest of them are printed, "
        "best first (default: the run's decode.num_samples)",
    )
    for name, kind, meaning in (
        ("temperature", float, "sample: > 0; below 1 sharper, above 1 flatter"),
        ("top_k", int, "sample: draw from the K likeliest tokens only; 0 = all"),
        ("top_p", float, "sample: draw from the smallest set of tokens with mass P, in (0, 1]"),
        ("seed", int, "sample: the same seed and input give the same samples"),
    ):
        dest, flag = DECODE_FLAGS[name]
        parser.add_argument(
            flag,
            dest=dest,
            type=kind,
            default=None,
            help=f"{meaning} (default: the run's decode.{name})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seq2seq",
        description="RNN encoder-decoder translation: prepare, train, average, ship, translate, "
        "evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full traceback instead of one line",
    )

    prepare = sub.add_parser(
        "prepare",
        parents=[common],
        help="download (Multi30k) or read a parallel corpus, clean it, binarise it, print counts",
        description="Fetch Multi30k task 1 with checksums into data/multi30k/ (or read your own "
        "files: --data.corpus files --data.train SRC,TGT|FILE.tsv --data.valid ...), clean the "
        "training split and print and save what was kept and dropped. With train and val among "
        "the splits (the default), also train the SentencePiece vocabulary and write both splits "
        "as token arrays that training reads as it goes: into --data.prepared DIR, or into "
        "DATA_DIR/prepared/, where `seq2seq train` with the same data, clean and subword settings "
        "finds it. A folder prepared from the same files and settings is reused.",
    )
    prepare.add_argument("--config", help="YAML file with data/clean/subword sections")
    prepare.add_argument("--splits", nargs="*", help="splits to fetch (default: train val)")
    prepare.add_argument(
        "--workers", type=int, default=0, help="processes that encode (default 0: one per core)"
    )
    add_config_flags(prepare, PREPARE_SECTIONS)
    prepare.set_defaults(func=cmd_prepare)

    train = sub.add_parser(
        "train",
        parents=[common],
        help="train a model into checkpoints/NAME (resumable; torchrun for many processes)",
        description="Train an attentional RNN encoder-decoder. Settings come from the dataclass "
        "defaults, then --config FILE.yaml, then --SECTION.FIELD flags.",
    )
    train.add_argument("--config", help="YAML file (sections: " + ", ".join(SECTIONS) + ")")
    train.add_argument(
        "--resume",
        action="store_true",
        help=f"continue the run from {RunDir.STATE_FILE}, with its saved settings; flags may "
        "change the data paths and the training policy, not the model or vocabulary",
    )
    add_config_flags(train, SECTIONS)
    train.set_defaults(func=cmd_train)

    translate = sub.add_parser(
        "translate",
        parents=[common],
        help="translate lines from stdin or --input, one output line per input line",
        description="Translate one sentence per line (lines end at \\n only; \\r\\n is fine). "
        "Every input line gives one output line; a blank line, a line over the length limits or "
        "one that is not valid UTF-8 gives an empty line, with a warning naming the line "
        "(counted from 1) on stderr. With --nbest K > 1 every input line gives exactly K lines "
        "'INDEX<TAB>SCORE<TAB>TEXT', best first, INDEX counting input lines from 0 (as in Moses "
        "n-best lists); a slot without a hypothesis (blank or untranslated line) reads "
        "'INDEX<TAB>-inf<TAB>'. Decoding follows the run's saved settings unless flags change "
        "them: --beam K for beam search, --method sample --samples N --nbest N to see N outputs "
        "drawn at random (--temperature, --topk, --topp shape the draws; --seed repeats them).",
    )
    _add_decoding_flags(translate)
    _add_sampling_flags(translate)
    translate.add_argument(
        "--nbest", type=int, default=1, help="hypotheses per sentence, 1 to --beam (or --samples)"
    )
    translate.add_argument("--input", help="input file, plain or gzip (default: stdin)")
    translate.add_argument(
        "--check-source",
        action="store_true",
        help="warn about each line that looks written in the target language already",
    )
    translate.add_argument(
        "--output",
        help="output file (default: stdout); written only once every line is translated, "
        "through a temporary file, so it may be the --input file and a failure never changes it",
    )
    translate.set_defaults(func=cmd_translate)

    evaluate = sub.add_parser(
        "evaluate",
        parents=[common],
        help="score a run with sacreBLEU and write "
        f"{ReportDir.MARKDOWN_FILE} / {ReportDir.JSON_FILE}",
        description="Translate a test set greedily and with beam search, score BLEU/chrF/TER "
        "with confidence intervals, and write a report with examples and attention plots.",
    )
    _add_decoding_flags(evaluate)
    evaluate.add_argument("--src", help="source file, one sentence a line")
    evaluate.add_argument("--ref", help="reference file, line-aligned with --src")
    evaluate.add_argument("--test-set", help="a Multi30k split instead, e.g. test_2016_flickr")
    evaluate.add_argument("--data-dir", default="data", help="Multi30k cache root (default data)")
    evaluate.add_argument("--mirror", default="", help="Multi30k mirror: URL or folder")
    evaluate.add_argument(
        "--report-dir",
        help=f"default: CHECKPOINT/{RunDir.EVAL_DIR}/TEST_SET; needed with several --checkpoint",
    )
    evaluate.add_argument("--compare", help="another system's output: adds a paired test")
    evaluate.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    evaluate.set_defaults(func=cmd_evaluate)

    average = sub.add_parser(
        "average",
        parents=[common],
        help="average a finished run's last weight snapshots; keep the mean if it validates better",
        description="Average the last N weight snapshots of a run (or the given weight files: "
        f"snapshots or {RunDir.STATE_FILE} copies), score the mean and the run's weights on its "
        f"validation set as training does, keep the mean as {RunDir.WEIGHTS_FILE} only if it "
        f"scores higher, and log both scores in {RunDir.LOG_FILE}.",
    )
    average.add_argument("run", help="run directory (checkpoints/NAME)")
    chosen = average.add_mutually_exclusive_group()
    chosen.add_argument(
        "--last", type=int, help="snapshots to average (default: the run's train.average_last)"
    )
    chosen.add_argument("--files", type=Path, nargs="+", help="weight files to average instead")
    average.set_defaults(func=cmd_average)
    ensemble = sub.add_parser(
        "ensemble",
        parents=[common],
        help="make a folder that decodes several finished runs as one model",
        description="Copy what translation and shipping read of each run into "
        f"FOLDER/{RunDir.MEMBERS_DIR}/<run name> and list them in FOLDER/{RunDir.ENSEMBLE_FILE}: "
        "a self-contained folder that translate, evaluate, ship and the demo load as one model. "
        "The runs must share one SentencePiece model and language pair.",
    )
    ensemble.add_argument("folder", help="the ensemble folder to create (checkpoints/NAME)")
    ensemble.add_argument("runs", nargs="+", help="run directories of the members, in order")
    ensemble.set_defaults(func=cmd_ensemble)
    _add_ship_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except EXPECTED_ERRORS as err:
        if args.debug:
            raise
        raise SystemExit(f"error: {err}") from None
