"""Distributed training with torchrun: which process this is, and what the processes share.

Launched without torchrun everything here is a no-op for a single process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_kind: str) -> Distributed:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device_kind == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=10),  # a rank that died must not hang the others
        )
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def broadcast_float(value: float, ranks: Distributed, device: torch.device) -> float:
    if not ranks.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def all_reduce_sum(value: int, ranks: Distributed, device: torch.device) -> int:
    """The sum of an integer over all processes."""
    if not ranks.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor)
    return int(tensor.item())


def gather_objects(value: Any, ranks: Distributed) -> list[Any]:
    """``value`` from every process, in rank order (``[value]`` for a single process)."""
    if not ranks.enabled:
        return [value]
    values: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(values, value)
    return values
