"""The cost of subword regularisation per epoch.

With ``subword.sampling_alpha`` > 0 the trainer segments every training pair anew at the start
of each epoch (`seq2seq.training_data.build_data` with sampling: `Tokenizer.encode_sampled`,
then the token-budget sampler cut from the new lengths). This times that against the plain encoding,
which training does once, and shows what the longer segmentations do to an epoch: target tokens
per sentence and batches under the run's ``max_tokens``. The last column sets the time against
an epoch of the run's own training (its ``train_log.jsonl``).

    python bench/subword_sampling.py --repeats 3 --write
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import common

from seq2seq import checkpoint
from seq2seq.config import SubwordConfig
from seq2seq.training_data import build_data

DEFAULT_SAMPLINGS = "0.1:64,0.1:-1,0.5:-1"


def seconds_per_epoch(run: Path) -> float:
    """Training seconds per epoch of ``run`` (validation included), from its last validation
    record; NaN if its log has none."""
    records = [r for r in checkpoint.read_log(run) if "seconds" in r and r.get("epoch")]
    return records[-1]["seconds"] / records[-1]["epoch"] if records else float("nan")


def segment_and_batch(td: common.TrainingData, sampling: SubwordConfig | None) -> tuple[int, int]:
    """One epoch's segmentation and batches, as training makes them: (target tokens, batches)."""
    data, sampler = build_data(td.tokenizer, td.pairs, td.cfg.train, None, sampling, epoch=0)
    return sum(data.tgt_lengths) - len(data), len(sampler)  # tgt_lengths count an EOS each


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__, repeats=3)
    p.add_argument(
        "--samplings",
        default=DEFAULT_SAMPLINGS,
        help="ALPHA:NBEST pairs, comma-separated (%(default)s)",
    )
    p.add_argument("--pairs", type=int, default=0, help="training pairs; 0 = all (%(default)s)")
    args = common.setup(p.parse_args(argv))
    if args.quick:
        args.repeats, args.pairs = 1, args.pairs or 2000
    td = common.load_training_data(args.run, args.mirror, args.pairs)
    samplings = [tuple(item.split(":")) for item in args.samplings.split(",") if item]
    settings = [("plain (once per run)", None)] + [
        (
            f"{td.cfg.subword.model_type} α {alpha}, nbest {nbest}",
            dataclasses.replace(td.cfg.subword, sampling_alpha=float(alpha), nbest_size=int(nbest)),
        )
        for alpha, nbest in samplings
    ]
    epoch_seconds = seconds_per_epoch(args.run)
    rows: list[list[object]] = []
    plain = 0.0
    for name, sampling in settings:
        tokens, batches = segment_and_batch(td, sampling)
        run_once = functools.partial(segment_and_batch, td, sampling)
        seconds = common.median([common.timed(run_once) for _ in range(args.repeats)])
        plain = plain or seconds
        rows.append(
            [
                name,
                seconds,
                common.ratio(seconds / plain),
                tokens / len(td.pairs),
                batches,
                common.percent(seconds / epoch_seconds),
            ]
        )
    body = [
        f"Run `{args.run}` ({td.cfg.subword.model_type}, vocabulary {td.cfg.subword.vocab_size}); "
        f"{len(td.pairs):,} training pairs segmented and cut into batches of max_tokens "
        f"{td.cfg.train.max_tokens} (epoch 0); median of {args.repeats}. An epoch of the run's "
        f"training took {epoch_seconds:,.0f} s.",
        "",
        common.table(
            [
                "segmentation",
                "seconds per epoch",
                "vs plain",
                "target tokens per sentence",
                "batches per epoch",
                "share of an epoch",
            ],
            rows,
        ),
    ]
    common.publish(args, "Subword sampling: cost per epoch", "\n".join(body))


if __name__ == "__main__":
    main()
