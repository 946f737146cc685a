"""The decoder and the `DecoderState` it carries.

- `LuongDecoder` (Luong et al. 2015): the RNN step, then attention queried with the new state,
  then the attentional vector tanh(W [h; context]) that is fed to the next step (input feeding,
  §3.3) and projected to the vocabulary.

Decoders expose the same four methods (`Decoder`), so `model.Seq2Seq` and the search need not
know which one runs. Shapes as in `model`.
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
    feed: Tensor  # (B, H) attentional vector of the last step (input feeding)

    def select(self, rows: Tensor) -> DecoderState:
        """Reorder or repeat batch rows (beam search)."""
        return DecoderState(
            self.hidden.index_select(1, rows),
            None if self.cell is None else self.cell.index_select(1, rows),
            self.feed.index_select(0, rows),
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


def build_decoder(cfg: ModelConfig, embedding: nn.Embedding) -> Decoder:
    """The decoder of ``cfg``, reading targets through ``embedding``."""
    return LuongDecoder(cfg, embedding)
