"""sacreBLEU metrics: BLEU, chrF and TER on detokenised, cased text against raw references.

Every score carries its sacreBLEU signature so that a reader can reproduce it. Intervals are 95%
percentile bootstrap intervals (Koehn 2004) computed here from sacreBLEU's per-sentence sufficient
statistics, not by sacreBLEU's own bootstrap: that one crashes on degenerate output (sacreBLEU
2.6's chrF, e.g. every hypothesis the same short string: "don't know how to coerce float and
float32") and centres its interval on the resamples' mean rather than on the score. On 1000
sentences the endpoints agree with sacreBLEU's to within 0.05 points, less than sacreBLEU's own
spread from one seed to another; on 100 to within about 0.5, where BLEU's skew tells the
percentile interval from sacreBLEU's symmetric one.
The tokenised, lowercased BLEU that the Multi30k literature reports is kept apart under a name
that says it is not comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sacrebleu import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric
from sacrebleu.significance import PairedTest, Result

TOKENIZED_LC_BLEU_NAME = "BLEU tok+lc (not comparable with sacreBLEU)"
TOKENIZED_LC_BLEU_NOTE = (
    "BLEU on tokenised, lowercased text, as the Multi30k literature reports it (multi-bleu.perl on "
    "Moses-tokenised text), approximated with sacreBLEU's 13a tokenizer and lowercase=True. "
    "It is not comparable with the cased, detokenised sacreBLEU scores."
)
SIGNIFICANCE_TESTS = ("bs", "ar")  # paired bootstrap resampling, approximate randomisation
BOOTSTRAP_SEED = 0  # fixed so that intervals repeat; signatures record it as seed:0


@dataclass(frozen=True)
class MetricScore:
    """A corpus score, its sacreBLEU signature and, when bootstrapped, its 95% interval."""

    name: str
    score: float
    signature: str
    ci_low: float | None = None
    ci_high: float | None = None


def check_parallel(hyps: Sequence[str], refs: Sequence[str]) -> None:
    """Raises ValueError unless there is exactly one reference per hypothesis, and at least one."""
    if len(hyps) != len(refs):
        raise ValueError(
            f"{len(hyps)} hypotheses but {len(refs)} references: need one reference per hypothesis"
        )
    if not hyps:
        raise ValueError("no sentences to score: hypotheses and references are empty")


def _corpus_metrics() -> dict[str, Metric]:
    # Fresh objects per call: a sacreBLEU metric caches its references.
    # TER is case-insensitive by default in sacreBLEU; we score cased text throughout.
    return {"bleu": BLEU(), "chrf": CHRF(), "ter": TER(case_sensitive=True)}


@dataclass(frozen=True)
class Interval:
    """An estimate and its 95% percentile bootstrap interval; printed with signs, as intervals of
    differences between systems are read."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def sentence_statistics(metric: Metric, hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    """Per-sentence sufficient statistics of a sacreBLEU metric (N, K): lengths, n-gram matches and
    totals for BLEU and chrF, edits and reference length for TER. Summing rows and
    `score_from_statistics` gives the corpus score of any subset, which is how sacreBLEU
    bootstraps."""
    check_parallel(hyps, refs)
    # Private sacreBLEU API, pinned by a test against corpus_score (tests/test_metrics.py).
    return np.asarray(metric._extract_corpus_statistics(list(hyps), [list(refs)]))


def score_from_statistics(metric: Metric, summed: np.ndarray) -> float:
    """The corpus score from statistics summed over sentences, (K,)."""
    return float(metric._compute_score_from_stats(summed.tolist()).score)


def bootstrap(
    statistic: Callable[[list[np.ndarray]], float],
    groups: list[np.ndarray],
    n: int,
    seed: int = BOOTSTRAP_SEED,
) -> Interval | None:
    """`statistic` of groups of sentence indices and its 95% percentile interval, each group
    resampled with replacement on its own n times (Koehn 2004); None when a group is empty."""
    if any(len(group) == 0 for group in groups):
        return None
    rng = np.random.default_rng(seed)
    samples = [
        statistic([rng.choice(group, size=len(group)) for group in groups]) for _ in range(n)
    ]
    low, high = np.percentile(samples, [2.5, 97.5])
    return Interval(statistic(groups), float(low), float(high))


def bootstrap_interval(
    metric: Metric, hyps: Sequence[str], refs: Sequence[str], n: int, seed: int = BOOTSTRAP_SEED
) -> Interval:
    """A metric's corpus score and its 95% bootstrap interval over the sentences (n resamples)."""
    stats = sentence_statistics(metric, hyps, refs)
    interval = bootstrap(
        lambda groups: score_from_statistics(metric, stats[groups[0]].sum(0)),
        [np.arange(len(stats))],
        n,
        seed,
    )
    assert interval is not None  # check_parallel: there are sentences
    return interval


def paired_gain(
    hyps: Sequence[str],
    baseline_hyps: Sequence[str],
    refs: Sequence[str],
    n: int,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """BLEU(hyps) - BLEU(baseline_hyps) and its 95% paired-bootstrap interval: both systems
    resampled with the same sentences (Koehn 2004)."""
    check_parallel(hyps, refs)
    check_parallel(baseline_hyps, refs)
    metric = _corpus_metrics()["bleu"]
    system = sentence_statistics(metric, hyps, refs)
    baseline = sentence_statistics(metric, baseline_hyps, refs)

    def gain(groups: list[np.ndarray]) -> float:
        rows = groups[0]
        return score_from_statistics(metric, system[rows].sum(0)) - score_from_statistics(
            metric, baseline[rows].sum(0)
        )

    interval = bootstrap(gain, [np.arange(len(system))], n, seed)
    assert interval is not None  # check_parallel: there are sentences
    return interval


def _score_with(
    metric: Metric, hyps: Sequence[str], refs: Sequence[str], n_bootstrap: int, name: str = ""
) -> MetricScore:
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    check_parallel(hyps, refs)
    result = metric.corpus_score(list(hyps), [list(refs)])
    ci_low = ci_high = None
    if n_bootstrap > 1:  # one resample has no spread
        interval = bootstrap_interval(metric, hyps, refs, n_bootstrap)
        ci_low, ci_high = interval.low, interval.high
        # What sacreBLEU's signature records of a bootstrap: resamples and seed.
        metric.n_bootstrap, metric.seed = n_bootstrap, str(BOOTSTRAP_SEED)
    signature = str(metric.get_signature())  # after scoring: it names nrefs (and bs, seed)
    return MetricScore(name or result.name, float(result.score), signature, ci_low, ci_high)


def score_corpus(
    hyps: Sequence[str], refs: Sequence[str], n_bootstrap: int = 1000
) -> dict[str, MetricScore]:
    """BLEU, chrF and TER (keys "bleu", "chrf", "ter") of detokenised hypotheses.

    Args:
        hyps: one detokenised, cased hypothesis per sentence.
        refs: the raw references, one per hypothesis.
        n_bootstrap: bootstrap resamples for the 95% interval; 0 (or 1) gives no interval.
    """
    return {
        key: _score_with(metric, hyps, refs, n_bootstrap)
        for key, metric in _corpus_metrics().items()
    }


def tokenized_lowercase_bleu(
    hyps: Sequence[str], refs: Sequence[str], n_bootstrap: int = 0
) -> MetricScore:
    """The tokenised, lowercased BLEU of the Multi30k literature; see TOKENIZED_LC_BLEU_NOTE."""
    metric = BLEU(lowercase=True, tokenize="13a")
    return _score_with(metric, hyps, refs, n_bootstrap, name=TOKENIZED_LC_BLEU_NAME)


def sentence_chrf(hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
    """Sentence-level chrF of each hypothesis; unlike sentence BLEU it is informative on short
    sentences, so it ranks examples."""
    check_parallel(hyps, refs)
    metric = CHRF()
    return [
        float(metric.sentence_score(hyp, [ref]).score) for hyp, ref in zip(hyps, refs, strict=True)
    ]


def length_ratio(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Hypothesis length / reference length over the corpus, in 13a tokens (BLEU's sys/ref len)."""
    check_parallel(hyps, refs)
    result = BLEU().corpus_score(list(hyps), [list(refs)])
    return float(result.sys_len / result.ref_len) if result.ref_len else 0.0


def bucket_labels(edges: Sequence[int]) -> list[str]:
    """The names of the buckets that ``edges`` make, as `bleu_by_length` gives them."""
    lows = [1, *(edge + 1 for edge in edges)]
    highs: list[int | None] = [*edges, None]
    return [
        f"{low}-{high}" if high is not None else f"{low}+"
        for low, high in zip(lows, highs, strict=True)
    ]


def bucket_index(num_words: int, edges: Sequence[int]) -> int:
    """The bucket of a sentence of ``num_words`` words: len(edges) past the last edge."""
    return next((i for i, edge in enumerate(edges) if num_words <= edge), len(edges))


def bleu_by_length(
    sources: Sequence[str],
    hyps: Sequence[str],
    refs: Sequence[str],
    edges: Sequence[int] = (10, 20, 30),
) -> list[dict[str, Any]]:
    """Corpus BLEU per bucket of source length in whitespace words; empty buckets are left out.

    With the default edges the buckets are "1-10", "11-20", "21-30" and "31+". Returns one dict per
    non-empty bucket: {"bucket", "count", "bleu"}.
    """
    check_parallel(hyps, refs)
    if len(sources) != len(hyps):
        raise ValueError(f"{len(sources)} sources but {len(hyps)} hypotheses: need one per source")
    if not edges or any(e <= 0 for e in edges) or list(edges) != sorted(set(edges)):
        raise ValueError(f"edges must be positive and strictly increasing, got {tuple(edges)}")
    members: list[list[int]] = [[] for _ in range(len(edges) + 1)]
    for i, source in enumerate(sources):
        members[bucket_index(len(source.split()), edges)].append(i)
    rows = []
    for label, indices in zip(bucket_labels(edges), members, strict=True):
        if indices:
            bleu = BLEU().corpus_score([hyps[i] for i in indices], [[refs[i] for i in indices]])
            rows.append({"bucket": label, "count": len(indices), "bleu": float(bleu.score)})
    return rows


def _paired_test(
    metric: Metric,
    refs: Sequence[str],
    named_systems: list[tuple[str, Sequence[str]]],
    test: str,
    n: int,
) -> dict[str, Any]:
    signatures, results = PairedTest(
        named_systems,
        metrics={"metric": metric},
        references=[list(refs)],
        test_type=test,
        n_samples=n,
    )()
    (metric_name,) = signatures  # one metric per test, so its name is the only key
    baseline, system = results[metric_name]
    assert isinstance(baseline, Result) and isinstance(system, Result)
    assert system.p_value is not None
    # sacreBLEU counts only resampled differences strictly above the observed one, so two equal
    # scores get p = 1/(n+1). No observed difference is never evidence of one: p = 1.
    p_value = 1.0 if system.score == baseline.score else float(system.p_value)
    if test == "ar" and p_value < 1.0:
        p_value = approximate_randomization_p(metric, refs, named_systems, n)
    return {
        "name": metric_name,
        "baseline": float(baseline.score),
        "system": float(system.score),
        "p_value": p_value,
        "signature": str(signatures[metric_name]),
    }


def approximate_randomization_p(
    metric: Metric,
    refs: Sequence[str],
    named_systems: list[tuple[str, Sequence[str]]],
    n: int,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """Two-sided approximate randomisation (Riezler & Maxwell 2005): the share of n random
    swaps of the two systems' sentences whose score difference is at least the observed one.

    sacreBLEU counts only differences strictly above it, so when the systems differ in a few
    sentences, where most swaps tie the observed difference, it reports p near 1/(n+1).
    """
    (_, baseline_hyps), (_, system_hyps) = named_systems
    a = sentence_statistics(metric, baseline_hyps, refs)
    b = sentence_statistics(metric, system_hyps, refs)
    observed = abs(
        score_from_statistics(metric, a.sum(0)) - score_from_statistics(metric, b.sum(0))
    )
    swap = np.random.default_rng(seed).integers(2, size=(n, len(a)), dtype=bool)  # (n, N)
    shuffled_a = swap @ b + ~swap @ a  # (n, K) summed statistics of each shuffled system
    shuffled_b = swap @ a + ~swap @ b
    at_least = sum(
        abs(score_from_statistics(metric, x) - score_from_statistics(metric, y)) >= observed - 1e-9
        for x, y in zip(shuffled_a, shuffled_b, strict=True)
    )
    return (at_least + 1) / (n + 1)


def paired_significance(
    refs: Sequence[str],
    baseline_hyps: Sequence[str],
    system_hyps: Sequence[str],
    names: tuple[str, str] = ("baseline", "system"),
    test: str = "bs",
    n: int = 1000,
) -> dict[str, Any]:
    """Paired significance test of a system against a baseline with sacreBLEU's PairedTest.

    Args:
        test: "bs" (paired bootstrap resampling) or "ar" (approximate randomisation).
        n: resamples ("bs") or trials ("ar").

    Returns:
        {"test", "n", "baseline", "system", "metrics": {"bleu": {...}, "chrf": {...}}}, each metric
        with "name", "baseline" and "system" scores, "p_value" and "signature", all plain values.
    """
    if test not in SIGNIFICANCE_TESTS:
        raise ValueError(f"test={test!r} is not one of {', '.join(SIGNIFICANCE_TESTS)}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    check_parallel(baseline_hyps, refs)
    check_parallel(system_hyps, refs)
    named_systems: list[tuple[str, Sequence[str]]] = [
        (names[0], list(baseline_hyps)),
        (names[1], list(system_hyps)),
    ]
    metrics: dict[str, Metric] = {"bleu": BLEU(), "chrf": CHRF()}
    return {
        "test": test,
        "n": n,
        "baseline": names[0],
        "system": names[1],
        "metrics": {
            key: _paired_test(metric, refs, named_systems, test, n)
            for key, metric in metrics.items()
        },
    }
