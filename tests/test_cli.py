"""The command line end to end, as a user runs it: `seq2seq prepare` from a mirror served over
HTTP on 127.0.0.1, `seq2seq train`, a kill -9, `seq2seq train --resume`, then
`seq2seq evaluate --test-set`; exit codes and the files each step leaves behind."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seq2seq import checkpoint
from seq2seq.rundir import RunDir

pytestmark = pytest.mark.slow

TRAIN_FLAGS = [
    "--data.max_train_pairs", "600",
    "--data.max_valid_pairs", "60",
    "--subword.vocab_size", "400",
    "--subword.model_type", "bpe",
    "--model.embed_size", "16",
    "--model.hidden_size", "32",
    "--train.name", "cli",
    "--train.max_tokens", "400",
    "--train.max_steps", "300",
    "--train.valid_every", "100",
    "--train.checkpoint_every", "20",
    "--train.log_every", "10",
    "--train.threads", "1",
    "--train.progress", "log",
]  # fmt: skip


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def mirror_url(multi30k_dir: Path) -> Iterator[str]:
    """The shared Multi30k files served over HTTP on 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(multi30k_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def seq2seq(*args: str) -> list[str]:
    return [sys.executable, "-m", "seq2seq", *args]


def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        seq2seq(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_for_checkpoint(state_file: Path, process: subprocess.Popen[str], min_step: int) -> int:
    """Poll until ``state_file`` holds a step >= ``min_step``; return that step."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be killed"
        if state_file.is_file():
            step = checkpoint.load_state(state_file)["progress"]["step"]
            if step >= min_step:
                return int(step)
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step >= {min_step} within 240 s")


def test_prepare_train_kill_resume_evaluate(tmp_path: Path, mirror_url: str) -> None:
    data_dir = tmp_path / "data"
    prepared = run(
        "prepare",
        "--data.mirror", mirror_url,
        "--data.data_dir", str(data_dir),
        "--splits", "train", "val", "test_2016_flickr",
        cwd=tmp_path,
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr
    for split in ("train", "val", "test_2016_flickr"):
        for lang in ("de", "en"):
            assert (data_dir / "multi30k" / f"{split}.{lang}.gz").is_file()
    counts = json.loads((data_dir / "multi30k-de-en.clean.json").read_text())
    assert counts["train"]["total"] == 29000 and counts["test_2016_flickr"]["total"] == 1000

    # Train from the cache alone (no mirror), and kill -9 it once a checkpoint exists.
    train = [*seq2seq("train", *TRAIN_FLAGS), "--data.data_dir", str(data_dir)]
    run_dir = tmp_path / "checkpoints" / "cli"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        train, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        killed_at = wait_for_checkpoint(RunDir(run_dir).state, process, min_step=40)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert killed_at < 300

    # Starting it again without --resume is refused and changes nothing.
    before = RunDir(run_dir).state.read_bytes()
    again = subprocess.run(train, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode != 0 and "--resume" in again.stderr
    assert "Traceback" not in again.stderr
    assert RunDir(run_dir).state.read_bytes() == before

    resumed = subprocess.run(
        [*train, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().endswith(str(Path("checkpoints") / "cli"))
    state = checkpoint.load_state(RunDir(run_dir).state)
    assert state["progress"]["step"] == 300
    assert state["progress"]["stopped"] == "reached max_steps=300"
    log = checkpoint.read_log(run_dir)
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == list(range(10, 301, 10))  # each logged step once: the killed tail dropped
    assert [r["step"] for r in log if "valid_bleu" in r] == [100, 200, 300]
    for name in ("config.json", "model.safetensors", "spm.model", "learning_curve.png"):
        assert (run_dir / name).is_file(), name

    evaluated = run(
        "evaluate",
        "--checkpoint", str(run_dir),
        "--test-set", "test_2016_flickr",
        "--data-dir", str(data_dir),
        "--beam", "2",
        "--bootstrap", "50",
        cwd=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    report_dir = run_dir / "eval" / "test_2016_flickr"
    report = json.loads((report_dir / "report.json").read_text())
    assert len((report_dir / "hypotheses.txt").read_text().splitlines()) == 1000
    assert "case:mixed" in evaluated.stdout and "tok:13a" in evaluated.stdout
    assert report["systems"][-1]["scores"]["bleu"]["signature"] in evaluated.stdout
    assert (report_dir / "report.md").is_file()


def test_resume_needs_only_the_run_name_and_refuses_model_flags(tmp_path: Path) -> None:
    from test_train import write_task_files

    spec = write_task_files(tmp_path / "corpus", 200, seed=3)
    common = [
        "--train.out_dir",
        str(tmp_path / "runs"),
        "--train.name",
        "r",
        "--train.threads",
        "1",
    ]
    started = run(
        "train", *common,
        "--data.corpus", "files", "--data.src_lang", "xx", "--data.tgt_lang", "yy",
        "--data.train", spec, "--data.valid", spec,
        "--subword.vocab_size", "300", "--subword.model_type", "bpe",
        "--model.cell", "lstm", "--model.hidden_size", "24", "--model.embed_size", "8",
        "--train.max_tokens", "200", "--train.max_steps", "4",
        cwd=tmp_path,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    # Everything but the name and the new limit comes from the run's saved config.
    resumed = run("train", *common, "--train.max_steps", "6", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    state = checkpoint.load_state(RunDir(tmp_path / "runs" / "r").state)
    assert state["progress"]["step"] == 6
    saved, _ = checkpoint.load_config(tmp_path / "runs" / "r")
    assert (saved.model.cell, saved.model.hidden_size, saved.train.max_steps) == ("lstm", 24, 6)
    refused = run(
        "train", *common, "--train.max_steps", "8", "--model.hidden_size", "32", "--resume",
        cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "--model.hidden_size differ from the run being resumed" in refused.stderr
    assert "Traceback" not in refused.stderr
