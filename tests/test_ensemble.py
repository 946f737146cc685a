"""Ensembles: one model, or a model with itself, decodes as that model; a step is the
renormalised mean of the members' log-probabilities; the batched ensemble beam equals a
one-sentence reference; members with different vocabularies are refused. And runs decoded as one:
`Translator.from_runs`, an ensemble folder (ensemble.json), int8, `seq2seq translate/evaluate`
with several --checkpoint flags, and the demo's model list."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from test_search import batch, load_reference
from test_train import reverse_task, train_on_task

from seq2seq import checkpoint
from seq2seq.cli import format_translations, main
from seq2seq.config import DecodeConfig, ModelConfig
from seq2seq.corpus import read_lines
from seq2seq.ensemble import Ensemble
from seq2seq.model import Seq2Seq
from seq2seq.rundir import ReportDir, RunDir
from seq2seq.search import Hypothesis, beam_search, greedy_search
from seq2seq.tokenizer import Tokenizer
from seq2seq.translate import Translation, Translator

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

SOURCES = reverse_task(10, 2, 9, seed=21).src
CFG = DecodeConfig(beam_size=4, nbest=3, length_penalty=1.0)


@pytest.fixture(scope="module")
def members() -> list[Seq2Seq]:
    """Two reversers trained briefly on different data: close, but not the same model."""
    return [train_on_task("gru", "bahdanau", reverse_task(800, 2, 9, seed=s), 60) for s in (1, 2)]


def assert_same_hypotheses(got: list[list[Hypothesis]], expected: list[list[Hypothesis]]) -> None:
    for g, e in zip(got, expected, strict=True):
        assert [h.token_ids for h in g] == [h.token_ids for h in e]
        assert [h.score for h in g] == pytest.approx([h.score for h in e], abs=1e-5)


@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_an_ensemble_of_one_or_of_a_model_with_itself_decodes_as_the_model(members, search):
    model, src = members[0], batch(*SOURCES)
    alone = search(model, *src, CFG)
    assert_same_hypotheses(search(Ensemble([model]), *src, CFG), alone)
    assert_same_hypotheses(search(Ensemble([model, model]), *src, CFG), alone)


def test_a_step_is_the_renormalised_mean_of_the_members_log_probs(members):
    ensemble = Ensemble(members).eval()
    src_ids, src_lengths = batch(*SOURCES)
    prev = torch.full((len(SOURCES),), 2)
    with torch.no_grad():
        enc = ensemble.encode(src_ids, src_lengths)
        log_probs, _, attention = ensemble.decode_step(prev, ensemble.initial_state(enc), enc)
        steps = []
        for model in members:
            e = model.encode(src_ids, src_lengths)
            steps.append(model.decode_step(prev, model.initial_state(e), e))
    expected = torch.stack([s[0] for s in steps]).mean(0).log_softmax(-1)
    torch.testing.assert_close(log_probs, expected)
    torch.testing.assert_close(attention, (steps[0][2] + steps[1][2]) / 2)
    assert not torch.allclose(steps[0][0], steps[1][0], atol=1e-3)  # the members differ
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(len(SOURCES)))


def test_the_batched_ensemble_beam_equals_the_one_sentence_reference(members):
    reference = load_reference().reference_beam_search
    ensemble = Ensemble(members)
    batched = beam_search(ensemble, *batch(*SOURCES), CFG)
    for ids, got in zip(SOURCES, batched, strict=True):
        expected = reference(ensemble, torch.tensor([ids]), len(ids), CFG)
        assert_same_hypotheses([got], [expected])


def test_members_with_another_vocabulary_are_refused(members):
    other = Seq2Seq(ModelConfig(embed_size=8, hidden_size=16, src_vocab_size=30, tgt_vocab_size=30))
    with pytest.raises(ValueError, match="share one vocabulary"):
        Ensemble([members[0], other])
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])


# --- runs decoded as one: Translator.from_runs, ensemble folders, the CLI and the demo ----------

GERMAN = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau singt.", ""]


def copy_run(run: Path, dest: Path) -> Path:
    """What translation loads of a run (config, best weights, SentencePiece model), at ``dest``."""
    source, target = RunDir(run), RunDir(dest)
    dest.mkdir(parents=True)
    for name in ("config", "weights", "joint_tokenizer"):
        shutil.copyfile(getattr(source, name), getattr(target, name))
    return dest


def perturb_weights(run: Path, scale: float, seed: int) -> None:
    """Add noise to every weight of ``run``: another model with the same tokenizer."""
    model, _ = checkpoint.load_model(run)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    checkpoint.save_weights(model, RunDir(run).weights)


@pytest.fixture(scope="module")
def perturbed_run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained run with noise on its weights and decoding defaults of its own."""
    run = copy_run(trained_run, tmp_path_factory.mktemp("perturbed") / "tiny-de-en-noisy")
    perturb_weights(run, 0.02, seed=3)
    cfg, info = checkpoint.load_config(run)
    decode = dataclasses.replace(cfg.decode, beam_size=cfg.decode.beam_size + 2, length_penalty=0.3)
    checkpoint.save_config(run, dataclasses.replace(cfg, decode=decode), info)
    return run


@pytest.fixture(scope="module")
def shelf(trained_run: Path, perturbed_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoints folder holding one ensemble folder of the two runs, kept inside it."""
    folder = tmp_path_factory.mktemp("shelf") / "tiny-ensemble"
    members = [
        copy_run(run, RunDir(folder).member(name))
        for run, name in ((trained_run, "base"), (perturbed_run, "noisy"))
    ]
    checkpoint.save_ensemble(folder, members)
    return folder.parent


def same_translations(got: list[Translation], expected: list[Translation]) -> None:
    assert [t.text for t in got] == [t.text for t in expected]
    for g, e in zip(got, expected, strict=True):
        assert [s for _, s in g.nbest] == pytest.approx([s for _, s in e.nbest], abs=1e-4)


def test_from_runs_of_one_run_or_of_a_run_with_itself_translates_as_the_run(trained_run):
    alone = Translator.from_run(trained_run, device="cpu")
    expected = alone.translate(GERMAN, beam_size=3, nbest=2)
    one = Translator.from_runs([trained_run], device="cpu")
    assert one.facts().members == (trained_run,) and "ensemble_members" not in one.describe()
    same_translations(one.translate(GERMAN, beam_size=3, nbest=2), expected)

    twice = Translator.from_runs([trained_run, str(trained_run)], device="cpu")
    assert isinstance(twice.model, Ensemble) and len(twice.model.members) == 2
    same_translations(twice.translate(GERMAN, beam_size=3, nbest=2), expected)
    same_translations(twice.translate(GERMAN, beam_size=1), alone.translate(GERMAN, beam_size=1))
    # Teacher forcing averages as decoding does: the perplexity of a model with itself is its own.
    refs = ["A man rides a bike.", "Two dogs play in the snow.", "A woman sings.", ""]
    sources, references = GERMAN[:3], refs[:3]
    assert twice.perplexity(sources, references) == pytest.approx(
        alone.perplexity(sources, references), rel=1e-5
    )
    assert twice.facts().parameters == 2 * alone.facts().parameters


def test_from_runs_loads_every_run_and_takes_its_defaults_from_the_first(
    trained_run, perturbed_run
):
    translator = Translator.from_runs([perturbed_run, trained_run], device="cpu")
    other_way = Translator.from_runs([trained_run, perturbed_run], device="cpu")
    for first, ensemble in ((perturbed_run, translator), (trained_run, other_way)):
        assert ensemble.decode_config() == checkpoint.load_config(first)[0].decode
        assert ensemble.language_pair == ("de", "en")
    assert translator.decode_config() != other_way.decode_config()
    for member, run in zip(translator.model.members, (perturbed_run, trained_run), strict=True):
        expected, _ = checkpoint.load_model(run)
        for got, want in zip(member.parameters(), expected.parameters(), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert translator.facts().members == (perturbed_run, trained_run)
    assert translator.describe()["ensemble_members"] == [str(perturbed_run), str(trained_run)]
    assert translator.facts().checkpoint is None  # no one folder holds it
    assert all(r.text for r in translator.translate(GERMAN[:3], beam_size=3))


def test_runs_with_another_sentencepiece_model_or_language_pair_are_refused(
    trained_run, multi30k_dir, tmp_path
):
    # A SentencePiece model of the same type and size, trained on other sentences: the run still
    # loads on its own, but its ids mean other pieces.
    other = copy_run(trained_run, tmp_path / "other-spm")
    german, english = (
        read_lines(multi30k_dir / f"test_2016_flickr.{lang}.gz") for lang in ("de", "en")
    )
    cfg, _ = checkpoint.load_config(trained_run)
    Tokenizer.train(german, english, cfg.subword).save(other)
    assert (
        RunDir(other).joint_tokenizer.read_bytes()
        != RunDir(trained_run).joint_tokenizer.read_bytes()
    )
    assert Translator.from_run(other, device="cpu").tokenizer.src_vocab_size == 1000
    with pytest.raises(ValueError, match="do not share one SentencePiece model") as err:
        Translator.from_runs([trained_run, other], device="cpu")
    assert str(trained_run) in str(err.value) and str(other) in str(err.value)

    reversed_pair = copy_run(trained_run, tmp_path / "en-de")
    cfg, info = checkpoint.load_config(reversed_pair)
    data = dataclasses.replace(cfg.data, src_lang="en", tgt_lang="de")
    checkpoint.save_config(reversed_pair, dataclasses.replace(cfg, data=data), info)
    with pytest.raises(ValueError, match="different language pairs") as err:
        Translator.from_runs([trained_run, reversed_pair], device="cpu")
    assert str(reversed_pair) in str(err.value)
    with pytest.raises(ValueError, match="at least one"):
        Translator.from_runs([], device="cpu")


def test_an_ensemble_folder_loads_as_its_members_and_moves_with_them(shelf, tmp_path):
    folder = shelf / "tiny-ensemble"
    listed = json.loads(RunDir(folder).ensemble.read_text())
    assert listed["members"] == ["members/base", "members/noisy"]  # relative: self-contained
    translator = Translator.from_run(folder, device="cpu")
    members = (RunDir(folder).member("base"), RunDir(folder).member("noisy"))
    assert translator.facts().members == members and translator.facts().checkpoint == folder
    expected = Translator.from_runs(members, device="cpu").translate(GERMAN, beam_size=3)
    same_translations(translator.translate(GERMAN, beam_size=3), expected)

    # A copy elsewhere loads its own members, not the original's.
    moved = Translator.from_run(shutil.copytree(folder, tmp_path / "elsewhere"), device="cpu")
    assert moved.facts().members == tuple(
        RunDir(tmp_path / "elsewhere").member(name) for name in ("base", "noisy")
    )
    same_translations(moved.translate(GERMAN, beam_size=3), expected)


def test_a_bad_ensemble_folder_is_a_clear_error(trained_run, shelf, tmp_path):
    folder = tmp_path / "bad"
    checkpoint.save_ensemble(folder, [trained_run, tmp_path / "gone"])
    with pytest.raises(FileNotFoundError, match="lists the member '../gone'"):
        Translator.from_run(folder, device="cpu")
    for text, problem in (
        ("{not json", "not valid JSON"),
        ('{"members": ["a"]}', "not a seq2seq ensemble"),
        ('{"format": "seq2seq-ensemble/1", "members": []}', "non-empty list"),
    ):
        RunDir(folder).ensemble.write_text(text)
        with pytest.raises(ValueError, match=problem):
            Translator.from_run(folder, device="cpu")
    # An ensemble is not a member of another: its members are listed instead.
    with pytest.raises(ValueError, match="is an ensemble"):
        Translator.from_runs([trained_run, shelf / "tiny-ensemble"], device="cpu")


def test_int8_quantizes_every_member(trained_run, perturbed_run):
    int8 = Translator.from_runs([trained_run, perturbed_run], device="cpu", quantize=True)
    assert int8.quantized and isinstance(int8.model, Ensemble)
    for member in int8.model.members:
        kinds = {type(m) for m in member.modules()}
        assert not kinds & {torch.nn.Linear, torch.nn.GRU}, kinds  # all replaced by int8 ones
    assert all(r.text for r in int8.translate(GERMAN[:3], beam_size=3))
    single = Translator.from_run(trained_run, device="cpu", quantize=True)
    itself = Translator.from_runs([trained_run, trained_run], device="cpu", quantize=True)
    same_translations(itself.translate(GERMAN, beam_size=3), single.translate(GERMAN, beam_size=3))


def test_cli_translate_with_two_checkpoints_decodes_the_ensemble(
    trained_run, perturbed_run, tmp_path
):
    source, output = tmp_path / "in.de", tmp_path / "out.en"
    source.write_text("\n".join(GERMAN) + "\n", encoding="utf-8")
    runs = ["--checkpoint", str(trained_run), "--checkpoint", str(perturbed_run)]
    main(["translate", *runs, "--input", str(source), "--output", str(output), "--beam", "3",
          "--nbest", "2", "--device", "cpu"])  # fmt: skip
    written = output.read_text(encoding="utf-8")

    def nbest_lines(translator: Translator) -> str:
        return format_translations(translator.translate(GERMAN, beam_size=3, nbest=2), 2)

    assert written == nbest_lines(Translator.from_runs([trained_run, perturbed_run], device="cpu"))
    # Scores tell the ensemble from its first member even where their texts agree.
    assert written != nbest_lines(Translator.from_run(trained_run, device="cpu"))


def test_cli_evaluate_with_two_checkpoints_names_every_member(
    trained_run, perturbed_run, shelf, multi30k_dir, tmp_path
):
    src, ref = tmp_path / "test.de", tmp_path / "test.en"
    for path, lang in ((src, "de"), (ref, "en")):
        lines = read_lines(multi30k_dir / f"test_2016_flickr.{lang}.gz")[:12]
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    runs = ["--checkpoint", str(trained_run), "--checkpoint", str(perturbed_run)]
    files = ["--src", str(src), "--ref", str(ref), "--bootstrap", "20", "--device", "cpu"]
    with pytest.raises(SystemExit, match="give --report-dir"):
        main(["evaluate", *runs, *files])
    report_dir = tmp_path / "report"
    main(["evaluate", *runs, *files, "--report-dir", str(report_dir), "--beam", "2"])
    report = json.loads(ReportDir(report_dir).json.read_text())
    assert report["model"]["ensemble_members"] == [str(trained_run), str(perturbed_run)]
    markdown = ReportDir(report_dir).markdown.read_text()
    assert str(trained_run) in markdown and str(perturbed_run) in markdown
    ensemble = Translator.from_runs([trained_run, perturbed_run], device="cpu")
    sources = read_lines(src)
    expected = [t.text for t in ensemble.translate(sources, beam_size=2)]
    assert ReportDir(report_dir).hypotheses.read_text().split("\n")[:-1] == expected

    # An ensemble folder is one --checkpoint, and its report goes into the folder.
    folder = shelf / "tiny-ensemble"
    main(["evaluate", "--checkpoint", str(folder), *files, "--beam", "2"])
    written = json.loads(RunDir(folder).report("custom").json.read_text())
    assert written["model"]["ensemble_members"] == [
        str(RunDir(folder).member(name)) for name in ("base", "noisy")
    ]


def test_the_demo_shows_an_ensemble_folder_as_one_model(shelf, trained_run):
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import app

    translators = app.load_translators(shelf)
    assert list(translators) == ["tiny-ensemble"]  # its members are not models of their own
    ensemble = translators["tiny-ensemble"]
    assert isinstance(ensemble.model, Ensemble) and len(ensemble.model.members) == 2
    facts = app.facts_table(ensemble)
    assert "| Ensemble | 2 models (base, noisy)" in facts
    assert "Ensemble" not in app.facts_table(Translator.from_run(trained_run, device="cpu"))
    output, *_ = app.run_translation(
        translators, "Ein Hund läuft.", "tiny-ensemble", "beam", 3, 1.0
    )
    assert output
