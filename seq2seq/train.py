"""The training loop: loss, clipping, validation, early stopping, checkpoints, resume, DDP.

It knows nothing model-specific beyond `Seq2Seq.forward` / `decode_step`. Launched alone it
trains on one device; under `torchrun` each process takes every N-th batch, gradients are
averaged by DistributedDataParallel, and rank 0 alone validates and writes the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq import checkpoint
from seq2seq.config import DecodeConfig, RunConfig, TrainConfig
from seq2seq.corpus import load_splits
from seq2seq.data import Batch, ParallelDataset, TokenBatchSampler
from seq2seq.distributed import Distributed, broadcast_float, init_distributed
from seq2seq.metrics import score_corpus
from seq2seq.model import Seq2Seq
from seq2seq.plots import plot_learning_curves
from seq2seq.progress import ProgressReporter
from seq2seq.search import decode_corpus
from seq2seq.tokenizer import PAD_ID, Tokenizer


@dataclass
class Progress:
    """Where training stands; saved in every resumable checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already trained on
    best_bleu: float = -1.0
    best_step: int = 0
    bad_validations: int = 0
    train_seconds: float = 0.0
    stopped: str = ""  # why training ended, once it has


@dataclass
class TrainingSession:
    """What the loop works with; built by `setup`."""

    cfg: RunConfig
    run_dir: Path
    model: Seq2Seq
    wrapped: nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    tokenizer: Tokenizer
    train_data: ParallelDataset
    sampler: TokenBatchSampler
    valid_data: ParallelDataset
    valid_refs: list[str]
    device: torch.device
    dist: Distributed
    progress: Progress = field(default_factory=Progress)


def pick_device(cfg: TrainConfig, ranks: Distributed) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("train.device='cuda' but no CUDA device is available")
        torch.cuda.set_device(ranks.local_rank)
        return torch.device("cuda", ranks.local_rank)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


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


def scheduled_sampling_logits(model: Seq2Seq, batch: Batch, teacher_forcing: float) -> Tensor:
    """Log-probabilities (B, T, V) where each input is the gold token with probability
    ``teacher_forcing`` and otherwise the model's own previous prediction (Bengio et al. 2015).
    """
    enc = model.encode(batch.src_ids, batch.src_lengths)
    state = model.initial_state(enc)
    prev = batch.tgt_in[:, 0]
    steps = []
    for t in range(batch.tgt_in.size(1)):
        log_probs, state, _ = model.decode_step(prev, state, enc)
        steps.append(log_probs)
        if t + 1 < batch.tgt_in.size(1):
            gold = batch.tgt_in[:, t + 1]
            use_gold = torch.rand(gold.shape, device=gold.device) < teacher_forcing
            prev = torch.where(use_gold, gold, log_probs.argmax(-1))
    return torch.stack(steps, dim=1)  # log_softmax is idempotent: fine as logits for the loss


def build_tokenizer_and_data(
    cfg: RunConfig, run_dir: Path, ranks: Distributed, resume: bool
) -> tuple[Tokenizer, ParallelDataset, ParallelDataset, list[str]]:
    """Read and clean the corpus; train SentencePiece (rank 0) or reuse the run's model."""
    train_pairs, valid_pairs, stats = load_splits(cfg.data, cfg.clean)
    if ranks.is_main:
        print(f"training pairs: {stats.summary()}", file=sys.stderr)
    if ranks.is_main and not resume:
        tokenizer = Tokenizer.train(
            [s for s, _ in train_pairs], [t for _, t in train_pairs], cfg.subword
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save(run_dir)
        (run_dir / "clean_stats.json").write_text(
            json.dumps(stats.to_dict(), indent=2), encoding="utf-8"
        )
    if ranks.enabled:
        dist.barrier()
    tokenizer = Tokenizer.load(run_dir)
    train = ParallelDataset(
        tokenizer.encode_src([s for s, _ in train_pairs]),
        tokenizer.encode_tgt([t for _, t in train_pairs]),
    )
    valid = ParallelDataset(
        tokenizer.encode_src([s for s, _ in valid_pairs]),
        tokenizer.encode_tgt([t for _, t in valid_pairs]),
    )
    return tokenizer, train, valid, [t for _, t in valid_pairs]


def setup(cfg: RunConfig, resume: bool = False) -> TrainingSession:
    tc = cfg.train
    ranks = init_distributed(tc.device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = pick_device(tc, ranks)
    run_dir = Path(tc.out_dir) / tc.name
    if resume:
        saved_cfg, _ = checkpoint.load_config(run_dir)
        cfg = dataclasses.replace(saved_cfg, train=cfg.train)  # the model and data are the run's
    elif (run_dir / checkpoint.STATE_FILE).exists():
        raise ValueError(
            f"{run_dir} already holds a run: pass --resume to continue it, or choose another --name"
        )
    seed_everything(tc.seed)
    tokenizer, train, valid, valid_refs = build_tokenizer_and_data(cfg, run_dir, ranks, resume)
    cfg = dataclasses.replace(
        cfg,
        model=dataclasses.replace(
            cfg.model,
            src_vocab_size=tokenizer.src_vocab_size,
            tgt_vocab_size=tokenizer.tgt_vocab_size,
            share_embeddings=cfg.model.share_embeddings and tokenizer.joint,
        ),
    )
    seed_everything(tc.seed)  # same initial weights whatever the data loading consumed
    model = Seq2Seq(cfg.model).to(device)
    wrapped: nn.Module = model
    if ranks.enabled:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=tc.lr_factor, patience=tc.lr_patience, min_lr=tc.min_lr
    )
    sampler = TokenBatchSampler(
        train.src_lengths,
        train.tgt_lengths,
        tc.max_tokens,
        seed=tc.seed,
        num_replicas=ranks.world_size,
        rank=ranks.rank,
    )
    session = TrainingSession(
        cfg,
        run_dir,
        model,
        wrapped,
        optimizer,
        scheduler,
        tokenizer,
        train,
        sampler,
        valid,
        valid_refs,
        device,
        ranks,
    )
    if resume:
        restore(session)
    elif ranks.is_main:
        checkpoint.save_config(run_dir, cfg, run_info(session))
    return session


def run_info(session: TrainingSession) -> dict[str, Any]:
    return {
        "parameters": session.model.num_parameters(),
        "train_pairs": len(session.train_data),
        "valid_pairs": len(session.valid_data),
        "step": session.progress.step,
        "best_step": session.progress.best_step,
        "best_valid_bleu": session.progress.best_bleu,
        "train_seconds": round(session.progress.train_seconds, 1),
        "stopped": session.progress.stopped,
        "world_size": session.dist.world_size,
        "device": str(session.device),
        "torch": torch.__version__,
    }


def save_resumable(session: TrainingSession) -> None:
    if not session.dist.is_main:
        return
    state = {
        "format": checkpoint.FORMAT,
        "model": session.model.state_dict(),
        "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "progress": dataclasses.asdict(session.progress),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }
    if session.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(session.device)
    checkpoint.save_state(session.run_dir / checkpoint.STATE_FILE, state)
    checkpoint.save_config(session.run_dir, session.cfg, run_info(session))


def restore(session: TrainingSession) -> None:
    state = checkpoint.load_state(session.run_dir / checkpoint.STATE_FILE)
    session.model.load_state_dict(state["model"])
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    session.progress = Progress(**state["progress"])
    session.progress.stopped = ""  # a finished run may be continued with larger limits
    torch.set_rng_state(state["torch_rng"])
    random.setstate(_as_tuple(state["python_rng"]))
    if "cuda_rng" in state and session.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], session.device)
    if session.dist.is_main:  # drop log lines written after the checkpoint by the killed run
        records = checkpoint.read_log(session.run_dir)
        kept = [r for r in records if r.get("step", 0) <= session.progress.step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        checkpoint.write_text_atomically(session.run_dir / checkpoint.LOG_FILE, text)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


@torch.no_grad()
def validate(session: TrainingSession) -> dict[str, float]:
    """Teacher-forced loss/perplexity and greedy (or beam) BLEU on the validation set."""
    model, tc = session.model, session.cfg.train
    model.eval()
    total_loss, total_tokens = 0.0, 0
    valid_sampler = TokenBatchSampler(
        session.valid_data.src_lengths,
        session.valid_data.tgt_lengths,
        tc.max_tokens,
        shuffle=False,
    )
    for indices in valid_sampler.batches(0):
        batch = session.valid_data.collate(indices).to(session.device)
        logits = model(batch.src_ids, batch.src_lengths, batch.tgt_in)
        batch_loss, tokens = label_smoothed_loss(logits, batch.tgt_out, 0.0)
        total_loss += batch_loss.item()
        total_tokens += tokens
    limit = tc.valid_max_pairs or len(session.valid_data)
    decode_cfg = DecodeConfig(beam_size=tc.valid_beam, nbest=1)
    hyps = decode_corpus(model, session.valid_data.src[:limit], decode_cfg, session.device)
    texts = [session.tokenizer.decode_tgt(h[0].token_ids) for h in hyps]
    bleu = score_corpus(texts, session.valid_refs[:limit], n_bootstrap=0)["bleu"].score
    model.train()
    loss = total_loss / max(total_tokens, 1)
    return {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 50.0)), "valid_bleu": bleu}


def train_step(session: TrainingSession, batch: Batch, scaler: Any) -> tuple[float, int, float]:
    """One optimiser step: (mean loss per token, target tokens, gradient norm before clipping)."""
    tc, model = session.cfg.train, session.wrapped
    session.optimizer.zero_grad(set_to_none=True)
    use_amp = tc.amp and session.device.type == "cuda"
    with torch.autocast(device_type=session.device.type, dtype=torch.float16, enabled=use_amp):
        if tc.teacher_forcing < 1.0:
            logits = scheduled_sampling_logits(session.model, batch, tc.teacher_forcing)
        else:
            logits = model(batch.src_ids, batch.src_lengths, batch.tgt_in)
        loss_sum, tokens = label_smoothed_loss(logits, batch.tgt_out, tc.label_smoothing)
    loss = loss_sum / max(tokens, 1)
    scaler.scale(loss).backward()
    scaler.unscale_(session.optimizer)
    max_norm = tc.clip_norm if tc.clip_norm > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(session.model.parameters(), max_norm))
    scaler.step(session.optimizer)
    scaler.update()
    return loss.item(), tokens, grad_norm


def set_warmup_lr(session: TrainingSession) -> None:
    warmup = session.cfg.train.warmup_steps
    if warmup and session.progress.step <= warmup:
        for group in session.optimizer.param_groups:
            group["lr"] = session.cfg.train.lr * session.progress.step / warmup


def after_validation(session: TrainingSession, metrics: dict[str, float]) -> None:
    """Keep the best weights, adapt the learning rate, count towards early stopping."""
    progress, tc = session.progress, session.cfg.train
    bleu = broadcast_float(metrics.get("valid_bleu", 0.0), session.dist, session.device)
    if bleu > progress.best_bleu:
        progress.best_bleu, progress.best_step, progress.bad_validations = bleu, progress.step, 0
        if session.dist.is_main:
            checkpoint.save_weights(session.model, session.run_dir / checkpoint.WEIGHTS_FILE)
    else:
        progress.bad_validations += 1
    if progress.step > tc.warmup_steps:
        session.scheduler.step(bleu)
    if tc.patience and progress.bad_validations >= tc.patience:
        progress.stopped = f"early stop: no BLEU gain in {tc.patience} validations"


def should_stop(session: TrainingSession, started: float) -> bool:
    progress, tc = session.progress, session.cfg.train
    if tc.max_steps and progress.step >= tc.max_steps:
        progress.stopped = progress.stopped or f"reached max_steps={tc.max_steps}"
    elapsed = progress.train_seconds + time.perf_counter() - started
    if tc.max_minutes and elapsed >= tc.max_minutes * 60:
        progress.stopped = progress.stopped or f"reached max_minutes={tc.max_minutes}"
    return bool(progress.stopped)


def run_validation(session: TrainingSession, reporter: ProgressReporter) -> None:
    metrics = validate(session) if session.dist.is_main else {}
    after_validation(session, metrics)
    if session.dist.is_main:
        record = {
            "step": session.progress.step,
            "epoch": session.progress.epoch,
            **metrics,
            "lr": session.optimizer.param_groups[0]["lr"],
            "seconds": round(session.progress.train_seconds, 1),
        }
        checkpoint.append_log(session.run_dir, record)
        plot_learning_curves(
            checkpoint.read_log(session.run_dir), session.run_dir / "learning_curve.png"
        )
        reporter.message(
            f"validation at step {record['step']}: loss {metrics['valid_loss']:.3f} "
            f"ppl {metrics['valid_ppl']:.2f} BLEU {metrics['valid_bleu']:.2f} "
            f"(best {session.progress.best_bleu:.2f} at step {session.progress.best_step})"
        )


def train_loop(session: TrainingSession) -> Progress:
    tc, progress = session.cfg.train, session.progress
    scaler = torch.amp.GradScaler(
        session.device.type, enabled=tc.amp and session.device.type == "cuda"
    )
    reporter = ProgressReporter(
        tc.progress, session.dist.is_main, tc.max_steps or None, progress.step
    )
    session.model.train()
    started = time.perf_counter()
    window_tokens, window_seconds = 0, 0.0  # training steps only: validation is not counted
    while progress.epoch < tc.max_epochs and not should_stop(session, started):
        for indices in session.sampler.iter_epoch(progress.epoch, progress.batch_in_epoch):
            step_start = time.perf_counter()
            batch = session.train_data.collate(indices).to(session.device)
            progress.step += 1
            set_warmup_lr(session)
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
    reporter.message(
        f"{progress.stopped}; best validation BLEU {progress.best_bleu:.2f} "
        f"at step {progress.best_step}; run directory {session.run_dir}"
    )
    reporter.close()
    return progress


def _validated_last(session: TrainingSession) -> bool:
    records = checkpoint.read_log(session.run_dir) if session.dist.is_main else []
    last = [r for r in records if "valid_bleu" in r]
    validated = bool(last) and last[-1]["step"] == session.progress.step
    return bool(broadcast_float(float(validated), session.dist, session.device))


def train(cfg: RunConfig, resume: bool = False) -> Path:
    """Train (or resume) the run ``cfg.train.out_dir/cfg.train.name``; return its directory."""
    session = setup(cfg, resume)
    try:
        train_loop(session)
    finally:
        if session.dist.enabled and dist.is_initialized():
            dist.destroy_process_group()
    return session.run_dir
