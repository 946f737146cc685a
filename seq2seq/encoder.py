"""The source side: the bidirectional RNN encoder, the `EncoderOutput` every decoder step reads,
and the recurrent building blocks the decoders share with it (cells by name, word dropout, the
LSTM forget-gate bias). Shapes as in `model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.config import ModelConfig

RNN_CLASSES: dict[str, type[nn.RNN] | type[nn.GRU] | type[nn.LSTM]] = {
    "rnn": nn.RNN,
    "gru": nn.GRU,
    "lstm": nn.LSTM,
}


@dataclass
class EncoderOutput:
    """The encoded source, read by every decoder step."""

    memory: Tensor  # (B, S, H) encoder states: the attention's values
    keys: Tensor  # (B, S, K) attention keys, precomputed once
    src_pad_mask: Tensor  # (B, S) True at padding
    init_hidden: Tensor  # (L, B, H) the decoder's first state, bridged from the encoder
    init_cell: Tensor | None  # (L, B, H) for LSTM

    def select(self, rows: Tensor) -> EncoderOutput:
        return EncoderOutput(
            self.memory.index_select(0, rows),
            self.keys.index_select(0, rows),
            self.src_pad_mask.index_select(0, rows),
            self.init_hidden.index_select(1, rows),
            None if self.init_cell is None else self.init_cell.index_select(1, rows),
        )


def word_dropout(embedded: Tensor, p: float, training: bool) -> Tensor:
    """Drop whole word vectors (B, T, E) with probability p (Gal & Ghahramani 2016)."""
    if not training or p == 0.0:
        return embedded
    keep = embedded.new_empty(embedded.shape[:-1] + (1,)).bernoulli_(1 - p)
    return embedded * keep / (1 - p)


def init_forget_bias(lstm: nn.RNNBase, value: float = 1.0) -> None:
    """Start LSTM forget gates open so that gradients flow early (Jozefowicz et al. 2015)."""
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_ih"):
                hidden = bias.numel() // 4
                bias[hidden : 2 * hidden].fill_(value)  # gate order: input, forget, cell, output


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = embedding
        self.rnn = RNN_CLASSES[cfg.cell](
            cfg.embed_size,
            cfg.encoder_hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        if cfg.cell == "lstm":
            init_forget_bias(self.rnn)

    def forward(self, src_ids: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Encoder states (B, S, H) and final states (L, B, H) (hidden, and cell for LSTM).

        Packed sequences make every result independent of padding, including the backward
        direction's final state.
        """
        embedded = self.embedding(src_ids)
        embedded = self.dropout(word_dropout(embedded, self.cfg.embed_dropout, self.training))
        packed = pack_padded_sequence(
            embedded, src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, final = self.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src_ids.size(1))
        hidden, cell = final if isinstance(final, tuple) else (final, None)
        return memory, self._join_directions(hidden), self._join_directions(cell)

    @overload
    def _join_directions(self, state: Tensor) -> Tensor: ...
    @overload
    def _join_directions(self, state: None) -> None: ...

    def _join_directions(self, state: Tensor | None) -> Tensor | None:
        if state is None or not self.cfg.bidirectional:
            return state
        layers, batch = self.cfg.num_layers, state.size(1)
        state = state.view(layers, 2, batch, -1)  # (L, 2, B, H/2)
        return torch.cat([state[:, 0], state[:, 1]], dim=-1)  # (L, B, H)
