"""What training optimises: the forward pass under the feeding policy, and the loss; and the
teacher-forced loss of a dataset, which validation and `Translator.perplexity` report.

The feeding policy (teacher forcing, or scheduled sampling) is training's, not the model's, so it
lives here as `TrainingForward`: one module whose ``forward`` is every pass training makes, so
that DistributedDataParallel, which wraps it, sees each one and averages its gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.data import ParallelDataset, TokenBatchSampler
from seq2seq.model import Seq2Seq
from seq2seq.tokenizer import PAD_ID


def label_smoothed_loss(logits: Tensor, gold: Tensor, smoothing: float) -> tuple[Tensor, int]:
    """Summed cross-entropy over non-padding tokens, and their count. logits (B, T, V)."""
    loss = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        gold.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=smoothing,
        reduction="sum",
    )
    return loss, int((gold != PAD_ID).sum())


@torch.no_grad()
def teacher_forced_loss(
    model: nn.Module, data: ParallelDataset, max_tokens: int, device: torch.device | str
) -> float:
    """Cross-entropy per target token (EOS included, no label smoothing) of ``data``, the gold
    previous token fed at every step: the log of the perplexity. ``model`` maps (src_ids,
    src_lengths, tgt_in) to logits (B, T, V): a `Seq2Seq`, or an `ensemble.Ensemble`. Batches of
    up to ``max_tokens`` in length order; the model runs in the mode it is in (eval, for a
    measurement)."""
    sampler = TokenBatchSampler(data.src_lengths, data.tgt_lengths, max_tokens, shuffle=False)
    total_loss, total_tokens = 0.0, 0
    for indices in sampler.batches(0):
        batch = data.collate(indices).to(device)
        logits = model(batch.src_ids, batch.src_lengths, batch.tgt_in)
        batch_loss, tokens = label_smoothed_loss(logits, batch.tgt_out, 0.0)
        total_loss += batch_loss.item()
        total_tokens += tokens
    return total_loss / max(total_tokens, 1)


def scheduled_sampling_logits(
    model: Seq2Seq, src_ids: Tensor, src_lengths: Tensor, tgt_in: Tensor, teacher_forcing: float
) -> Tensor:
    """Log-probabilities (B, T, V) where each input is the gold token with probability
    ``teacher_forcing`` and otherwise the model's own previous prediction (Bengio et al. 2015).
    """
    enc = model.encode(src_ids, src_lengths)
    state = model.initial_state(enc)
    prev = tgt_in[:, 0]
    steps = []
    for t in range(tgt_in.size(1)):
        log_probs, state, _ = model.decode_step(prev, state, enc)
        steps.append(log_probs)
        if t + 1 < tgt_in.size(1):
            gold = tgt_in[:, t + 1]
            use_gold = torch.rand(gold.shape, device=gold.device) < teacher_forcing
            prev = torch.where(use_gold, gold, log_probs.argmax(-1))
    return torch.stack(steps, dim=1)  # log_softmax is idempotent: fine as logits for the loss


class TrainingForward(nn.Module):
    """``model`` fed the gold previous token (teacher forcing), or with probability
    ``1 - teacher_forcing`` its own prediction. Returns logits (B, T, V)."""

    def __init__(self, model: Seq2Seq, teacher_forcing: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.teacher_forcing = teacher_forcing

    def forward(self, src_ids: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        if self.teacher_forcing < 1.0:
            return scheduled_sampling_logits(
                self.model, src_ids, src_lengths, tgt_in, self.teacher_forcing
            )
        return self.model(src_ids, src_lengths, tgt_in)
