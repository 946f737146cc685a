"""Ensembles: one model, or a model with itself, decodes as that model; a step is the
renormalised mean of the members' log-probabilities; the batched ensemble beam equals a
one-sentence reference; members with different vocabularies are refused."""

from __future__ import annotations

import pytest
import torch
from test_search import batch, load_reference
from test_train import reverse_task, train_on_task

from seq2seq.config import DecodeConfig, ModelConfig
from seq2seq.ensemble import Ensemble
from seq2seq.model import Seq2Seq
from seq2seq.search import Hypothesis, beam_search, greedy_search

pytestmark = pytest.mark.slow

SOURCES = reverse_task(10, 2, 9, seed=21).src
CFG = DecodeConfig(beam_size=4, nbest=3, length_penalty=1.0)


@pytest.fixture(scope="module")
def members() -> list[Seq2Seq]:
    """Two reversers trained briefly on different data: close, but not the same model."""
    return [train_on_task("gru", "bahdanau", reverse_task(800, 2, 9, seed=s), 60) for s in (1, 2)]


def assert_same_hypotheses(got: list[list[Hypothesis]], expected: list[list[Hypothesis]]) -> None:
    for g, e in zip(got, expected, strict=True):
        assert [h.token_ids for h in g] == [h.token_ids for h in e]
        assert [h.score for h in g] == pytest.approx([h.score for h in e], abs=1e-5)


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_an_ensemble_of_one_or_of_a_model_with_itself_decodes_as_the_model(members, search):
    model, src = members[0], batch(*SOURCES)
    alone = search(model, *src, CFG)
    assert_same_hypotheses(search(Ensemble([model]), *src, CFG), alone)
    assert_same_hypotheses(search(Ensemble([model, model]), *src, CFG), alone)


def test_a_step_is_the_renormalised_mean_of_the_members_log_probs(members):
    ensemble = Ensemble(members).eval()
    src_ids, src_lengths = batch(*SOURCES)
    prev = torch.full((len(SOURCES),), 2)
    with torch.no_grad():
        enc = ensemble.encode(src_ids, src_lengths)
        log_probs, _, attention = ensemble.decode_step(prev, ensemble.initial_state(enc), enc)
        steps = []
        for model in members:
            e = model.encode(src_ids, src_lengths)
            steps.append(model.decode_step(prev, model.initial_state(e), e))
    expected = torch.stack([s[0] for s in steps]).mean(0).log_softmax(-1)
    torch.testing.assert_close(log_probs, expected)
    torch.testing.assert_close(attention, (steps[0][2] + steps[1][2]) / 2)
    assert not torch.allclose(steps[0][0], steps[1][0], atol=1e-3)  # the members differ
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(len(SOURCES)))


def test_the_batched_ensemble_beam_equals_the_one_sentence_reference(members):
    reference = load_reference().reference_beam_search
    ensemble = Ensemble(members)
    batched = beam_search(ensemble, *batch(*SOURCES), CFG)
    for ids, got in zip(SOURCES, batched, strict=True):
        expected = reference(ensemble, torch.tensor([ids]), len(ids), CFG)
        assert_same_hypotheses([got], [expected])


def test_members_with_another_vocabulary_are_refused(members):
    other = Seq2Seq(ModelConfig(embed_size=8, hidden_size=16, src_vocab_size=30, tgt_vocab_size=30))
    with pytest.raises(ValueError, match="share one vocabulary"):
        Ensemble([members[0], other])
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])
