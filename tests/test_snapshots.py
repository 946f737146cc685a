"""Checkpoint averaging: snapshots bounded and resumable, the exact mean, kept only when better,
both scores logged; after the fact with `seq2seq average`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_train import Killed, task_config

from seq2seq import checkpoint, snapshots
from seq2seq import train as training
from seq2seq.cli import main
from seq2seq.config import ModelConfig
from seq2seq.model import Seq2Seq
from seq2seq.rundir import RunDir


def scripted(bleus: list[float]):
    """A `train.validate` that returns these BLEU scores in turn, and the sessions it saw."""
    scores, seen = iter(bleus), []

    def validate(session):
        seen.append(session)
        return {"valid_loss": 1.0, "valid_ppl": math.e, "valid_bleu": next(scores)}

    return validate


def averaging_records(run_dir: Path) -> list[dict]:
    return [r for r in checkpoint.read_log(run_dir) if "average_valid_bleu" in r]


def assert_same_weights(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_snapshots_stay_bounded_to_the_last_n_validations(tmp_path, monkeypatch):
    real_save, counts = snapshots.save_snapshot, []

    def counting_save(model, run, step, keep):
        real_save(model, run, step, keep)
        counts.append(len(run.snapshots()))

    monkeypatch.setattr(snapshots, "save_snapshot", counting_save)
    run = RunDir(training.train(task_config(tmp_path, valid_every=2, average_last=3)))
    assert counts == [1, 2, 3, 3, 3, 3]  # validations at steps 2, 4, ..., 12
    assert list(run.snapshots()) == [8, 10, 12]
    final = checkpoint.load_state(run.state)["model"]  # the weights at step 12
    snapshot = checkpoint.read_weights(run.snapshot(12))
    assert all(torch.equal(snapshot[name], final[name]) for name in snapshot)


def test_no_snapshots_when_averaging_is_off(tmp_path):
    run = RunDir(training.train(task_config(tmp_path, valid_every=2, average_last=0)))
    assert not run.snapshot_dir.exists() and averaging_records(run.root) == []


def test_a_resumed_run_drops_the_snapshots_the_killed_run_wrote_after_its_checkpoint(
    tmp_path, monkeypatch
):
    real_step = training.train_step

    def dies_after_step_10(session, batch, scaler):
        if session.progress.step > 10:
            raise Killed  # after the validation at step 10, but the last checkpoint is step 8
        return real_step(session, batch, scaler)

    cfg = task_config(tmp_path, valid_every=2, checkpoint_every=4, average_last=4)
    monkeypatch.setattr(training, "train_step", dies_after_step_10)
    with pytest.raises(Killed):
        training.train(cfg)
    run = RunDir(Path(cfg.train.out_dir) / cfg.train.name)
    assert list(run.snapshots()) == [4, 6, 8, 10]
    monkeypatch.setattr(training, "train_step", real_step)
    # Resumed with a budget that ends where it resumes: it trains nothing, so what remains is
    # what the resume kept, and what it averages at the end.
    training.train(task_config(tmp_path, valid_every=2, average_last=4, max_steps=8), resume=True)
    assert list(run.snapshots()) == [4, 6, 8]
    [record] = averaging_records(run.root)
    assert record["averaged"] == [run.relative(run.snapshot(s)) for s in (4, 6, 8)]


def test_the_average_is_the_exact_element_wise_mean(tmp_path):
    cfg = ModelConfig(embed_size=8, hidden_size=12, src_vocab_size=30, tgt_vocab_size=30)
    run, models = RunDir(tmp_path / "run"), []
    for step in (1, 2, 3):
        torch.manual_seed(step)
        models.append(Seq2Seq(cfg))
        snapshots.save_snapshot(models[-1], run, step, keep=3)
    averaged = checkpoint.average_weights(list(run.snapshots().values()))
    for name, tensor in checkpoint.read_weights(run.snapshot(1)).items():
        total = sum(m.state_dict()[name].double() for m in models)
        assert torch.equal(averaged[name], (total / 3).float()), name
        assert not torch.equal(averaged[name], tensor), name  # the seeds drew different weights


@pytest.mark.parametrize("average_bleu", [13.0, 11.5], ids=["better", "worse"])
def test_training_keeps_the_average_only_when_it_validates_better(
    tmp_path, monkeypatch, average_bleu
):
    # validations at steps 4, 8, 12 (best: step 8), then the average of their snapshots
    monkeypatch.setattr(training, "validate", scripted([10.0, 12.0, 11.0, average_bleu]))
    real_loop, ended = training.train_loop, {}

    def observed_loop(session):
        progress = real_loop(session)
        ended.update({k: v.clone() for k, v in session.model.state_dict().items()})
        return progress

    monkeypatch.setattr(training, "train_loop", observed_loop)
    run = RunDir(training.train(task_config(tmp_path, valid_every=4, average_last=5)))
    steps = [4, 8, 12]
    assert list(run.snapshots()) == steps
    [record] = averaging_records(run.root)
    better = average_bleu > 12.0
    assert record == {
        "step": 12,
        "averaged": [run.relative(run.snapshot(s)) for s in steps],
        "average_valid_bleu": average_bleu,
        "best_valid_bleu": 12.0,
        "kept": "average" if better else "best",
    }
    weights = checkpoint.read_weights(run.weights)
    mean = checkpoint.average_weights([run.snapshot(s) for s in steps])
    assert_same_weights(weights, mean if better else checkpoint.read_weights(run.snapshot(8)))
    # the model itself ends with its own last weights, averaged or not
    assert_same_weights({k: ended[k] for k in weights}, checkpoint.read_weights(run.snapshot(12)))


def test_seq2seq_average_refuses_a_run_without_two_snapshots(tmp_path):
    run_dir = training.train(task_config(tmp_path, average_last=0))
    with pytest.raises(SystemExit, match="at least 2 weight files.*0 weight snapshot"):
        main(["average", str(run_dir)])
    with pytest.raises(SystemExit, match="not a run directory"):
        main(["average", str(tmp_path / "nowhere")])
    assert not (tmp_path / "nowhere").exists()


def test_seq2seq_average_scores_as_training_did(tmp_path, capsys):
    """Unscripted: the command's validation of the weights and of the same average gives the
    scores training logged for them."""
    run = RunDir(training.train(task_config(tmp_path, valid_every=4, average_last=3)))
    [trained] = averaging_records(run.root)
    weights_before = run.weights.read_bytes()
    main(["average", str(run.root)])
    again = averaging_records(run.root)[-1]
    assert again["averaged"] == trained["averaged"]
    assert again["average_valid_bleu"] == trained["average_valid_bleu"]
    # the weights now held are what training kept: the average or the best checkpoint
    held = max(trained["average_valid_bleu"], trained["best_valid_bleu"])
    assert again["best_valid_bleu"] == held
    assert again["kept"] == "best"  # the same average never beats itself
    assert run.weights.read_bytes() == weights_before
    assert "average of 3 snapshots" in capsys.readouterr().out


@pytest.mark.parametrize("average_bleu", [9.0, 15.0], ids=["worse", "better"])
def test_seq2seq_average_of_given_files_keeps_the_better(tmp_path, monkeypatch, average_bleu):
    run = RunDir(training.train(task_config(tmp_path, valid_every=2, average_last=5)))
    files = [run.snapshot(4), run.snapshot(10)]
    weights_before = run.weights.read_bytes()
    monkeypatch.setattr(training, "validate", scripted([10.0, average_bleu]))
    main(["average", str(run.root), "--files", *map(str, files)])
    record = averaging_records(run.root)[-1]
    assert record["averaged"] == [run.relative(f) for f in files]
    assert (record["best_valid_bleu"], record["average_valid_bleu"]) == (10.0, average_bleu)
    if average_bleu > 10.0:
        assert record["kept"] == "average"
        expected = checkpoint.average_weights(files)
        assert_same_weights(checkpoint.read_weights(run.weights), expected)
    else:
        assert record["kept"] == "best"
        assert run.weights.read_bytes() == weights_before


def test_seq2seq_average_last_n_takes_the_latest_snapshots(tmp_path, monkeypatch):
    run = RunDir(training.train(task_config(tmp_path, valid_every=2, average_last=5)))
    monkeypatch.setattr(training, "validate", scripted([10.0, 11.0]))
    main(["average", str(run.root), "--last", "2"])
    record = averaging_records(run.root)[-1]
    assert record["averaged"] == [run.relative(run.snapshot(s)) for s in (10, 12)]
    expected = checkpoint.average_weights([run.snapshot(10), run.snapshot(12)])
    assert_same_weights(checkpoint.read_weights(run.weights), expected)
