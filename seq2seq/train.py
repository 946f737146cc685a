"""The training loop: loss, clipping, validation, early stopping, checkpoints, resume, DDP.

The session it runs (data, model, optimiser, resumable state) is built by `session.setup`;
`train_step` also steps a bare `session.Learner`, as the benchmarks build one.

It knows nothing model-specific beyond `Seq2Seq.forward` / `decode_step`. Launched alone it
trains on one device; under `torchrun` each process takes every N-th batch, gradients are
averaged by DistributedDataParallel, and rank 0 alone validates and writes the run directory.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from seq2seq import checkpoint, snapshots
from seq2seq.config import DecodeConfig, RunConfig
from seq2seq.data import Batch, ParallelDataset
from seq2seq.distributed import all_reduce_sum, broadcast_float
from seq2seq.metrics import score_corpus
from seq2seq.model import Seq2Seq
from seq2seq.multilingual import validation_bleu
from seq2seq.objective import label_smoothed_loss, teacher_forced_loss
from seq2seq.plots import plot_learning_curves
from seq2seq.progress import ProgressReporter
from seq2seq.rundir import RunDir
from seq2seq.schedule import budget_progress, scheduled_lr, timed_budget
from seq2seq.search import decode_corpus
from seq2seq.session import (
    Learner,
    Progress,
    TrainingSession,
    build_grad_scaler,
    save_resumable,
    setup,
)
from seq2seq.tokenizer import Tokenizer


class Validatable(Protocol):
    """What `validate` reads: a `TrainingSession`, or a finished run (`averaging.RunValidation`)."""

    @property
    def cfg(self) -> RunConfig: ...
    @property
    def model(self) -> Seq2Seq: ...
    @property
    def tokenizer(self) -> Tokenizer: ...
    @property
    def valid_data(self) -> ParallelDataset: ...
    @property
    def valid_refs(self) -> list[str]: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def valid_directions(self) -> list[str]: ...  # per validation pair; [] if bilingual


@torch.no_grad()
def validate(session: Validatable) -> dict[str, float]:
    """Teacher-forced loss/perplexity and greedy (or beam) BLEU on the validation set; for a
    multilingual run, BLEU per direction (``valid_bleu_de-fr``) and their mean as
    ``valid_bleu``."""
    model, tc = session.model, session.cfg.train
    model.eval()
    loss = teacher_forced_loss(model, session.valid_data, tc.max_tokens, session.device)
    limit = tc.valid_max_pairs or len(session.valid_data)
    decode_cfg = DecodeConfig(beam_size=tc.valid_beam, nbest=1)
    hyps = decode_corpus(model, session.valid_data.src[:limit], decode_cfg, session.device)
    texts = [session.tokenizer.decode_tgt(h[0].token_ids) for h in hyps]
    refs = session.valid_refs[:limit]
    if session.valid_directions:
        bleu = validation_bleu(texts, refs, session.valid_directions[:limit])
    else:
        bleu = {"valid_bleu": score_corpus(texts, refs, n_bootstrap=0)["bleu"].score}
    model.train()
    return {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 50.0)), **bleu}


def train_step(learner: Learner, batch: Batch, scaler: Any) -> tuple[float, int, float]:
    """One optimiser step: (mean loss per token, target tokens, gradient norm before clipping).

    ``learner`` is the loop's `TrainingSession`, or a `session.build_learner` of a benchmark.
    Every forward pass goes through ``learner.wrapped`` (DDP, when distributed), and the loss is
    divided by the target tokens of all processes together, so that DDP's mean of the gradients
    equals one process's gradient on the union of their batches.
    """
    tc = learner.cfg.train
    learner.optimizer.zero_grad(set_to_none=True)
    dtype = learner.autocast_dtype
    with torch.autocast(learner.device.type, dtype=dtype, enabled=dtype is not None):
        logits = learner.wrapped(batch.src_ids, batch.src_lengths, batch.tgt_in)
        loss_sum, tokens = label_smoothed_loss(logits, batch.tgt_out, tc.label_smoothing)
    all_tokens = all_reduce_sum(tokens, learner.dist, learner.device)
    scaler.scale(loss_sum * (learner.dist.world_size / max(all_tokens, 1))).backward()
    scaler.unscale_(learner.optimizer)
    max_norm = tc.clip_norm if tc.clip_norm > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(learner.model.parameters(), max_norm))
    scaler.step(learner.optimizer)
    scaler.update()
    return loss_sum.item() / max(tokens, 1), tokens, grad_norm


def set_scheduled_lr(session: TrainingSession, steps_per_epoch: int) -> None:
    """This step's learning rate: warm-up, then ``train.lr_schedule`` (after warm-up the plateau
    rule leaves the rate to `after_validation`). A function of the saved progress (step and
    training seconds), so a resumed run continues on the same curve.

    Args:
        steps_per_epoch: the budget's epoch, when neither steps nor minutes bound the run.
    """
    tc, progress = session.cfg.train, session.progress
    fraction = budget_progress(
        progress.step,
        progress.train_seconds,
        tc.warmup_steps,
        tc.max_steps,
        tc.max_minutes,
        steps_per_epoch,
        tc.max_epochs,
    )
    if timed_budget(tc.max_steps, tc.max_minutes):
        # Each process reads its own clock: rank 0's share sets every process's rate, or their
        # weights would drift apart.
        fraction = broadcast_float(fraction, session.dist, session.device)
    lr = scheduled_lr(tc.lr_schedule, tc.lr, tc.min_lr, progress.step, tc.warmup_steps, fraction)
    if lr is not None:
        for group in session.optimizer.param_groups:
            group["lr"] = lr


def after_validation(session: TrainingSession, metrics: dict[str, float]) -> None:
    """Keep the best weights, adapt the learning rate, count towards early stopping."""
    progress, tc = session.progress, session.cfg.train
    bleu = broadcast_float(metrics.get("valid_bleu", 0.0), session.dist, session.device)
    if bleu > progress.best_bleu:
        progress.best_bleu, progress.best_step, progress.bad_validations = bleu, progress.step, 0
        if session.dist.is_main:
            checkpoint.save_weights(session.model, RunDir(session.run_dir).weights)
    else:
        progress.bad_validations += 1
    if tc.lr_schedule == "plateau" and progress.step > tc.warmup_steps:
        session.scheduler.step(bleu)
    if tc.patience and progress.bad_validations >= tc.patience:
        progress.stopped = f"early stop: no BLEU gain in {tc.patience} validations"


def should_stop(session: TrainingSession, started: float) -> bool:
    progress, tc = session.progress, session.cfg.train
    if tc.max_steps and progress.step >= tc.max_steps:
        progress.stopped = progress.stopped or f"reached max_steps={tc.max_steps}"
    if tc.max_minutes:
        elapsed = progress.train_seconds + time.perf_counter() - started
        # Each process reads its own clock: rank 0's decides for all, or a process that stops
        # first would leave the others waiting forever in their next all-reduce.
        elapsed = broadcast_float(elapsed, session.dist, session.device)
        if elapsed >= tc.max_minutes * 60:
            progress.stopped = progress.stopped or f"reached max_minutes={tc.max_minutes}"
    return bool(progress.stopped)


def run_validation(session: TrainingSession, reporter: ProgressReporter) -> None:
    metrics = validate(session) if session.dist.is_main else {}
    after_validation(session, metrics)
    if session.dist.is_main:
        if session.cfg.train.average_last:
            snapshots.save_snapshot(
                session.model,
                RunDir(session.run_dir),
                session.progress.step,
                keep=session.cfg.train.average_last,
            )
        record = {
            "step": session.progress.step,
            "epoch": session.progress.epoch,
            **metrics,
            "lr": session.optimizer.param_groups[0]["lr"],
            "seconds": round(session.progress.train_seconds, 1),
        }
        checkpoint.append_log(session.run_dir, record)
        plot_learning_curves(
            checkpoint.read_log(session.run_dir), RunDir(session.run_dir).learning_curve
        )
        reporter.message(
            f"validation at step {record['step']}: loss {metrics['valid_loss']:.3f} "
            f"ppl {metrics['valid_ppl']:.2f} BLEU {metrics['valid_bleu']:.2f} "
            f"(best {session.progress.best_bleu:.2f} at step {session.progress.best_step})"
        )


def train_loop(session: TrainingSession) -> Progress:
    tc, progress = session.cfg.train, session.progress
    scaler = build_grad_scaler(session)
    reporter = ProgressReporter(
        tc.progress, session.dist.is_main, tc.max_steps or None, progress.step
    )
    session.model.train()
    started = time.perf_counter()
    window_tokens, window_seconds = 0, 0.0  # training steps only: validation is not counted
    while progress.epoch < tc.max_epochs and not should_stop(session, started):
        data, sampler = session.epoch_data(progress.epoch)  # its time counts in train_seconds
        # An epoch of the schedule's budget: this epoch's batches (with subword sampling, their
        # number varies a little from epoch to epoch).
        steps_per_epoch = len(sampler)
        for indices in sampler.iter_epoch(progress.epoch, progress.batch_in_epoch):
            step_start = time.perf_counter()
            batch = data.collate(indices).to(session.device)
            progress.step += 1
            set_scheduled_lr(session, steps_per_epoch)
            loss, tokens, grad_norm = train_step(session, batch, scaler)
            progress.batch_in_epoch += 1
            window_tokens += tokens
            now = time.perf_counter()
            window_seconds += now - step_start
            progress.train_seconds += now - started
            started = now
            log_line = progress.step % tc.log_every == 0
            record = {
                "step": progress.step,
                "epoch": progress.epoch,
                "loss": loss,
                "ppl": math.exp(min(loss, 50.0)),
                "lr": session.optimizer.param_groups[0]["lr"],
                "grad_norm": grad_norm,
                "tokens": tokens,
                "tokens_per_s": window_tokens * session.dist.world_size / max(window_seconds, 1e-9),
            }
            reporter.update(record, log_line)
            if log_line and session.dist.is_main:
                checkpoint.append_log(session.run_dir, record)
                window_tokens, window_seconds = 0, 0.0
            if tc.valid_every and progress.step % tc.valid_every == 0:
                run_validation(session, reporter)
            if progress.step % tc.checkpoint_every == 0:
                save_resumable(session)
            if should_stop(session, started):
                break
        else:
            progress.epoch += 1
            progress.batch_in_epoch = 0
            if not tc.valid_every:
                run_validation(session, reporter)
            save_resumable(session)
    if progress.step and not _validated_last(session):
        run_validation(session, reporter)
    progress.stopped = progress.stopped or f"reached max_epochs={tc.max_epochs}"
    save_resumable(session)
    average_last_snapshots(session, reporter)
    reporter.message(
        f"{progress.stopped}; best validation BLEU {progress.best_bleu:.2f} "
        f"at step {progress.best_step}; run directory {session.run_dir}"
    )
    reporter.close()
    return progress


def average_last_snapshots(session: TrainingSession, reporter: ProgressReporter) -> None:
    """Average the last ``train.average_last`` snapshots and keep the mean as the run's weights
    if it validates better than the best checkpoint (`snapshots.try_average`); log both scores.
    Rank 0 does it; the other processes wait for it."""
    keep = session.cfg.train.average_last
    if session.dist.is_main and keep:
        run = RunDir(session.run_dir)
        paths = snapshots.last_snapshots(run, keep)
        if len(paths) >= 2:
            outcome = snapshots.try_average(
                session.model,
                paths,
                session.progress.best_bleu,
                lambda: validate(session)["valid_bleu"],
                run,
            )
            checkpoint.append_log(session.run_dir, outcome.log_record(session.progress.step))
            reporter.message(outcome.summary())
    if session.dist.enabled:
        dist.barrier()


def _validated_last(session: TrainingSession) -> bool:
    records = checkpoint.read_log(session.run_dir) if session.dist.is_main else []
    last = [r for r in records if "valid_bleu" in r]
    validated = bool(last) and last[-1]["step"] == session.progress.step
    return bool(broadcast_float(float(validated), session.dist, session.device))


def train(cfg: RunConfig, resume: bool = False) -> Path:
    """Train (or resume) the run ``cfg.train.out_dir/cfg.train.name``; return its directory.

    The run directory is locked while training writes it: a second trainer fails at once.
    """
    with ExitStack() as resources:
        session = setup(cfg, resume, resources)
        try:
            train_loop(session)
        finally:
            if session.dist.enabled and dist.is_initialized():
                dist.destroy_process_group()
    return session.run_dir
