"""A multilingual run end to end (`trained_multilingual_run`: Multi30k's 12 directions, trained
for seconds): what it logs and saves, the translator's directions, `seq2seq translate --to` and
`seq2seq evaluate --src-lang --to`; and that a bilingual run, old or new, is untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq import checkpoint
from seq2seq.averaging import RunValidation
from seq2seq.corpus import read_lines
from seq2seq.directions import expand_directions
from seq2seq.rundir import ReportDir, RunDir
from seq2seq.train import validate
from seq2seq.translate import Translator

pytestmark = pytest.mark.slow
TWELVE = expand_directions(["all"])
FRENCH = "Un homme en chemise bleue est debout sur une échelle et nettoie des fenêtres."


@pytest.fixture(scope="module")
def multi(trained_multilingual_run: Path) -> Translator:
    return Translator.from_run(trained_multilingual_run, device="cpu")


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seq2seq", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_validation_logs_every_direction_and_their_mean(trained_multilingual_run: Path):
    records = [r for r in checkpoint.read_log(trained_multilingual_run) if "valid_bleu" in r]
    assert records
    for record in records:
        per_direction = [record[f"valid_bleu_{d}"] for d in TWELVE]
        assert record["valid_bleu"] == pytest.approx(sum(per_direction) / 12)


def test_the_run_saves_its_directions_and_a_vocabulary_with_every_tag(
    trained_multilingual_run: Path, multi: Translator
):
    cfg, _ = checkpoint.load_config(trained_multilingual_run)
    assert cfg.data.direction_names == TWELVE
    for lang in ("en", "de", "fr", "cs"):
        assert multi.tokenizer.knows_piece(f"<2{lang}>")


def test_averaging_validates_a_finished_run_per_direction(trained_multilingual_run: Path):
    metrics = validate(RunValidation.load(trained_multilingual_run))
    assert {f"valid_bleu_{d}" for d in TWELVE} <= set(metrics)


def test_the_target_language_reaches_the_model_as_the_first_source_token(multi: Translator):
    assert multi.multilingual and multi.language_pair == ("en", "de")  # its first direction
    assert set(multi.target_languages) == {"en", "de", "fr", "cs"}
    for target in ("cs", "de", "en"):
        [result] = multi.translate([FRENCH], beam_size=1, target_lang=target, with_attention=True)
        assert result.source_pieces[0] == f"<2{target}>"
        assert result.attention is not None
        assert result.attention.shape[1] == len(result.source_pieces)
    [default] = multi.translate([FRENCH], beam_size=1)
    assert default.source_pieces[0] == "<2de>"
    blank = multi.translate(["", "  "], target_lang="fr")
    assert [r.text for r in blank] == ["", ""]  # a blank line stays blank, tag or not


def test_a_direction_the_model_was_not_trained_on_is_a_clear_error(multi: Translator):
    with pytest.raises(ValueError, match="not trained to translate into 'it'.*de, fr, cs, en"):
        multi.translate([FRENCH], target_lang="it")
    with pytest.raises(ValueError, match="both 'fr'"):
        multi.translate([FRENCH], target_lang="fr", source_lang="fr")


def test_the_view_toward_a_direction_shares_the_model(multi: Translator):
    view = multi.toward("cs", "fr")
    assert view.language_pair == ("fr", "cs") and view.model is multi.model
    assert multi.language_pair == ("en", "de")  # the original is unchanged
    assert view.describe()["language_pair"] == "fr-cs"
    assert view.describe()["directions"] == list(TWELVE)


def test_input_in_the_target_language_is_warned_about_on_request(multi: Translator):
    [warned] = multi.translate([FRENCH], beam_size=1, target_lang="fr", check_source=True)
    assert "French" in warned.warning
    [fine] = multi.translate([FRENCH], beam_size=1, target_lang="cs", check_source=True)
    [unasked] = multi.translate([FRENCH], beam_size=1, target_lang="fr")
    assert fine.warning == "" and unasked.warning == ""


def test_a_bilingual_model_needs_no_target_and_refuses_another(trained_run: Path):
    bilingual = Translator.from_run(trained_run, device="cpu")
    assert not bilingual.multilingual and bilingual.target_languages == ("en",)
    [plain] = bilingual.translate(["Ein Hund läuft."], beam_size=1)
    [named] = bilingual.translate(["Ein Hund läuft."], beam_size=1, target_lang="en")
    assert named.text == plain.text and named.source_pieces == plain.source_pieces
    with pytest.raises(ValueError, match="into 'fr'.*de-en"):
        bilingual.translate(["Ein Hund läuft."], target_lang="fr")
    assert "directions" not in bilingual.describe()


def test_a_run_saved_before_directions_loads_and_translates_as_before(
    trained_run: Path, tmp_path: Path
):
    old = tmp_path / "old-run"
    shutil.copytree(trained_run, old, ignore=shutil.ignore_patterns("last.pt", "snapshots"))
    saved = json.loads(RunDir(old).config.read_text(encoding="utf-8"))
    for key in ("directions", "direction_sampling"):
        del saved["config"]["data"][key]
    RunDir(old).config.write_text(json.dumps(saved), encoding="utf-8")
    sentences = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    before = Translator.from_run(trained_run, device="cpu").translate(sentences, beam_size=3)
    after = Translator.from_run(old, device="cpu").translate(sentences, beam_size=3)
    assert [r.nbest for r in after] == [r.nbest for r in before]


def test_translate_command_translates_toward_to_and_warns_on_request(
    trained_multilingual_run: Path,
):
    args = ["translate", "--checkpoint", str(trained_multilingual_run), "--beam", "1"]
    done = run_cli(*args, "--to", "fr", "--check-source", stdin=f"{FRENCH}\nEin Hund.\n")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2
    assert "line 1: the input looks like French" in done.stderr
    assert "line 2" not in done.stderr
    refused = run_cli(*args, "--to", "it", stdin="Ein Hund.\n")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: the model was not trained to translate into 'it'")


def test_evaluate_scores_one_direction_into_its_own_report(
    trained_multilingual_run: Path, multi30k_dir: Path, tmp_path: Path
):
    # 12 lines of test_2016_flickr, French and Czech: the whole set would take minutes here.
    french = read_lines(multi30k_dir / "test_2016_flickr.fr.gz")[:12]
    czech = read_lines(multi30k_dir / "test_2016_flickr.cs.gz")[:12]
    (tmp_path / "test.fr").write_text("\n".join(french) + "\n", encoding="utf-8")
    (tmp_path / "test.cs").write_text("\n".join(czech) + "\n", encoding="utf-8")
    done = run_cli(
        "evaluate",
        "--checkpoint", str(trained_multilingual_run),
        "--src-lang", "fr",
        "--to", "cs",
        "--src", str(tmp_path / "test.fr"),
        "--ref", str(tmp_path / "test.cs"),
        "--beam", "1",
        "--bootstrap", "10",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The run's report folder for this direction, beside any other direction's.
    report = ReportDir(RunDir(trained_multilingual_run).report("custom.fr-cs").root)
    data = json.loads(report.json.read_text(encoding="utf-8"))
    assert data["model"]["language_pair"] == "fr-cs"
    expected = Translator.from_run(trained_multilingual_run, device="cpu").translate(
        french, beam_size=1, target_lang="cs"
    )
    assert read_lines(report.hypotheses) == [t.text for t in expected]


def test_help_says_what_to_and_src_lang_mean():
    done = run_cli("translate", "--help")
    text = " ".join(done.stdout.split())
    assert "--to LANG" in text and "target language of a multilingual model" in text


def test_an_ensemble_needs_the_same_directions(trained_multilingual_run: Path, tmp_path: Path):
    fewer = tmp_path / "fewer-directions"
    shutil.copytree(trained_multilingual_run, fewer, ignore=shutil.ignore_patterns("snapshots"))
    saved = json.loads(RunDir(fewer).config.read_text(encoding="utf-8"))
    saved["config"]["data"]["directions"] = "fr-cs,cs-fr"
    RunDir(fewer).config.write_text(json.dumps(saved), encoding="utf-8")
    with pytest.raises(ValueError, match="different language pairs"):
        Translator.from_runs([trained_multilingual_run, fewer], device="cpu")


def test_ship_tunes_on_every_direction_and_cards_each_one_beside_the_bilingual_model(
    trained_multilingual_run: Path, trained_run: Path, tmp_path: Path, monkeypatch
):
    from seq2seq import ship as shipping
    from seq2seq.config import ShipConfig
    from seq2seq.download import language_pair_name
    from seq2seq.metrics import score_corpus
    from seq2seq.multilingual import load_validation

    shelf = tmp_path / "checkpoints"
    multi, bilingual = shelf / "multi", shelf / "tiny-de-en"
    shutil.copytree(trained_multilingual_run, multi)
    shutil.copytree(trained_run, bilingual)
    real_load_split = shipping.load_split
    monkeypatch.setattr(
        shipping, "load_split", lambda data, split: real_load_split(data, split)[:6]
    )
    options = ShipConfig(
        beams=(1, 2), length_penalties=(1.0,), test_sets=("test_2016_flickr",), n_bootstrap=20
    )
    shipping.ship(bilingual, options)

    # Greedy validation, computed here direction by direction: the mean is what ship scores.
    translator = Translator.from_run(multi, device="cpu")
    cfg, _ = checkpoint.load_config(multi)
    tagged, directions = load_validation(cfg.data)
    per_direction = []
    for direction in TWELVE:
        src, tgt = direction.split("-")
        rows = [pair for pair, name in zip(tagged, directions, strict=True) if name == direction]
        sources = [text.split(" ", 1)[1] for text, _ in rows]  # untagged
        hypotheses = [
            t.text
            for t in translator.translate(sources, beam_size=1, target_lang=tgt, source_lang=src)
        ]
        per_direction.append(
            score_corpus(hypotheses, [ref for _, ref in rows], n_bootstrap=0)["bleu"].score
        )
    record = shipping.ship(multi, options)
    greedy = next(t for t in record.tuning if t.beam == 1)
    assert greedy.valid_bleu == pytest.approx(sum(per_direction) / 12)
    assert set(record.tests) == {f"test_2016_flickr.{d}" for d in TWELVE}
    assert RunDir(multi).report("test_2016_flickr.cs-fr").json.is_file()

    card = RunDir(multi).model_card.read_text(encoding="utf-8")
    assert "# multi: 12 directions between English, German, French, Czech" in card
    rows = {line.split(" | ")[1]: line for line in card.splitlines() if line.startswith("| test_")}
    assert set(rows) == {language_pair_name(*d.split("-")) for d in TWELVE}
    shipped_de_en = list(
        json.loads(RunDir(bilingual).ship_record.read_text())["tests"]["test_2016_flickr"].values()
    )[-1]
    compared = record.bilingual["test_2016_flickr.de-en"]
    multi_de_en = list(record.tests["test_2016_flickr.de-en"].values())[-1]  # as shipped
    assert (compared.model, compared.bleu) == ("tiny-de-en", shipped_de_en)
    assert compared.gain == pytest.approx(multi_de_en - shipped_de_en)
    assert compared.low <= compared.gain <= compared.high
    info = json.loads(RunDir(bilingual).config.read_text(encoding="utf-8"))["info"]
    assert compared.core_minutes == pytest.approx(info["train_seconds"] / 60)  # one thread
    assert rows["German → English"].endswith(
        f"| {shipped_de_en:.2f} (tiny-de-en, {compared.core_minutes:,.0f} core-minutes) | "
        f"{compared.gain:+.2f} [{compared.low:+.1f}, {compared.high:+.1f}] |"
    )
    assert set(record.bilingual) == {"test_2016_flickr.de-en"}
    assert rows["French → Czech"].endswith("|  |  |")  # no bilingual model for it
    assert "Beside published single RNNs" not in card
    multi_info = json.loads(RunDir(multi).config.read_text(encoding="utf-8"))["info"]
    minutes = multi_info["train_seconds"] / 60  # one thread
    assert (
        f"trained for {minutes:,.0f} core-minutes for all its directions together, "
        f"{minutes / 12:,.0f} per direction scored." in card
    )
