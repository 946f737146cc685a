"""`seq2seq evaluate` on a short real run: a report with every section and a signature, whose
scores are sacreBLEU's own on the outputs it writes, and whose significance test tells a clearly
worse system from a copy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sacrebleu import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from seq2seq.cli import main
from seq2seq.corpus import read_lines
from seq2seq.evaluate import evaluate_translator
from seq2seq.report_markdown import SIGNIFICANCE_LEVEL
from seq2seq.rundir import ReportDir
from seq2seq.translate import Translator

NUM_SENTENCES = 60
BEAM = 3


def evaluate_args(run, src, ref, report_dir, *extra: str) -> list[str]:
    """`seq2seq evaluate` of a run on files, into report_dir, with 100 bootstrap resamples."""
    return [
        "evaluate",
        "--checkpoint", str(run),
        "--src", str(src),
        "--ref", str(ref),
        "--report-dir", str(report_dir),
        "--bootstrap", "100",
        *extra,
    ]  # fmt: skip


def evaluate(run, src, ref, report_dir, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*evaluate_args(run, src, ref, report_dir, *extra))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seq2seq", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def test_slice(multi30k_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first sentences of Multi30k's test_2016_flickr de-en, as the files evaluate reads."""
    folder = tmp_path_factory.mktemp("test_slice")
    files = (folder / "test.de", folder / "test.en")
    for path, name in zip(files, ("test_2016_flickr.de.gz", "test_2016_flickr.en.gz"), strict=True):
        lines = read_lines(multi30k_dir / name)[:NUM_SENTENCES]
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def evaluated(
    trained_run: Path, test_slice: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The report directory of `seq2seq evaluate --beam 3` on the slice, run in this process."""
    report_dir = tmp_path_factory.mktemp("evaluated")
    src, ref = test_slice
    main(evaluate_args(trained_run, src, ref, report_dir, "--beam", str(BEAM), "--device", "cpu"))
    return report_dir


def test_evaluate_writes_a_full_report_and_compares(trained_run, test_slice, tmp_path):
    src, ref = test_slice
    first = tmp_path / "first"
    out = evaluate(trained_run, src, ref, first, "--beam", "3")
    assert out.returncode == 0, out.stderr
    assert "nrefs:1|" in out.stdout and "|case:mixed|" in out.stdout  # the signature
    report = json.loads((first / "report.json").read_text())
    assert [s["name"] for s in report["systems"]] == ["greedy", "beam-3"]
    for system in report["systems"]:
        assert set(system["scores"]) == {"bleu", "chrf", "ter"}
        assert system["scores"]["bleu"]["ci_low"] <= system["scores"]["bleu"]["score"]
        assert system["speed"] and system["bleu_by_length"]
    assert report["perplexity"] > 1
    assert report["model"]["parameters"] > 0
    markdown = (first / "report.md").read_text()
    assert "attention_1.png" in markdown and (first / "attention_1.png").is_file()
    assert len((first / "hypotheses.txt").read_text().splitlines()) == NUM_SENTENCES

    second = tmp_path / "second"
    compare = ("--compare", str(first / "hypotheses.txt"))
    out = evaluate(trained_run, src, ref, second, "--beam", "1", *compare)
    assert out.returncode == 0, out.stderr
    assert json.loads((second / "report.json").read_text())["significance"]


def without_bootstrap(signature: str) -> str:
    """A score's signature less what its bootstrap interval added (bs:N, seed:S)."""
    return "|".join(f for f in signature.split("|") if not f.startswith(("bs:", "seed:")))


def sacrebleu_metrics() -> dict[str, Metric]:
    # sacreBLEU's TER ignores case unless told; the report's signature says case:mixed.
    return {"bleu": BLEU(), "chrf": CHRF(), "ter": TER(case_sensitive=True)}


def test_report_scores_are_sacrebleus_on_the_written_outputs(evaluated, test_slice):
    report = json.loads((evaluated / "report.json").read_text(encoding="utf-8"))
    refs = read_lines(test_slice[1])
    files = {"greedy": ReportDir.GREEDY_HYPOTHESES_FILE, f"beam-{BEAM}": ReportDir.HYPOTHESES_FILE}
    assert [s["name"] for s in report["systems"]] == list(files)
    assert report["primary_system"] == f"beam-{BEAM}"
    outputs = {}
    for system in report["systems"]:
        hyps = outputs[system["name"]] = read_lines(evaluated / files[system["name"]])
        assert len(hyps) == len(refs) == report["num_sentences"] == NUM_SENTENCES
        for key, metric in sacrebleu_metrics().items():
            expected = metric.corpus_score(hyps, [refs])
            reported = system["scores"][key]
            assert reported["score"] == pytest.approx(expected.score, abs=1e-9), (system, key)
            assert without_bootstrap(reported["signature"]) == str(metric.get_signature())
    # Different outputs, so scores filed under the other system could not pass.
    assert outputs["greedy"] != outputs[f"beam-{BEAM}"]


def test_output_files_hold_what_the_model_translates(trained_run, evaluated, test_slice):
    translator = Translator.from_run(trained_run, device="cpu")
    sources = read_lines(test_slice[0])
    for beam_size, name in (
        (1, ReportDir.GREEDY_HYPOTHESES_FILE),
        (BEAM, ReportDir.HYPOTHESES_FILE),
    ):
        expected = [t.text for t in translator.translate(sources, beam_size=beam_size)]
        assert read_lines(evaluated / name) == expected, name


def first_half(text: str) -> str:
    words = text.split()
    return " ".join(words[: len(words) // 2])


# What the beam output is compared against: made from it, whether it differs from it, whether
# the beam output is significantly better.
BASELINES: dict[str, tuple[Callable[[list[str]], list[str]], bool, bool]] = {
    "every output cut in half": (lambda hyps: [first_half(h) for h in hyps], True, True),
    "itself": (lambda hyps: list(hyps), False, False),
    "one output cut in half": (lambda hyps: [first_half(hyps[0]), *hyps[1:]], True, False),
}


@pytest.fixture(scope="module")
def translator(trained_run: Path) -> Translator:
    return Translator.from_run(trained_run, device="cpu")


@pytest.mark.parametrize("baseline", list(BASELINES))
def test_significance_only_against_a_clearly_worse_output(
    translator, evaluated, test_slice, tmp_path, baseline
):
    make, differs, significant = BASELINES[baseline]
    beam = read_lines(ReportDir(evaluated).hypotheses)
    compared = make(beam)
    assert (compared != beam) == differs
    sources, refs = (read_lines(path) for path in test_slice)
    report = evaluate_translator(
        translator,
        sources,
        refs,
        report_dir=tmp_path,
        beam_size=BEAM,
        compare_hyps=compared,
        compare_name=baseline,
        n_bootstrap=0,  # no intervals; the paired test still resamples 1000 times
        num_attention=0,
    )
    assert read_lines(ReportDir(tmp_path).hypotheses) == beam  # the system compared is the same
    significance = report["significance"]
    assert (significance["baseline"], significance["system"]) == (baseline, f"beam-{BEAM}")
    assert significance["test"] == "bs" and significance["n"] == 1000
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    section = markdown.split("## Significance\n", 1)[1].split("\n## ", 1)[0]
    assert f"beam-{BEAM} against {baseline}: paired bootstrap resampling" in section
    primary_scores = report["systems"][-1]["scores"]
    assert set(significance["metrics"]) == {"bleu", "chrf"}
    for key, metric in significance["metrics"].items():
        expected_baseline = sacrebleu_metrics()[key].corpus_score(compared, [refs]).score
        assert metric["baseline"] == pytest.approx(expected_baseline)
        assert metric["system"] == pytest.approx(primary_scores[key]["score"])
        p_value = metric["p_value"]
        if significant:
            assert metric["system"] > metric["baseline"] and p_value < SIGNIFICANCE_LEVEL, metric
        else:
            assert p_value >= SIGNIFICANCE_LEVEL, metric
        verdict = "yes" if significant else "no"
        row = (
            f"| {metric['name']} | {metric['baseline']:.2f} | {metric['system']:.2f} "
            f"| {p_value:.4f} | {verdict} |"
        )
        assert row in section.splitlines()


def test_evaluate_rejects_mismatched_files(trained_run, tmp_path):
    (tmp_path / "a").write_text("eins\nzwei\n")
    (tmp_path / "b").write_text("one\n")
    out = run_cli(
        "evaluate",
        "--checkpoint",
        str(trained_run),
        "--src",
        str(tmp_path / "a"),
        "--ref",
        str(tmp_path / "b"),
    )
    assert out.returncode != 0 and "has 2 lines" in out.stderr and "has 1" in out.stderr
