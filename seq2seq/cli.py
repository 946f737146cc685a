"""Command line: `seq2seq prepare | train | translate | evaluate`.

Parses arguments into the config dataclasses and calls one function; no logic of its own.
Config flags are built from the dataclass fields as ``--SECTION.FIELD VALUE`` (for example
``--model.cell lstm --train.lr 1e-3``); a YAML file given with ``--config`` is applied first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seq2seq.config import DataConfig, RunConfig, build, load_yaml

SECTIONS = ("data", "clean", "subword", "model", "train", "decode")


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


def add_config_flags(parser: argparse.ArgumentParser, sections: Sequence[str]) -> None:
    defaults = RunConfig()
    for section in sections:
        group = parser.add_argument_group(f"{section} settings")
        for f in dataclasses.fields(getattr(defaults, section)):
            default = getattr(getattr(defaults, section), f.name)
            group.add_argument(
                f"--{section}.{f.name}",
                dest=f"{section}.{f.name}",
                metavar=type(default).__name__.upper(),
                default=None,
                help=f"(default: {default!r})",
            )


def config_from_args(args: argparse.Namespace, sections: Sequence[str]) -> RunConfig:
    """Defaults, then the YAML file, then the flags; every value validated by the dataclasses."""
    raw: dict[str, Any] = load_yaml(args.config) if getattr(args, "config", None) else {}
    defaults = RunConfig()
    for section in sections:
        for f in dataclasses.fields(getattr(defaults, section)):
            text = getattr(args, f"{section}.{f.name}")
            if text is not None:
                default = getattr(getattr(defaults, section), f.name)
                flag = f"--{section}.{f.name}"
                raw.setdefault(section, {})[f.name] = _parse_value(text, default, flag)
    try:
        return build(RunConfig, raw, where="config")
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def cmd_prepare(args: argparse.Namespace) -> None:
    from seq2seq.corpus import clean_pairs, load_split, normalize_pairs

    cfg = config_from_args(args, ("data", "clean"))
    splits = args.splits or ["train", "val"]
    summary: dict[str, Any] = {
        "data": dataclasses.asdict(cfg.data),
        "clean": dataclasses.asdict(cfg.clean),
    }
    for split in splits:
        pairs = load_split(cfg.data, split)
        if split == "train":
            _, stats = clean_pairs(pairs, cfg.clean)
            summary["train"] = stats.to_dict()
            print(f"train: {stats.summary()}")
        else:
            summary[split] = {"total": len(normalize_pairs(pairs))}
            print(f"{split}: {len(pairs)} pairs (normalised, none dropped)")
    out = (
        Path(cfg.data.data_dir)
        / f"{cfg.data.corpus}-{cfg.data.src_lang}-{cfg.data.tgt_lang}.clean.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"counts saved to {out}")


def cmd_train(args: argparse.Namespace) -> None:
    from seq2seq.train import train

    cfg = config_from_args(args, SECTIONS)
    run_dir = train(cfg, resume=args.resume)
    print(run_dir)


def _read_input(path: str | None) -> list[str]:
    if path is None:
        return sys.stdin.read().splitlines()
    from seq2seq.corpus import read_lines

    return read_lines(path)


def cmd_translate(args: argparse.Namespace) -> None:
    from seq2seq.translate import Translator

    translator = Translator.from_run(args.checkpoint, device=args.device, quantize=args.int8)
    lines = _read_input(args.input)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        results = translator.translate(
            lines,
            beam_size=args.beam,
            nbest=args.nbest,
            length_penalty=args.length_penalty,
            batch_size=args.batch_size,
            skip_invalid=True,
        )
        for index, result in enumerate(results):
            if result.error:
                print(f"warning: line {index + 1} not translated: {result.error}", file=sys.stderr)
            if args.nbest > 1:
                for text, score in result.nbest:
                    out.write(f"{index}\t{score:.4f}\t{text}\n")
            else:
                out.write(result.text + "\n")
    finally:
        if out is not sys.stdout:
            out.close()


def cmd_evaluate(args: argparse.Namespace) -> None:
    from seq2seq.corpus import load_split, read_lines
    from seq2seq.evaluate import evaluate_translator
    from seq2seq.translate import Translator

    translator = Translator.from_run(args.checkpoint, device=args.device, quantize=args.int8)
    if args.test_set:
        src_lang, tgt_lang = translator.language_pair
        data = DataConfig(
            src_lang=src_lang, tgt_lang=tgt_lang, data_dir=args.data_dir, mirror=args.mirror
        )
        pairs = load_split(data, args.test_set)
        sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    elif args.src and args.ref:
        sources, references = read_lines(args.src), read_lines(args.ref)
        if len(sources) != len(references):
            raise SystemExit(
                f"error: {args.src} has {len(sources)} lines but {args.ref} has {len(references)}"
            )
    else:
        raise SystemExit("error: give --src and --ref, or --test-set NAME")
    compare = read_lines(args.compare) if args.compare else None
    report_dir = Path(
        args.report_dir or Path(args.checkpoint) / "eval" / (args.test_set or "custom")
    )
    length_penalty = (
        translator.cfg.decode.length_penalty if args.length_penalty is None else args.length_penalty
    )
    report = evaluate_translator(
        translator,
        sources,
        references,
        beam_size=args.beam,
        length_penalty=length_penalty,
        batch_size=args.batch_size,
        report_dir=report_dir,
        compare_hyps=compare,
        n_bootstrap=args.bootstrap,
    )
    print(f"report written to {report_dir}/report.md")
    for system in report["systems"]:
        bleu, chrf = system["scores"]["bleu"], system["scores"]["chrf"]
        print(f"{system['name']}: BLEU {bleu['score']:.2f} chrF {chrf['score']:.2f}")
    print(report["systems"][-1]["scores"]["bleu"]["signature"])


def _add_decoding_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="run directory (checkpoints/NAME)")
    parser.add_argument("--beam", type=int, default=5, help="beam size; 1 = greedy (default 5)")
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=None,
        help="GNMT alpha (default: the run's decode.length_penalty)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument(
        "--int8", action="store_true", help="int8 dynamic quantisation (CPU; see bench/RESULTS.md)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seq2seq",
        description="RNN encoder-decoder translation: prepare, train, translate, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    prepare = sub.add_parser(
        "prepare",
        help="download (Multi30k) or read a parallel corpus, clean it, print counts",
        description="Fetch Multi30k task 1 with checksums into data/multi30k/ (or read your own "
        "files: --data.corpus files --data.train SRC,TGT|FILE.tsv --data.valid ...), clean the "
        "training split and print and save what was kept and dropped.",
    )
    prepare.add_argument("--config", help="YAML file with data/clean sections")
    prepare.add_argument("--splits", nargs="*", help="splits to fetch (default: train val)")
    add_config_flags(prepare, ("data", "clean"))
    prepare.set_defaults(func=cmd_prepare)

    train = sub.add_parser(
        "train",
        help="train a model into checkpoints/NAME (resumable; torchrun for many processes)",
        description="Train an attentional RNN encoder-decoder. Settings come from the dataclass "
        "defaults, then --config FILE.yaml, then --SECTION.FIELD flags.",
    )
    train.add_argument("--config", help="YAML file (sections: " + ", ".join(SECTIONS) + ")")
    train.add_argument("--resume", action="store_true", help="continue the run from last.pt")
    add_config_flags(train, SECTIONS)
    train.set_defaults(func=cmd_train)

    translate = sub.add_parser(
        "translate",
        help="translate lines from stdin or --input, one output line per input line",
        description="Translate one sentence per line. With --nbest K > 1 each output line is "
        "'INDEX<TAB>SCORE<TAB>TEXT'.",
    )
    _add_decoding_flags(translate)
    translate.add_argument("--nbest", type=int, default=1, help="hypotheses per sentence")
    translate.add_argument("--input", help="input file (default: stdin)")
    translate.add_argument("--output", help="output file (default: stdout)")
    translate.set_defaults(func=cmd_translate)

    evaluate = sub.add_parser(
        "evaluate",
        help="score a run with sacreBLEU and write report.md / report.json",
        description="Translate a test set greedily and with beam search, score BLEU/chrF/TER "
        "with confidence intervals, and write a report with examples and attention plots.",
    )
    _add_decoding_flags(evaluate)
    evaluate.add_argument("--src", help="source file, one sentence a line")
    evaluate.add_argument("--ref", help="reference file, line-aligned with --src")
    evaluate.add_argument("--test-set", help="a Multi30k split instead, e.g. test_2016_flickr")
    evaluate.add_argument("--data-dir", default="data", help="Multi30k cache root (default data)")
    evaluate.add_argument("--mirror", default="", help="Multi30k mirror: URL or folder")
    evaluate.add_argument("--report-dir", help="default: CHECKPOINT/eval/TEST_SET")
    evaluate.add_argument("--compare", help="another system's output: adds a paired test")
    evaluate.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
