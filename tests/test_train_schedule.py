"""Learning-rate schedules in real tiny runs: the logged rate of every step follows the formula,
ends at min_lr with the budget (steps, minutes or epochs), and a resumed run keeps the curve."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from test_train import Killed, logged_lrs, task_config

from seq2seq import checkpoint
from seq2seq import train as training
from seq2seq.rundir import RunDir

LR, MIN_LR, WARMUP = 0.004, 0.0004, 3
REAL_TRAIN_STEP = training.train_step


def expected_lr(schedule: str, step: int, decay_steps: int) -> float:
    """The rate at ``step`` written out by hand: warm-up, then ``decay_steps`` of decay."""
    if step <= WARMUP:
        return LR * step / WARMUP
    done = min(1.0, (step - WARMUP) / decay_steps)
    if schedule == "linear":
        return MIN_LR + (LR - MIN_LR) * (1 - done)
    if schedule == "cosine":
        return MIN_LR + (LR - MIN_LR) * (1 + math.cos(math.pi * done)) / 2
    return max(MIN_LR, LR * math.sqrt(WARMUP / step))  # inverse_sqrt


def stalling_validation(session):
    """Validation BLEU that only falls: the plateau rule, if it were consulted, would cut."""
    stalling_validation.bleu -= 1.0
    return {"valid_loss": 1.0, "valid_ppl": math.e, "valid_bleu": stalling_validation.bleu}


@pytest.mark.parametrize("schedule", ["linear", "cosine", "inverse_sqrt"])
def test_every_steps_rate_follows_the_schedule_to_min_lr_at_max_steps(
    tmp_path, monkeypatch, schedule
):
    stalling_validation.bleu = 50.0
    monkeypatch.setattr(training, "validate", stalling_validation)
    cfg = task_config(
        tmp_path, lr_schedule=schedule, lr=LR, min_lr=MIN_LR, warmup_steps=WARMUP, max_steps=12,
        log_every=1, valid_every=2, lr_patience=0, patience=0,
    )  # fmt: skip
    run_dir = training.train(cfg)
    lrs = logged_lrs(run_dir)
    assert sorted(lrs) == list(range(1, 13))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(schedule, step, decay_steps=12 - WARMUP)), step
    if schedule != "inverse_sqrt":
        assert lrs[12] == pytest.approx(MIN_LR)
    # validation does not touch the rate (the plateau rule is for lr_schedule=plateau alone)
    for record in checkpoint.read_log(run_dir):
        if "valid_bleu" in record:
            assert record["lr"] == pytest.approx(lrs[record["step"]])


def test_without_steps_or_minutes_the_epochs_are_the_budget(tmp_path):
    cfg = task_config(
        tmp_path, lr_schedule="linear", lr=LR, min_lr=MIN_LR, warmup_steps=WARMUP, max_steps=0,
        max_epochs=2, log_every=1, valid_every=0,
    )  # fmt: skip
    lrs = logged_lrs(training.train(cfg))
    last = max(lrs)
    assert last > 12 and last % 2 == 0  # two epochs of equally many batches
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr("linear", step, decay_steps=last - WARMUP)), step
    assert lrs[last] == pytest.approx(MIN_LR)


def one_minute_steps(monkeypatch) -> None:
    """A fake clock on which every training step takes exactly a minute."""
    clock = {"now": 1000.0}

    def one_minute_step(session, batch, scaler):
        clock["now"] += 60.0
        return REAL_TRAIN_STEP(session, batch, scaler)

    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(training, "train_step", one_minute_step)


def test_a_time_budget_anneals_by_the_share_of_minutes_trained(tmp_path, monkeypatch):
    one_minute_steps(monkeypatch)
    cfg = task_config(
        tmp_path, lr_schedule="linear", lr=LR, min_lr=MIN_LR, max_steps=0, max_minutes=5.0,
        log_every=1, valid_every=0,
    )  # fmt: skip
    lrs = logged_lrs(training.train(cfg))
    # step k starts after k - 1 minutes of the five: the rate falls by a fifth of its range a step
    assert sorted(lrs) == [1, 2, 3, 4, 5]
    for step, lr in lrs.items():
        assert lr == pytest.approx(MIN_LR + (LR - MIN_LR) * (1 - (step - 1) / 5)), step


@pytest.mark.parametrize("budget", ["steps", "minutes"])
def test_a_run_killed_and_resumed_logs_the_same_rate_curve(tmp_path, monkeypatch, budget):
    one_minute_steps(monkeypatch)
    limits = {"max_steps": 12} if budget == "steps" else {"max_steps": 0, "max_minutes": 12.0}

    def config(folder: str):
        return task_config(
            tmp_path / folder, lr_schedule="cosine", lr=LR, min_lr=MIN_LR, warmup_steps=WARMUP,
            log_every=1, checkpoint_every=4, **limits,
        )  # fmt: skip

    straight = logged_lrs(training.train(config("a")))
    one_minute = training.train_step

    def dies_after_step_10(session, batch, scaler):
        if session.progress.step > 10:
            raise Killed  # after the step-8 checkpoint
        return one_minute(session, batch, scaler)

    monkeypatch.setattr(training, "train_step", dies_after_step_10)
    with pytest.raises(Killed):
        training.train(config("b"))
    monkeypatch.setattr(training, "train_step", one_minute)
    state = checkpoint.load_state(RunDir(tmp_path / "b" / "runs" / "task").state)
    assert state["progress"]["step"] == 8
    resumed = logged_lrs(training.train(config("b"), resume=True))
    assert sorted(straight) == list(range(1, 13))
    assert resumed == straight
    assert len(set(straight.values())) == 12  # a curve: every step's rate differs
