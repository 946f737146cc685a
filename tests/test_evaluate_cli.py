"""`seq2seq evaluate` on a short real run: a report with every section and a signature."""

from __future__ import annotations

import json
import subprocess
import sys

from seq2seq.corpus import read_lines


def evaluate(run, src, ref, report_dir, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "evaluate",
        "--checkpoint",
        str(run),
        "--src",
        str(src),
        "--ref",
        str(ref),
        "--report-dir",
        str(report_dir),
        "--bootstrap",
        "100",
        *extra,
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seq2seq", *args], capture_output=True, text=True, timeout=600
    )


def test_evaluate_writes_a_full_report_and_compares(trained_run, multi30k_dir, tmp_path):
    src, ref = tmp_path / "test.de", tmp_path / "test.en"
    src.write_text("\n".join(read_lines(multi30k_dir / "test_2016_flickr.de.gz")[:60]) + "\n")
    ref.write_text("\n".join(read_lines(multi30k_dir / "test_2016_flickr.en.gz")[:60]) + "\n")
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
    assert len((first / "hypotheses.txt").read_text().splitlines()) == 60

    second = tmp_path / "second"
    compare = ("--compare", str(first / "hypotheses.txt"))
    out = evaluate(trained_run, src, ref, second, "--beam", "1", *compare)
    assert out.returncode == 0, out.stderr
    assert json.loads((second / "report.json").read_text())["significance"]


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
