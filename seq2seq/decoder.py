"""The decoders, chosen by ``ModelConfig.decoder``, and the `DecoderState` they carry.

- ``luong`` (`LuongDecoder`, Luong et al. 2015): the RNN step, then attention queried with the
  new state, then the attentional vector tanh(W [h; context]) that is fed to the next step (input
  feeding, §3.3) and projected to the vocabulary.
- ``cgru`` (`ConditionalGRUDecoder`, the conditional GRU of Nematus, Marian and nmtpy: Sennrich
  et al. 2017, §2.3): a first GRU transition on the previous target word, attention queried with
  that intermediate state, a second GRU transition fed the context, then a deep output
  tanh(W [s; context; y_prev]) projected to the vocabulary.

Both expose the same four methods, so `model.Seq2Seq` and the search need not know which one
runs. Shapes as in `model`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seq2seq.attention import Attention, build_attention
from seq2seq.config import ModelConfig
from seq2seq.encoder import RNN_CLASSES, EncoderOutput, init_forget_bias, word_dropout


@dataclass
class DecoderState:
    """Everything the decoder carries from one step to the next."""

    hidden: Tensor  # (L, B, H)
    cell: Tensor | None  # (L, B, H) for LSTM
    feed: Tensor | None  # (B, H) luong: the last attentional vector (input feeding); cgru: None

    def select(self, rows: Tensor) -> DecoderState:
        """Reorder or repeat batch rows (beam search)."""
        return DecoderState(
            self.hidden.index_select(1, rows),
            None if self.cell is None else self.cell.index_select(1, rows),
            None if self.feed is None else self.feed.index_select(0, rows),
        )

    def rnn_state(self) -> Tensor | tuple[Tensor, Tensor]:
        return self.hidden if self.cell is None else (self.hidden, self.cell)


class Decoder(nn.Module):
    """What the decoders share: the target embedding and the tied output layer; and the steps
    `model.Seq2Seq` calls: `initial_state`, `step`, `teacher_forced` and `logits`."""

    attention: Attention | None
    dropout: nn.Dropout

    def __init__(self, cfg: ModelConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = embedding

    def output_layer(self) -> nn.Linear:
        """E -> V, sharing the target embedding's matrix when ``tie_embeddings`` (Press & Wolf
        2017): what is projected to the vocabulary is therefore always E wide."""
        generator = nn.Linear(self.cfg.embed_size, self.cfg.tgt_vocab_size)
        if self.cfg.tie_embeddings:
            generator.weight = self.embedding.weight
        return generator

    def embed(self, tgt_ids: Tensor) -> Tensor:
        embedded = self.embedding(tgt_ids)  # (B, T, E)
        return self.dropout(word_dropout(embedded, self.cfg.embed_dropout, self.training))

    def initial_state(self, enc: EncoderOutput) -> DecoderState:
        raise NotImplementedError

    def step(
        self, embedded: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """One step from embedded inputs (B, 1, E): output (B, 1, ·) for `logits`, the new
        state, attention (B, 1, S)."""
        raise NotImplementedError

    def teacher_forced(self, embedded: Tensor, state: DecoderState, enc: EncoderOutput) -> Tensor:
        """Outputs (B, T, ·) for `logits` from the embedded gold inputs (B, T, E); by default
        step by step, for decoders whose next step needs the last one's output."""
        steps = []
        for t in range(embedded.size(1)):
            output, state, _ = self.step(embedded[:, t : t + 1], state, enc)
            steps.append(output)
        return torch.cat(steps, dim=1)

    def logits(self, outputs: Tensor) -> Tensor:
        """(B, T, ·) step outputs -> (B, T, V)."""
        raise NotImplementedError


class LuongDecoder(Decoder):
    def __init__(self, cfg: ModelConfig, embedding: nn.Embedding) -> None:
        super().__init__(cfg, embedding)
        h = cfg.hidden_size
        self.rnn = RNN_CLASSES[cfg.cell](
            cfg.embed_size + (h if cfg.input_feeding else 0),
            h,
            num_layers=cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.attention = build_attention(cfg.attention, h, h)
        self.combine = nn.Linear(2 * h if self.attention is not None else h, h)
        self.pre_output = nn.Linear(h, cfg.embed_size)
        self.generator = self.output_layer()
        self.dropout = nn.Dropout(cfg.dropout)
        if cfg.cell == "lstm":
            init_forget_bias(self.rnn)

    def initial_state(self, enc: EncoderOutput) -> DecoderState:
        feed = enc.memory.new_zeros(enc.memory.size(0), self.cfg.hidden_size)
        return DecoderState(enc.init_hidden, enc.init_cell, feed)

    def attend(self, rnn_out: Tensor, enc: EncoderOutput) -> tuple[Tensor, Tensor]:
        """Attentional vectors (B, T, H) and weights (B, T, S) for RNN outputs (B, T, H)."""
        rnn_out = self.dropout(rnn_out)
        if self.attention is None:
            weights = rnn_out.new_zeros(rnn_out.size(0), rnn_out.size(1), enc.memory.size(1))
            return torch.tanh(self.combine(rnn_out)), weights
        context, weights = self.attention(rnn_out, enc.keys, enc.memory, enc.src_pad_mask)
        return torch.tanh(self.combine(torch.cat([rnn_out, context], dim=-1))), weights

    def logits(self, outputs: Tensor) -> Tensor:
        """Attentional vectors (B, T, H) -> (B, T, V)."""
        return self.generator(self.pre_output(self.dropout(outputs)))

    def step(
        self, embedded: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """One step from embedded inputs (B, 1, E): attentional vector (B, 1, H), state,
        attention (B, 1, S)."""
        if self.cfg.input_feeding:
            assert state.feed is not None
            embedded = torch.cat([embedded, state.feed.unsqueeze(1)], dim=-1)
        out, final = self.rnn(embedded, state.rnn_state())
        hidden, cell = final if isinstance(final, tuple) else (final, None)
        attentional, weights = self.attend(out, enc)
        return attentional, DecoderState(hidden, cell, attentional.squeeze(1)), weights

    def teacher_forced(self, embedded: Tensor, state: DecoderState, enc: EncoderOutput) -> Tensor:
        if self.cfg.input_feeding:
            return super().teacher_forced(embedded, state, enc)
        # Without input feeding no step depends on the last one's output: one RNN call.
        out, _ = self.rnn(embedded, state.rnn_state())
        attentional, _ = self.attend(out, enc)
        return attentional


class ConditionalGRUDecoder(Decoder):
    """Sennrich et al. 2017 (Nematus), §2.3, with a deep output as theirs (Pascanu et al. 2014).

    With ``num_layers`` L > 1 the conditional GRU is the first layer and L - 1 plain GRU layers
    stack on it, each fed the state of the one below (the stacked decoder of Miceli Barone et
    al. 2017, Marian's ``--dec-depth``); the deep output reads the top layer's state.
    """

    def __init__(self, cfg: ModelConfig, embedding: nn.Embedding) -> None:
        super().__init__(cfg, embedding)
        h, e = cfg.hidden_size, cfg.embed_size
        self.first_transition = nn.GRU(e, h, batch_first=True)
        self.attention = build_attention(cfg.attention, h, h)
        assert self.attention is not None, "ModelConfig refuses cgru without attention"
        self.second_transition = nn.GRU(h, h, batch_first=True)
        self.upper_layers = (
            nn.GRU(
                h,
                h,
                num_layers=cfg.num_layers - 1,
                batch_first=True,
                dropout=cfg.dropout if cfg.num_layers > 2 else 0.0,
            )
            if cfg.num_layers > 1
            else None
        )
        self.deep_output = nn.Linear(h + h + e, e)
        self.generator = self.output_layer()
        self.dropout = nn.Dropout(cfg.dropout)

    def initial_state(self, enc: EncoderOutput) -> DecoderState:
        return DecoderState(enc.init_hidden, None, None)

    def step(
        self, embedded: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """One step from embedded inputs (B, 1, E): deep output (B, 1, E), state, attention
        (B, 1, S)."""
        assert self.attention is not None
        intermediate, _ = self.first_transition(embedded, state.hidden[:1])  # (B, 1, H)
        context, weights = self.attention(intermediate, enc.keys, enc.memory, enc.src_pad_mask)
        conditional, _ = self.second_transition(context, intermediate.transpose(0, 1))
        hidden, top = conditional.transpose(0, 1), conditional  # (1, B, H), (B, 1, H)
        if self.upper_layers is not None:
            top, upper = self.upper_layers(self.dropout(conditional), state.hidden[1:])
            hidden = torch.cat([hidden, upper], dim=0)  # (L, B, H)
        deep = self.deep_output(torch.cat([self.dropout(top), context, embedded], dim=-1))
        return torch.tanh(deep), DecoderState(hidden, None, None), weights

    def logits(self, outputs: Tensor) -> Tensor:
        """Deep outputs (B, T, E) -> (B, T, V)."""
        return self.generator(self.dropout(outputs))


def build_decoder(cfg: ModelConfig, embedding: nn.Embedding) -> Decoder:
    """The decoder ``cfg.decoder`` names, reading targets through ``embedding``."""
    if cfg.decoder == "cgru":
        return ConditionalGRUDecoder(cfg, embedding)
    return LuongDecoder(cfg, embedding)
