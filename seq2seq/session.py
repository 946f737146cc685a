"""A training session: the run directory, data, tokenizer, model and optimiser, built fresh or
restored from the run's last checkpoint, and saved back resumably.

A run's parts are built from its config by small builders (`build_model`, `build_optimizer`,
`build_scheduler`, `wrap_for_training`; its data by `training_data`) that `setup` composes into a
`TrainingSession` for `train.train_loop`, and `build_learner` into the bare `Learner` that
`train.train_step` needs (the benchmarks train that way). `save_resumable` / `restore` write
and read everything a killed run needs to go on as if it had not stopped (weights, optimiser,
scheduler, progress, random states).
"""

from __future__ import annotations

import dataclasses
import json
import random
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seq2seq import checkpoint, snapshots
from seq2seq.config import SUBWORD_SAMPLING_FIELDS, RunConfig, TrainConfig
from seq2seq.data import Dataset, ParallelDataset, TokenBatchSampler
from seq2seq.distributed import Distributed, broadcast_float, gather_objects, init_distributed
from seq2seq.model import Seq2Seq
from seq2seq.objective import TrainingForward
from seq2seq.prepare import PreparedCorpus
from seq2seq.rundir import RunDir, RunInfo
from seq2seq.tokenizer import Tokenizer
from seq2seq.training_data import (
    build_sampler,
    load_run_data,
    sampled_dataset,
    sampling_seed,
    with_prepared_settings,
)


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
class Learner:
    """What an optimiser step (`train.train_step`) works with; built by `build_learner`."""

    cfg: RunConfig
    model: Seq2Seq
    wrapped: nn.Module  # every training forward pass: TrainingForward, or DDP around it
    optimizer: torch.optim.Optimizer
    device: torch.device
    dist: Distributed

    @property
    def mixed_precision(self) -> bool:
        """fp16 autocast with loss scaling: on a GPU, when ``train.amp`` asks for it."""
        return self.cfg.train.amp and self.device.type == "cuda"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype training's forward pass autocasts to: float16 with `mixed_precision`,
        bfloat16 on a CPU with ``train.cpu_bf16`` (no loss scaling needed), else None."""
        if self.mixed_precision:
            return torch.float16
        if self.cfg.train.cpu_bf16 and self.device.type == "cpu":
            return torch.bfloat16
        return None


@dataclass
class TrainingSession(Learner):
    """What the loop works with; built by `setup`."""

    run_dir: Path
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    tokenizer: Tokenizer
    train_data: Dataset  # plainly segmented; see `epoch_data` for what an epoch trains on
    sampler: TokenBatchSampler
    # Its text store is what subword sampling segments anew each epoch.
    prepared: PreparedCorpus
    valid_data: ParallelDataset
    valid_refs: list[str]
    progress: Progress = field(default_factory=Progress)
    valid_directions: list[str] = field(default_factory=list)  # per pair; multilingual runs

    def epoch_data(self, epoch: int) -> tuple[Dataset, TokenBatchSampler]:
        """What ``epoch`` trains on: the data as encoded at setup or, with subword sampling,
        the pairs segmented anew for this epoch and batched by their new lengths. An epoch's
        segmentation is the same whenever it is computed: a run resumed mid-epoch finds the
        batches it left."""
        if not self.cfg.subword.sampling_alpha:
            return self.train_data, self.sampler
        seed = sampling_seed(self.cfg.train.seed, epoch)
        pairs = self.prepared.text_pairs("train")
        data = sampled_dataset(self.tokenizer, pairs, self.cfg.subword, seed)
        return data, build_sampler(data, self.cfg.train, self.dist)


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


def build_model(cfg: RunConfig, device: torch.device) -> Seq2Seq:
    """The run's initial weights, seeded with ``train.seed`` just before they are drawn: the
    same whatever ran before, for a run, each of its processes and its resume."""
    seed_everything(cfg.train.seed)
    return Seq2Seq(cfg.model).to(device)


def wrap_for_training(
    model: Seq2Seq, tc: TrainConfig, ranks: Distributed, device: torch.device
) -> nn.Module:
    """The module every training forward pass goes through: the feeding policy
    (`TrainingForward`), inside DistributedDataParallel when there are several processes, so
    that DDP sees each pass and averages its gradients."""
    wrapped: nn.Module = TrainingForward(model, tc.teacher_forcing)
    if ranks.enabled:
        wrapped = nn.parallel.DistributedDataParallel(
            wrapped, device_ids=[device.index] if device.type == "cuda" else None
        )
    return wrapped


def build_optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, tc: TrainConfig
) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """Cuts the learning rate when validation BLEU (hence ``mode="max"``) stalls."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=tc.lr_factor, patience=tc.lr_patience, min_lr=tc.min_lr
    )


def build_learner(
    cfg: RunConfig, device: torch.device, ranks: Distributed | None = None
) -> Learner:
    """A fresh model of ``cfg`` (its vocabulary sizes filled in) with its training forward and
    optimiser, as `setup` builds them, for `train.train_step`."""
    ranks = ranks or Distributed()
    model = build_model(cfg, device)
    wrapped = wrap_for_training(model, cfg.train, ranks, device)
    return Learner(cfg, model, wrapped, build_optimizer(model, cfg.train), device, ranks)


def build_grad_scaler(learner: Learner) -> torch.amp.GradScaler:
    """Loss scaling for `train.train_step`: active only with `Learner.mixed_precision`."""
    return torch.amp.GradScaler(learner.device.type, enabled=learner.mixed_precision)


# Filled in from the tokenizer when a run starts, so never a change a user asked for.
DERIVED_MODEL_FIELDS = ("src_vocab_size", "tgt_vocab_size", "share_embeddings")


def resumed_config(saved: RunConfig, requested: RunConfig) -> RunConfig:
    """What a resumed run trains with: the run's own model and vocabulary, with the requested
    data paths, cleaning, training policy (subword sampling included) and decoding. A requested
    change to the model, the vocabulary or the language pair is refused, since the saved weights
    depend on them."""
    exempt = DERIVED_MODEL_FIELDS + SUBWORD_SAMPLING_FIELDS
    changed = [
        f"--{section}.{name}"
        for section in ("model", "subword")
        for name, value in dataclasses.asdict(getattr(requested, section)).items()
        if name not in exempt and value != getattr(getattr(saved, section), name)
    ]
    changed += [
        f"--data.{name}"
        for name in ("corpus", "src_lang", "tgt_lang", "directions")
        if getattr(requested.data, name) != getattr(saved.data, name)
    ]
    if changed:
        raise ValueError(
            f"{', '.join(changed)} differ from the run being resumed ({requested.train.name}): "
            "a resumed run keeps its model, vocabulary and language pair; start a new run "
            "(another --train.name) to change them"
        )
    sampling = {name: getattr(requested.subword, name) for name in SUBWORD_SAMPLING_FIELDS}
    return dataclasses.replace(
        saved, data=requested.data, clean=requested.clean, train=requested.train,
        decode=requested.decode, subword=dataclasses.replace(saved.subword, **sampling),
    )  # fmt: skip


def lock_for_training(
    run_dir: Path, ranks: Distributed, device: torch.device, resources: ExitStack
) -> None:
    """Rank 0 locks the run directory for as long as ``resources`` is open; every rank fails
    at once when another process holds it (rather than waiting at the next barrier)."""
    error = ""
    if ranks.is_main:
        try:
            resources.enter_context(checkpoint.lock_run_dir(run_dir))
        except checkpoint.RunLocked as err:
            error = str(err)
    if broadcast_float(float(bool(error)), ranks, device):
        raise checkpoint.RunLocked(error or f"{run_dir} is in use by another trainer")


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX tiles)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def setup(
    cfg: RunConfig, resume: bool = False, resources: ExitStack | None = None
) -> TrainingSession:
    """Build a session, fresh or restored; ``resources`` holds the run directory's lock."""
    tc = cfg.train
    ranks = init_distributed(tc.device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = pick_device(tc, ranks)
    if tc.cpu_bf16 and device.type == "cpu" and not native_cpu_bf16():
        warnings.warn(
            "train.cpu_bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so bfloat16 "
            "steps are emulated and slower than float32",
            stacklevel=2,
        )
    run_dir = Path(tc.out_dir) / tc.name
    if resources is not None:
        lock_for_training(run_dir, ranks, device, resources)
    cfg = with_prepared_settings(cfg)
    if resume:
        saved_cfg, _ = checkpoint.load_config(run_dir)
        cfg = resumed_config(saved_cfg, cfg)
    elif RunDir(run_dir).state.exists():
        raise ValueError(
            f"{run_dir} already holds a run: pass --resume to continue it, or choose another "
            "--train.name"
        )
    seed_everything(tc.seed)
    data = load_run_data(cfg, run_dir, ranks, resume)
    tokenizer = data.tokenizer
    cfg = dataclasses.replace(
        cfg,
        model=dataclasses.replace(
            cfg.model,
            src_vocab_size=tokenizer.src_vocab_size,
            tgt_vocab_size=tokenizer.tgt_vocab_size,
            share_embeddings=cfg.model.share_embeddings and tokenizer.joint,
        ),
    )
    learner = build_learner(cfg, device, ranks)
    session = TrainingSession(
        cfg=cfg,
        model=learner.model,
        wrapped=learner.wrapped,
        optimizer=learner.optimizer,
        device=device,
        dist=ranks,
        run_dir=run_dir,
        scheduler=build_scheduler(learner.optimizer, tc),
        tokenizer=tokenizer,
        train_data=data.train,
        sampler=build_sampler(data.train, tc, ranks),
        prepared=data.prepared,
        valid_data=data.valid,
        valid_refs=data.valid_refs,
        valid_directions=data.valid_directions,
    )
    if resume:
        restore(session)
    elif ranks.is_main:
        checkpoint.save_config(run_dir, cfg, run_info(session))
    return session


def run_info(session: TrainingSession) -> dict[str, Any]:
    return RunInfo(
        parameters=session.model.num_parameters(),
        train_pairs=len(session.train_data),
        valid_pairs=len(session.valid_data),
        step=session.progress.step,
        best_step=session.progress.best_step,
        best_valid_bleu=session.progress.best_bleu,
        train_seconds=round(session.progress.train_seconds, 1),
        stopped=session.progress.stopped,
        world_size=session.dist.world_size,
        device=str(session.device),
        torch=torch.__version__,
    ).to_dict()


def random_states(device: torch.device) -> dict[str, Any]:
    """This process's random generators: what dropout and scheduled sampling draw next."""
    states: dict[str, Any] = {"torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def set_random_states(states: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["torch_rng"])
    random.setstate(_as_tuple(states["python_rng"]))
    if "cuda_rng" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda_rng"], device)


def save_resumable(session: TrainingSession) -> None:
    """Write the resumable state (rank 0). Every process must call it: each one's random state
    is saved, since under DDP the processes draw different numbers (their batches differ in
    shape)."""
    per_rank = gather_objects(random_states(session.device), session.dist)
    if not session.dist.is_main:
        return
    state = {
        "format": checkpoint.FORMAT,
        "model": session.model.state_dict(),
        "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "progress": dataclasses.asdict(session.progress),
        **per_rank[0],
        "rank_rng": per_rank,
    }
    checkpoint.save_state(RunDir(session.run_dir).state, state)
    checkpoint.save_config(session.run_dir, session.cfg, run_info(session))


def restore(session: TrainingSession) -> None:
    state = checkpoint.load_state(RunDir(session.run_dir).state)
    session.model.load_state_dict(state["model"])
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    session.progress = Progress(**state["progress"])
    session.progress.stopped = ""  # a finished run may be continued with larger limits
    per_rank = state.get("rank_rng", [])
    same_world = len(per_rank) == session.dist.world_size
    set_random_states(per_rank[session.dist.rank] if same_world else state, session.device)
    if session.dist.is_main:  # drop the snapshots and log lines the killed run wrote after it
        snapshots.drop_snapshots_after(RunDir(session.run_dir), session.progress.step)
        records = checkpoint.read_log(session.run_dir)
        kept = [r for r in records if r.get("step", 0) <= session.progress.step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        checkpoint.write_text_atomically(RunDir(session.run_dir).log, text)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value
