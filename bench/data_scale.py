"""How the data path scales with the corpus: prepare once, then train from token arrays on disk.

For each size, a corpus of that many pairs (Multi30k de-en train repeated, written to a temporary
folder and removed afterwards) goes through what a user runs:

    seq2seq prepare --data.corpus files --data.train SRC,TGT --data.valid ...   (timed)
    seq2seq train   <the same data flags> --train.max_steps N                    (1 process)
    torchrun --nproc_per_node=2 -m seq2seq train <the same flags>                (2 processes)

and it reports the prepare's wall time and its largest process's peak RSS, the seconds from
launching `seq2seq train` to the end of its first step (found through the prepared cache: the
inputs are hashed and checked, nothing is tokenised), and each training process's peak RSS
(``ru_maxrss``, measured inside the process). The
model is the default one (256/512 GRU, 8000 pieces); validation is limited to 100 pairs.

    python bench/data_scale.py --sizes 29000 1000000 5000000 --write
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

REPORT_PREFIX = "data_scale:"  # the line a measured training process prints at its end


def write_corpus(folder: Path, mirror: Path, pairs: int) -> tuple[str, str]:
    """Multi30k train repeated up to ``pairs`` lines per side, and its val; the two specs."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("de", "en"):
        lines = gzip.decompress((mirror / f"train.{lang}.gz").read_bytes()).splitlines(True)
        with (folder / f"train.{lang}").open("wb") as f:
            for start in range(0, pairs, len(lines)):
                f.writelines(lines[: pairs - start])
        (folder / f"val.{lang}").write_bytes(
            gzip.decompress((mirror / f"val.{lang}.gz").read_bytes())
        )
    return (
        f"{folder / 'train.de'},{folder / 'train.en'}",
        f"{folder / 'val.de'},{folder / 'val.en'}",
    )


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``command``: its wall seconds, the peak RSS (MB) of its largest process, stderr."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:])\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(f'peak_kb {peak}', file=sys.stderr)\n"
        "sys.exit(done.returncode)\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"error: {' '.join(command[:6])} ... failed:\n{done.stderr[-3000:]}")
    peak_kb = int(done.stderr.rsplit("peak_kb ", 1)[1].split()[0])
    return seconds, peak_kb / 1024, done.stderr


def reports(stderr: str) -> list[dict[str, float]]:
    """The measurements each training process printed, by rank."""
    found = [
        json.loads(line.split(REPORT_PREFIX, 1)[1])
        for line in stderr.splitlines()
        if REPORT_PREFIX in line
    ]
    return sorted(found, key=lambda r: r["rank"])


def train_and_report(argv: list[str]) -> None:
    """Run as a training process: `seq2seq train ARGV`, then print its first step's time
    (from the launch time in $DATA_SCALE_LAUNCHED) and its peak RSS."""
    from seq2seq import cli
    from seq2seq import train as training

    launched = float(os.environ["DATA_SCALE_LAUNCHED"])
    first: dict[str, float] = {}
    real_step = training.train_step

    def timed_step(learner, batch, scaler):  # type: ignore[no-untyped-def]
        result = real_step(learner, batch, scaler)
        first.setdefault("seconds", time.time() - launched)
        return result

    training.train_step = timed_step
    cli.main(["train", *argv])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rank = int(os.environ.get("RANK", 0))
    report = {"rank": rank, "first_step_s": first["seconds"], "peak_rss_mb": peak}
    print(REPORT_PREFIX + json.dumps(report), file=sys.stderr, flush=True)


def measure_size(pairs: int, args: argparse.Namespace, root: Path) -> list[object]:
    train_spec, valid_spec = write_corpus(root / "corpus", Path(args.mirror), pairs)
    data_flags = [
        "--data.corpus", "files", "--data.src_lang", "de", "--data.tgt_lang", "en",
        "--data.train", train_spec, "--data.valid", valid_spec,
        "--data.data_dir", str(root / "data"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prepare_s, prepare_mb, _ = measured(
        [sys.executable, "-m", "seq2seq", "prepare", *data_flags, "--workers", str(args.workers)],
        env,
    )
    train_flags = [
        *data_flags,
        "--data.max_valid_pairs", "100",
        "--train.max_steps", str(args.steps),
        "--train.threads", "1",
        "--train.average_last", "0",
        "--train.progress", "log",
    ]  # fmt: skip
    me = [str(Path(__file__).resolve()), "--train-and-report"]
    results = []
    for name, launcher in (
        ("one", [sys.executable]),
        ("ddp", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node=2"]),
    ):  # fmt: skip
        flags = [*train_flags, "--train.out_dir", str(root / "runs"), "--train.name", name]
        env["DATA_SCALE_LAUNCHED"] = str(time.time())
        _, _, stderr = measured([*launcher, *me, *flags], env)
        results.append(reports(stderr))
    one, ddp = results
    lengths_mb = pairs * 2 * 4 / 2**20  # the two int32 length arrays a process holds
    return [
        f"{pairs:,}",
        prepare_s,
        prepare_mb,
        one[0]["first_step_s"],
        one[0]["peak_rss_mb"],
        " / ".join(f"{r['peak_rss_mb']:.0f}" for r in ddp),
        max(r["first_step_s"] for r in ddp),
        lengths_mb,
    ]


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__, repeats=1)
    p.add_argument("--sizes", type=int, nargs="+", default=[29_000, 1_000_000, 5_000_000])
    p.add_argument("--steps", type=int, default=3, help="training steps (%(default)s)")
    p.add_argument("--workers", type=int, default=2, help="prepare's encoders (%(default)s)")
    args = p.parse_args(argv)
    rows = []
    for pairs in args.sizes:
        with tempfile.TemporaryDirectory(prefix="data-scale-") as folder:
            rows.append(measure_size(pairs, args, Path(folder)))
            print(rows[-1], flush=True)
    headers = [
        "pairs",
        "prepare s",
        "prepare peak MB",
        "first step s",
        "train peak MB",
        "torchrun ×2 peak MB per process",
        "torchrun first step s",
        "lengths MB",
    ]
    body = (
        common.table(headers, rows)
        + "\n\nMulti30k de-en train repeated; default model and vocabulary (8000 pieces); "
        f"{args.steps} training steps, one thread per process; first step: seconds from launch "
        "to the end of the first optimiser step, the prepared cache found by the same data "
        "flags."
    )
    common.publish(args, "Corpus size: prepare once, train from token arrays on disk", body)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--train-and-report"]:
        train_and_report(sys.argv[2:])
    else:
        main()
