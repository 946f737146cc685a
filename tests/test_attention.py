"""Attention: weights are a distribution over real tokens; padding gets exactly zero."""

from __future__ import annotations

import pytest
import torch

from seq2seq.attention import build_attention

H = 6


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general", "scaled_dot", "scaled_general"])
def test_weights_sum_to_one_and_are_exactly_zero_at_padding(kind):
    torch.manual_seed(0)
    attention = build_attention(kind, H, H)
    memory = torch.randn(3, 5, H)  # (B, S, H)
    mask = torch.tensor(
        [[False] * 5, [False, False, False, True, True], [False, True, True, True, True]]
    )
    memory = memory.masked_fill(mask.unsqueeze(-1), 1e6)  # padding must not leak even if huge
    query = torch.randn(3, 4, H)  # (B, T, H)
    context, weights = attention(query, attention.precompute(memory), memory, mask)
    assert weights.shape == (3, 4, 5) and context.shape == (3, 4, H)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert torch.all(weights.masked_select(mask.unsqueeze(1).expand(-1, 4, -1)) == 0.0)
    assert context.abs().max() < 1e3  # the huge padded values got no weight
    assert torch.all(weights[2, :, 0] == 1.0)  # one real token takes all the weight


def test_dot_scores_are_dot_products():
    attention = build_attention("dot", H, H)
    keys = torch.eye(H)[:3].unsqueeze(0)  # three unit vectors
    query = torch.tensor([[[0.0, 5.0, 0.0, 0.0, 0.0, 0.0]]])
    _, weights = attention(query, keys, keys, torch.zeros(1, 3, dtype=torch.bool))
    expected = torch.softmax(torch.tensor([0.0, 5.0, 0.0]), 0)
    torch.testing.assert_close(weights[0, 0], expected)


@pytest.mark.parametrize("kind", ["dot", "general"])
def test_scaled_scores_are_the_unscaled_ones_divided_by_sqrt_h(kind):
    torch.manual_seed(0)
    unscaled = build_attention(kind, H, H)
    torch.manual_seed(0)
    scaled = build_attention(f"scaled_{kind}", H, H)  # the same key projection, for general
    memory, query = torch.randn(2, 5, H), torch.randn(2, 3, H)  # (B, S, H), (B, T, H)
    expected = unscaled.score(query, unscaled.precompute(memory)) / H**0.5
    torch.testing.assert_close(scaled.score(query, scaled.precompute(memory)), expected)
    # the weights are the softmax of the scaled scores, not of the unscaled ones
    mask = torch.zeros(2, 5, dtype=torch.bool)
    _, weights = scaled(query, scaled.precompute(memory), memory, mask)
    torch.testing.assert_close(weights, torch.softmax(expected, dim=-1))


def test_unknown_or_mismatched_attention_is_rejected():
    assert build_attention("none", H, H) is None
    with pytest.raises(ValueError, match="luong"):
        build_attention("luong", H, H)
    with pytest.raises(ValueError, match="equal sizes"):
        build_attention("dot", H, H + 2)
    with pytest.raises(ValueError, match="equal sizes"):
        build_attention("scaled_dot", H, H + 2)
    with pytest.raises(ValueError, match="'scaled_bahdanau'.*scaled_general"):
        build_attention("scaled_bahdanau", H, H)
