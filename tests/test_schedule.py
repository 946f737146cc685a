"""Learning-rate schedules: each formula at chosen steps, the budget by steps, minutes or epochs."""

from __future__ import annotations

import math

import pytest

from seq2seq.schedule import budget_progress, scheduled_lr

LR, MIN_LR = 0.004, 0.0001


def progress_of(step: int, **budget: float) -> float:
    defaults = {
        "train_seconds": 0.0,
        "warmup_steps": 10,
        "max_steps": 110,
        "max_minutes": 0.0,
        "steps_per_epoch": 50,
        "max_epochs": 4,
    }
    return budget_progress(step, **{**defaults, **budget})


def lr_at(schedule: str, step: int, **budget: float) -> float | None:
    return scheduled_lr(schedule, LR, MIN_LR, step, 10, progress_of(step, **budget))


@pytest.mark.parametrize("schedule", ["plateau", "linear", "cosine", "inverse_sqrt"])
def test_warmup_rises_linearly_to_the_peak(schedule):
    assert [lr_at(schedule, k) for k in (1, 5, 10)] == pytest.approx([LR / 10, LR / 2, LR])


def test_plateau_leaves_the_rate_to_validation_after_warmup():
    assert lr_at("plateau", 11) is None


def test_linear_and_cosine_reach_min_lr_exactly_at_the_step_budget():
    # after warm-up, 100 steps of decay: halfway is step 60
    assert lr_at("linear", 60) == pytest.approx(MIN_LR + (LR - MIN_LR) * 0.5)
    assert lr_at("linear", 35) == pytest.approx(MIN_LR + (LR - MIN_LR) * 0.75)
    assert lr_at("cosine", 35) == pytest.approx(
        MIN_LR + (LR - MIN_LR) * 0.5 * (1 + math.cos(math.pi * 0.25))
    )
    for schedule in ("linear", "cosine"):
        assert lr_at(schedule, 110) == pytest.approx(MIN_LR)
        assert lr_at(schedule, 500) == pytest.approx(MIN_LR)  # past the budget: stays there
        rates = [lr_at(schedule, k) for k in range(10, 111)]
        assert rates == sorted(rates, reverse=True)


def test_inverse_sqrt_falls_as_one_over_root_step():
    assert lr_at("inverse_sqrt", 40) == pytest.approx(LR * math.sqrt(10 / 40))
    assert lr_at("inverse_sqrt", 10**9) == pytest.approx(MIN_LR)  # never below min_lr


def test_a_time_budget_anneals_by_the_share_of_minutes_spent():
    budget = {"max_steps": 0, "max_minutes": 30.0}
    assert progress_of(999, train_seconds=450.0, **budget) == pytest.approx(0.25)
    assert lr_at("linear", 999, train_seconds=900.0, **budget) == pytest.approx(
        MIN_LR + (LR - MIN_LR) * 0.5
    )
    assert lr_at("cosine", 5000, train_seconds=1800.0, **budget) == pytest.approx(MIN_LR)


def test_without_steps_or_minutes_the_epochs_are_the_budget():
    budget = {"max_steps": 0, "max_minutes": 0.0}  # 4 epochs of 50 steps = 200
    assert progress_of(105, **budget) == pytest.approx(95 / 190)


def test_steps_win_when_both_budgets_are_set():
    assert progress_of(60, max_minutes=30.0, train_seconds=1700.0) == pytest.approx(0.5)


def test_an_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="lr_schedule='step'"):
        scheduled_lr("step", LR, MIN_LR, 20, 10, 0.1)
