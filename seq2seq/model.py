"""The attentional RNN encoder-decoder: the `encoder`, a bridge to the decoder's first state,
and the `decoder` that ``ModelConfig.decoder`` names.

Shapes: B batch, S source length, T target length, E embedding, H hidden (decoder; the encoder's
output is H wide too: H/2 per direction when bidirectional), V vocabulary, L layers, K beam.
Batch-first everywhere except RNN hidden states, which are (L, B, H) as PyTorch returns them.
The attention type only changes the score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.config import ModelConfig
from seq2seq.decoder import DecoderState, build_decoder
from seq2seq.encoder import Encoder, EncoderOutput
from seq2seq.tokenizer import PAD_ID


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
        self.decoder = build_decoder(cfg, tgt_embedding)
        h = cfg.hidden_size
        self.bridge = nn.Linear(h, h)
        self.bridge_cell = nn.Linear(h, h) if cfg.cell == "lstm" else None

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
        return self.decoder.initial_state(enc)

    def decode_step(
        self, prev_ids: Tensor, state: DecoderState, enc: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """One step: prev_ids (B,) -> log-probabilities (B, V), new state, attention (B, S)."""
        embedded = self.decoder.embed(prev_ids.unsqueeze(1))  # (B, 1, E)
        output, state, weights = self.decoder.step(embedded, state, enc)
        log_probs = F.log_softmax(self.decoder.logits(output).squeeze(1).float(), dim=-1)
        return log_probs, state, weights.squeeze(1)

    def forward(self, src_ids: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) for target inputs tgt_in (B, T) = BOS + y."""
        enc = self.encode(src_ids, src_lengths)
        state = self.initial_state(enc)
        embedded = self.decoder.embed(tgt_in)  # (B, T, E)
        return self.decoder.logits(self.decoder.teacher_forced(embedded, state, enc))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
