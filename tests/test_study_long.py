"""The study's long-sentence part: joined pairs, the long test set, the plan, and the whole long
study on a tiny budget (resumed, and skipping what is finished)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from test_study import tiny_settings

from seq2seq.corpus import load_split, normalize_pairs, read_tsv
from study import cli, grid, long_data, plan, plots, training
from study.long_data import Span

# --- Joined pairs ---------------------------------------------------------------------------------


def numbered_pairs(count: int) -> list[tuple[str, str]]:
    """Pair i: a source of i % 3 + 1 words and a target of i % 2 + 1, every word naming i."""
    return [
        (" ".join([f"s{i}"] * (i % 3 + 1)), " ".join([f"t{i}"] * (i % 2 + 1))) for i in range(count)
    ]


def numbers(text: str) -> list[int]:
    """The pair numbers a joined side is made of, in order."""
    return [int(n) for n, _ in itertools.groupby(re.findall(r"[st](\d+)", text))]


def test_joined_pairs_keep_both_sides_aligned():
    pairs = numbered_pairs(11)
    joined = long_data.concatenate(pairs, 3, offset=1)
    assert [numbers(src) for src, _ in joined] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]  # 10 left out
    assert joined[0] == ("s1 s1 s2 s2 s2 s3", "t1 t1 t2 t3 t3")
    for src, tgt in long_data.training_mix(pairs):
        assert numbers(src) == numbers(tgt)
    with pytest.raises(ValueError, match="no run of 4"):
        long_data.join_run(pairs, 9, 4)


def test_training_mix_holds_every_pair_once_per_k_and_every_k_early():
    pairs = numbered_pairs(14)
    mix = long_data.training_mix(pairs)
    sizes = [len(numbers(src)) for src, _ in mix]
    assert {k: sizes.count(k) for k in long_data.MIX_KS} == long_data.mix_composition(14)
    assert long_data.mix_composition(14) == {1: 14, 2: 7, 3: 4, 4: 3}
    assert sizes[:4] == [1, 2, 3, 4]  # validation BLEU on the first pairs sees every k
    for k in long_data.MIX_KS:  # runs of one k never overlap, and cover the pairs in order
        starts = [numbers(src)[0] for src, _ in mix if len(numbers(src)) == k]
        assert starts == list(range(0, 14 - k + 1, k))


# --- The long test set ----------------------------------------------------------------------------


def span_words(lengths: list[int], span: Span) -> int:
    return sum(lengths[span.start : span.end])


def most_disjoint(lengths: list[int], low: int, high: int, max_k: int) -> int:
    """The most runs of 1 to max_k consecutive sentences of low to high words that share no
    sentence, by dynamic programming over where the last run ends."""
    best = [0] * (len(lengths) + 1)
    for end in range(1, len(lengths) + 1):
        best[end] = best[end - 1]
        for k in range(1, min(max_k, end) + 1):
            if low <= sum(lengths[end - k : end]) <= high:
                best[end] = max(best[end], best[end - k] + 1)
    return best[-1]


def test_long_test_buckets_hold_the_most_disjoint_runs_that_fit():
    rng = random.Random(3)
    edges = (10, 20, 30)
    for _ in range(30):
        lengths = [rng.randint(2, 12) for _ in range(rng.randint(1, 25))]
        buckets = long_data.long_test_spans(lengths, edges, max_k=3, per_bucket=1000)
        for index, spans in enumerate(buckets):
            low, high = (1 if index == 0 else edges[index - 1] + 1), edges[index]
            assert all(low <= span_words(lengths, span) <= high for span in spans)
            assert all(a.end <= b.start for a, b in itertools.pairwise(spans)), "overlap"
            assert all(1 <= span.k <= 3 for span in spans)
            assert len(spans) == most_disjoint(lengths, low, high, 3), (lengths, index)


def test_long_test_bucket_sizes_and_cap():
    lengths = [
        7
    ] * 100  # k sentences have 7k words: 1 -> 1-10, 2 -> 11-20, 3 and 4 -> 21-30, 5 -> 31-40
    sizes = [len(b) for b in long_data.long_test_spans(lengths, per_bucket=1000)]
    assert sizes == [100, 50, 33, 20, 0, 0]
    capped = long_data.long_test_spans(lengths, per_bucket=30)
    assert [len(b) for b in capped] == [30, 30, 30, 20, 0, 0]
    assert capped[0][0].start == 0 and capped[0][-1].start > 90  # spread over the test set
    pairs = [(" ".join(["w"] * 7), f"t{i}") for i in range(100)]
    joined = long_data.long_test_set(pairs, per_bucket=30)
    assert [len(src.split()) for src, _ in joined] == [7] * 30 + [14] * 30 + [21] * 30 + [35] * 20


def test_long_test_set_of_test_2016_flickr_fills_every_bucket(multi30k_dir, tmp_path):
    data = grid.Settings(mirror=str(multi30k_dir), data_dir=str(tmp_path)).data()
    test = normalize_pairs(load_split(data, grid.TEST_SET))
    joined = long_data.long_test_set(test)
    words = [len(src.split()) for src, _ in joined]
    counts = [sum(1 for w in words if long_data.long_bucket(w) == b) for b in range(6)]
    assert all(long_data.MIN_PER_BUCKET <= c <= long_data.PER_BUCKET for c in counts), counts
    assert max(words) <= grid.LONG_EDGES[-1] and len(words) == sum(counts)


# --- The plan -------------------------------------------------------------------------------------


def long_settings(root: Path, multi30k_dir: Path, **changes: Any) -> Any:
    """The tiny study of test_study, with two seeds of two-step runs on joined pairs."""
    long = {"long": True, "seeds": 2, "long_steps": 2, "train_pairs": 200, "test_pairs": 40}
    return tiny_settings(root, multi30k_dir, **(long | {"valid_bleu_pairs": 12} | changes))


def test_plan_orders_the_runs_and_adds_up_the_minutes(tmp_path):
    s = long_settings(tmp_path, tmp_path, cells=("rnn-none", "gru-bahdanau", "gru-dot"), jobs=2)
    planned = plan.plan_study(s)
    labels = [p.run.label for p in planned]
    assert labels == [
        "gru-bahdanau",  # the Multi30k grid, the longest first ...
        "gru-dot",
        "rnn-none",
        "long/gru-bahdanau-seed1",  # ... then the long runs seed by seed (gru-dot is not one)
        "long/rnn-none-seed1",
        "long/gru-bahdanau-seed2",
        "long/rnn-none-seed2",
    ]
    assert all(p.state == "new" and p.done == 0 and p.minutes > 0 for p in planned)
    assert [p.steps for p in planned] == [3] * 3 + [2] * 4
    text = plan.format_plan(planned, s)
    rows = [line.split() for line in text.splitlines()[2:-1]]
    assert [row[1] for row in rows] == labels and [row[0] for row in rows] == list("1234567")
    assert [row[3] for row in rows] == ["1"] * 5 + ["2"] * 2  # the seed
    total = plan.wall_minutes([p.minutes for p in planned], 2)
    assert (
        f"7 runs (7 to train), 2 at a time with 1 torch thread(s) each: about {total:.0f} minutes"
        in text
    )
    assert not (tmp_path / "out").exists()  # planning touches nothing
    # bfloat16 steps take BF16_STEP_TIME of the time; evaluation takes as long.
    bf16 = dataclasses.replace(s, cpu_bf16=True)
    faster = plan.plan_study(bf16)
    for p, q in zip(planned, faster, strict=True):
        evaluation = plan.EVAL_MINUTES[p.run.long]
        assert q.minutes - evaluation == pytest.approx(
            (p.minutes - evaluation) * plan.BF16_STEP_TIME
        )
    assert "1 torch thread(s) each, bfloat16 products: about" in plan.format_plan(faster, bf16)


def test_wall_minutes_starts_each_run_on_the_first_free_worker():
    assert plan.wall_minutes([5, 3, 3, 2], jobs=2) == 7  # 5 | 3 + 3, then 2 after the 5
    assert plan.wall_minutes([5, 3, 3, 2], jobs=1) == 13
    assert plan.wall_minutes([], jobs=2) == 0


def test_plan_command_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    cli.main(["--plan", "--long", "--seeds", "3", "--out", str(out), "--cells", "gru-none"])
    printed = capsys.readouterr().out
    assert printed.startswith("Plan: 4 runs (4 to train)")
    assert re.findall(r"long/gru-none-seed(\d)", printed) == ["1", "2", "3"]
    assert not out.exists()
    with pytest.raises(SystemExit):
        cli.parse_settings(["--seeds", "3"])  # seeds repeat the long runs only


# --- The whole long study, tiny -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_long_study(multi30k_dir, tmp_path_factory) -> Any:
    """The seven long cells (on Multi30k, and twice on joined pairs), a few steps each."""
    root = tmp_path_factory.mktemp("long-study")
    settings = long_settings(root, multi30k_dir, cells=grid.LONG_CELLS, cpu_bf16=True)
    cli.run_study(settings)
    return settings


@pytest.mark.slow
def test_long_study_reports_the_curve_and_claims_over_seeds(tiny_long_study):
    s = tiny_long_study
    text = s.report.read_text(encoding="utf-8")
    assert (
        text.index("## Gradient norm during training")
        < text.index("## Long sentences, over seeds")
        < text.index("## Conclusions")
    )
    curve = s.report.with_suffix("") / plots.LONG_CURVE_PNG
    assert curve.read_bytes()[:4] == b"\x89PNG"
    assert f"]({s.report.with_suffix('').name}/{plots.LONG_CURVE_PNG})" in text
    assert "--long --seeds 2 --long-steps 2 --cpu-bf16" in text
    assert "Training multiplies in bfloat16 (`train.cpu_bf16`" in text
    for name in grid.LONG_CELLS:
        assert re.search(
            rf"^\| {name} \| 2 \| [\d.]+ ± [\d.]+ \| [\d.]+, [\d.]+ \|", text, flags=re.MULTILINE
        )
    table = re.findall(r"^\| (\d) \| .* \| \*\*(\w+)\*\* \| (.*) \|$", text, flags=re.MULTILINE)
    assert [number for number, _, _ in table] == [str(n) for n in range(1, 10)]
    assert all(by.startswith("2 seeds") for number, _, by in table if int(number) >= 5)
    assert all(by == "one run" for number, _, by in table if int(number) < 5)
    assert "A GRU has fewer parameters than an LSTM: confirmed" in text  # both seeds count it
    assert "over 50 words" in text and "unclear when they disagree" in text
    summary = json.loads((s.out / "study.json").read_text(encoding="utf-8"))
    assert sorted(summary["claims_over_seeds"]) == ["5", "6", "7", "8", "9"]
    assert len(summary["long"]) == 2 * len(grid.LONG_CELLS)
    train_file, _ = grid.long_corpus_files(s)
    assert len(read_tsv(train_file)) == sum(long_data.mix_composition(s.train_pairs).values())


@pytest.mark.slow
def test_rerunning_the_long_study_skips_finished_runs(tiny_long_study, capsys):
    s = tiny_long_study
    long_runs = [run for run in s.runs() if run.long]
    assert len(long_runs) == 2 * len(grid.LONG_CELLS)
    state = {run: (grid.run_dir(run, s) / "last.pt").stat().st_mtime_ns for run in long_runs}
    corpus = [path.stat().st_mtime_ns for path in grid.long_corpus_files(s)]
    capsys.readouterr()
    cli.run_study(dataclasses.replace(s, jobs=2))
    printed = capsys.readouterr().out
    assert printed.index("Plan: 21 runs (0 to train)") < printed.index(": finished run, test BLEU")
    assert all((grid.run_dir(r, s) / "last.pt").stat().st_mtime_ns == t for r, t in state.items())
    assert [path.stat().st_mtime_ns for path in grid.long_corpus_files(s)] == corpus
    assert {p.state for p in plan.plan_study(s)} == {"finished"}
    assert {p.minutes for p in plan.plan_study(s)} == {0.0}  # evaluated too
    # A third seed trains only its own runs.
    more = dataclasses.replace(s, seeds=3)
    todo = [p.run for p in plan.plan_study(more) if p.state != "finished"]
    assert set(todo) == {run for run in more.runs() if run.seed == 3}
    assert training.run_state(grid.run_dir(todo[0], more), grid.run_config(todo[0], more)) == "new"
