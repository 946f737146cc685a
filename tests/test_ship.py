"""`seq2seq ship`: decoding chosen on the validation set with a length-penalty grid that grows
past its edge, float16 kept or rolled back atomically, test reports, ship.json, the model card."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from seq2seq import checkpoint, ship
from seq2seq.cli import build_parser, main, ship_config
from seq2seq.config import (
    LR_SCHEDULES,
    MAX_LENGTH_PENALTY,
    ModelConfig,
    ShipConfig,
    SubwordConfig,
    TrainConfig,
)
from seq2seq.corpus import load_split
from seq2seq.metrics import score_corpus
from seq2seq.model_card import decoder_text, learning_rate_text, precision_text, subword_text
from seq2seq.rundir import RunDir
from seq2seq.translate import Translator

MACHINE = "Test CPU 9000, 3 cores (load 0.5 at start)"


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> RunDir:
    """A copy of the shared tiny run (the fixture is shared: shipping changes a run)."""
    return RunDir(shutil.copytree(trained_run, tmp_path / trained_run.name))


def weights_dtypes(path: Path) -> set[torch.dtype]:
    return {tensor.dtype for tensor in checkpoint.read_weights(path).values()}


def peaked(peak: float, beam_bonus: dict[int, float]):
    """A validation scorer whose BLEU peaks at length penalty ``peak``, and the calls it got."""
    calls: list[tuple[int, float]] = []

    def score(beam: int, length_penalty: float) -> float:
        calls.append((beam, length_penalty))
        return 30.0 - (length_penalty - peak) ** 2 + beam_bonus.get(beam, 0.0)

    return score, calls


@pytest.mark.parametrize(
    ("peak", "tried"),
    [
        (1.0, [0.6, 1.0, 1.4]),  # the best inside the grid: nothing added
        (1.8, [0.6, 1.0, 1.4, 1.8, 2.0]),  # best on the edge: grown until it is not
        (9.0, [0.6, 1.0, 1.4, 1.8, MAX_LENGTH_PENALTY]),  # still rising: stops at the limit
    ],
)
def test_the_length_penalty_grid_grows_while_its_best_value_is_its_largest(peak, tried):
    score, calls = peaked(peak, {5: 1.0})
    trials = ship.tune_decoding(score, beams=(1, 5), grid=(0.6, 1.0, 1.4))
    assert [t.length_penalty for t in trials if t.beam == 5] == pytest.approx(tried)
    assert calls == [(1, 1.0)] + [(5, lp) for lp in tried]
    chosen = ship.choose_decoding(trials, tolerance=0.1)
    best = max((t for t in trials if t.beam == 5), key=lambda t: t.valid_bleu)
    assert chosen == best and chosen.length_penalty == pytest.approx(min(peak, 2.0))


@pytest.mark.parametrize(("bonus", "beam"), [(0.05, 5), (0.5, 10)])
def test_the_smallest_beam_near_the_best_score_is_chosen(bonus, beam):
    score, _ = peaked(1.4, {5: 1.0, 10: 1.0 + bonus})
    chosen = ship.choose_decoding(ship.tune_decoding(score, (1, 5, 10), (1.0, 1.4, 1.6)), 0.1)
    assert (chosen.beam, chosen.length_penalty) == (beam, 1.4)


def test_ship_settings_are_checked():
    with pytest.raises(ValueError, match="increasing"):
        ShipConfig(length_penalties=(1.0, 0.6))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        ShipConfig(length_penalties=(1.0, 2.4))
    with pytest.raises(ValueError, match="beams"):
        ShipConfig(beams=(0, 5))


def test_the_card_says_how_the_learning_rate_moved_under_every_schedule():
    texts = {
        schedule: learning_rate_text(TrainConfig(lr_schedule=schedule, min_lr=1e-4))
        for schedule in LR_SCHEDULES
    }
    assert len(set(texts.values())) == len(LR_SCHEDULES)  # every schedule named, none mistaken
    assert "cosine decay to 0.0001" in texts["cosine"]
    warm = learning_rate_text(TrainConfig(lr_schedule="linear", warmup_steps=300))
    assert "300 warm-up steps, then linear decay" in warm


def test_the_card_says_how_training_sentences_were_segmented():
    assert "sampling" not in subword_text(SubwordConfig())
    assert "alpha 0.1, nbest 64" in subword_text(SubwordConfig(sampling_alpha=0.1, nbest_size=64))
    assert "BPE-dropout 0.1" in subword_text(SubwordConfig(model_type="bpe", sampling_alpha=0.1))


def test_the_card_names_the_decoder_and_whether_it_feeds_its_input():
    assert (
        decoder_text(ModelConfig()) == "GRU decoder 512 with bahdanau attention and input feeding"
    )
    assert "without input feeding" in decoder_text(ModelConfig(input_feeding=False))
    cgru = ModelConfig(decoder="cgru", input_feeding=False, attention="scaled_general")
    assert decoder_text(cgru).startswith("conditional GRU decoder 512")
    assert "scaled_general attention" in decoder_text(cgru)
    assert "input feeding" not in decoder_text(cgru)


@pytest.mark.slow
def test_ship_chooses_on_validation_and_records_choices_scores_and_machine(run, monkeypatch):
    cfg, _ = checkpoint.load_config(run.root)
    valid_sources = [src for src, _ in load_split(cfg.data, "val")[:60]]
    fp32 = checkpoint.read_weights(run.weights)
    [averaged] = [r for r in checkpoint.read_log(run.root) if "average_valid_bleu" in r]
    calls = []

    def scripted_bleu(translator, sets, beam, length_penalty):
        [one] = sets  # a bilingual run: one direction
        calls.append(one.sources)
        half = weights_dtypes(run.weights) == {torch.float16}  # the float16 check is running
        bonus = 1.0 if beam == 2 else 0.0
        return 30.0 - (length_penalty - 1.8) ** 2 + bonus - (0.05 if half else 0.0)

    monkeypatch.setattr(ship, "valid_bleu", scripted_bleu)
    monkeypatch.setattr(ship, "describe_machine", lambda threads: MACHINE)
    options = ShipConfig(
        beams=(1, 2), test_sets=("test_2016_flickr",), valid_pairs=60, n_bootstrap=10
    )
    record = ship.ship(run.root, options)

    assert all(sources == valid_sources for sources in calls)  # nothing chosen on a test set
    tried = [t.length_penalty for t in record.tuning if t.beam == 2]
    assert tried == pytest.approx([0.6, 1.0, 1.4, 1.8, 2.0])
    assert (record.decoding.beam, record.decoding.length_penalty) == (2, pytest.approx(1.8))
    decode = Translator.from_run(run.root, device="cpu").cfg.decode
    assert (decode.beam_size, decode.length_penalty) == (2, pytest.approx(1.8))
    # float16 lost 0.05 < 0.1: kept, and the weights are exactly the float32 ones rounded
    assert record.precision.dtype == "float16" and not run.fp32_weights.exists()
    half = checkpoint.read_weights(run.weights)
    assert all(torch.equal(half[name], fp32[name].half()) for name in fp32)

    saved = json.loads(run.ship_record.read_text())
    assert saved["decoding"]["beam"] == 2 and saved["precision"]["dtype"] == "float16"
    assert saved["machine"] == MACHINE and saved["tuning"][0]["beam"] == 1
    assert saved["averaging"]["average_valid_bleu"] == averaged["average_valid_bleu"]
    assert saved["averaging"]["kept"] == (averaged["kept"] == "average")
    report = json.loads(run.report("test_2016_flickr").json.read_text())
    assert saved["tests"]["test_2016_flickr"] == {
        s["name"]: s["scores"]["bleu"]["score"] for s in report["systems"]
    }
    assert [s["name"] for s in report["systems"]] == ["greedy", "beam-2"]

    card = run.model_card.read_text(encoding="utf-8")
    assert MACHINE in card
    assert "Shipped: beam 2, length penalty 1.8 " in card
    assert "| test_2016_flickr | beam-2 |" in card
    train = f"seq2seq train --config configs/{run.name}.yaml\n"
    flags = "--beams 1 2 --test-sets test_2016_flickr --valid-pairs 60 --n-bootstrap 10"
    assert f"{train}seq2seq ship checkpoints/{run.name} {flags}\n" in card
    run.model_card.unlink()
    ship.rewrite_card(run.root)  # ship.json holds all the card needs
    assert run.model_card.read_text(encoding="utf-8") == card


@pytest.mark.slow
def test_ship_from_the_command_line_with_real_scores(run, capsys):
    cfg, _ = checkpoint.load_config(run.root)
    valid = load_split(cfg.data, "val")[:40]
    greedy = Translator.from_run(run.root, device="cpu").translate([s for s, _ in valid], 1)
    greedy_bleu = score_corpus([t.text for t in greedy], [t for _, t in valid], n_bootstrap=0)
    main(
        ["ship", str(run.root), "--beams", "1", "2", "--length-penalties", "0.6", "1.0",
         "--valid-pairs", "40", "--test-sets", "test_2017_flickr"]
    )  # fmt: skip
    saved = json.loads(run.ship_record.read_text())
    assert saved["tuning"][0] == {
        **saved["tuning"][0],
        "beam": 1,
        "valid_bleu": greedy_bleu["bleu"].score,
    }
    top = max(t["valid_bleu"] for t in saved["tuning"])
    near = [t for t in saved["tuning"] if t["valid_bleu"] >= top - 0.1]
    assert saved["decoding"]["beam"] == min(t["beam"] for t in near)
    assert saved["tests"] == {} and saved["tests_not_at_hand"] == ["test_2017_flickr"]
    given = ["--beams 1 2", "--length-penalties 0.6 1.0", "--test-sets test_2017_flickr"]
    assert saved["flags"] == [*given, "--valid-pairs 40"]
    card = run.model_card.read_text(encoding="utf-8")
    assert "Not scored here" in card and "test_2017_flickr" in card
    assert "model card written" in capsys.readouterr().out


def test_the_rebuild_command_repeats_the_ship_flags_that_change_a_choice():
    options = ShipConfig(
        beams=(1, 4), length_penalties=(0.5, 1.5), valid_pairs=2400, mirror="/data/multi30k"
    )
    flags = options.as_flags()
    assert flags == ["--beams 1 4", "--length-penalties 0.5 1.5", "--valid-pairs 2400"]
    args = build_parser().parse_args(["ship", "checkpoints/x", *" ".join(flags).split()])
    assert ship_config(args) == dataclasses.replace(options, mirror="")  # the mirror: no choice
    assert ShipConfig().as_flags() == []


# --- float16: kept or rolled back, the weights file only ever replaced whole ------------------


WATCHED: list[str] = []  # the weights path being watched, while a test watches one
GONE: list[str] = []  # how the watched path lost its file, if it did


def _audit(event: str, args: tuple) -> None:
    if not WATCHED:
        return
    if event == "os.rename" and os.path.abspath(os.fsdecode(args[0])) == WATCHED[0]:
        GONE.append(f"renamed away to {args[1]}")
    elif event == "os.remove" and os.path.abspath(os.fsdecode(args[0])) == WATCHED[0]:
        GONE.append("removed")


sys.addaudithook(_audit)  # audit hooks cannot be removed: it does nothing unless WATCHED


@pytest.fixture
def first_weights(run: RunDir, tmp_path: Path) -> Iterator[Path]:
    """A second name (hard link) of the run's weights file as it is now. Replacing the weights
    file by a rename leaves this file as it was; writing the weights file in place changes it.
    Meanwhile the weights path must never lose its file (moved away or removed)."""
    link = tmp_path / "first-weights.safetensors"
    os.link(run.weights, link)
    GONE.clear()
    WATCHED.append(os.path.abspath(run.weights))
    yield link
    WATCHED.clear()
    assert GONE == [], f"the weights file was {GONE[0]}: not an atomic swap"


@pytest.mark.parametrize(("fp16_bleu", "kept"), [(29.95, True), (29.5, False)])
def test_float16_is_kept_only_within_the_tolerance_and_swapped_atomically(
    run, first_weights, fp16_bleu, kept
):
    original = run.weights.read_bytes()
    fp32 = checkpoint.read_weights(run.weights)

    def score_during_the_check() -> float:
        # the weights file is whole float16 and the float32 file is set aside intact
        assert weights_dtypes(run.weights) == {torch.float16}
        assert run.fp32_weights.read_bytes() == original
        Translator.from_run(run.root, device="cpu")  # loads
        return fp16_bleu

    trial = ship.try_float16([run], 30.0, score_during_the_check, tolerance=0.1)
    assert (trial.fp32_valid_bleu, trial.fp16_valid_bleu) == (30.0, fp16_bleu)
    assert trial.dtype == ("float16" if kept else "float32")
    assert not run.fp32_weights.exists()
    if kept:
        half = checkpoint.read_weights(run.weights)
        assert all(torch.equal(half[name], fp32[name].half()) for name in fp32)
    else:
        assert run.weights.read_bytes() == original
    assert first_weights.read_bytes() == original  # never written in place


def test_weights_shipped_in_float16_before_are_kept_and_not_compared_with_themselves(run):
    model, _ = checkpoint.load_model(run.root)
    checkpoint.save_weights(model, run.weights, dtype=torch.float16)  # as a first ship left it
    stored = run.weights.read_bytes()

    def no_second_score() -> float:
        raise AssertionError("float16 scored against itself")

    trial = ship.try_float16([run], 30.0, no_second_score, tolerance=0.1)
    assert (trial.fp32_valid_bleu, trial.fp16_valid_bleu, trial.dtype) == (None, 30.0, "float16")
    assert run.weights.read_bytes() == stored and not run.fp32_weights.exists()
    text = precision_text(trial)
    assert "float16 before this ship ran" in text and "float32" in text and "vs" not in text


def test_an_interrupted_float16_check_leaves_whole_weights_and_the_next_ship_restores(
    run, first_weights
):
    original = run.weights.read_bytes()

    def killed() -> float:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ship.try_float16([run], 30.0, killed, tolerance=0.1)
    Translator.from_run(run.root, device="cpu")  # the float16 weights file is whole
    assert run.fp32_weights.read_bytes() == original
    assert first_weights.read_bytes() == original
    ship.restore_float32(run)  # what `seq2seq ship` does first
    assert run.weights.read_bytes() == original and not run.fp32_weights.exists()
