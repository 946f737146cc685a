"""The report's section on the runs with joined pairs: how their data and long test set are made,
and each model's scores over seeds, with the BLEU-by-length curve."""

from __future__ import annotations

from collections.abc import Sequence

from seq2seq.corpus import Pair
from seq2seq.report_markdown import markdown_table
from study.evaluation import SeedResults, bucket_bleus
from study.grid import LONG_CELLS, TEST_SET, Settings, load_pairs
from study.long_data import MIX_KS, PER_BUCKET, TEST_MAX_K, mix_composition
from study.plots import LONG_CURVE_PNG
from study.seeds import spread


def _mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    value = spread(values)
    return f"{value.mean:.2f} ± {value.sd:.2f}"


def long_lines(
    by_seed: dict[int, SeedResults], long_test: list[Pair], s: Settings, images: dict[str, str]
) -> list[str]:
    """The long-sentence section: how its data is made, and each model's scores over seeds."""
    first = next(iter(next(iter(by_seed.values())).long.values()))
    composition = mix_composition(len(load_pairs(s, "train", s.train_pairs)), MIX_KS)
    mix = " + ".join(f"{count:,} of {k}" for k, count in composition.items())
    buckets = [row["bucket"] for row in first.evaluation["bleu_by_length"]]
    counts = {row["bucket"]: row["count"] for row in first.evaluation["bleu_by_length"]}
    seeds = sorted(by_seed)
    rows = []
    for name in LONG_CELLS:
        runs = [by_seed[seed] for seed in seeds if name in by_seed[seed].long]
        if not runs:
            continue
        by_bucket = bucket_bleus([r.long[name] for r in runs])
        test_bleus = [r.test[name].evaluation["test"]["bleu"]["score"] for r in runs]
        rows.append(
            [
                name,
                len(runs),
                _mean_sd(test_bleus),
                ", ".join(f"{bleu:.2f}" for bleu in test_bleus),
                _mean_sd([r.long[name].evaluation["test"]["bleu"]["score"] for r in runs]),
                *(_mean_sd(by_bucket.get(bucket, [])) for bucket in buckets),
            ]
        )
    headers = [
        "model",
        "seeds",
        f"{TEST_SET} BLEU",
        f"by seed ({', '.join(map(str, seeds))})",
        "long test BLEU",
        *(f"{bucket} words ({counts[bucket]})" for bucket in buckets),
    ]
    return [
        "## Long sentences, over seeds",
        "",
        "Bahdanau et al. (2015, Fig. 2) plot BLEU against sentence length up to 60 words: "
        "without attention, translation collapses as sentences grow; with it, it holds. "
        "Multi30k's sentences are short (about 11 words), so here long pairs are made by joining "
        "consecutive Multi30k pairs, the sources with a space and the targets alike: both sides "
        "stay real text and stay aligned.",
        "",
        f"- Training data: every training pair alone and in non-overlapping runs of "
        f"{', '.join(map(str, MIX_KS[1:]))} consecutive pairs: {mix} = "
        f"{sum(composition.values()):,} pairs ({first.info.get('train_pairs'):,} after cleaning), "
        "so every sentence is seen once alone and once in each kind of run. Validation: the "
        f"validation pairs mixed the same way, {first.info.get('valid_pairs'):,} pairs, BLEU on "
        f"the first {first.cfg.train.valid_max_pairs or 'all'} (every kind of run among them).",
        f"- Long test set: {TEST_SET}'s pairs alone and joined 2 to {TEST_MAX_K} at a time, in "
        "10-word buckets of source length up to 60 words. Within a bucket no test sentence is "
        "used twice: the runs that fit are taken earliest-ending first, which gives the most, "
        f"then at most {PER_BUCKET} of them spread over the test set; {len(long_test):,} pairs "
        "in all (sentences per bucket in the table's header).",
        f"- Models: the six core models and gru-bahdanau-uni (claim 8), the sizes and recipe "
        f"above, **{s.long_steps} optimiser steps** each ("
        + ("under one epoch" if first.epochs is None else f"{first.epochs:.1f} epochs")
        + f" of the mixed pairs), seeds {', '.join(map(str, seeds))}; weights chosen on "
        "validation BLEU as above.",
        "",
        f"Greedy decoding; BLEU as above, mean ± standard deviation over the seeds, and each "
        f"seed's own {TEST_SET} BLEU, so that one run that failed to learn shows as such. "
        f"{TEST_SET} is the usual test set; the long test set's buckets are the curve's points.",
        "",
        *markdown_table(headers, rows),
        f"![BLEU by sentence length, long test set]({images[LONG_CURVE_PNG.removesuffix('.png')]})",
        "",
    ]
