"""The study package: the whole study on a tiny budget, its resuming, its statistics and its
rules."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sacrebleu import BLEU, CHRF

from seq2seq import checkpoint
from seq2seq.config import RunConfig
from seq2seq.metrics import bootstrap, sentence_statistics
from study import claims, cli, evaluation, grid, seeds, training

SECTIONS = (
    "## Setup",
    "## Results",
    "## Learning curves",
    "## BLEU by source length",
    "## Gradient flow",
    "## Gradient norm during training",
    "## Conclusions",
)


def tiny_settings(root: Path, multi30k_dir: Path, **changes: Any) -> Any:
    values = {
        "out": root / "out",
        "report": root / "docs" / "study.md",
        "mirror": str(multi30k_dir),
        "data_dir": str(root / "data"),
        "steps": 3,
        "jobs": 1,
        "embed_size": 16,
        "hidden_size": 32,
        "vocab_size": 600,
        "train_pairs": 300,
        "valid_pairs": 20,
        "valid_bleu_pairs": 20,
        "test_pairs": 60,
        "grad_pairs": 20,
        "window": 12,
        "windows": 4,
        "bootstrap": 50,
    }
    return grid.Settings(**(values | changes))


@pytest.fixture(scope="module")
def tiny_study(multi30k_dir, tmp_path_factory) -> Any:
    """Every cell of the grid, three steps each, on a slice of Multi30k."""
    settings = tiny_settings(tmp_path_factory.mktemp("study"), multi30k_dir)
    cli.run_study(settings)
    return settings


def short_run(name: str, settings: Any) -> Any:
    """The run of cell ``name`` on Multi30k alone."""
    return grid.Run(grid.CELLS[name], settings.seed)


def run_files(settings: Any, name: str) -> Path:
    return settings.out / "runs" / name


def log_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in checkpoint.read_log(run_dir) if "tokens_per_s" in r]


@pytest.mark.slow
def test_study_writes_every_section_with_its_images(tiny_study):
    text = tiny_study.report.read_text(encoding="utf-8")
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(images) == 4
    for image in images:
        assert (tiny_study.report.parent / image).read_bytes()[:4] == b"\x89PNG"
    for cell in grid.GRID:
        assert f"| {cell.name} | {cell.cell} | {cell.attention} |" in text
        assert log_steps(run_files(tiny_study, cell.name)) == [1, 2, 3]
    verdicts = re.findall(r"^### \d+\. .*: (\w+)$", text, flags=re.MULTILINE)
    assert len(verdicts) == len(claims.CLAIMS) and set(verdicts) <= set(claims.VERDICTS)
    assert "A GRU has fewer parameters than an LSTM: confirmed" in text  # counted, not measured
    assert "**3 optimiser steps per model**" in text
    summary = json.loads((tiny_study.out / "study.json").read_text(encoding="utf-8"))
    assert set(summary["models"]) == set(grid.CELLS)


@pytest.mark.slow
def test_rerunning_skips_finished_runs_and_resumes_the_others(tiny_study):
    # 1. Everything finished: nothing trains again (two workers, as the real study runs).
    states = {c.name: (run_files(tiny_study, c.name) / "last.pt").stat() for c in grid.GRID}
    logs = {c.name: checkpoint.read_log(run_files(tiny_study, c.name)) for c in grid.GRID}
    machine_file = tiny_study.out / training.MACHINE_FILE
    machine_file.write_text("the machine it trained on\n", encoding="utf-8")
    cli.run_study(dataclasses.replace(tiny_study, jobs=2))
    for cell in grid.GRID:
        run_dir = run_files(tiny_study, cell.name)
        assert (run_dir / "last.pt").stat().st_mtime_ns == states[cell.name].st_mtime_ns
        assert checkpoint.read_log(run_dir) == logs[cell.name]
    # ... and the report names the machine the runs trained on, not the one rewriting it
    assert "Machine: the machine it trained on" in tiny_study.report.read_text(encoding="utf-8")

    # 2. A run killed after its last checkpoint is resumed, not trained from scratch.
    killed = run_files(tiny_study, "gru-none")
    cfg, info = checkpoint.load_config(killed)
    checkpoint.save_config(killed, cfg, {**info, "stopped": ""})
    assert training.run_state(
        killed, grid.run_config(short_run("gru-none", tiny_study), tiny_study)
    ) == ("interrupted")
    one = dataclasses.replace(tiny_study, cells=("gru-none",))
    cli.run_study(one)
    assert "the machine it trained on" not in machine_file.read_text(encoding="utf-8")
    assert checkpoint.read_log(killed)[:3] == logs["gru-none"][:3]
    assert checkpoint.load_config(killed)[1]["stopped"]

    # 3. A larger budget continues where the run stopped.
    cli.run_study(dataclasses.replace(one, steps=5))
    assert log_steps(killed) == [1, 2, 3, 4, 5]
    assert checkpoint.read_log(killed)[:3] == logs["gru-none"][:3]


@pytest.mark.slow
def test_run_state_tells_the_cases_apart(tiny_study, tmp_path):
    run = short_run("rnn-none", tiny_study)
    run_dir = run_files(tiny_study, run.name)
    cfg = grid.run_config(run, tiny_study)
    assert training.run_state(run_dir, cfg) == "finished"
    longer = grid.run_config(run, dataclasses.replace(tiny_study, steps=9))
    assert training.run_state(run_dir, longer) == "extend"
    assert training.run_state(tmp_path / "nothing", cfg) == "new"
    other = grid.run_config(short_run("lstm-none", tiny_study), tiny_study)
    with pytest.raises(ValueError, match="another model"):
        training.run_state(run_dir, other)
    # A float32 run is not resumed, extended or counted as finished in bfloat16.
    bf16 = grid.run_config(run, dataclasses.replace(tiny_study, cpu_bf16=True))
    assert bf16.train.cpu_bf16 and not cfg.train.cpu_bf16
    with pytest.raises(ValueError, match="precision"):
        training.run_state(run_dir, bf16)


def test_test_set_scores_carry_intervals_and_signatures():
    hyps = ["a dog runs on the grass .", "two men talk", "a red car", "~~~~"]
    refs = ["a dog is running on the grass .", "two men are talking", "the red car", "a cat"]
    scores = evaluation.score_test_set(hyps, refs, n=100)
    for key, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        score = scores[key]
        assert score["score"] == pytest.approx(metric.corpus_score(hyps, [refs]).score)
        assert score["ci_low"] <= score["score"] <= score["ci_high"]
        assert "nrefs:1" in score["signature"]
    degenerate = evaluation.score_test_set(["~~~~"] * 5, refs + ["x"], n=20)
    assert degenerate["chrf"]["score"] == 0.0


def test_bleu_gain_from_sentence_statistics():
    hyps = ["a dog runs on the grass .", "two men talk", "a red car"]
    worse = ["a dog", "men", "car"]
    refs = ["a dog is running on the grass .", "two men are talking", "the red car"]
    stats, worse_stats = (sentence_statistics(BLEU(), h, refs) for h in (hyps, worse))
    bleu = BLEU().corpus_score(hyps, [refs]).score
    assert claims.corpus_bleu(stats.sum(0)) == pytest.approx(bleu)
    expected = bleu - BLEU().corpus_score(worse, [refs]).score
    assert claims.gain(stats, worse_stats, np.arange(3)) == pytest.approx(expected)
    same = np.ones((5, 10), dtype=np.int64)
    no_gain = bootstrap(lambda g: claims.gain(same, same, g[0]), [np.arange(5)], n=20)
    assert no_gain is not None and (no_gain.value, no_gain.low, no_gain.high) == (0.0, 0.0, 0.0)


def test_training_speed_counts_only_clean_steps():
    records = [
        {"step": s, "epoch": 0 if s <= 6 else 1, "tokens": 100, "tokens_per_s": 100.0}
        for s in range(1, 9)
    ]
    records[3]["tokens_per_s"] = 10.0  # step 4 follows the validation at step 3: 10 s, left out
    records[5]["tokens_per_s"] = 20.0  # step 6 follows the checkpoint at step 5: left out
    records.insert(3, {"step": 3, "epoch": 0, "valid_bleu": 1.0, "valid_loss": 5.0})
    speed = evaluation.training_speed(records, checkpoint_every=5)
    assert speed == {"tokens_per_s": 100.0, "seconds_per_epoch": 6.0, "steps_per_epoch": 6}
    assert evaluation.training_speed(records[:2], 5)["seconds_per_epoch"] is None  # no epoch done


def test_training_speed_ignores_a_minority_of_slowed_steps():
    records = [
        {"step": s, "epoch": (s - 1) // 10, "tokens": 100, "tokens_per_s": 100.0}
        for s in range(1, 31)
    ]
    for record in records[5:12]:  # something else ran on the machine for a while
        record["tokens_per_s"] = 60.0
    speed = evaluation.training_speed(records, checkpoint_every=1000)
    assert speed["tokens_per_s"] == 100.0 and speed["seconds_per_epoch"] == 10.0


# --- The claim rules on constructed results -------------------------------------------------------
# A constructed test set on the edges of the study's length buckets: six short sentences (8 source
# words, the most a short one has), six of 16 words (the most that is not long) and six long ones
# (17). A system's output on each group is "g" (the reference: BLEU 100), "b" (as many words, none
# of them right: BLEU 0), "e" or "o" (the reference on even or odd rows only) or "m" (on the first
# four of six), written short-middle-long: "ggb" is right except on the long sentences. Unclear
# cases lean to one side with an interval across the threshold, so a rule that read the estimate
# instead of the interval's end would decide them.
GROUP_WORDS = (8, 16, 17)
GROUP_SIZE = 6
SOURCES = [" ".join(["Wort"] * n) for n in GROUP_WORDS for _ in range(GROUP_SIZE)]
REFERENCES = [
    " ".join(f"w{i}x{j}" for j in range(len(source.split()))) for i, source in enumerate(SOURCES)
]
# L, the loss gradient 6 steps back over the one at the end, is decay**6: 0.016, 0.38, 0.74, 0.94.
VANISH, FADE, KEEP, GROW = 0.5, 0.85, 0.95, 0.99
Cells = dict[str, dict[str, Any]]  # cell name -> keyword arguments of fake_result


def output_stats(pattern: str) -> np.ndarray:
    """BLEU statistics (N, 10) of an output that follows `pattern`, one letter per group."""
    bad = [" ".join(["zz"] * len(ref.split())) for ref in REFERENCES]
    right = {
        "g": lambda i: True,
        "b": lambda i: False,
        "e": lambda i: i % 2 == 0,
        "o": lambda i: i % 2 == 1,
        "m": lambda i: i % GROUP_SIZE < 4,
    }
    hyps = [
        REFERENCES[i] if right[pattern[i // GROUP_SIZE]](i) else bad[i]
        for i in range(len(REFERENCES))
    ]
    return sentence_statistics(BLEU(), hyps, REFERENCES)


def fake_result(
    name: str,
    *,
    out: str = "ggg",
    decay: float = 0.9,
    near: float = 1.0,
    median: float = 1.0,
    peak: float = 1.0,
    tokens_per_s: float = 100.0,
    parameters: int = 1000,
) -> Any:
    """A finished cell as the study reads it: a training log of 100 steps (gradient norm `median`
    but `peak` twice), a loss gradient `near` at the end and decay**d d steps back, and test
    output `out`."""
    gradients = {
        state: {
            "recurrence": [1.0] * 21,
            "loss": [near] + [decay**d for d in range(1, 10)],
        }
        for state in ("trained", "init")
    }
    norms = [median] * 98 + [peak] * 2
    records = [
        {"step": s, "epoch": 0, "tokens": 100, "tokens_per_s": tokens_per_s, "grad_norm": g}
        for s, g in enumerate(norms, 1)
    ]
    return evaluation.CellResult(
        grid.CELLS[name],
        RunConfig(),
        {"parameters": parameters},
        records,
        {"gradients": gradients},
        output_stats(out),
    )


def evidence(results: dict[str, Any], sources: list[str] = SOURCES) -> Any:
    return claims.build_evidence(results, sources, grid.Settings(bootstrap=200, window=21))


def decide(rule: str, cells: Cells, sources: list[str] = SOURCES) -> Any:
    results = {name: fake_result(name, **spec) for name, spec in cells.items()}
    return getattr(claims, f"claim_{rule}")(evidence(results, sources))


def trio(rnn: dict[str, Any], gru: dict[str, Any], lstm: dict[str, Any]) -> Cells:
    return {"rnn-none": rnn, "gru-none": gru, "lstm-none": lstm}


def attention(*kinds: str) -> Cells:
    """Cells of each kind whose attention helps only long sentences ("+"), all alike ("="),
    hurts long ones ("-") or changes nothing ("0")."""
    outputs = {"+": ("ggb", "ggg"), "=": ("bbb", "ggg"), "-": ("ggg", "ggb"), "0": ("ggg", "ggg")}
    cells = {}
    for cell, effect in zip(("rnn", "gru", "lstm"), kinds, strict=True):
        none, bahdanau = outputs[effect]
        cells |= {f"{cell}-none": {"out": none}, f"{cell}-bahdanau": {"out": bahdanau}}
    return cells


def twins(gru: dict[str, Any], lstm: dict[str, Any], kind: str = "none") -> Cells:
    return {f"gru-{kind}": gru, f"lstm-{kind}": lstm}


# Per rule: cells that confirm it, refute it, leave it unclear.
RULE_CASES: dict[str, tuple[Cells, Cells, Cells]] = {
    "vanishing": (
        trio({"decay": VANISH}, {"decay": KEEP}, {"decay": KEEP}),
        trio({"decay": GROW}, {"decay": KEEP}, {"decay": KEEP}),
        trio({"decay": VANISH}, {"decay": FADE}, {"decay": FADE}),  # every cell loses it
    ),
    "spikes": (  # spikiness = peak / median
        trio({"peak": 10.0}, {"peak": 1.0}, {"peak": 1.0}),
        trio({"peak": 1.0}, {"peak": 10.0}, {"peak": 10.0}),
        trio({"peak": 1.5}, {"peak": 1.0}, {"peak": 1.0}),
    ),
    "rnn_long": (
        trio({"out": "ggb"}, {"out": "ggg"}, {"out": "ggg"}),
        trio({"out": "ggg"}, {"out": "ggb"}, {"out": "ggg"}),
        trio({"out": "ggo"}, {"out": "ggm"}, {"out": "ggm"}),  # +17 [-33, +67] on long
    ),
    "lstm_fixes": (
        {"rnn-none": {"out": "bbb", "decay": VANISH}, "lstm-none": {"out": "ggg", "decay": KEEP}},
        {"rnn-none": {"out": "ggg", "decay": VANISH}, "lstm-none": {"out": "bbb", "decay": KEEP}},
        {"rnn-none": {"out": "bbb", "decay": VANISH}, "lstm-none": {"out": "ggg", "decay": FADE}},
    ),
    "gru_parameters": (
        twins({"parameters": 900}, {"parameters": 1000})
        | twins({"parameters": 900}, {"parameters": 1000}, "bahdanau"),
        twins({"parameters": 900}, {"parameters": 1000})
        | twins({"parameters": 1000}, {"parameters": 1000}, "bahdanau"),
        {"gru-none": {"parameters": 900}, "lstm-bahdanau": {"parameters": 1000}},  # no twins
    ),
    "gru_faster": (
        twins({"tokens_per_s": 110.0}, {"tokens_per_s": 100.0}),
        twins({"tokens_per_s": 90.0}, {"tokens_per_s": 100.0}),
        twins({"tokens_per_s": 102.0}, {"tokens_per_s": 100.0}),
    ),
    "gru_as_good": (
        twins({"out": "ggg"}, {"out": "ggg"}),
        twins({"out": "bbb"}, {"out": "ggg"}),
        twins({"out": "eee"}, {"out": "ooo"}),  # +0 [-40, +57]
    ),
    "bidirectional": (
        {"gru-bahdanau": {"out": "ggg"}, "gru-bahdanau-uni": {"out": "bbb"}},
        {"gru-bahdanau": {"out": "bbb"}, "gru-bahdanau-uni": {"out": "ggg"}},
        {"gru-bahdanau": {"out": "mmm"}, "gru-bahdanau-uni": {"out": "ooo"}},  # +17 [-16, +51]
    ),
    "attention_long": (  # the majority of cell types decides
        attention("+", "+", "-"),
        attention("-", "-", "+"),
        attention("+", "-", "0"),
    ),
}


# Conditions of a rule that its three cases above leave untested.
MORE_CASES = [
    # Gated cells are better on long sentences, but the tanh RNN is at its best there.
    ("rnn_long", trio({"out": "bbo"}, {"out": "ggg"}, {"out": "ggg"}), "unclear"),
    # Attention helps, but long sentences no more than short ones: it closes no gap.
    ("attention_long", attention("=", "=", "="), "unclear"),
]


def test_every_claim_has_rule_cases():
    assert {f"claim_{rule}" for rule in RULE_CASES} == {c.__name__ for c in claims.CLAIMS}
    assert (grid.LENGTH_EDGES[0], grid.LENGTH_EDGES[-1]) == GROUP_WORDS[:2]


@pytest.mark.parametrize(
    ("rule", "cells", "verdict"),
    [
        pytest.param(rule, cells, verdict, id=f"{rule}-{verdict}")
        for rule, cases in RULE_CASES.items()
        for cells, verdict in zip(cases, ("confirmed", "refuted", "unclear"), strict=True)
    ]
    + [pytest.param(*case, id=f"{case[0]}-{case[2]}-more") for case in MORE_CASES],
)
def test_claim_rules_decide_constructed_results(rule, cells, verdict):
    claim = decide(rule, cells)
    assert claim.verdict == verdict, claim.evidence
    assert claim.evidence and claim.rule


def test_claims_without_their_cells_are_unclear_and_say_why():
    decided = [rule(evidence({})) for rule in claims.CLAIMS]
    assert {c.verdict for c in decided} == {"unclear"}
    assert all("not measured" in c.evidence[0] for c in decided)


NO_LONG_SENTENCES = [" ".join(source.split()[:12]) for source in SOURCES]
NO_SHORT_SENTENCES = [" ".join(source.split() * 2) for source in SOURCES]


ZERO_MEDIAN = {"median": 0.0, "peak": 5.0}  # spikiness p99 / median is infinite
EDGE_CASES: dict[str, tuple[str, Cells, list[str], str]] = {
    # An empty length bucket: what needs it is unknown, the rest is still decided.
    "rnn_long-no-long": ("rnn_long", RULE_CASES["rnn_long"][0], NO_LONG_SENTENCES, "unclear"),
    "lstm_fixes-no-long": ("lstm_fixes", RULE_CASES["lstm_fixes"][0], NO_LONG_SENTENCES, "unclear"),
    "bidirectional-no-long": (
        "bidirectional",
        RULE_CASES["bidirectional"][0],
        NO_LONG_SENTENCES,
        "confirmed",
    ),
    "attention-no-long": ("attention_long", attention("+", "+", "+"), NO_LONG_SENTENCES, "unclear"),
    "attention-no-short": (
        "attention_long",
        attention("+", "+", "+"),
        NO_SHORT_SENTENCES,
        "unclear",
    ),
    # A zero speed: a run with no clean training step has no speed to compare.
    "gru_faster-lstm-0": ("gru_faster", twins({}, {"tokens_per_s": 0.0}), SOURCES, "unclear"),
    "gru_faster-gru-0": ("gru_faster", twins({"tokens_per_s": 0.0}, {}), SOURCES, "unclear"),
    # Infinite ratios: spikiness over a zero median; a vanishingly small gradient at the end.
    "spikes-rnn-inf": ("spikes", trio(ZERO_MEDIAN, {}, {}), SOURCES, "confirmed"),
    "spikes-all-inf": ("spikes", trio(ZERO_MEDIAN, ZERO_MEDIAN, ZERO_MEDIAN), SOURCES, "unclear"),
    "vanishing-rnn-inf": ("vanishing", trio({"near": 1e-320}, {}, {}), SOURCES, "refuted"),
    # A loss gradient of 0 at the end: no ratio at all.
    "vanishing-rnn-none": ("vanishing", trio({"near": 0.0}, {}, {}), SOURCES, "unclear"),
}


@pytest.mark.parametrize(
    ("rule", "cells", "sources", "verdict"), list(EDGE_CASES.values()), ids=list(EDGE_CASES)
)
def test_claims_on_edge_data_get_a_verdict(rule, cells, sources, verdict):
    claim = decide(rule, cells, sources)
    assert claim.verdict == verdict, claim.evidence


def test_attention_claim_says_how_each_model_holds_up_with_length():
    claim = decide("attention_long", attention("+", "+", "+"))
    assert claim.verdict == "confirmed"
    assert claim.measures["gru-none: BLEU kept on long"] == 0.0
    assert claim.measures["gru-bahdanau: BLEU kept on long"] == pytest.approx(1.0)
    assert "keep 0% of their BLEU on the shortest without attention, 100% with it" in claim.plain
    # Without attention these score 0 on the shortest sentences: no ratio, and no division by 0.
    flat = decide("attention_long", attention("=", "=", "="))
    assert "rnn-none: BLEU kept on long" not in flat.measures
    assert flat.measures["rnn-bahdanau: BLEU kept on long"] == pytest.approx(1.0)
    assert "without attention" not in flat.plain


def test_command_line_paths_are_absolute_so_runs_are_found_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = cli.parse_settings(["--out", "mine", "--mirror", "../corpora", "--data-dir", "cache"])
    assert s.out == tmp_path / "mine" and s.report.is_absolute()
    assert s.mirror == str(tmp_path.parent / "corpora")
    assert s.data_dir == str(tmp_path / "cache")
    assert cli.parse_settings(["--mirror", "http://127.0.0.1:1/m"]).mirror == "http://127.0.0.1:1/m"


@pytest.mark.slow
def test_a_folder_of_another_recipe_is_a_one_line_error(tiny_study, capsys):
    argv = ["--plan", "--out", str(tiny_study.out), "--cells", "rnn-none"]  # the full-size recipe
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    message = str(exit_.value.code)
    assert message.startswith("error: ") and "choose another --out or delete it" in message
    assert "\n" not in message


def test_command_line_budgets_and_quick_mode():
    quick = cli.parse_settings(["--quick", "--cells", "rnn-none", "gru-none"])
    assert quick.steps == cli.QUICK["steps"] and quick.cells == ("rnn-none", "gru-none")
    assert quick.report == quick.out / "study.md" and quick.out.name == "study-quick"
    full = cli.parse_settings(["--budget-minutes", "12.5", "--out", "somewhere"])
    assert (full.minutes, full.steps, full.out) == (12.5, 0, Path("somewhere").resolve())
    assert full.report.name == "study.md" and full.report.parent.name == "docs"
    assert cli.parse_settings([]).steps == grid.Settings().steps > 0
    assert cli.parse_settings([]).cpu_bf16 is False  # every cell at the same precision
    assert cli.parse_settings(["--cpu-bf16"]).cpu_bf16 is True
    assert cli.parse_settings(["--no-cpu-bf16"]).cpu_bf16 is False
    with pytest.raises(SystemExit):
        cli.parse_settings(["--steps", "10", "--budget-minutes", "3"])
    with pytest.raises(SystemExit):
        cli.parse_settings(["--cells", "transformer"])
    with pytest.raises(ValueError, match="exactly one budget"):
        grid.Settings(steps=0)


# --- Claims over seeds ----------------------------------------------------------------------------


def made_up_claim(verdict: str, difference: float) -> Any:
    return claims.Claim(
        "A claim",
        verdict,
        [f"difference {difference}"],
        "The rule.",
        "",
        {"BLEU a - b": difference},
    )


@pytest.mark.parametrize(
    ("verdicts", "agreed"),
    [
        (["confirmed"] * 3, "confirmed"),
        (["refuted"] * 3, "refuted"),
        (["unclear"] * 3, "unclear"),
        (["confirmed", "confirmed", "unclear"], "unclear"),
        (["confirmed", "refuted", "confirmed"], "unclear"),
        (["refuted", "unclear", "refuted"], "unclear"),
    ],
)
def test_seeds_decide_only_when_they_agree(verdicts, agreed):
    by_seed = {
        seed: made_up_claim(verdict, float(seed)) for seed, verdict in enumerate(verdicts, 1)
    }
    claim = seeds.across_seeds(by_seed)
    assert claim.verdict == agreed
    assert claim.rule.startswith("The rule. Over seeds:")
    for seed, verdict in enumerate(verdicts, 1):
        assert f"{verdict} (seed {seed})" in claim.plain
        assert f"seed {seed}: difference {float(seed)}" in claim.evidence


def test_seed_spread_is_mean_sd_and_range():
    by_seed = {1: made_up_claim("confirmed", 1.0), 3: made_up_claim("confirmed", 3.0)}
    by_seed[2] = made_up_claim("confirmed", 5.0)
    claim = seeds.across_seeds(by_seed)
    assert claim.evidence[0] == "BLEU a - b: mean +3.00 ± 2.00 (sd), range +1.00 to +5.00"
    assert claim.measures == {"BLEU a - b": 3.0}
    # Evidence in seed order, whatever order the seeds came in.
    assert [line.split(":")[0] for line in claim.evidence[1:]] == ["seed 1", "seed 2", "seed 3"]
    assert str(seeds.spread([2.5])) == "mean +2.50 ± 0.00 (sd), range +2.50 to +2.50"


# The long test set's evidence: the short bucket has at most 10 words, the long more than 50.
LONG_SOURCES = [" ".join(["Wort"] * n) for n in (10, 30, 55) for _ in range(GROUP_SIZE)]


def seed_results(test_cells: Cells, long_cells: Cells) -> Any:
    return evaluation.SeedResults(
        test={name: fake_result(name, **spec) for name, spec in test_cells.items()},
        long={name: fake_result(name, **spec) for name, spec in long_cells.items()},
    )


def test_claims_over_seeds_decide_each_seed_by_its_rule_on_its_test_set():
    gru_as_good = twins({"out": "ggg"}, {"out": "ggg"}) | twins({}, {}, "bahdanau")
    gru_worse = twins({"out": "bbb"}, {"out": "ggg"}) | twins({}, {}, "bahdanau")
    # Attention that helps only the long sentences, on the long test set (51-60 words). Read
    # with Multi30k's buckets, its shortest (up to 8 words) would be empty; read on the test
    # set's results, attention would change nothing.
    rescue = attention("+", "+", "+")
    by_seed = {
        1: seed_results(gru_as_good, rescue),
        2: seed_results(gru_as_good, rescue),
        3: seed_results(gru_worse, rescue),
    }
    decided = seeds.seeded_claims(by_seed, SOURCES, LONG_SOURCES, grid.Settings(bootstrap=200))
    assert sorted(decided) == [5, 6, 7, 8, 9]
    assert decided[9].verdict == "confirmed", decided[9].evidence
    assert "over 50 words" in decided[9].rule and "up to 10 words" in decided[9].rule
    assert decided[7].verdict == "unclear"  # seeds 1 and 2 confirm it, seed 3 refutes it
    assert "refuted (seed 3)" in decided[7].plain
    assert decided[8].verdict == "unclear" and "not measured" in decided[8].evidence[-1]
    by_seed[3] = seed_results(gru_as_good, attention("-", "-", "+"))
    decided = seeds.seeded_claims(by_seed, SOURCES, LONG_SOURCES, grid.Settings(bootstrap=200))
    assert (decided[7].verdict, decided[9].verdict) == ("confirmed", "unclear")
