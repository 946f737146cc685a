"""The attentional RNN encoder-decoder.

Shapes: B batch, S source length, T target length, E embedding, H hidden (decoder; the encoder's
output is H wide too: H/2 per direction when bidirectional), V vocabulary, L layers, K beam.
Batch-first everywhere except RNN hidden states, which are (L, B, H) as PyTorch returns them.

Decoding follows Luong et al. 2015: the RNN step, then attention with the new hidden state as
query, then the attentional vector tanh(W [h; context]) that is fed to the next step (input
feeding, §3.3) and projected to the vocabulary. The attention type only changes the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.attention import Attention, build_attention
from seq2seq.config import ModelConfig
from seq2seq.tokenizer import PAD_ID

RNN_CLASSES: dict[str, type[nn.RNN] | type[nn.GRU] | type[nn.LSTM]] = {
    "rnn": nn.RNN,
    "gru": nn.GRU,
    "lstm": nn.LSTM,
}


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


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_size
        self.embedding = embedding
        self.rnn = RNN_CLASSES[cfg.cell](
            cfg.embed_size + (h if cfg.input_feeding else 0),
            h,
            num_layers=cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.attention: Attention | None = build_attention(cfg.attention, h, h)
        self.combine = nn.Linear(2 * h if self.attention is not None else h, h)
        self.pre_output = nn.Linear(h, cfg.embed_size)
        self.generator = nn.Linear(cfg.embed_size, cfg.tgt_vocab_size)
        if cfg.tie_embeddings:
            self.generator.weight = self.embedding.weight
        self.dropout = nn.Dropout(cfg.dropout)

    def embed(self, tgt_ids: Tensor) -> Tensor:
        embedded = self.embedding(tgt_ids)  # (B, T, E)
        return self.dropout(word_dropout(embedded, self.cfg.embed_dropout, self.training))

    def attend(self, rnn_out: Tensor, enc: EncoderOutput) -> tuple[Tensor, Tensor]:
        """Attentional vectors (B, T, H) and weights (B, T, S) for RNN outputs (B, T, H)."""
        rnn_out = self.dropout(rnn_out)
        if self.attention is None:
            weights = rnn_out.new_zeros(rnn_out.size(0), rnn_out.size(1), enc.memory.size(1))
            return torch.tanh(self.combine(rnn_out)), weights
        context, weights = self.attention(rnn_out, enc.keys, enc.memory, enc.src_pad_mask)
        return torch.tanh(self.combine(torch.cat([rnn_out, context], dim=-1))), weights

    def logits(self, attentional: Tensor) -> Tensor:
        """(B, T, H) -> (B, T, V)."""
        return self.generator(self.pre_output(self.dropout(attentional)))

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


class Seq2Seq(nn.Module):
    """Encoder, bridge and attentional decoder; training policy lives in `train`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        src_embedding = nn.Embedding(cfg.src_vocab_size, cfg.embed_size, padding_idx=PAD_ID)
        tgt_embedding = (
            src_embedding
            if cfg.share_embeddings
            else nn.Embedding(cfg.tgt_vocab_size, cfg.embed_size, padding_idx=PAD_ID)
        )
        for embedding in {src_embedding, tgt_embedding}:
            nn.init.uniform_(embedding.weight, -0.1, 0.1)
            with torch.no_grad():
                embedding.weight[PAD_ID].zero_()
        self.encoder = Encoder(cfg, src_embedding)
        self.decoder = Decoder(cfg, tgt_embedding)
        h = cfg.hidden_size
        self.bridge = nn.Linear(h, h)
        self.bridge_cell = nn.Linear(h, h) if cfg.cell == "lstm" else None
        if cfg.cell == "lstm":
            init_forget_bias(self.encoder.rnn)
            init_forget_bias(self.decoder.rnn)

    def encode(self, src_ids: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """Encode a padded batch: src_ids (B, S), src_lengths (B,)."""
        memory, hidden, cell = self.encoder(src_ids, src_lengths)
        keys = (
            memory if self.decoder.attention is None else self.decoder.attention.precompute(memory)
        )
        init_cell = None
        if self.bridge_cell is not None and cell is not None:
            init_cell = torch.tanh(self.bridge_cell(cell))
        return EncoderOutput(
            memory=memory,
            keys=keys,
            src_pad_mask=src_ids == PAD_ID,
            init_hidden=torch.tanh(self.bridge(hidden)),
            init_cell=init_cell,
        )

    def initial_state(self, enc: EncoderOutput) -> DecoderState:
        batch = enc.memory.size(0)
        feed = enc.memory.new_zeros(batch, self.cfg.hidden_size)
        return DecoderState(enc.init_hidden, enc.init_cell, feed)

    def decode_step(
        self, prev_ids: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """One step: prev_ids (B,) -> log-probabilities (B, V), new state, attention (B, S)."""
        embedded = self.decoder.embed(prev_ids.unsqueeze(1))  # (B, 1, E)
        attentional, state, weights = self.decoder.step(embedded, state, enc)
        log_probs = F.log_softmax(self.decoder.logits(attentional).squeeze(1).float(), dim=-1)
        return log_probs, state, weights.squeeze(1)

    def forward(self, src_ids: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) for target inputs tgt_in (B, T) = BOS + y."""
        enc = self.encode(src_ids, src_lengths)
        state = self.initial_state(enc)
        embedded = self.decoder.embed(tgt_in)  # (B, T, E)
        if self.cfg.input_feeding:
            steps = []
            for t in range(tgt_in.size(1)):
                attentional, state, _ = self.decoder.step(embedded[:, t : t + 1], state, enc)
                steps.append(attentional)
            attentional = torch.cat(steps, dim=1)  # (B, T, H)
        else:
            # Without input feeding no step depends on the last one's output: one RNN call.
            out, _ = self.decoder.rnn(embedded, state.rnn_state())
            attentional, _ = self.decoder.attend(out, enc)
        return self.decoder.logits(attentional)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
