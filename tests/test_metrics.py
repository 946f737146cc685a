"""sacreBLEU metrics: exact values on hand-checkable cases, signatures, intervals, edge cases."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sacrebleu import BLEU, CHRF, TER

from seq2seq.metrics import (
    TOKENIZED_LC_BLEU_NAME,
    bleu_by_length,
    bootstrap,
    bootstrap_interval,
    length_ratio,
    paired_gain,
    paired_significance,
    score_corpus,
    score_from_statistics,
    sentence_chrf,
    sentence_statistics,
    tokenized_lowercase_bleu,
)

REFS = [
    "A man in a blue shirt is standing on a ladder.",
    "Two dogs are running through the snow.",
    "A little girl climbs into a wooden playhouse.",
    "People are sitting at tables in a busy restaurant.",
    "A woman with a red hat plays the guitar on the street.",
    "Three children are jumping into a swimming pool.",
]


def _degraded(refs: list[str], seed: int, drop: float) -> list[str]:
    """Each reference with a fraction of its words dropped at random."""
    rng = random.Random(seed)
    return [" ".join(w for w in ref.split() if rng.random() > drop) for ref in refs]


def test_identical_output_scores_perfectly() -> None:
    scores = score_corpus(REFS, REFS, n_bootstrap=0)
    assert scores["bleu"].score == pytest.approx(100.0)
    assert scores["chrf"].score == pytest.approx(100.0)
    assert scores["ter"].score == pytest.approx(0.0)


def test_one_changed_word_gives_hand_computed_bleu() -> None:
    # "the" → "a" in a 6-word sentence: n-gram precisions 5/6, 3/5, 2/4, 1/3; no brevity penalty.
    score = score_corpus(["the cat sat on a mat"], ["the cat sat on the mat"], n_bootstrap=0)
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert score["bleu"].score == pytest.approx(expected)
    assert score["ter"].score == pytest.approx(100 / 6)  # one substitution in six words


def test_signatures_name_references_and_case() -> None:
    for score in score_corpus(REFS, REFS, n_bootstrap=0).values():
        assert "nrefs:1" in score.signature
        assert "case:mixed" in score.signature


def test_interval_contains_score_and_is_signed() -> None:
    refs = REFS * 5
    scores = score_corpus(_degraded(refs, seed=1, drop=0.3), refs, n_bootstrap=50)
    for score in scores.values():
        assert score.ci_low is not None
        assert score.ci_high is not None
        assert score.ci_low <= score.score <= score.ci_high
        assert score.ci_low < score.ci_high
        assert "bs:50" in score.signature


@pytest.mark.parametrize("output", ["", "A", "A man is standing."])
def test_degenerate_output_still_gets_an_interval(output: str) -> None:
    # A model that says the same thing to every sentence. With "A", some resamples hold only
    # references without a capital A: no character matches, a chrF of float 0.0 among numpy
    # float32 scores, and sacreBLEU 2.6's own bootstrap (seed 12345) crashes averaging them.
    scores = score_corpus([output] * len(REFS), REFS, n_bootstrap=1000)
    for score in scores.values():
        assert score.ci_low is not None and score.ci_high is not None
        assert score.ci_low <= score.score <= score.ci_high
        assert "bs:1000" in score.signature


def test_corpus_score_from_sentence_statistics_matches_sacrebleu() -> None:
    hyps = ["a dog runs on the grass .", "two men talk", "a red car"]
    refs = ["a dog is running on the grass .", "two men are talking", "the red car"]
    for make in (BLEU, CHRF, lambda: TER(case_sensitive=True)):
        stats = sentence_statistics(make(), hyps, refs)
        expected = make().corpus_score(hyps, [refs]).score
        assert score_from_statistics(make(), stats.sum(0)) == pytest.approx(expected)
        subset = make().corpus_score(hyps[:2], [refs[:2]]).score
        assert score_from_statistics(make(), stats[:2].sum(0)) == pytest.approx(subset)
    assert sentence_statistics(BLEU(), hyps, refs).shape == (3, 10)


def test_bootstrap_interval_is_seeded_and_around_the_score() -> None:
    refs = REFS * 5
    hyps = _degraded(refs, seed=5, drop=0.3)
    first = bootstrap_interval(CHRF(), hyps, refs, n=100, seed=3)
    assert first == bootstrap_interval(CHRF(), hyps, refs, n=100, seed=3)
    assert first.value == pytest.approx(CHRF().corpus_score(hyps, [refs]).score)
    assert first.low < first.value < first.high


def test_bootstrap_gives_an_interval_around_the_estimate() -> None:
    values = np.arange(100, dtype=float)
    interval = bootstrap(lambda g: float(values[g[0]].mean()), [np.arange(100)], n=200)
    assert interval is not None
    assert interval.value == pytest.approx(49.5)
    assert interval.low < 49.5 < interval.high and interval.high - interval.low < 20
    assert bootstrap(lambda g: 0.0, [np.arange(3), np.arange(0)], n=5) is None


def test_no_bootstrap_no_interval() -> None:
    score = score_corpus(REFS, REFS, n_bootstrap=0)["bleu"]
    assert (score.ci_low, score.ci_high) == (None, None)
    assert "bs:" not in score.signature


def test_mismatched_lengths_name_both_counts() -> None:
    with pytest.raises(ValueError, match="3 hypotheses but 2 references"):
        score_corpus(["a", "b", "c"], ["a", "b"], n_bootstrap=0)


@pytest.mark.parametrize("n_bootstrap", [0, 10])
def test_empty_input_raises(n_bootstrap: int) -> None:
    with pytest.raises(ValueError, match="no sentences"):
        score_corpus([], [], n_bootstrap=n_bootstrap)


def test_negative_bootstrap_raises() -> None:
    with pytest.raises(ValueError, match="n_bootstrap"):
        score_corpus(REFS, REFS, n_bootstrap=-1)


def test_tokenized_lowercase_bleu_ignores_case_only() -> None:
    shouting = [ref.upper() for ref in REFS]
    lowercased = tokenized_lowercase_bleu(shouting, REFS)
    assert lowercased.score == pytest.approx(100.0)
    assert "case:lc" in lowercased.signature
    assert lowercased.name == TOKENIZED_LC_BLEU_NAME
    assert "not comparable" in lowercased.name
    assert score_corpus(shouting, REFS, n_bootstrap=0)["bleu"].score < 50


def test_bleu_by_length_buckets_and_counts() -> None:
    lengths = [1, 10, 11, 20, 21, 30, 31, 45, 9]
    sources = [" ".join(["w"] * n) for n in lengths]
    refs = [f"reference number {i} is here" for i in range(len(lengths))]
    rows = bleu_by_length(sources, refs, refs)
    assert [(r["bucket"], r["count"]) for r in rows] == [
        ("1-10", 3),
        ("11-20", 2),
        ("21-30", 2),
        ("31+", 2),
    ]
    assert all(r["bleu"] == pytest.approx(100.0) for r in rows)


def test_bleu_by_length_omits_empty_buckets_and_scores_each_alone() -> None:
    sources = ["short source", "a " * 40, "tiny", "b " * 35]
    refs = [f"the reference sentence number {i}" for i in range(4)]
    hyps = [refs[0], "nothing alike at all here", refs[2], "nothing alike at all here"]
    rows = bleu_by_length(sources, hyps, refs)
    assert [r["bucket"] for r in rows] == ["1-10", "31+"]
    assert rows[0]["bleu"] == pytest.approx(100.0)
    assert rows[1]["bleu"] == pytest.approx(0.0)


def test_bleu_by_length_custom_edges_and_bad_edges() -> None:
    rows = bleu_by_length(["a b c", "a b c d e f"], ["x y z w"] * 2, ["x y z w"] * 2, edges=(5,))
    assert [r["bucket"] for r in rows] == ["1-5", "6+"]
    with pytest.raises(ValueError, match="edges"):
        bleu_by_length(["a"], ["a"], ["a"], edges=(20, 10))


def test_length_ratio() -> None:
    assert length_ratio(["a b", "c d e f"], ["a b c d", "e f g h"]) == pytest.approx(6 / 8)


def test_sentence_chrf_ranks_better_sentences_higher() -> None:
    hyps = [REFS[0], "A man is on a ladder.", "Completely unrelated."]
    scores = sentence_chrf(hyps, [REFS[0]] * 3)
    assert scores[0] == pytest.approx(100.0)
    assert scores[0] > scores[1] > scores[2]


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_identical_systems_are_not_significantly_different(test: str) -> None:
    refs = REFS * 5
    hyps = _degraded(refs, seed=2, drop=0.3)
    result = paired_significance(refs, hyps, hyps, test=test, n=100)
    for metric in result["metrics"].values():
        assert metric["p_value"] == pytest.approx(1.0)
        assert metric["baseline"] == metric["system"]


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_much_better_system_is_significant(test: str) -> None:
    refs = REFS * 5
    weak = _degraded(refs, seed=3, drop=0.6)
    strong = _degraded(refs, seed=4, drop=0.05)
    result = paired_significance(refs, weak, strong, names=("weak", "strong"), test=test, n=100)
    assert (result["baseline"], result["system"], result["test"]) == ("weak", "strong", test)
    assert set(result["metrics"]) == {"bleu", "chrf"}
    for metric in result["metrics"].values():
        assert metric["system"] > metric["baseline"]
        assert metric["p_value"] < 0.05
        assert isinstance(metric["p_value"], float)
        assert f"{test}:100" in metric["signature"]


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_a_copy_with_one_sentence_changed_is_not_significantly_different(test: str) -> None:
    refs = REFS * 5
    hyps = _degraded(refs, seed=2, drop=0.3)
    words = hyps[0].split()
    copy = [" ".join(words[: len(words) // 2]), *hyps[1:]]
    result = paired_significance(refs, copy, hyps, test=test, n=1000)
    for metric in result["metrics"].values():
        assert metric["system"] > metric["baseline"]  # a real difference, of one sentence
        assert metric["p_value"] >= 0.05


def test_significance_rejects_unknown_test_and_mismatch() -> None:
    with pytest.raises(ValueError, match="'t'"):
        paired_significance(REFS, REFS, REFS, test="t")
    with pytest.raises(ValueError, match="5 hypotheses but 6 references"):
        paired_significance(REFS, REFS, REFS[:5])


def test_paired_gain_is_the_bleu_difference_with_a_paired_interval():
    rng = random.Random(3)
    words = "a dog runs on the green grass while two children watch it".split()
    refs = [" ".join(rng.sample(words, 6)) for _ in range(200)]
    good = [ref if i % 4 else ref.split(" ", 1)[1] for i, ref in enumerate(refs)]
    bad = [" ".join(reversed(ref.split())) if i % 2 else ref for i, ref in enumerate(refs)]
    gain = paired_gain(good, bad, refs, n=200)
    difference = BLEU().corpus_score(good, [refs]).score - BLEU().corpus_score(bad, [refs]).score
    assert gain.value == pytest.approx(difference)
    assert 0 < gain.low <= gain.value <= gain.high  # clearly better: the interval excludes 0
    same = paired_gain(good, good, refs, n=200)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # paired: no spread at all
    swapped = paired_gain(bad, good, refs, n=200)
    assert swapped.value == pytest.approx(-gain.value) and swapped.high < 0
