"""The encoder-decoder over every decoder x cell x attention x direction x depth."""

from __future__ import annotations

import itertools

import pytest
import torch

from seq2seq.config import ATTENTION_TYPES, ModelConfig
from seq2seq.model import Seq2Seq

V = 23
GRID = [
    *itertools.product(["luong"], ["rnn", "gru", "lstm"], ATTENTION_TYPES, [True, False], [1, 2]),
    # cgru is a GRU with attention; 3 layers stack two plain GRU layers on the conditional one
    *itertools.product(["cgru"], ["gru"], ATTENTION_TYPES[1:], [True, False], [1, 2, 3]),
]


def tiny(cell, attention, bidirectional, layers, decoder="luong", **kw):
    cfg = ModelConfig(
        cell=cell,
        attention=attention,
        decoder=decoder,
        bidirectional=bidirectional,
        num_layers=layers,
        embed_size=8,
        hidden_size=12,
        src_vocab_size=V,
        tgt_vocab_size=V,
        dropout=0.0,
        **({"input_feeding": False} if decoder == "cgru" else {}),
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


@pytest.mark.parametrize(("decoder", "cell", "attention", "bidirectional", "layers"), GRID)
def test_shapes_padding_invariance_and_forward_equals_steps(
    decoder, cell, attention, bidirectional, layers
):
    model = tiny(cell, attention, bidirectional, layers, decoder)
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


@pytest.mark.parametrize("decoder", ["luong", "cgru"])
def test_tied_and_shared_embeddings_are_one_matrix(decoder):
    model = tiny("gru", "dot", True, 1, decoder)
    assert model.decoder.generator.weight is model.decoder.embedding.weight
    assert model.encoder.embedding is model.decoder.embedding
    untied = tiny("gru", "dot", True, 1, decoder, tie_embeddings=False, share_embeddings=False)
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


def gru_cell(gru: torch.nn.GRU, layer: int = 0) -> torch.nn.GRUCell:
    """Layer ``layer`` of ``gru`` as a GRUCell with the same weights."""
    cell = torch.nn.GRUCell(gru.input_size if layer == 0 else gru.hidden_size, gru.hidden_size)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    cell.load_state_dict({name: getattr(gru, f"{name}_l{layer}") for name in names})
    return cell


@pytest.mark.parametrize("layers", [1, 2])
def test_conditional_gru_step_follows_sennrich_et_al(layers):
    """Nematus (Sennrich et al. 2017, §2.3): s' = GRU1(E y_prev, s_prev), c = ATT(C, s'),
    s = GRU2(c, s'); the deep output t = tanh(W_s s + W_c c + W_y E y_prev + b) is scored
    against the tied embedding E. A second layer is a GRU over s."""
    model = tiny("gru", "bahdanau", True, layers, "cgru")
    dec = model.decoder
    src, lengths, tgt_in = padded_batch()
    with torch.no_grad():
        enc = model.encode(src, lengths)
        state = model.initial_state(enc)
        prev = tgt_in[:, 0]
        log_probs, new_state, weights = model.decode_step(prev, state, enc)

        emb = dec.embedding(prev)  # (B, E)
        s_mid = gru_cell(dec.first_transition)(emb, state.hidden[0])
        context, alpha = dec.attention(s_mid[:, None], enc.keys, enc.memory, enc.src_pad_mask)
        context, alpha = context[:, 0], alpha[:, 0]
        states = [gru_cell(dec.second_transition)(context, s_mid)]
        for layer in range(layers - 1):
            states.append(gru_cell(dec.upper_layers, layer)(states[-1], state.hidden[1 + layer]))
        h = model.cfg.hidden_size
        w, b = dec.deep_output.weight, dec.deep_output.bias
        t = torch.tanh(
            states[-1] @ w[:, :h].T + context @ w[:, h : 2 * h].T + emb @ w[:, 2 * h :].T + b
        )
        expected = torch.log_softmax(t @ dec.embedding.weight.T + dec.generator.bias, dim=-1)
    assert new_state.cell is None and new_state.feed is None
    torch.testing.assert_close(new_state.hidden, torch.stack(states), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, alpha, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(log_probs, expected, atol=1e-5, rtol=1e-5)
