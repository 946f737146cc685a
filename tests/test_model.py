"""The encoder-decoder over every cell x attention x direction x depth."""

from __future__ import annotations

import itertools

import pytest
import torch

from seq2seq.config import ATTENTION_TYPES, ModelConfig
from seq2seq.model import Seq2Seq

V = 23
GRID = list(itertools.product(["rnn", "gru", "lstm"], ATTENTION_TYPES, [True, False], [1, 2]))


def tiny(cell, attention, bidirectional, layers, **kw):
    cfg = ModelConfig(
        cell=cell,
        attention=attention,
        bidirectional=bidirectional,
        num_layers=layers,
        embed_size=8,
        hidden_size=12,
        src_vocab_size=V,
        tgt_vocab_size=V,
        dropout=0.0,
        **kw,
    )
    torch.manual_seed(0)
    return Seq2Seq(cfg).eval()


def padded_batch():
    torch.manual_seed(1)
    src = torch.randint(4, V, (3, 7))
    lengths = torch.tensor([7, 5, 2])
    for row, n in enumerate(lengths):
        src[row, n:] = 0
    return src, lengths, torch.randint(4, V, (3, 6))


@pytest.mark.parametrize(("cell", "attention", "bidirectional", "layers"), GRID)
def test_shapes_padding_invariance_and_forward_equals_steps(cell, attention, bidirectional, layers):
    model = tiny(cell, attention, bidirectional, layers)
    src, lengths, tgt_in = padded_batch()
    with torch.no_grad():
        logits = model(src, lengths, tgt_in)
        assert logits.shape == (3, 6, V)
        enc = model.encode(src, lengths)
        assert enc.memory.shape == (3, 7, 12) and enc.init_hidden.shape == (layers, 3, 12)
        # A sentence alone encodes exactly as it does padded in a batch.
        alone = model.encode(src[2:3, :2], lengths[2:3])
        torch.testing.assert_close(alone.memory[0], enc.memory[2, :2], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(
            alone.init_hidden[:, 0], enc.init_hidden[:, 2], atol=1e-6, rtol=1e-5
        )
        assert torch.all(enc.memory[2, 2:] == 0)
        # Teacher-forced forward equals a loop of decode_step.
        state = model.initial_state(enc)
        steps = []
        for t in range(tgt_in.size(1)):
            log_probs, state, weights = model.decode_step(tgt_in[:, t], state, enc)
            steps.append(log_probs)
            assert weights.shape == (3, 7)
            assert torch.all(weights[2, 2:] == 0)  # no attention on padding
        torch.testing.assert_close(
            torch.log_softmax(logits, -1), torch.stack(steps, 1), atol=1e-5, rtol=1e-4
        )


@pytest.mark.parametrize("input_feeding", [True, False])
def test_input_feeding_switch_keeps_forward_equal_to_steps(input_feeding):
    model = tiny("gru", "general", True, 1, input_feeding=input_feeding)
    src, lengths, tgt_in = padded_batch()
    with torch.no_grad():
        logits = model(src, lengths, tgt_in)
        enc = model.encode(src, lengths)
        state = model.initial_state(enc)
        for t in range(tgt_in.size(1)):
            log_probs, state, _ = model.decode_step(tgt_in[:, t], state, enc)
            torch.testing.assert_close(
                log_probs, torch.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-4
            )


def test_tied_and_shared_embeddings_are_one_matrix():
    model = tiny("gru", "dot", True, 1)
    assert model.decoder.generator.weight is model.decoder.embedding.weight
    assert model.encoder.embedding is model.decoder.embedding
    untied = tiny("gru", "dot", True, 1, tie_embeddings=False, share_embeddings=False)
    assert untied.decoder.generator.weight is not untied.decoder.embedding.weight
    assert untied.num_parameters() > model.num_parameters()


def test_state_select_reorders_rows():
    model = tiny("lstm", "bahdanau", True, 2)
    src, lengths, _ = padded_batch()
    with torch.no_grad():
        enc = model.encode(src, lengths)
        state = model.initial_state(enc)
        rows = torch.tensor([2, 2, 0])
        picked = state.select(rows)
        assert torch.equal(picked.hidden[:, 0], state.hidden[:, 2])
        assert torch.equal(picked.cell[:, 2], state.cell[:, 0])
        assert torch.equal(enc.select(rows).src_pad_mask[1], enc.src_pad_mask[2])
