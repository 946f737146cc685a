"""Claims over several seeds: each seed's models are judged by the claim's one-run rule on their
own; the claim is confirmed or refuted only when every seed gives that verdict, and unclear when
the seeds disagree. The numbers each verdict rests on (`Claim.measures`) are given as their mean
and spread over the seeds, beside every seed's own evidence (its paired bootstrap intervals).

Which claims are decided this way, on which test set: `seeded_claims`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from study.claims import (
    CLAIMS,
    Claim,
    Evidence,
    build_evidence,
    claim_attention_long,
    claim_bidirectional,
    claim_gru_as_good,
    claim_gru_faster,
    claim_gru_parameters,
)
from study.evaluation import SeedResults
from study.grid import LONG_EDGES, Settings

# Decided on test_2016_flickr by each seed's models trained with joined pairs ...
ON_TEST_SET = (claim_gru_parameters, claim_gru_faster, claim_gru_as_good, claim_bidirectional)
# ... and on the long test set, its shortest bucket against its longest.
ON_LONG_TEST_SET = (claim_attention_long,)


def agreed_verdict(verdicts: Sequence[str]) -> str:
    """The seeds' common verdict, or unclear when they differ (or there is none)."""
    return verdicts[0] if len(set(verdicts)) == 1 else "unclear"


@dataclass(frozen=True)
class Spread:
    """A measure over seeds: its mean, sample standard deviation (0 for one seed) and range."""

    mean: float
    sd: float
    low: float
    high: float

    def __str__(self) -> str:
        return (
            f"mean {self.mean:+.2f} ± {self.sd:.2f} (sd), range {self.low:+.2f} to {self.high:+.2f}"
        )


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("a spread needs at least one value")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return Spread(statistics.fmean(values), sd, min(values), max(values))


def seed_rule(rule: str, seeds: int) -> str:
    return (
        f"{rule} Over seeds: each of the {seeds} seeds' models is judged by this rule on its "
        "own; the claim is confirmed or refuted only when every seed gives that verdict, and "
        "unclear when they disagree."
    )


def across_seeds(by_seed: dict[int, Claim]) -> Claim:
    """One claim from its verdicts seed by seed (`agreed_verdict`), with the mean and spread of
    the measures every seed has, then each seed's evidence."""
    seeds = sorted(by_seed)
    claims = [by_seed[seed] for seed in seeds]
    first = claims[0]
    verdicts = [claim.verdict for claim in claims]
    verdict = agreed_verdict(verdicts)
    shared = [name for name in first.measures if all(name in c.measures for c in claims)]
    spreads = {name: spread([c.measures[name] for c in claims]) for name in shared}
    evidence = [f"{name}: {value}" for name, value in spreads.items()]
    evidence += [
        f"seed {seed}: {line}" for seed, c in zip(seeds, claims, strict=True) for line in c.evidence
    ]
    listed = ", ".join(f"{v} (seed {seed})" for seed, v in zip(seeds, verdicts, strict=True))
    plain = f"Over {len(seeds)} seeds: {listed}"
    plain += ": they agree." if len(set(verdicts)) == 1 else ": they disagree, so it is unclear."
    if spreads:
        plain += " Means: " + "; ".join(f"{n} {v.mean:+.2f}" for n, v in spreads.items()) + "."
    measures = {name: value.mean for name, value in spreads.items()}
    return Claim(first.title, verdict, evidence, seed_rule(first.rule, len(seeds)), plain, measures)


def seeded_claims(
    by_seed: dict[int, SeedResults],
    test_sources: Sequence[str],
    long_sources: Sequence[str],
    s: Settings,
) -> dict[int, Claim]:
    """Claims 5 to 8 on the test set and 9 on the long test set, each over the seeds, by their
    number in `study.claims.CLAIMS`."""
    by_rule: dict[Callable[[Evidence], Claim], dict[int, Claim]] = {}
    for seed, results in by_seed.items():
        on_test = build_evidence(results.test, test_sources, s)
        on_long = build_evidence(
            results.long, long_sources, s, short_max=LONG_EDGES[0], long_over=LONG_EDGES[-2]
        )
        for rule in ON_TEST_SET:
            by_rule.setdefault(rule, {})[seed] = rule(on_test)
        for rule in ON_LONG_TEST_SET:
            by_rule.setdefault(rule, {})[seed] = rule(on_long)
    return {CLAIMS.index(rule) + 1: across_seeds(by) for rule, by in by_rule.items()}
