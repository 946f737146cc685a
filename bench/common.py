"""What the benchmark scripts share: arguments, timing, statistics, tables, test data, and a
model to train built by `seq2seq.session`'s own builders (without writing anything).

The scripts are run as ``python bench/NAME.py`` (bench/ is not a package), so they import this
module as ``common``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from seq2seq import checkpoint
from seq2seq.config import RunConfig
from seq2seq.corpus import Pair, load_splits, read_parallel_files
from seq2seq.data import ParallelDataset, TokenBatchSampler
from seq2seq.download import multi30k_file_name
from seq2seq.machine import describe_machine
from seq2seq.session import Learner, build_learner
from seq2seq.tokenizer import Tokenizer
from seq2seq.training_data import build_data

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
DEFAULT_RUN = REPO / "checkpoints" / "multi30k-de-en"
DEFAULT_MIRROR = os.environ.get("MULTI30K_DIR", str(REPO.parent / "shared" / "data" / "multi30k"))
TEST_SET = "test_2016_flickr"


# ---------------------------------------------------------------------------------------------
# Arguments


def parser(doc: str | None, repeats: int = 5) -> argparse.ArgumentParser:
    """The options every script takes; a script adds its own before parsing."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--run", type=Path, default=DEFAULT_RUN, help="run directory (%(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (%(default)s)")
    p.add_argument("--repeats", type=int, default=repeats, help="timed repeats (%(default)s)")
    p.add_argument("--quick", action="store_true", help="tiny settings: check that it runs")
    p.add_argument(
        "--mirror", default=DEFAULT_MIRROR, help="folder with the Multi30k files (%(default)s)"
    )
    p.add_argument("--write", action="store_true", help=f"append the results to {RESULTS}")
    return p


def setup(args: argparse.Namespace) -> argparse.Namespace:
    if args.threads < 1 or args.repeats < 1:
        raise SystemExit("error: --threads and --repeats must be positive")
    if not args.run.is_dir():
        raise SystemExit(f"error: run directory {args.run} not found")
    torch.set_num_threads(args.threads)
    return args


# ---------------------------------------------------------------------------------------------
# Timing and statistics


def sync(device: torch.device | str = "cpu") -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """Seconds one call of ``fn`` takes (GPU work included)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# ---------------------------------------------------------------------------------------------
# Output


NUMBER = re.compile(r"^[-+]?[\d.,]+ ?[×%]?$|^–$")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; columns of numbers right-aligned."""
    numeric = [all(NUMBER.match(fmt(r[i])) for r in rows) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN: not measured
            return "–"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(x: float) -> str:
    return f"{x:.2f}×"


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def publish(args: argparse.Namespace, title: str, body: str) -> None:
    """Print the results; with ``--write`` append them, the machine and the command line to
    RESULTS.md."""
    header = f"## {title}\n\n{describe_machine(args.threads)}\n"
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    text = f"{header}\n{body.strip()}\n"
    print(text)
    if args.write:
        if not RESULTS.exists():
            RESULTS.write_text(
                "# Benchmark results\n\nAppended by `python bench/NAME.py --write`, newest last.\n",
                encoding="utf-8",
            )
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(f"\n{header}\nCommand: `{command}`\n\n{body.strip()}\n")
        print(f"(appended to {RESULTS})")


# ---------------------------------------------------------------------------------------------
# Data


def load_test(
    mirror: str, src_lang: str, tgt_lang: str, limit: int = 0
) -> tuple[list[str], list[str]]:
    """Multi30k test_2016_flickr sources and references as they are in the files (the CLI's
    ``evaluate --test-set`` reads them the same way); the first ``limit`` if given."""
    pairs = read_parallel_files(
        Path(mirror) / multi30k_file_name(TEST_SET, src_lang),
        Path(mirror) / multi30k_file_name(TEST_SET, tgt_lang),
    )
    pairs = pairs[:limit] if limit else pairs
    return [s for s, _ in pairs], [t for _, t in pairs]


@dataclasses.dataclass
class TrainingData:
    cfg: RunConfig
    tokenizer: Tokenizer
    pairs: list[Pair]  # cleaned text, as the data was encoded from
    data: ParallelDataset
    sampler: TokenBatchSampler


def load_training_data(run: Path, mirror: str, max_pairs: int = 0) -> TrainingData:
    """The run's training pairs, cleaned and encoded as `seq2seq.train` does, and its sampler
    (`seq2seq.training_data.build_data`: max_tokens and seed from the run's config)."""
    cfg, _ = checkpoint.load_config(run)
    data_dir = cfg.data.data_dir
    if not Path(data_dir).is_absolute():  # the run was trained from the repository root
        data_dir = str(REPO / data_dir)
    data_cfg = dataclasses.replace(cfg.data, mirror=mirror, data_dir=data_dir)
    if max_pairs:
        data_cfg = dataclasses.replace(data_cfg, max_train_pairs=max_pairs)
    pairs, _, _ = load_splits(data_cfg, cfg.clean)
    tokenizer = Tokenizer.load(run)
    data, sampler = build_data(tokenizer, pairs, cfg.train)
    return TrainingData(cfg, tokenizer, pairs, data, sampler)


def make_learner(td: TrainingData, device: torch.device, **model_changes: Any) -> Learner:
    """A fresh model of the run's config with its optimiser, as `seq2seq.session.setup` builds
    them, for `seq2seq.train.train_step`.

    ``model_changes`` override ModelConfig fields (e.g. ``input_feeding=False``).
    """
    cfg = dataclasses.replace(td.cfg, model=dataclasses.replace(td.cfg.model, **model_changes))
    return build_learner(cfg, device)
