"""`seq2seq ensemble`: an ensemble folder assembled from finished runs, whole or not at all; and
`seq2seq ship` of such a folder: tuned as one model, members scored alone, every member's
weights and decoding shipped together, and a card that rebuilds it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_ensemble import GERMAN, copy_run, perturb_weights, same_translations

from seq2seq import checkpoint, ensemble_folder, ship
from seq2seq.cli import main
from seq2seq.config import ShipConfig
from seq2seq.rundir import RunDir
from seq2seq.translate import Translator


@pytest.fixture(scope="module")
def two_runs(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The trained run and a noisy copy of it, with their logs, under names of their own."""
    root = tmp_path_factory.mktemp("two-runs")
    runs = [shutil.copytree(trained_run, root / name) for name in ("first", "second")]
    perturb_weights(runs[1], 0.02, seed=5)
    return runs


def test_an_assembled_folder_holds_copies_and_decodes_as_the_runs(two_runs, tmp_path, capsys):
    folder = tmp_path / "shelf" / "pair"
    main(["ensemble", str(folder), *map(str, two_runs)])
    assert "an ensemble of first, second" in capsys.readouterr().out
    run = RunDir(folder)
    members = [run.member("first"), run.member("second")]
    assert checkpoint.load_ensemble(folder) == members
    for member, source in zip(members, two_runs, strict=True):
        assert RunDir(member).weights.read_bytes() == RunDir(source).weights.read_bytes()
        assert RunDir(member).log.is_file()  # shipping reads the training's averaging from it
        assert not RunDir(member).state.exists() and not RunDir(member).snapshot_dir.exists()
    expected = Translator.from_runs(two_runs, device="cpu").translate(GERMAN, beam_size=3)
    same_translations(Translator.from_run(folder, device="cpu").translate(GERMAN, 3), expected)
    assert [p.name for p in folder.parent.iterdir()] == ["pair"]  # no building folder left


def test_assembly_refuses_what_is_no_ensemble_and_leaves_nothing_half_built(
    two_runs, trained_run, tmp_path, monkeypatch
):
    folder = tmp_path / "pair"
    with pytest.raises(ValueError, match="at least two runs"):
        ensemble_folder.assemble_ensemble(folder, two_runs[:1])
    twin = copy_run(trained_run, tmp_path / "elsewhere" / "first")
    with pytest.raises(ValueError, match="share the folder name 'first'"):
        ensemble_folder.assemble_ensemble(folder, [two_runs[0], twin])
    with pytest.raises(FileNotFoundError, match="no trained model"):
        ensemble_folder.assemble_ensemble(folder, [two_runs[0], tmp_path])
    exists = tmp_path / "exists"
    exists.mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        ensemble_folder.assemble_ensemble(exists, two_runs)

    copies = []

    def copy_then_fail(source, target):  # the disk fills up while the second member is copied
        if len(copies) == 3:
            raise OSError(28, "No space left on device")
        copies.append(target)
        return shutil.copyfile(source, target)

    monkeypatch.setattr(ensemble_folder.shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="No space"):
        ensemble_folder.assemble_ensemble(folder, two_runs)
    assert not folder.exists()  # nothing that translation or the demo would load
    monkeypatch.undo()
    ensemble_folder.assemble_ensemble(folder, two_runs)  # a retry clears the leftovers
    assert Translator.from_run(folder, device="cpu").translate(GERMAN[:1], 1)[0].text


@pytest.mark.slow
def test_ship_of_an_ensemble_tunes_it_as_one_and_ships_every_member(
    two_runs, tmp_path, monkeypatch
):
    folder = tmp_path / "pair"
    members = ensemble_folder.assemble_ensemble(folder, two_runs)
    fp32 = {m.name: checkpoint.read_weights(RunDir(m).weights) for m in members}

    def scripted_bleu(translator, sets, beam, length_penalty):
        # The ensemble scores 2 above either member alone, and peaks at length penalty 1.4.
        bonus = 2.0 if len(translator.facts().members) == 2 else 0.0
        return 30.0 - (length_penalty - 1.4) ** 2 + bonus + (0.5 if beam == 2 else 0.0)

    monkeypatch.setattr(ship, "valid_bleu", scripted_bleu)
    options = ShipConfig(
        beams=(1, 2), test_sets=("test_2016_flickr",), valid_pairs=40, n_bootstrap=10
    )
    record = ship.ship(folder, options)

    assert (record.decoding.beam, record.decoding.length_penalty) == (2, pytest.approx(1.4))
    assert record.decoding.valid_bleu == pytest.approx(32.5)
    assert [(m.name, m.valid_bleu) for m in record.members] == [
        ("first", pytest.approx(30.5)),
        ("second", pytest.approx(30.5)),
    ]
    assert record.averaging is None and all(m.averaging for m in record.members)
    for member in members:  # every member decodes as the ensemble chose, in float16
        decode = checkpoint.load_config(member)[0].decode
        assert (decode.beam_size, decode.length_penalty) == (2, pytest.approx(1.4))
        half = checkpoint.read_weights(RunDir(member).weights)
        assert all(torch.equal(half[k], v.half()) for k, v in fp32[member.name].items())
        assert not RunDir(member).fp32_weights.exists()
    decode = Translator.from_run(folder, device="cpu").decode_config()
    assert (decode.beam_size, decode.length_penalty) == (2, pytest.approx(1.4))
    report = json.loads(RunDir(folder).report("test_2016_flickr").json.read_text())
    assert [s["name"] for s in report["systems"]] == ["greedy", "beam-2"]

    card = RunDir(folder).model_card.read_text(encoding="utf-8")
    assert "An ensemble of 2 attentional encoder-decoders" in card
    assert "| first | 30.50 |" in card and "| **ensemble** | **32.50** |" in card
    assert "seq2seq train --config configs/tiny-de-en.yaml\n" * 2 in card  # one per member
    assert "seq2seq ensemble checkpoints/pair " in card and "seq2seq ship checkpoints/pair" in card
    assert "Lample et al. 2018" in card  # beside the published de-en number
    saved = ship.ShipRecord.from_dict(json.loads(RunDir(folder).ship_record.read_text()), folder)
    assert saved == record
    RunDir(folder).model_card.unlink()
    ship.rewrite_card(folder)
    assert RunDir(folder).model_card.read_text(encoding="utf-8") == card
