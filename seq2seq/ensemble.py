"""Several trained models decoded as one: the search sees a single `Decodable`.

At every step each member predicts from its own encoding and state; the ensemble's next-token
distribution is the renormalised mean of their log-probabilities (a normalised geometric mean of
their distributions), so an ensemble of one model, or of a model with itself, decodes exactly as
that model does. The members must share the target vocabulary (one SentencePiece model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seq2seq.decoder import DecoderState
from seq2seq.encoder import EncoderOutput
from seq2seq.model import Seq2Seq


@dataclass
class EnsembleEncoding:
    """Each member's encoding of the same source batch."""

    members: list[EncoderOutput]

    @property
    def src_pad_mask(self) -> Tensor:  # (B, S) True at padding: the same for every member
        return self.members[0].src_pad_mask

    def select(self, rows: Tensor) -> EnsembleEncoding:
        return EnsembleEncoding([enc.select(rows) for enc in self.members])


@dataclass
class EnsembleState:
    """Each member's decoder state."""

    members: list[DecoderState]

    def select(self, rows: Tensor) -> EnsembleState:
        return EnsembleState([state.select(rows) for state in self.members])


class Ensemble(nn.Module):
    """Models with one vocabulary, decoded together (`search.Decodable`)."""

    def __init__(self, models: Sequence[Seq2Seq]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        vocab = {(m.cfg.src_vocab_size, m.cfg.tgt_vocab_size) for m in models}
        if len(vocab) > 1:
            raise ValueError(
                "ensemble members must share one vocabulary, but their (source, target) "
                f"vocabulary sizes differ: {sorted(vocab)}"
            )
        self.members = nn.ModuleList(models)
        self.cfg = models[0].cfg  # vocabulary sizes and what describes the first member

    def encode(self, src_ids: Tensor, src_lengths: Tensor) -> EnsembleEncoding:
        return EnsembleEncoding([m.encode(src_ids, src_lengths) for m in self._models()])

    def initial_state(self, enc: EnsembleEncoding) -> EnsembleState:
        return EnsembleState(
            [m.initial_state(e) for m, e in zip(self._models(), enc.members, strict=True)]
        )

    def decode_step(
        self, prev_ids: Tensor, state: EnsembleState, enc: EnsembleEncoding
    ) -> tuple[Tensor, EnsembleState, Tensor]:
        """prev_ids (B,) -> log-probabilities (B, V), new state, mean attention (B, S)."""
        steps = [
            m.decode_step(prev_ids, s, e)
            for m, s, e in zip(self._models(), state.members, enc.members, strict=True)
        ]
        mean = torch.stack([log_probs for log_probs, _, _ in steps]).mean(0)  # (B, V)
        attention = torch.stack([att.float() for _, _, att in steps]).mean(0)  # (B, S)
        return mean.log_softmax(-1), EnsembleState([s for _, s, _ in steps]), attention

    def forward(self, src_ids: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced log-probabilities (B, T, V): at each position the renormalised mean of
        the members', as `decode_step` gives them, so a perplexity measures what search decodes.
        Usable as logits: log_softmax leaves them as they are."""
        total = torch.zeros((), device=src_ids.device)
        for model in self._models():
            total = total + model(src_ids, src_lengths, tgt_in).float().log_softmax(-1)
        return (total / len(self.members)).log_softmax(-1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _models(self) -> list[Seq2Seq]:
        return list(self.members)  # type: ignore[arg-type]
