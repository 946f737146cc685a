"""Greedy and beam search against a scripted model (fairseq style), a tiny random GRU model and
briefly trained real `Seq2Seq` models.

The scripted model reads its next-token probabilities from a table written out below, indexed by
the prefix generated so far, so every expected hypothesis and score is worked out by hand in the
comments. Vocabulary: PAD UNK BOS EOS a b (ids 0-5); search never generates PAD or BOS.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.config import DecodeConfig, ModelConfig
from seq2seq.data import ParallelDataset
from seq2seq.model import Seq2Seq
from seq2seq.search import (
    Hypothesis,
    beam_search,
    decode_corpus,
    greedy_search,
    length_penalty,
    search,
)
from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID

EOS, A, B = EOS_ID, 4, 5
ln = math.log


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the scripted model ---------------------------------------------------------------------

Row = dict[int, float]  # next token -> probability; tokens not listed have probability 0
Table = dict[tuple[int, ...] | None, Row]  # prefix generated so far -> row; None: any other prefix


@dataclass
class FakeEncoderOutput:
    src_ids: Tensor  # (B, S)
    src_pad_mask: Tensor  # (B, S)

    def select(self, rows: Tensor) -> FakeEncoderOutput:
        return FakeEncoderOutput(self.src_ids[rows], self.src_pad_mask[rows])


@dataclass
class FakeState:
    fed: Tensor  # (B, t) every id fed so far: BOS, then the prefix

    def select(self, rows: Tensor) -> FakeState:
        return FakeState(self.fed[rows])


def attended(prefix: tuple[int, ...], src_len: int) -> int:
    """The source position the fake attends to, different for different prefixes."""
    return (2 * len(prefix) + sum(prefix)) % src_len


class ScriptedModel(nn.Module):
    """Probabilities from ``tables[first source token][prefix]``; records each step's batch size."""

    def __init__(self, tables: dict[int, Table]) -> None:
        super().__init__()
        for table in tables.values():
            for row in table.values():
                assert math.isclose(sum(row.values()), 1.0), row
        self.tables = tables
        self.batch_sizes: list[int] = []

    def row(self, src_token: int, prefix: tuple[int, ...]) -> Row:
        table = self.tables[src_token]

        def lookup(prefix: tuple[int, ...]) -> Row:
            row = table.get(prefix, table.get(None))
            assert row is not None, f"search asked for a prefix the table has no row for: {prefix}"
            return row

        if any(lookup(prefix[:t]).get(prefix[t], 0.0) == 0.0 for t in range(len(prefix))):
            return {EOS: 1.0}  # a probability-0 beam, only filling a beam wider than the choices
        return lookup(prefix)

    def encode(self, src_ids: Tensor, src_lengths: Tensor) -> FakeEncoderOutput:
        positions = torch.arange(src_ids.size(1))[None]
        return FakeEncoderOutput(src_ids, positions >= src_lengths[:, None])

    def initial_state(self, enc: FakeEncoderOutput) -> FakeState:
        return FakeState(torch.empty(enc.src_ids.size(0), 0, dtype=torch.long))

    def decode_step(
        self, prev_ids: Tensor, state: FakeState, enc: FakeEncoderOutput
    ) -> tuple[Tensor, FakeState, Tensor]:
        self.batch_sizes.append(prev_ids.size(0))
        fed = torch.cat([state.fed, prev_ids[:, None]], dim=1)
        assert (fed[:, 0] == BOS_ID).all()
        probs = torch.zeros(len(fed), 6)
        attention = torch.zeros(enc.src_ids.shape)
        for i, (ids, src, pad) in enumerate(zip(fed, enc.src_ids, enc.src_pad_mask, strict=True)):
            prefix = tuple(ids[1:].tolist())
            for token, p in self.row(int(src[0]), prefix).items():
                probs[i, token] = p
            attention[i, attended(prefix, int((~pad).sum()))] = 1.0
        return probs.log(), FakeState(fed), attention


Search = Callable[..., list[list[Hypothesis]]]


def decode_config(**changes: Any) -> DecodeConfig:
    """Output limit ceil(1 * S) + 3 tokens by default: 4 for a one-token source; alpha 0;
    exhaustive stopping (the hand-worked cases below follow it; early stopping has its own)."""
    base = DecodeConfig(
        max_length_ratio=1.0, max_length_offset=3, length_penalty=0.0, exhaustive=True
    )
    return dataclasses.replace(base, **changes)


def batch(*sources: list[int]) -> tuple[Tensor, Tensor]:
    """Pad id lists into ``(src_ids, src_lengths)``."""
    src_ids = torch.full((len(sources), max(map(len, sources))), PAD_ID)
    for row, ids in enumerate(sources):
        src_ids[row, : len(ids)] = torch.tensor(ids)
    return src_ids, torch.tensor([len(ids) for ids in sources])


def summary(hyps: list[Hypothesis]) -> list[tuple[list[int], float]]:
    return [(h.token_ids, h.score) for h in hyps]


# Beam finds a better sequence than greedy.
BEAM_WINS: Table = {
    (): {A: 0.5, B: 0.4, EOS: 0.1},
    (A,): {EOS: 0.4, A: 0.35, B: 0.25},
    (B,): {EOS: 0.9, A: 0.06, B: 0.04},
}


def test_greedy_follows_the_most_probable_token() -> None:
    # a (0.5), then after (a,) EOS (0.4): [a], log-prob ln 0.5 + ln 0.4 = ln 0.2
    model = ScriptedModel({A: BEAM_WINS})
    [[hyp]] = greedy_search(model, *batch([A]), decode_config())
    assert hyp.token_ids == [A]
    assert hyp.log_prob == pytest.approx(ln(0.2), abs=1e-6)
    assert hyp.score == pytest.approx(ln(0.2), abs=1e-6)
    assert model.batch_sizes == [1, 1]


def test_greedy_score_is_length_normalised() -> None:
    # [a] + EOS is n = 2 tokens: score ln 0.2 / lp(2), lp(2) = (7 / 6) ** 1
    [[hyp]] = greedy_search(
        ScriptedModel({A: BEAM_WINS}), *batch([A]), decode_config(length_penalty=1.0)
    )
    assert hyp.log_prob == pytest.approx(ln(0.2), abs=1e-6)
    assert hyp.score == pytest.approx(ln(0.2) / (7 / 6), abs=1e-6)


def test_beam_finds_a_better_sequence_than_greedy() -> None:
    # K = 2, alpha = 0. Step 1 (one beam): a .5, b .4, EOS .1; EOS is 3rd, outside the first K, so
    # it does not finish; active: a, b.
    # Step 2: b EOS .4*.9 = .36, a EOS .5*.4 = .2, a a .175, a b .125, b a .024, b b .016.
    # b EOS and a EOS are the first two: both finish. Active: a a (.175), a b (.125).
    # Two finished; the best active .175 < .2 (worst finished): done, no third step.
    model = ScriptedModel({A: BEAM_WINS})
    [hyps] = beam_search(model, *batch([A]), decode_config(beam_size=2, nbest=2))
    assert [h.token_ids for h in hyps] == [[B], [A]]
    assert [h.log_prob for h in hyps] == pytest.approx([ln(0.36), ln(0.2)], abs=1e-6)
    assert [h.score for h in hyps] == pytest.approx([ln(0.36), ln(0.2)], abs=1e-6)
    assert model.batch_sizes == [1, 2]  # the first step expands from a single beam


# The length penalty decides between a short and a long hypothesis. Any prefix not listed ends
# with certainty: EOS has probability 1 (log-prob 0).
SHORT_OR_LONG: Table = {
    (): {A: 0.6, B: 0.4},
    (A,): {EOS: 0.55, A: 0.45},
    (B,): {B: 1.0},
    (B, B): {B: 1.0},
    (B, B, B): {EOS: 0.8, B: 0.2},
    None: {EOS: 1.0},
}


def test_length_penalty_changes_the_winner() -> None:
    # K = 2, source of one token: at most 4 output tokens, EOS included.
    # Step 1: a .6, b .4 -> active a, b.
    # Step 2: b b .4, a EOS .33, a a .27 -> [a] finishes (.33, n = 2); active b b, a a.
    # Step 3: b b b .4, a a EOS .27 -> [a a] finishes (.27, n = 3); active b b b (and a dead beam).
    #   alpha 0: best active ln .4 > ln .27 (worst kept) -> go on.
    #   alpha 1: ln .4 / lp(4) = -0.611 > ln .27 / lp(3) = -0.982 -> go on.
    # Step 4, the limit: b b b EOS .32 (n = 4) and b b b b .08 (n = 4, no EOS) finish.
    # alpha 0: [a] ln .33 = -1.109 beats [b b b] ln .32 = -1.139.
    # alpha 1: [b b b] ln .32 / lp(4) = -1.139 / 1.5 = -0.760 beats
    #          [a] ln .33 / lp(2) = -1.109 / (7/6) = -0.950.
    src = batch([A])
    model = ScriptedModel({A: SHORT_OR_LONG})
    [raw] = beam_search(model, *src, decode_config(beam_size=2, nbest=2))
    assert summary(raw) == [([A], pytest.approx(ln(0.33))), ([B, B, B], pytest.approx(ln(0.32)))]
    assert model.batch_sizes == [1, 2, 2, 2]

    cfg = decode_config(beam_size=2, nbest=2, length_penalty=1.0)
    [normalised] = beam_search(model, *src, cfg)
    assert summary(normalised) == [
        ([B, B, B], pytest.approx(ln(0.32) / 1.5)),
        ([A], pytest.approx(ln(0.33) / (7 / 6))),
    ]
    assert normalised[0].log_prob == pytest.approx(ln(0.32))
    assert length_penalty(4, 1.0) == 1.5


# A long hypothesis that can still win under the length penalty after K have finished.
LATE_WINNER: Table = {
    (): {A: 0.5, B: 0.3, EOS: 0.2},
    (A,): {EOS: 0.6, A: 0.4},
    (B,): {B: 0.9, EOS: 0.1},
    (A, A): {EOS: 0.9, A: 0.1},
    (B, B): {B: 1.0},
    (B, B, B): {EOS: 1.0},
    (A, A, A): {EOS: 1.0},
}


def test_beam_searches_on_while_an_active_hypothesis_can_still_win() -> None:
    # K = 2, alpha = 1, at most 4 tokens: lp(2) = 7/6, lp(3) = 8/6, lp(4) = 9/6.
    # Step 1: a .5, b .3 active (EOS .2 is 3rd: it does not finish).
    # Step 2: a EOS .3 finishes: ln .3 / lp(2) = -1.032. Active: b b .27, a a .2.
    # Step 3: b b b .27 stays; a a EOS .18 finishes: ln .18 / lp(3) = -1.286; a a a .02 stays.
    #   Two finished, but b b b (ln .27 = -1.309, below both) could still end, 4 tokens long,
    #   at ln .27 / lp(4) = -0.873 > -1.286: go on. (Stopping at K finished would return [a].)
    # Step 4, the limit: b b b EOS .27 finishes at ln .27 / lp(4) = -0.873, the winner;
    #   a a a EOS .02 finishes at ln .02 / lp(4) = -2.608, below the two kept.
    model = ScriptedModel({A: LATE_WINNER})
    cfg = decode_config(beam_size=2, nbest=2, length_penalty=1.0)
    [hyps] = beam_search(model, *batch([A]), cfg)
    assert summary(hyps) == [
        ([B, B, B], pytest.approx(ln(0.27) / 1.5)),
        ([A], pytest.approx(ln(0.3) / (7 / 6))),
    ]
    assert model.batch_sizes == [1, 2, 2, 2]
    [[greedy]] = greedy_search(model, *batch([A]), cfg)
    assert greedy.token_ids == [A]


def test_early_stopping_ends_a_sentence_at_k_finished() -> None:
    # The case above without exhaustive search: after step 3 two hypotheses have finished
    # ([a] at -1.032 and [a a] at -1.286), so the sentence stops and [b b b] is never finished.
    model = ScriptedModel({A: LATE_WINNER})
    cfg = decode_config(beam_size=2, nbest=2, length_penalty=1.0, exhaustive=False)
    [hyps] = beam_search(model, *batch([A]), cfg)
    assert summary(hyps) == [
        ([A], pytest.approx(ln(0.3) / (7 / 6))),
        ([A, A], pytest.approx(ln(0.18) / (8 / 6))),
    ]
    assert model.batch_sizes == [1, 2, 2]


@pytest.mark.parametrize("decode", [greedy_search, beam_search])
def test_attention_follows_each_hypothesis_back_pointers(decode: Search) -> None:
    # The fake attends to a position that depends on the prefix; padding is cut off.
    src_ids, src_lengths = batch([A] * 5, [A, A])
    cfg = decode_config(beam_size=4, nbest=4)
    hyps_per_sentence = decode(ScriptedModel({A: SHORT_OR_LONG}), src_ids, src_lengths, cfg)
    for hyps, src_len in zip(hyps_per_sentence, [5, 2], strict=True):
        for hyp in hyps:
            ids = hyp.token_ids
            expected = torch.zeros(len(ids), src_len)
            for t in range(len(ids)):
                expected[t, attended(tuple(ids[:t]), src_len)] = 1.0
            assert torch.equal(hyp.attention, expected)


def test_nbest_is_sorted_and_has_the_requested_size() -> None:
    for beam_size, nbest in [(2, 1), (3, 2), (4, 4)]:
        cfg = decode_config(beam_size=beam_size, nbest=nbest, length_penalty=1.0)
        [hyps] = beam_search(ScriptedModel({A: SHORT_OR_LONG}), *batch([A]), cfg)
        assert len(hyps) == nbest
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)


def test_beam_larger_than_the_vocabulary_still_works() -> None:
    # Only UNK, EOS, a, b can be generated: the first step has 4 candidates for a beam of 6, and
    # the rest of the beam is padded with impossible (-inf) hypotheses. Within 4 tokens the table
    # allows exactly four outputs, so that is all the 6-best can hold:
    # [a] .6*.55 = .33, [b b b] .4*.8 = .32, [a a] .6*.45 = .27, [b b b b] .4*.2 = .08 (no EOS).
    cfg = decode_config(beam_size=6, nbest=6)
    [hyps] = beam_search(ScriptedModel({A: SHORT_OR_LONG}), *batch([A]), cfg)
    assert summary(hyps) == [
        ([A], pytest.approx(ln(0.33))),
        ([B, B, B], pytest.approx(ln(0.32))),
        ([A, A], pytest.approx(ln(0.27))),
        ([B, B, B, B], pytest.approx(ln(0.08))),
    ]


# The model likes PAD and BOS, which search must never generate.
LIKES_SPECIALS: Table = {(): {PAD_ID: 0.3, BOS_ID: 0.4, A: 0.2, B: 0.1}, None: {EOS: 1.0}}


@pytest.mark.parametrize("decode", [greedy_search, beam_search])
def test_pad_and_bos_are_never_generated(decode: Search) -> None:
    # Only a (.2) and b (.1) remain, then EOS; their log-probs are the model's, not renormalised.
    cfg = decode_config(beam_size=2, nbest=1)
    [[hyp]] = decode(ScriptedModel({A: LIKES_SPECIALS}), *batch([A]), cfg)
    assert summary([hyp]) == [([A], pytest.approx(ln(0.2)))]


# Ends at once: one hypothesis, then no active beam can get anywhere.
ENDS_AT_ONCE: Table = {(): {EOS: 1.0}}


def test_finished_sentences_leave_the_batch() -> None:
    # Sentence 0 (source starts with b) is done after step 1; sentence 1 runs 4 steps as above.
    # With beam 2 the model then sees 2 rows per step (1 beam each, then sentence 1's 2 beams),
    # not 4; with greedy 2 rows, then 1.
    model = ScriptedModel({A: SHORT_OR_LONG, B: ENDS_AT_ONCE})
    src = batch([B, B, B], [A])
    short, long = beam_search(model, *src, decode_config(beam_size=2, nbest=1))
    assert model.batch_sizes == [2, 2, 2, 2]
    assert summary(short) == [([], 0.0)]
    assert summary(long) == [([A], pytest.approx(ln(0.33)))]

    model.batch_sizes.clear()
    short, long = greedy_search(model, *src, decode_config())
    assert model.batch_sizes == [2, 1]
    assert summary(short) + summary(long) == [([], 0.0), ([A], pytest.approx(ln(0.33)))]


NEVER_ENDS: Table = {None: {A: 0.7, B: 0.3}}
# a a a, then EOS as the 4th token
EOS_FOURTH: Table = {(): {A: 1.0}, (A,): {A: 1.0}, (A, A): {A: 1.0}, (A, A, A): {EOS: 0.9, A: 0.1}}


@pytest.mark.parametrize("decode", [greedy_search, beam_search])
def test_max_length_is_respected(decode: Search) -> None:
    # Limit ceil(1.5 * S) + 1: 3 tokens for S = 1, 6 for S = 3; without EOS they end there.
    cfg = decode_config(beam_size=2, max_length_ratio=1.5, max_length_offset=1)
    model = ScriptedModel({A: NEVER_ENDS})
    short, long = decode(model, *batch([A], [A, A, A]), cfg)
    assert {len(h.token_ids) for h in short} == {3}
    assert {len(h.token_ids) for h in long} == {6}
    assert short[0].token_ids == [A] * 3
    assert short[0].log_prob == pytest.approx(3 * ln(0.7))
    assert len(model.batch_sizes) == 6
    assert {h.attention.shape for h in short} == {(3, 1)}
    assert {h.attention.shape for h in long} == {(6, 3)}


@pytest.mark.parametrize("decode", [greedy_search, beam_search])
def test_max_length_counts_eos(decode: Search) -> None:
    # With room for 4 tokens EOS is the 4th (log-prob ln .9); with 3, a a a ends without it (0).
    model = ScriptedModel({A: EOS_FOURTH})
    for offset, log_prob in [(3, ln(0.9)), (2, 0.0)]:
        cfg = decode_config(beam_size=2, max_length_offset=offset)
        [[best, *_]] = decode(model, *batch([A]), cfg)
        assert best.token_ids == [A, A, A]
        assert best.log_prob == pytest.approx(log_prob)


# --- a tiny random attentional GRU implementing the same interface ------------------------------


@dataclass
class TinyEncoderOutput:
    memory: Tensor  # (B, S', H), S' = the longest source: padding beyond it is trimmed
    src_pad_mask: Tensor  # (B, S')
    final: Tensor  # (B, H)

    def select(self, rows: Tensor) -> TinyEncoderOutput:
        return TinyEncoderOutput(self.memory[rows], self.src_pad_mask[rows], self.final[rows])


@dataclass
class TinyState:
    hidden: Tensor  # (B, H)
    eos_bias: Tensor  # (B,) added to the EOS logit; grows by EOS_SLOPE a step

    def select(self, rows: Tensor) -> TinyState:
        return TinyState(self.hidden[rows], self.eos_bias[rows])


EOS_SLOPE = 0.3


class TinyGRUModel(nn.Module):
    """GRU encoder, GRU-cell decoder with dot attention, random weights.

    Like a trained model (and unlike a random one, which ends at once or never), it makes EOS
    likelier as the output grows past the source length, so hypotheses end at varied lengths.
    """

    def __init__(self, vocab_size: int = 10, hidden_size: int = 16) -> None:
        super().__init__()
        self.src_embed = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(vocab_size, hidden_size)
        self.encoder = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.decoder = nn.GRUCell(hidden_size, hidden_size)
        self.out = nn.Linear(2 * hidden_size, vocab_size)
        self.dropout = nn.Dropout(0.5)  # search must switch it off

    def encode(self, src_ids: Tensor, src_lengths: Tensor) -> TinyEncoderOutput:
        packed = pack_padded_sequence(
            self.src_embed(src_ids), src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True)  # (B, S', H)
        positions = torch.arange(memory.size(1), device=src_ids.device)[None]
        return TinyEncoderOutput(memory, positions >= src_lengths[:, None], final[0])

    def initial_state(self, enc: TinyEncoderOutput) -> TinyState:
        src_lengths = (~enc.src_pad_mask).sum(dim=1)
        return TinyState(enc.final, -EOS_SLOPE * src_lengths.float())

    def decode_step(
        self, prev_ids: Tensor, state: TinyState, enc: TinyEncoderOutput
    ) -> tuple[Tensor, TinyState, Tensor]:
        hidden = self.decoder(self.dropout(self.tgt_embed(prev_ids)), state.hidden)  # (B, H)
        energies = torch.bmm(enc.memory, hidden[:, :, None]).squeeze(2)  # (B, S)
        attention = energies.masked_fill(enc.src_pad_mask, -math.inf).softmax(dim=1)
        context = torch.bmm(attention[:, None], enc.memory).squeeze(1)  # (B, H)
        logits = 2.0 * self.out(torch.cat([hidden, context], dim=1))  # (B, V)
        eos_bias = state.eos_bias + EOS_SLOPE
        logits[:, EOS_ID] += eos_bias
        return logits.log_softmax(dim=1), TinyState(hidden, eos_bias), attention


@pytest.fixture
def tiny_model() -> TinyGRUModel:
    torch.manual_seed(0)
    return TinyGRUModel()


def random_sources(count: int, seed: int = 1) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (count,), generator=generator).tolist()
    return [torch.randint(4, 10, (n,), generator=generator).tolist() for n in lengths]


def random_config(**changes: Any) -> DecodeConfig:
    """Output limit ceil(1.5 * S) + 3 tokens."""
    return DecodeConfig(max_length_ratio=1.5, max_length_offset=3, **changes)


def assert_same(got: list[Hypothesis], expected: list[Hypothesis]) -> None:
    assert [h.token_ids for h in got] == [h.token_ids for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert [h.log_prob for h in got] == pytest.approx([h.log_prob for h in expected], abs=1e-5)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g.attention, e.attention, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_size_one_equals_greedy(tiny_model: TinyGRUModel, alpha: float) -> None:
    src = batch(*random_sources(6))
    cfg = random_config(beam_size=1, length_penalty=alpha)
    greedy = greedy_search(tiny_model, *src, cfg)
    for got, expected in zip(search(tiny_model, *src, cfg), greedy, strict=True):
        assert_same(got, expected)  # search() with beam_size 1 is greedy
    for got, expected in zip(beam_search(tiny_model, *src, cfg), greedy, strict=True):
        if alpha == 0.0:
            assert_same(got, expected)
        else:  # the beam of one may search on past greedy's EOS, and only for a better score
            assert got[0].score >= expected[0].score - 1e-6


@pytest.mark.parametrize("beam_size", [1, 3])
def test_batch_decodes_as_its_sentences_one_by_one(
    tiny_model: TinyGRUModel, beam_size: int
) -> None:
    sources = random_sources(5)
    cfg = random_config(beam_size=beam_size, nbest=beam_size)
    src_ids, src_lengths = batch(*sources)
    src_ids = torch.cat([src_ids, torch.full((len(sources), 2), PAD_ID)], dim=1)  # extra padding
    batched = search(tiny_model, src_ids, src_lengths, cfg)
    for ids, got in zip(sources, batched, strict=True):
        assert_same(got, search(tiny_model, *batch(ids), cfg)[0])
        assert all(h.attention.shape == (len(h.token_ids), len(ids)) for h in got)


@pytest.mark.parametrize("beam_size", [2, 4])
def test_beam_never_below_greedy_on_model_score(tiny_model: TinyGRUModel, beam_size: int) -> None:
    # Not a theorem (pruning can drop greedy's path), but a beam that loses to greedy on a random
    # model's raw log-probability is far more likely a bug than bad luck.
    src = batch(*random_sources(8, seed=2))
    cfg = random_config(beam_size=beam_size, length_penalty=0.0)
    greedy = greedy_search(tiny_model, *src, cfg)
    beam = beam_search(tiny_model, *src, cfg)
    for g, b in zip(greedy, beam, strict=True):
        assert b[0].log_prob >= g[0].log_prob - 1e-6


def load_reference() -> ModuleType:
    """bench/ is not a package: import bench/reference_beam.py from its path."""
    if "reference_beam" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "bench" / "reference_beam.py"
        spec = importlib.util.spec_from_file_location("reference_beam", path)
        assert spec is not None and spec.loader is not None
        sys.modules[spec.name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # registered first: its dataclasses look it up
    return sys.modules["reference_beam"]


SCRIPTED_CASES = [
    (BEAM_WINS, 2, 0.0),
    (SHORT_OR_LONG, 2, 0.0),
    (SHORT_OR_LONG, 2, 1.0),
    (SHORT_OR_LONG, 6, 0.0),
    (LATE_WINNER, 2, 1.0),
    (LATE_WINNER, 3, 0.5),
    (EOS_FOURTH, 3, 1.0),
]


@pytest.mark.parametrize(("table", "beam_size", "alpha"), SCRIPTED_CASES)
def test_reference_agrees_on_the_scripted_cases(table: Table, beam_size: int, alpha: float) -> None:
    reference = load_reference().reference_beam_search
    model = ScriptedModel({A: table})
    cfg = decode_config(beam_size=beam_size, nbest=beam_size, length_penalty=alpha)
    [batched] = beam_search(model, *batch([A]), cfg)
    assert_same(reference(model, torch.tensor([[A]]), 1, cfg), batched)


@pytest.mark.parametrize("exhaustive", [True, False])
@pytest.mark.parametrize(("beam_size", "alpha"), [(3, 0.0), (3, 1.0), (5, 0.6)])
def test_batched_beam_equals_the_one_sentence_reference(
    tiny_model: TinyGRUModel, beam_size: int, alpha: float, exhaustive: bool
) -> None:
    reference = load_reference().reference_beam_search
    sources = random_sources(6, seed=3)
    cfg = random_config(
        beam_size=beam_size, nbest=beam_size, length_penalty=alpha, exhaustive=exhaustive
    )
    batched = beam_search(tiny_model, *batch(*sources), cfg)
    for ids, got in zip(sources, batched, strict=True):
        assert_same(got, reference(tiny_model, torch.tensor([ids]), len(ids), cfg))


# --- briefly trained real Seq2Seq models against the reference -------------------------------

REVERSE_SYMBOLS = 12  # ids 4..15
TRAIN_STEPS, TRAIN_BATCH = 150, 32


def reverse_pairs(count: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """Random id sequences of 2-9 symbols and their reversals."""
    rng = random.Random(seed)
    src = [
        [rng.randrange(4, 4 + REVERSE_SYMBOLS) for _ in range(rng.randint(2, 9))]
        for _ in range(count)
    ]
    return src, [s[::-1] for s in src]


@pytest.fixture(
    scope="module",
    params=[
        ("gru", "general", "luong"),
        ("lstm", "bahdanau", "luong"),
        ("gru", "scaled_general", "cgru"),
    ],
    ids="-".join,
)
def reverser(request: pytest.FixtureRequest) -> Seq2Seq:
    """A real Seq2Seq trained for ~2 s to reverse sequences.

    Stopped early on purpose: its next-token distributions are peaked, like a real model's, but
    not yet one-hot, so beams hold competing hypotheses of several lengths.
    """
    cell, attention, decoder = request.param
    torch.manual_seed(0)
    vocab = 4 + REVERSE_SYMBOLS
    model = Seq2Seq(
        ModelConfig(
            cell=cell,
            attention=attention,
            decoder=decoder,
            input_feeding=decoder == "luong",  # the conditional GRU has none
            embed_size=32,
            hidden_size=64,
            dropout=0.0,
            src_vocab_size=vocab,
            tgt_vocab_size=vocab,
        )
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = ParallelDataset(*reverse_pairs(TRAIN_STEPS * TRAIN_BATCH, seed=1))
    for step in range(TRAIN_STEPS):
        b = data.collate(range(step * TRAIN_BATCH, (step + 1) * TRAIN_BATCH))
        logits = model(b.src_ids, b.src_lengths, b.tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), b.tgt_out.flatten(), ignore_index=PAD_ID)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("exhaustive", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_batched_beam_equals_the_reference_on_a_trained_model(
    reverser: Seq2Seq, alpha: float, exhaustive: bool
) -> None:
    reference = load_reference().reference_beam_search
    sources, _ = reverse_pairs(12, seed=7)
    # A tight limit, ceil(1.2 * S) tokens (EOS included): a right answer (S + 1) fits, exactly
    # for S <= 5, and hypotheses that run on end there without EOS.
    cfg = DecodeConfig(
        beam_size=5,
        nbest=3,
        length_penalty=alpha,
        max_length_ratio=1.2,
        max_length_offset=0,
        exhaustive=exhaustive,
    )
    src_ids, src_lengths = batch(*sources)
    src_ids = torch.cat([src_ids, torch.full((len(sources), 2), PAD_ID)], dim=1)  # extra padding
    batched = beam_search(reverser, src_ids, src_lengths, cfg)
    # The case is not trivial: some n-best lists mix lengths, so the length penalty counts.
    assert any(len({len(h.token_ids) for h in hyps}) > 1 for hyps in batched)
    for ids, got in zip(sources, batched, strict=True):
        expected = reference(reverser, torch.tensor([ids]), len(ids), cfg)
        assert len(got) == cfg.nbest
        assert [h.token_ids for h in got] == [h.token_ids for h in expected]
        # A batch of another size sums the float32 matrix products in another order: the
        # log-probs differ by up to ~2e-5, while the token ids must match exactly.
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-4)
        assert [h.log_prob for h in got] == pytest.approx([h.log_prob for h in expected], abs=1e-4)
        for g, e in zip(got, expected, strict=True):
            assert g.attention.shape == (len(g.token_ids), len(ids))
            torch.testing.assert_close(g.attention, e.attention, atol=1e-4, rtol=1e-4)


def test_search_restores_the_model_mode_and_runs_without_dropout(tiny_model: TinyGRUModel) -> None:
    src = batch(*random_sources(3))
    cfg = random_config(beam_size=2)
    tiny_model.train()
    first, second = search(tiny_model, *src, cfg), search(tiny_model, *src, cfg)
    assert tiny_model.training
    for a, b in zip(first, second, strict=True):
        assert_same(a, b)  # dropout would make two runs differ


def test_decode_corpus_keeps_input_order(tiny_model: TinyGRUModel) -> None:
    sources = random_sources(7, seed=4)
    cfg = random_config(beam_size=2)
    got = decode_corpus(tiny_model, sources, cfg, "cpu", batch_size=3)
    for ids, hyps in zip(sources, got, strict=True):
        assert_same(hyps, search(tiny_model, *batch(ids), cfg)[0])
    with pytest.raises(ValueError, match="empty source sentence"):
        decode_corpus(tiny_model, [[A], []], cfg, "cpu")
