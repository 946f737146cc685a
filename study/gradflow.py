"""How far back gradients reach: gradient norms by distance from the end of the source.

A recurrent network learns a long dependency only if the loss's gradient reaches the inputs that
carry it. Through a recurrence h_t = f(h_{t-1}, x_t) that gradient is a product of Jacobians
dh_t/dh_{t-1}, one per step, so it shrinks or grows exponentially with the distance unless the
recurrence is built to keep it near 1 (Bengio et al. 1994, "Learning long-term dependencies with
gradient descent is difficult"; Pascanu et al. 2013, "On the difficulty of training recurrent
neural networks"). LSTM and GRU gates add a path whose Jacobian can stay close to the identity.

Two measurements, both on real inputs:

- `recurrence_gradient`: ||dh_T/dx_t||, the Jacobian's Frobenius norm, of one RNN module from its
  last state back to each input; the recurrence alone, as in the papers.
- `gradient_by_distance`: ||dloss/dx_t|| for a whole `Seq2Seq`, x_t the embedded source token, the
  loss teacher-forced cross-entropy; what training sees, attention's shortcut included.

Shapes: B batch, S source length, E embedding, H hidden, D distances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.data import Batch
from seq2seq.model import Seq2Seq
from seq2seq.tokenizer import PAD_ID

DistanceFrom = Literal["end", "final_state"]


def recurrence_gradient(rnn: nn.RNNBase, inputs: Tensor) -> Tensor:
    """Mean over the batch of ||dh_T/dx_t||_F for each input position t: shape (S,).

    Args:
        rnn: a batch-first `nn.RNN`, `nn.GRU` or `nn.LSTM`; when bidirectional, only its
            forward direction is measured (the first ``hidden_size`` units of its output).
        inputs: (B, S, E), every sequence S steps long (no padding).

    Position t lies S - 1 - t steps from the end; for h_t = a h_{t-1} + x_t the result is
    exactly |a| ** (S - 1 - t).
    """
    if not rnn.batch_first:
        raise ValueError("recurrence_gradient needs a batch_first RNN: inputs are (B, S, E)")
    x = inputs.detach().clone().requires_grad_(True)
    # cuDNN refuses an RNN backward in eval mode; the native kernels do not.
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        output, _ = rnn(x)
        last = output[:, -1, : rnn.hidden_size]  # (B, H) the forward direction's h_T
        squared = torch.zeros(x.shape[:2], dtype=torch.float64)  # (B, S)
        # One backward pass per unit k: row k of the Jacobian; rows are independent across the
        # batch, so summing over it gives every sentence's own gradient at once.
        for k in range(last.size(1)):
            (grad,) = torch.autograd.grad(last[:, k].sum(), x, retain_graph=True)
            squared += grad.double().pow(2).sum(-1).cpu()
    return squared.sqrt().mean(0).float()


def source_gradient_norms(model: Seq2Seq, batch: Batch) -> Tensor:
    """||dloss_b/dx_{b,t}|| for each sentence b and source position t: (B, S), 0 at padding.

    x_{b,t} is the embedded source token before dropout; loss_b is sentence b's teacher-forced
    cross-entropy, averaged over its target tokens (no label smoothing). The model is measured in
    eval mode (no dropout) and left in the mode it was in; its parameters get no gradients.
    """
    leaves: list[Tensor] = []

    def make_leaf(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> Tensor | None:
        # The embedding may be shared with the decoder: only the encoder's call, which looks up
        # this very src_ids tensor, becomes the leaf we differentiate by.
        if args[0] is not batch.src_ids or leaves:
            return None
        leaves.append(output.detach().requires_grad_(True))
        return leaves[0]

    was_training = model.training
    model.eval()
    handle = model.encoder.embedding.register_forward_hook(make_leaf)
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):  # as above
            logits = model(batch.src_ids, batch.src_lengths, batch.tgt_in)  # (B, T, V)
            token_loss = F.cross_entropy(
                logits.transpose(1, 2).float(), batch.tgt_out, ignore_index=PAD_ID, reduction="none"
            )  # (B, T)
            tokens = (batch.tgt_out != PAD_ID).sum(1).clamp(min=1)
            loss = (token_loss.sum(1) / tokens).sum()  # sentences do not interact: one backward
            assert leaves, "the encoder did not embed batch.src_ids"
            (grad,) = torch.autograd.grad(loss, leaves[0])  # (B, S, E)
    finally:
        handle.remove()
        model.train(was_training)
    norms = grad.norm(dim=-1)  # (B, S)
    return norms.masked_fill(batch.src_ids == PAD_ID, 0.0)


def distances(src_lengths: Tensor, width: int, measure_from: DistanceFrom) -> Tensor:
    """Distance of each position from the end: (B, S) long, -1 at padding.

    ``"end"``: steps to the sentence's last token. ``"final_state"``: steps to the nearer end, the
    number of recurrent steps between x_t and the nearest final state of a bidirectional encoder
    (whose backward direction ends at the first token).
    """
    positions = torch.arange(width, device=src_lengths.device).unsqueeze(0)  # (1, S)
    lengths = src_lengths.unsqueeze(1)  # (B, 1)
    to_end = lengths - 1 - positions  # (B, S)
    result = to_end if measure_from == "end" else torch.minimum(to_end, positions)
    return result.masked_fill(positions >= lengths, -1)


def mean_by_distance(values: Iterable[tuple[Tensor, Tensor]], min_count: int = 1) -> Tensor:
    """Average values by distance over pairs of (values (B, S), distances (B, S)): shape (D,).

    D is the largest distance seen plus one; a distance with fewer than ``min_count`` positions
    (a few long sentences make a noisy tail) is NaN.
    """
    sums: Tensor = torch.zeros(0, dtype=torch.float64)
    counts: Tensor = torch.zeros(0, dtype=torch.float64)
    for value, distance in values:
        real = distance >= 0
        d, v = distance[real].cpu(), value[real].double().cpu()
        size = max(int(d.max()) + 1 if d.numel() else 0, sums.numel())
        sums = F.pad(sums, (0, size - sums.numel())).index_add(0, d, v)
        counts = F.pad(counts, (0, size - counts.numel())).index_add(0, d, torch.ones_like(v))
    means = sums / counts
    return means.masked_fill(counts < min_count, float("nan")).float()


def gradient_by_distance(
    model: Seq2Seq,
    batches: Batch | Sequence[Batch],
    measure_from: DistanceFrom = "end",
    min_count: int = 1,
) -> Tensor:
    """Mean ||dloss/dx_t|| (see `source_gradient_norms`) by distance from the end: (D,).

    Averaged over the real (non-pad) positions of every sentence in ``batches``; D is the longest
    sentence's length with ``measure_from="end"``. See `distances` for ``"final_state"`` and
    `mean_by_distance` for ``min_count``.
    """
    batch_list = [batches] if isinstance(batches, Batch) else list(batches)
    pairs = (
        (
            source_gradient_norms(model, batch),
            distances(batch.src_lengths, batch.src_ids.size(1), measure_from),
        )
        for batch in batch_list
    )
    return mean_by_distance(pairs, min_count)


def text_windows(sequences: Sequence[Sequence[int]], length: int, count: int) -> Tensor:
    """Consecutive windows (N, length) of the concatenated id sequences, N <= count: real text of
    one length, without padding, for `recurrence_gradient`."""
    if length < 1 or count < 1:
        raise ValueError(f"length and count must be positive, got {length} and {count}")
    stream = torch.tensor([i for seq in sequences for i in seq], dtype=torch.long)
    n = min(count, stream.numel() // length)
    if n == 0:
        raise ValueError(f"{stream.numel()} tokens are too few for one window of {length}")
    return stream[: n * length].view(n, length)
