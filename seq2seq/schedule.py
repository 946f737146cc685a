"""Learning-rate schedules: a linear warm-up, then either the plateau rule (halve when validation
BLEU stalls; `torch.optim.lr_scheduler.ReduceLROnPlateau` does it) or a curve fixed in advance
that reaches ``min_lr`` exactly when the run's budget ends.

The budget is ``max_steps`` when it is set; otherwise, with ``max_minutes``, the share of the
training time spent, so that a 30-minute run anneals within its 30 minutes; otherwise
``max_epochs`` worth of steps. Both the step and the training seconds are saved in every
checkpoint, so a resumed run continues on the same curve.
"""

from __future__ import annotations

import math

from seq2seq.config import LR_SCHEDULES


def budget_progress(
    step: int,
    train_seconds: float,
    warmup_steps: int,
    max_steps: int,
    max_minutes: float,
    steps_per_epoch: int,
    max_epochs: int,
) -> float:
    """How far past warm-up the run is through its budget, in [0, 1].

    With a step budget, (step - warmup) / (max_steps - warmup); with a time budget only, the
    share of ``max_minutes`` trained so far; with neither, the step budget of ``max_epochs``.
    """
    if not timed_budget(max_steps, max_minutes):
        total = max_steps or max(1, steps_per_epoch * max_epochs)
        decay_steps = max(1, total - warmup_steps)
        return min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    return min(1.0, max(0.0, train_seconds / (max_minutes * 60)))


def timed_budget(max_steps: int, max_minutes: float) -> bool:
    """Whether the budget is the clock (``max_minutes`` without ``max_steps``), not the steps."""
    return bool(max_minutes) and not max_steps


def scheduled_lr(
    schedule: str, lr: float, min_lr: float, step: int, warmup_steps: int, progress: float
) -> float | None:
    """The learning rate for ``step`` (1-based); None where the plateau rule decides instead.

    Args:
        progress: `budget_progress` at this step (used by linear and cosine).
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
    if warmup_steps and step <= warmup_steps:
        return lr * step / warmup_steps
    if schedule == "plateau":
        return None
    if schedule == "inverse_sqrt":  # Vaswani et al. 2017, §5.3, peaking at lr after warm-up
        return max(min_lr, lr * math.sqrt(max(1, warmup_steps) / step))
    if schedule == "linear":
        return min_lr + (lr - min_lr) * (1.0 - progress)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine
