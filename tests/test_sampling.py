"""Sampling and the registry of decoding methods, against the scripted and tiny models of
test_search.py.

The scripted model's tables give every output's probability by hand, so the frequencies of many
samples can be tested against them (a chi-square test), and every sample's log-prob and
attention checked exactly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from test_search import (
    SHORT_OR_LONG,
    A,
    B,
    ScriptedModel,
    Table,
    TinyGRUModel,
    assert_same,
    attended,
    batch,
    decode_config,
    random_config,
    random_sources,
)

import seq2seq.search as search_module
from seq2seq.config import DECODE_METHODS, DecodeConfig
from seq2seq.sampling import keep_top_k, keep_top_p, sample_search, scale_by_temperature
from seq2seq.search import (
    MAX_DECODE_ROWS,
    METHODS,
    beam_search,
    decode_corpus,
    greedy_search,
    search,
)
from seq2seq.tokenizer import EOS_ID

EOS = EOS_ID
ln = math.log


@pytest.fixture
def tiny_model() -> TinyGRUModel:
    torch.manual_seed(0)
    return TinyGRUModel()


def sample_config(**changes: Any) -> DecodeConfig:
    """`decode_config`'s limits (ceil(1 * S) + 3 tokens, alpha 0), sampling, all samples back."""
    n = changes.pop("num_samples", 1)
    return decode_config(method="sample", num_samples=n, nbest=n, **changes)


# --- the registry ------------------------------------------------------------------------------


def test_every_method_a_config_can_name_has_an_implementation() -> None:
    assert set(METHODS) == set(DECODE_METHODS)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"beam_size": 1}, "greedy"),  # what a run saved without a method means
        ({"beam_size": 3}, "beam"),
        ({"method": "greedy", "beam_size": 3}, "greedy"),
        ({"method": "beam", "beam_size": 1}, "beam"),
        ({"method": "sample", "beam_size": 3}, "sample"),
    ],
)
def test_search_runs_the_method_the_config_names(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any], expected: str
) -> None:
    called: list[str] = []
    for name in METHODS:
        monkeypatch.setitem(METHODS, name, lambda *args, name=name: called.append(name) or [[]])
    search(ScriptedModel({A: SHORT_OR_LONG}), *batch([A]), DecodeConfig(**settings))
    assert called == [expected]


# --- the processors ----------------------------------------------------------------------------


def log_probs_of(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows).log()


def kept(scores: torch.Tensor) -> list[set[int]]:
    """Per row, the tokens that may still be drawn."""
    return [set(torch.isfinite(row).nonzero().flatten().tolist()) for row in scores]


# Two rows in different orders, so that a nucleus put back in the wrong place shows.
MASSES = log_probs_of([0.05, 0.5, 0.15, 0.3], [0.3, 0.15, 0.05, 0.5])


@pytest.mark.parametrize(
    ("p", "first", "second"),
    [
        (0.49, {1}, {3}),  # the likeliest token alone reaches p
        (0.51, {1, 3}, {3, 0}),
        (0.79, {1, 3}, {3, 0}),
        (0.81, {1, 3, 2}, {3, 0, 1}),
        (0.94, {1, 3, 2}, {3, 0, 1}),
        (0.96, {0, 1, 2, 3}, {0, 1, 2, 3}),
        (1.0, {0, 1, 2, 3}, {0, 1, 2, 3}),
    ],
)
def test_top_p_keeps_the_smallest_set_of_likeliest_tokens_that_reaches_p(
    p: float, first: set[int], second: set[int]
) -> None:
    # masses sorted: .5, .3, .15, .05; cumulative .5, .8, .95, 1
    out = keep_top_p(p)(MASSES)
    assert kept(out) == [first, second]
    assert torch.equal(out[torch.isfinite(out)], MASSES[torch.isfinite(out)])  # kept unchanged


def test_top_k_keeps_the_k_likeliest_tokens() -> None:
    assert kept(keep_top_k(1)(MASSES)) == [{1}, {3}]
    assert kept(keep_top_k(2)(MASSES)) == [{1, 3}, {3, 0}]
    assert kept(keep_top_k(9)(MASSES)) == [{0, 1, 2, 3}] * 2  # more than the vocabulary


def test_temperature_sharpens_or_flattens_the_distribution() -> None:
    probs = scale_by_temperature(0.5)(MASSES).softmax(dim=1)
    squares = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.3, 0.15, 0.05, 0.5]]) ** 2
    torch.testing.assert_close(probs, squares / squares.sum(dim=1, keepdim=True))
    # however small, no NaN: the best stays at 0 and takes all the probability
    tiny = scale_by_temperature(1e-30)(MASSES).softmax(dim=1)
    assert torch.equal(tiny, torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))


# --- samples follow the model's distribution -----------------------------------------------

# Every output and its probability: [] .2, [a] .5*.6 = .3, [a a] .5*.4 = .2, [b] .3*.5 = .15,
# [b b] .3*.5 = .15 (then EOS is certain).
FIVE_OUTPUTS: Table = {
    (): {A: 0.5, B: 0.3, EOS: 0.2},
    (A,): {EOS: 0.6, A: 0.4},
    (B,): {EOS: 0.5, B: 0.5},
    None: {EOS: 1.0},
}


def reshaped(row: dict[int, float], cfg: DecodeConfig) -> dict[int, float]:
    """A table row as sampling should draw from it: written out again from the definitions."""
    weights = {token: p ** (1 / cfg.temperature) for token, p in row.items() if p > 0}
    ranked = sorted(weights, key=weights.__getitem__, reverse=True)
    if cfg.top_k:
        ranked = ranked[: cfg.top_k]
    total = sum(weights[t] for t in ranked)
    nucleus, mass = [], 0.0
    for token in ranked:  # the likeliest tokens until their mass reaches top_p
        nucleus.append(token)
        mass += weights[token] / total
        if mass >= cfg.top_p:
            break
    total = sum(weights[t] for t in nucleus)
    return {t: weights[t] / total for t in nucleus}


def output_distribution(
    table: Table, cfg: DecodeConfig, limit: int
) -> dict[tuple[int, ...], float]:
    """Probability of every output (ids without EOS) when sampling from ``table``."""
    outputs: dict[tuple[int, ...], float] = {}

    def extend(prefix: tuple[int, ...], p: float) -> None:
        for token, q in reshaped(table.get(prefix, table.get(None, {})), cfg).items():
            if token == EOS or len(prefix) + 1 == limit:
                output = prefix if token == EOS else (*prefix, token)
                outputs[output] = outputs.get(output, 0.0) + p * q
            else:
                extend((*prefix, token), p * q)

    extend((), 1.0)
    return outputs


def chi_square_p_value(counts: list[int], expected: list[float]) -> float:
    """P(X >= statistic) for chi-square with len - 1 degrees of freedom (torch has the
    regularised upper incomplete gamma function that gives it)."""
    statistic = sum((c - e) ** 2 / e for c, e in zip(counts, expected, strict=True))
    dof = torch.tensor((len(counts) - 1) / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(dof, torch.tensor(statistic / 2, dtype=torch.float64)))


@pytest.mark.parametrize(
    "settings",
    [{}, {"temperature": 0.5}, {"temperature": 2.0}, {"top_k": 2}, {"top_p": 0.55}],
    ids=["plain", "temperature-0.5", "temperature-2", "top-k-2", "top-p-0.55"],
)
def test_samples_follow_the_scripted_distribution(settings: dict[str, Any]) -> None:
    draws = 3000
    cfg = sample_config(num_samples=draws, seed=11, **settings)
    [samples] = sample_search(ScriptedModel({A: FIVE_OUTPUTS}), *batch([A]), cfg)
    expected = output_distribution(FIVE_OUTPUTS, cfg, limit=4)
    counts = {output: 0 for output in expected}
    for hyp in samples:
        output = tuple(hyp.token_ids)
        assert output in expected, f"{output} cannot be drawn with {settings}"
        counts[output] += 1
        # scored by the model's own probability, not the reshaped one (EOS counted)
        model_prob = {(): 0.2, (A,): 0.3, (A, A): 0.2, (B,): 0.15, (B, B): 0.15}[output]
        assert hyp.log_prob == pytest.approx(ln(model_prob), abs=1e-5)
    assert len(samples) == draws
    p_value = chi_square_p_value(list(counts.values()), [draws * p for p in expected.values()])
    assert p_value > 1e-3, f"counts {counts} against {expected}: p = {p_value:.2g}"


def test_a_wrong_distribution_fails_the_chi_square_test() -> None:
    # The test above can fail: plain samples are far from the tempered distribution.
    draws = 3000
    [samples] = sample_search(
        ScriptedModel({A: FIVE_OUTPUTS}), *batch([A]), sample_config(num_samples=draws, seed=11)
    )
    tempered = output_distribution(FIVE_OUTPUTS, sample_config(temperature=0.5), limit=4)
    counts = [sum(tuple(h.token_ids) == output for h in samples) for output in tempered]
    assert chi_square_p_value(counts, [draws * p for p in tempered.values()]) < 1e-6


# --- sampling against greedy ----------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [{"temperature": 1e-4}, {"top_k": 1}, {"top_p": 1e-6}],
    ids=["tiny-temperature", "top-k-1", "tiny-top-p"],
)
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_sampling_without_choice_equals_greedy(
    tiny_model: TinyGRUModel, settings: dict[str, Any], alpha: float
) -> None:
    # Where only the likeliest token can be drawn, every sample is greedy's hypothesis, with
    # its score, log-prob and attention.
    src = batch(*random_sources(6))
    greedy = greedy_search(tiny_model, *src, random_config(beam_size=1, length_penalty=alpha))
    cfg = random_config(
        method="sample", num_samples=3, nbest=3, length_penalty=alpha, seed=5, **settings
    )
    for samples, [expected] in zip(search(tiny_model, *src, cfg), greedy, strict=True):
        assert_same(samples, [expected] * 3)


def test_samples_are_ranked_and_end_at_eos_or_the_limit() -> None:
    # SHORT_OR_LONG, at most 4 tokens: [a] .33, [a a] .27 end with EOS; [b b b] .32 with EOS at
    # the limit; [b b b b] .08 is cut at the limit without EOS.
    cfg = sample_config(num_samples=100, length_penalty=1.0, seed=3)
    model = ScriptedModel({A: SHORT_OR_LONG})
    [samples] = sample_search(model, *batch([A]), cfg)
    probability = {(A,): 0.33, (A, A): 0.27, (B, B, B): 0.32, (B, B, B, B): 0.08}
    lengths = {(A,): 2, (A, A): 3, (B, B, B): 4, (B, B, B, B): 4}  # tokens counting EOS
    assert {tuple(h.token_ids) for h in samples} == set(probability)  # 100 draws: all four
    for hyp in samples:
        output = tuple(hyp.token_ids)
        assert hyp.log_prob == pytest.approx(ln(probability[output]), abs=1e-5)
        assert hyp.score == pytest.approx(hyp.log_prob / ((5 + lengths[output]) / 6), abs=1e-5)
    scores = [h.score for h in samples]
    assert scores == sorted(scores, reverse=True)
    # finished samples leave the batch: [a] ends after 2 steps, [a a] after 3, the rest at 4
    steps = model.batch_sizes
    assert len(steps) == 4 and steps[0] == steps[1] == 100 > steps[2] > steps[3]


def test_nbest_keeps_the_best_samples() -> None:
    model = ScriptedModel({A: SHORT_OR_LONG})
    [every] = sample_search(model, *batch([A]), sample_config(num_samples=12, seed=4))
    cfg = decode_config(method="sample", num_samples=12, nbest=3, seed=4)
    [best] = sample_search(model, *batch([A]), cfg)
    assert_same(best, every[:3])


def test_each_sample_keeps_its_own_attention_in_a_batch() -> None:
    # Sentences of 5 and 2 tokens; samples of several lengths leave the batch at different
    # steps, so a row mixed up when the batch shrinks shows in the attention or the log-prob.
    model = ScriptedModel({A: SHORT_OR_LONG, B: SHORT_OR_LONG})
    cfg = sample_config(num_samples=8, max_length_offset=0, max_length_ratio=2.0, seed=2)
    probability = {(A,): 0.33, (A, A): 0.27, (B, B, B): 0.32, (B, B, B, B): 0.08}
    for samples, src_len in zip(
        sample_search(model, *batch([A] * 5, [B, A]), cfg), [5, 2], strict=True
    ):
        assert len(samples) == 8
        for hyp in samples:
            ids = hyp.token_ids
            assert hyp.attention.shape == (len(ids), src_len)
            positions = [attended(tuple(ids[:t]), src_len) for t in range(len(ids))]
            assert hyp.attention.argmax(dim=1).tolist() == positions  # one-hot rows
            assert hyp.attention.sum().item() == len(ids)
            assert hyp.log_prob == pytest.approx(ln(probability[tuple(ids)]), abs=1e-5)


# --- seeds ------------------------------------------------------------------------------------


def summaries(hyps: list[list[Any]]) -> list[list[tuple[list[int], float]]]:
    return [[(h.token_ids, round(h.score, 5)) for h in sentence] for sentence in hyps]


def test_sampling_is_reproducible_under_a_seed_and_leaves_the_global_rng_alone(
    tiny_model: TinyGRUModel,
) -> None:
    src = batch(*random_sources(6, seed=5))
    cfg = random_config(method="sample", num_samples=5, nbest=5, seed=7)
    before = torch.get_rng_state()
    first = search(tiny_model, *src, cfg)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is neither used...
    torch.manual_seed(123)  # ...nor needed
    again = search(tiny_model, *src, cfg)
    other = search(tiny_model, *src, dataclasses.replace(cfg, seed=8))
    assert summaries(first) == summaries(again)
    assert summaries(first) != summaries(other)


def test_every_corpus_batch_draws_from_its_own_stream(tiny_model: TinyGRUModel) -> None:
    # Ten copies of one sentence, one per batch: a seed repeated per batch would give ten
    # identical sets of samples.
    cfg = random_config(method="sample", num_samples=3, nbest=3, seed=1)
    sources = [[4, 5, 6]] * 10
    got = decode_corpus(tiny_model, sources, cfg, "cpu", batch_size=1)
    assert len({str(s) for s in summaries(got)}) > 1
    assert summaries(got) == summaries(decode_corpus(tiny_model, sources, cfg, "cpu", 1))


def test_many_samples_decode_fewer_sentences_at_a_time(
    tiny_model: TinyGRUModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Samples take batch rows as beams do: the row budget counts them, not the beam size.
    calls: list[int] = []
    real_search = search_module.search

    def recording_search(model: Any, src_ids: Any, src_lengths: Any, cfg: Any) -> Any:
        calls.append(src_ids.size(0))
        return real_search(model, src_ids, src_lengths, cfg)

    monkeypatch.setattr(search_module, "search", recording_search)
    samples = 64
    cfg = random_config(method="sample", num_samples=samples, beam_size=2, seed=1)
    sources = random_sources(40, seed=6)
    got = decode_corpus(tiny_model, sources, cfg, "cpu", batch_size=40)
    assert max(calls) * samples <= MAX_DECODE_ROWS < 40 * samples, calls
    assert sum(calls) == len(sources) and all(len(hyps) == 1 for hyps in got)


def test_greedy_and_beam_ignore_the_sampling_settings(tiny_model: TinyGRUModel) -> None:
    src = batch(*random_sources(4, seed=7))
    plain = random_config(beam_size=3, nbest=3)
    noisy = dataclasses.replace(plain, temperature=3.0, top_k=2, top_p=0.5, seed=9)
    for got, expected in zip(
        beam_search(tiny_model, *src, noisy), beam_search(tiny_model, *src, plain), strict=True
    ):
        assert_same(got, expected)
