"""RunDir and ReportDir name what the run-directory docs say, and RunInfo reads what runs record.

That a trained run holds exactly these files is tested in test_train.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from seq2seq import rundir
from seq2seq.rundir import ReportDir, RunDir, RunInfo

ROOT = Path("checkpoints/some-run")


def documented_layout() -> list[str]:
    """The first column of the docstring's layout tables: paths relative to the run directory
    (an evaluation report's files under ``eval/<split>/``), placeholders in angle brackets."""
    doc = rundir.__doc__ or ""
    paths, prefix = [], ""
    for line in doc.splitlines():
        if line.startswith("Layout of an evaluation report"):
            prefix = "eval/<split>/"
        match = re.match(r"^    (\S+)\s{2,}\S", line)  # a name, then its description
        if match:
            paths.append(prefix + match.group(1))
    return paths


def every_named_path() -> list[str]:
    """Every path RunDir and ReportDir name, relative to the run, with sample arguments."""
    run = RunDir(ROOT)
    report = run.report("test_2016_flickr")
    paths = [
        run.config,
        run.weights,
        run.state,
        run.joint_tokenizer,
        run.src_tokenizer,
        run.tgt_tokenizer,
        run.log,
        run.learning_curve,
        run.clean_stats,
        run.lock,
        run.model_card,
        run.ship_record,
        run.fp32_weights,
        run.snapshot(1200),
        run.ensemble,
        run.member("a"),
        report.root,
        report.json,
        report.markdown,
        report.hypotheses,
        report.greedy_hypotheses,
        report.attention(2),
        report.bleu_by_length,
    ]
    folders = (report.root, run.member("a"))
    return [run.relative(path) + ("/" if path in folders else "") for path in paths]


def matches(path: str, documented: str) -> bool:
    pattern = "[^/]+".join(re.escape(part) for part in re.split(r"<[^>]+>", documented))
    return re.fullmatch(pattern, path) is not None


def test_the_docstring_lists_every_path_run_dir_names_and_nothing_else() -> None:
    documented = documented_layout()
    assert len(documented) == len(set(documented)), documented
    named = every_named_path()
    for path in named:
        assert [d for d in documented if matches(path, d)], f"{path} is not documented"
    for entry in documented:
        assert [p for p in named if matches(p, entry)], f"{entry} is documented but not named"


def test_every_name_constant_is_in_a_named_path() -> None:
    """So that a file added to RunDir without its path here (and in the docs) fails."""
    parts = {part for path in every_named_path() for part in path.strip("/").split("/")}
    for cls in (RunDir, ReportDir):
        for constant, name in vars(cls).items():
            if constant.isupper() and isinstance(name, str):
                template = re.sub(r"\{[^}]*\}", "<field>", name)
                assert [p for p in parts if matches(p, template)], f"{cls.__name__}.{constant}"


def test_the_default_report_folder_is_the_split_under_eval() -> None:
    report = RunDir(ROOT).report("test_2017_mscoco")
    assert report == ReportDir(ROOT / "eval" / "test_2017_mscoco")
    assert report.attention(3).name == "attention_3.png"


def test_snapshot_names_sort_by_step() -> None:
    run = RunDir(ROOT)
    steps = [900, 12000, 1500, 100]
    by_name = sorted(run.snapshot(step) for step in steps)
    assert by_name == [run.snapshot(step) for step in sorted(steps)]
    assert all(path.parent == run.snapshot_dir for path in by_name)


def test_has_model_needs_config_and_weights(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.config.write_text("{}")
    assert not run.has_model()  # still training: no best weights yet
    run.weights.write_bytes(b"")
    assert run.has_model()
    run.config.unlink()
    assert not run.has_model()


def test_run_info_reads_what_a_run_recorded_and_tolerates_older_runs() -> None:
    recorded = {"step": 3132, "best_step": 2436, "best_valid_bleu": 36.76, "stopped": ""}
    info = RunInfo.from_dict({**recorded, "a_fact_from_a_newer_version": 1})
    assert (info.step, info.best_step, info.best_valid_bleu) == (3132, 2436, 36.76)
    assert info.stopped == ""
    assert info.train_pairs is None and info.torch is None  # an older run did not record them
    assert {k: v for k, v in info.to_dict().items() if v is not None} == recorded
