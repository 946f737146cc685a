"""Gradient flow measured where the answer is known: linear recurrences, decaying tanh RNNs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seq2seq.config import ModelConfig
from seq2seq.data import ParallelDataset
from seq2seq.model import Seq2Seq
from study.gradflow import (
    distances,
    gradient_by_distance,
    mean_by_distance,
    recurrence_gradient,
    source_gradient_norms,
    text_windows,
)

V = 29


def linear_rnn(a: float, bidirectional: bool = False) -> nn.RNN:
    """h_t = relu(a h_{t-1} + x_t): linear while inputs and a are positive, so dh_T/dx_t is
    exactly a ** (T - 1 - t)."""
    rnn = nn.RNN(
        1, 1, nonlinearity="relu", bias=False, batch_first=True, bidirectional=bidirectional
    )
    with torch.no_grad():
        for name, weight in rnn.named_parameters():
            weight.fill_(a if name.startswith("weight_hh") else 1.0)
    return rnn


@pytest.mark.parametrize("a", [0.5, 0.9, 1.0, 1.3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_linear_recurrence_gradient_is_a_power_of_a(a, bidirectional):
    steps = 12
    inputs = torch.rand(3, steps, 1) + 0.1
    measured = recurrence_gradient(linear_rnn(a, bidirectional), inputs)
    expected = torch.tensor([a ** (steps - 1 - t) for t in range(steps)])
    torch.testing.assert_close(measured, expected, rtol=1e-5, atol=0.0)


def test_tanh_rnn_with_small_recurrent_weights_forgets_exponentially():
    torch.manual_seed(0)
    rnn = nn.RNN(4, 8, batch_first=True)
    with torch.no_grad():
        nn.init.orthogonal_(rnn.weight_hh_l0, gain=0.3)  # every step shrinks gradients >= 3.3x
    measured = recurrence_gradient(rnn, torch.randn(5, 15, 4))
    assert measured.shape == (15,)
    assert torch.all(measured[1:] > measured[:-1])  # the further from the end, the smaller
    assert measured[0] / measured[-1] < 0.3**14 * 10


def test_recurrence_gradient_needs_batch_first():
    with pytest.raises(ValueError, match="batch_first"):
        recurrence_gradient(nn.GRU(2, 3), torch.randn(4, 2, 2))


def tiny_model(cell: str, attention: str, bidirectional: bool = True) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(
        cell=cell,  # type: ignore[arg-type]
        attention=attention,  # type: ignore[arg-type]
        bidirectional=bidirectional,
        embed_size=8,
        hidden_size=12,
        dropout=0.2,
        src_vocab_size=V,
        tgt_vocab_size=V,
    )
    return Seq2Seq(cfg)


def padded_batch():
    generator = torch.Generator().manual_seed(1)
    src = [torch.randint(4, V, (n,), generator=generator).tolist() for n in (9, 6, 2)]
    tgt = [torch.randint(4, V, (n,), generator=generator).tolist() for n in (7, 3, 5)]
    return ParallelDataset(src, tgt).collate([0, 1, 2])


@pytest.mark.parametrize("attention", ["none", "bahdanau"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_gradient_by_distance_is_finite_positive_per_distance(cell, attention):
    model = tiny_model(cell, attention)
    batch = padded_batch()
    from_end = gradient_by_distance(model, batch)
    assert from_end.shape == (9,)  # the longest sentence has every distance 0..8
    assert torch.all(torch.isfinite(from_end)) and torch.all(from_end > 0)
    nearest = gradient_by_distance(model, [batch, batch], measure_from="final_state")
    assert nearest.shape == (5,)  # min(t, 8 - t) <= 4
    assert torch.all(torch.isfinite(nearest)) and torch.all(nearest > 0)
    assert model.training  # left as it was
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("bidirectional", [True, False])
def test_source_gradients_of_a_sentence_do_not_depend_on_its_batch(bidirectional):
    model = tiny_model("gru", "general", bidirectional)
    batch = padded_batch()
    together = source_gradient_norms(model, batch)
    assert together.shape == (3, 9)
    assert torch.all(together[1, 6:] == 0) and torch.all(together[2, 2:] == 0)
    for row, length in enumerate([9, 6, 2]):
        alone = source_gradient_norms(model, single(batch, row))
        torch.testing.assert_close(alone[0], together[row, :length], rtol=1e-4, atol=1e-7)


def single(batch, row):
    """Row `row` of a batch as a batch of its own, without padding."""
    length = int(batch.src_lengths[row])
    tgt = [t for t in batch.tgt_out[row].tolist() if t != 0][:-1]  # drop padding and EOS
    return ParallelDataset([batch.src_ids[row, :length].tolist()], [tgt]).collate([0])


def test_unidirectional_gru_without_attention_reaches_the_end_more_than_the_start():
    """Its source reaches the decoder only through the last encoder state, at init: the loss's
    gradient is largest at the last source token."""
    model = tiny_model("gru", "none", bidirectional=False)
    norms = source_gradient_norms(model, padded_batch())
    assert norms[0, 8] > norms[0, 0]


def test_distances_from_the_end_and_from_the_nearest_final_state():
    lengths = torch.tensor([4, 1])
    assert distances(lengths, 5, "end").tolist() == [[3, 2, 1, 0, -1], [0, -1, -1, -1, -1]]
    assert distances(lengths, 5, "final_state").tolist() == [
        [0, 1, 1, 0, -1],
        [0, -1, -1, -1, -1],
    ]


def test_mean_by_distance_averages_real_positions_and_marks_missing_ones():
    values = torch.tensor([[1.0, 2.0, 3.0], [5.0, 7.0, 0.0]])
    dist = torch.tensor([[2, 1, 0], [0, 3, -1]])
    means = mean_by_distance([(values, dist), (torch.tensor([[4.0]]), torch.tensor([[0]]))])
    assert means[0].item() == 4.0  # (3 + 5 + 4) / 3
    assert means[1].item() == 2.0 and means[2].item() == 1.0 and means[3].item() == 7.0
    assert mean_by_distance([]).numel() == 0
    gap = mean_by_distance([(torch.tensor([[1.0]]), torch.tensor([[2]]))])
    assert math.isnan(gap[0]) and math.isnan(gap[1]) and gap[2] == 1.0
    rare = mean_by_distance([(values, dist)], min_count=2)  # only distance 0 has two positions
    assert rare[0].item() == 4.0 and torch.isnan(rare[1:]).all()


def test_text_windows_cut_the_concatenated_stream():
    windows = text_windows([[1, 2, 3], [4], [5, 6, 7, 8]], length=3, count=5)
    assert windows.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert text_windows([[1, 2, 3, 4]], length=2, count=1).tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="too few"):
        text_windows([[1, 2]], length=3, count=1)
