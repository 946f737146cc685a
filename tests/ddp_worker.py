"""Run under torchrun by test_train: the real `seq2seq train` entry point, observed from inside.

Each rank trains run ``a`` straight through, run ``b`` until it is killed after step 10 and
then resumed with ``--resume``, and run ``c`` with subword sampling under a time budget while
rank 1's clock races. It saves, for the test to check:
- the weights before step 1, step 1's inputs and random state, and the gradients it produced;
- the learning rate after every step and how each run ended, with its final weights;
- every file it created, opened for writing, renamed or removed under the output folder;
- the dataset indices of each of run ``a``'s batches, by epoch, and what holds the training ids.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.distributed as dist

from seq2seq import cli
from seq2seq import train as training


class Killed(Exception):
    pass


def record_writes(folder: Path, writes: list[str]) -> None:
    """Append to ``writes`` every write-like file operation under ``folder`` (audit events)."""
    root = str(folder.resolve())
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in str(mode or "") for c in "wax+") or bool((flags or 0) & write_flags)
            paths = [path] if writing else []
        elif event == "os.rename":  # os.replace too
            paths = list(args[:2])
        elif event in ("os.remove", "os.mkdir"):
            paths = [args[0]]
        else:
            return
        for path in paths:
            if isinstance(path, str | bytes | os.PathLike):
                name = os.path.abspath(os.fsdecode(path))
                if name.startswith(root):
                    writes.append(f"{event} {name}")

    sys.addaudithook(hook)


def main(config: str, out: Path, records: Path) -> None:
    rank = int(os.environ["RANK"])
    record: dict[str, Any] = {
        "lr": {"a": [], "b": [], "c": []},
        "ended": {},
        "writes": [],
        "indices": [],
    }
    record_writes(out, record["writes"])
    real_step, real_loop = training.train_step, training.train_loop
    current = {"run": "a", "kill_after": 0}

    def observed_step(session, batch, scaler):
        if current["kill_after"] and session.progress.step > current["kill_after"]:
            raise Killed  # as if the process died after the last checkpoint
        if "step1" not in record:
            initial = {k: v.clone() for k, v in session.model.state_dict().items()}
            rng = torch.get_rng_state()
        if current["run"] == "a":
            record["indices"].append((session.progress.epoch, list(batch.indices)))
            record["train_ids"] = type(session.train_data.src).__name__
        result = real_step(session, batch, scaler)
        if "step1" not in record:
            record["step1"] = {
                "initial": initial,
                "rng": rng,
                "batch": [batch.src_ids, batch.src_lengths, batch.tgt_in, batch.tgt_out],
                "grads": {n: p.grad.clone() for n, p in session.model.named_parameters()},
            }
        record["lr"][current["run"]].append(
            (session.progress.step, session.optimizer.param_groups[0]["lr"])
        )
        return result

    def observed_loop(session):
        progress = real_loop(session)
        record["ended"][current["run"]] = {
            "step": progress.step,
            "stopped": progress.stopped,
            "best_step": progress.best_step,
            "model": {k: v.clone() for k, v in session.model.state_dict().items()},
        }
        return progress

    training.train_step, training.train_loop = observed_step, observed_loop
    # The trainings share one process group: a default group destroyed and created again
    # in the same processes can meet stale rendezvous keys in torchrun's store.
    destroy, dist.destroy_process_group = dist.destroy_process_group, lambda *_: None
    command = ["train", "--config", config]
    cli.main([*command, "--train.out_dir", str(out / "a")])
    current.update(run="b", kill_after=10)
    try:
        cli.main([*command, "--train.out_dir", str(out / "b")])
        raise AssertionError("run b was not killed")
    except Killed:
        pass
    current.update(kill_after=0)
    cli.main([*command, "--train.out_dir", str(out / "b"), "--resume"])
    # Run c: subword sampling, and a time budget that rank 1's clock, racing 1000 s a reading,
    # says is spent after one step; rank 0's clock must decide for both.
    if rank == 1:
        readings = itertools.count()
        training.time = SimpleNamespace(perf_counter=lambda: 1000.0 * next(readings))
    current.update(run="c")
    timed = ["--train.max_minutes", "30", "--subword.sampling_alpha", "0.1"]
    cli.main([*command, "--train.out_dir", str(out / "c"), *timed])
    torch.save(record, records / f"rank{rank}.pt")
    destroy()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
