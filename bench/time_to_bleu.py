"""Time to quality: train a config for a wall-clock budget and print validation BLEU against
minutes; with --test, also the finished run's BLEU on test_2016_flickr with its own decoding.

Settings after the options are `seq2seq train` flags, so one config can be ablated in place:

    python bench/time_to_bleu.py --config configs/multi30k-de-en-30min.yaml --minutes 30 \
        --threads 2 --test --write
    python bench/time_to_bleu.py --config configs/multi30k-de-en-30min.yaml --minutes 30 \
        --threads 2 --name no-average --test --write -- --train.average_last 0

Run it on a quiet machine: the budget is wall-clock time. A killed run is resumed by running
the same command again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import common

from seq2seq import checkpoint
from seq2seq.cli import SECTIONS, build_parser, config_from_args
from seq2seq.config import RunConfig
from seq2seq.metrics import score_corpus
from seq2seq.rundir import RunDir
from seq2seq.train import train
from seq2seq.translate import Translator


def budgeted_config(args, extra: list[str]) -> RunConfig:
    """The config file and flags, with this benchmark's budget, threads and run folder."""
    parsed = build_parser().parse_args(["train", "--config", str(args.config), *extra])
    cfg = config_from_args(parsed, SECTIONS)
    data = dataclasses.replace(cfg.data, mirror=cfg.data.mirror or args.mirror)
    if args.quick:
        data = dataclasses.replace(data, max_train_pairs=2000, max_valid_pairs=100)
    train_cfg = dataclasses.replace(
        cfg.train,
        name=args.name or f"{cfg.train.name}-{args.minutes:g}min",
        out_dir=str(args.out),
        max_minutes=args.minutes,
        max_steps=0,
        threads=args.threads,
        progress="log",
    )
    return dataclasses.replace(cfg, data=data, train=train_cfg)


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__, repeats=1)
    p.add_argument("--config", type=Path, required=True, help="YAML config of the run")
    p.add_argument("--minutes", type=float, default=30.0, help="training budget (%(default)s)")
    p.add_argument("--name", default="", help="run name (default: the config's, with minutes)")
    p.add_argument("--out", type=Path, default=Path("runs/time-to-bleu"), help="runs folder")
    p.add_argument("--test", action="store_true", help="score test_2016_flickr at the end")
    args, extra = p.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    if args.quick:
        args.minutes = min(args.minutes, 0.5)
    cfg = budgeted_config(args, extra)
    run = RunDir(Path(cfg.train.out_dir) / cfg.train.name)
    run_dir = train(cfg, resume=run.state.is_file())
    rows = [
        [f"{r['seconds'] / 60:.1f}", r["step"], r["epoch"], r["valid_bleu"]]
        for r in checkpoint.read_log(run_dir)
        if "valid_bleu" in r
    ]
    body = common.table(["minutes", "step", "epoch", "valid BLEU (greedy)"], rows)
    _, info = checkpoint.load_config(run_dir)
    body += f"\n\nRun `{run_dir}`: {info.get('stopped', '')}; best validation BLEU "
    body += f"{info.get('best_valid_bleu', float('nan')):.2f} at step {info.get('best_step')}.\n"
    if args.test:
        translator = Translator.from_run(run_dir, device="cpu")
        sources, refs = common.load_test(args.mirror, *translator.language_pair)
        bleu = score_corpus([t.text for t in translator.translate(sources)], refs, n_bootstrap=0)
        decode = translator.cfg.decode
        body += (
            f"\ntest_2016_flickr, beam {decode.beam_size}, length penalty "
            f"{decode.length_penalty:g}: **BLEU {bleu['bleu'].score:.2f}** "
            f"({bleu['bleu'].signature})\n"
        )
    extra_text = " ".join(extra)
    title = f"Time to BLEU: {args.config.name}, {args.minutes:g} minutes {extra_text}".strip()
    common.publish(args, title, body)


if __name__ == "__main__":
    main()
