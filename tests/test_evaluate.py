"""seq2seq.evaluate around the report: reading a test set, where a report goes by default, and
the summary `seq2seq evaluate` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.corpus import read_lines
from seq2seq.evaluate import (
    CUSTOM_TEST_SET,
    default_report_dir,
    read_test_files,
    read_test_set,
    summary_lines,
)
from seq2seq.rundir import ReportDir, RunDir


def test_test_files_are_read_line_aligned_and_mismatches_name_both(tmp_path):
    src, ref = tmp_path / "test.de", tmp_path / "test.en"
    src.write_text("Ein Hund.\nZwei Katzen.\n", encoding="utf-8")
    ref.write_text("A dog.\nTwo cats.\n", encoding="utf-8")
    assert read_test_files(src, ref) == (["Ein Hund.", "Zwei Katzen."], ["A dog.", "Two cats."])
    ref.write_text("A dog.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{src} has 2 lines but {ref} has 1"):
        read_test_files(src, ref)


def test_a_multi30k_test_set_is_read_in_the_runs_direction(multi30k_dir, tmp_path):
    german = read_lines(multi30k_dir / "test_2016_flickr.de.gz")
    english = read_lines(multi30k_dir / "test_2016_flickr.en.gz")
    sources, references = read_test_set(
        ("en", "de"), "test_2016_flickr", tmp_path, mirror=str(multi30k_dir)
    )
    assert (sources, references) == (english, german)
    assert (tmp_path / "multi30k" / "test_2016_flickr.en.gz").is_file()  # cached as prepare does


def test_reports_go_to_the_runs_folder_for_the_test_set(tmp_path):
    run = RunDir(tmp_path / "run")
    assert default_report_dir(run.root, "test_2017_flickr") == run.report("test_2017_flickr").root
    assert default_report_dir(str(run.root), None) == run.report(CUSTOM_TEST_SET).root


def test_summary_names_the_report_each_systems_scores_and_the_primary_signature():
    def system(name: str, bleu: float, chrf: float) -> dict[str, object]:
        scores = {"bleu": {"score": bleu, "signature": f"sig-{name}"}, "chrf": {"score": chrf}}
        return {"name": name, "scores": scores}

    report = {"systems": [system("greedy", 30.123, 55.0), system("beam-5", 31.5, 56.789)]}
    assert summary_lines(report, Path("out")) == [
        f"report written to {ReportDir(Path('out')).markdown}",
        "greedy: BLEU 30.12 chrF 55.00",
        "beam-5: BLEU 31.50 chrF 56.79",
        "sig-beam-5",
    ]
