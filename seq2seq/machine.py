"""The machine a measurement ran on, in one line: what benchmark results and the study's report
print beside their numbers, since speeds mean little without it."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine(threads: int) -> str:
    """One line: CPU, cores, load, torch, threads, GPU, date (UTC)."""
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{cpu_model()}, {os.cpu_count()} cores (load {load:.1f} at start), "
        f"torch {torch.__version__}, {threads} thread(s){gpu}, {now}"
    )
