"""Reports end to end through a fake translator, and the report's parts on their own."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seq2seq.evaluate import evaluate_translator, read_hypotheses
from seq2seq.report import AttentionExample, SystemRun, build_report, plot_attention
from seq2seq.rundir import ReportDir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PERPLEXITY = 12.5
BEAM = 3


def _corpus(size: int = 30) -> tuple[list[str], list[str]]:
    """Sources of 3 to 40 words, so every length bucket has sentences, and unrelated references."""
    rng = random.Random(0)
    vocab = ["Der", "Hund", "läuft", "im", "Park", "eine", "Frau", "liest", "ein", "Buch"]
    words = ["The", "dog", "runs", "in", "the", "park", "a", "woman", "reads", "book", "today"]
    lengths = [3 + (37 * i) // (size - 1) for i in range(size)]
    sources = [" ".join(rng.choice(vocab) for _ in range(n)) + "." for n in lengths]
    refs = [" ".join(rng.choice(words) for _ in range(max(4, n))) + "." for n in lengths]
    return sources, refs


@dataclass
class FakeTranslation:
    text: str
    nbest: list[tuple[str, float]]
    source_pieces: list[str]
    output_pieces: list[str]
    attention: np.ndarray | None


@dataclass
class FakeTranslator:
    """Knows the reference of every source; returns it whole for sentences at least
    `full_from[beam_size > 1]` words long and cut in half otherwise, so beam beats greedy."""

    sources: list[str]
    references: list[str]
    with_attention_support: bool = True
    full_from: tuple[int, int] = (25, 10)  # (greedy, beam)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def translate(
        self,
        sentences: list[str],
        beam_size: int = 5,
        nbest: int = 1,
        length_penalty: float = 1.0,
        batch_size: int = 64,
        with_attention: bool = False,
    ) -> list[FakeTranslation]:
        self.calls.append({"n": len(sentences), "beam_size": beam_size, "attn": with_attention})
        return [self._one(s, beam_size, with_attention) for s in sentences]

    def _one(self, source: str, beam_size: int, with_attention: bool) -> FakeTranslation:
        ref = self.references[self.sources.index(source)].split()
        text = " ".join(
            ref if len(source.split()) >= self.full_from[beam_size > 1] else ref[: len(ref) // 2]
        )
        src_pieces = ["▁" + w for w in source.split()]
        out_pieces = ["▁" + w for w in text.split()]
        attention = None
        if with_attention and self.with_attention_support:
            weights = np.random.default_rng(len(source)).random((len(out_pieces), len(src_pieces)))
            attention = weights / weights.sum(axis=1, keepdims=True)
        return FakeTranslation(text, [(text, -1.0)], src_pieces, out_pieces, attention)

    def perplexity(self, sources: list[str], references: list[str]) -> float:
        return PERPLEXITY

    def describe(self) -> dict[str, Any]:
        return {
            "parameters": 1234,
            "config": {"cell": "gru", "hidden_size": 8},
            "training_seconds": 3.5,
            "checkpoint": Path("runs/fake/model.pt"),
        }


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    return _corpus()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, corpus: Any) -> tuple[dict[str, Any], Path]:
    sources, refs = corpus
    report_dir = tmp_path_factory.mktemp("first") / "report"
    translator = FakeTranslator(sources, refs)
    report = evaluate_translator(
        translator,
        sources,
        refs,
        beam_size=BEAM,
        report_dir=report_dir,
        n_bootstrap=20,
        num_attention=2,
    )
    assert translator.calls == [
        {"n": len(sources), "beam_size": 1, "attn": False},
        {"n": len(sources), "beam_size": BEAM, "attn": False},
        {"n": 2, "beam_size": BEAM, "attn": True},
    ]
    return report, report_dir


@pytest.fixture(scope="module")
def compared_run(tmp_path_factory: pytest.TempPathFactory, corpus: Any, first_run: Any) -> Path:
    """A second evaluation that compares against the first run's greedy output."""
    sources, refs = corpus
    report_dir = tmp_path_factory.mktemp("second")
    greedy = read_hypotheses(first_run[1] / ReportDir.GREEDY_HYPOTHESES_FILE)
    evaluate_translator(
        FakeTranslator(sources, refs),
        sources,
        refs,
        beam_size=BEAM,
        report_dir=report_dir,
        compare_hyps=greedy,
        compare_name="previous greedy",
        n_bootstrap=20,
    )
    return report_dir


def _load(report_dir: Path) -> tuple[dict[str, Any], str]:
    with open(report_dir / "report.json", encoding="utf-8") as f:
        report = json.load(f)
    return report, (report_dir / "report.md").read_text(encoding="utf-8")


def test_report_json_equals_returned_report(first_run: Any) -> None:
    report, report_dir = first_run
    loaded, _ = _load(report_dir)
    assert loaded == json.loads(json.dumps(report))


def test_scores_greedy_and_beam_side_by_side(first_run: Any) -> None:
    report, report_dir = first_run
    _, markdown = _load(report_dir)
    greedy, beam = report["systems"]
    assert (greedy["name"], beam["name"]) == ("greedy", f"beam-{BEAM}")
    assert report["primary_system"] == beam["name"]
    assert beam["scores"]["bleu"]["score"] > greedy["scores"]["bleu"]["score"]
    assert greedy["length_ratio"] < beam["length_ratio"] < 1.0  # short ones are cut
    for system in report["systems"]:
        assert set(system["scores"]) == {"bleu", "chrf", "ter"}
        for score in system["scores"].values():
            assert "nrefs:1" in score["signature"]
            assert score["ci_low"] <= score["score"] <= score["ci_high"]
        assert "not comparable" in system["bleu_tok_lc"]["name"]
        speed = system["speed"]
        assert speed["output_tokens"] == sum(len(h.split()) for h in _hyps(report_dir, system))
        assert speed["sentences_per_second"] > 0
        assert speed["tokens_per_second"] > 0
    assert f"| metric | greedy | beam-{BEAM} |" in markdown
    bleu_row = next(line for line in markdown.splitlines() if line.startswith("| BLEU |"))
    assert f"{beam['scores']['bleu']['score']:.2f} [" in bleu_row
    assert f"{greedy['scores']['bleu']['score']:.2f} [" in bleu_row
    assert "not comparable" in markdown
    assert "tokens/s" in markdown
    assert greedy["scores"]["bleu"]["signature"] in markdown


def _hyps(report_dir: Path, system: dict[str, Any]) -> list[str]:
    files = ReportDir(report_dir)
    return read_hypotheses(
        files.greedy_hypotheses if system["name"] == "greedy" else files.hypotheses
    )


def test_hypotheses_files_hold_each_system(first_run: Any, corpus: Any) -> None:
    _, report_dir = first_run
    sources, refs = corpus
    beam = read_hypotheses(report_dir / ReportDir.HYPOTHESES_FILE)
    greedy = read_hypotheses(report_dir / ReportDir.GREEDY_HYPOTHESES_FILE)
    assert len(beam) == len(greedy) == len(sources)
    assert beam != greedy
    long_source = max(range(len(sources)), key=lambda i: len(sources[i].split()))
    assert beam[long_source] == greedy[long_source] == refs[long_source]


def test_perplexity_and_model_section(first_run: Any) -> None:
    report, report_dir = first_run
    _, markdown = _load(report_dir)
    assert report["perplexity"] == PERPLEXITY
    assert f"Perplexity on the references: {PERPLEXITY:.2f}" in markdown
    model = report["model"]
    assert model["parameters"] == 1234
    assert model["config"]["cell"] == "gru"
    assert model["checkpoint"] == "runs/fake/model.pt"
    assert model["decoding"]["beam_size"] == BEAM
    assert "## Model" in markdown
    assert "| `config.cell` | gru |" in markdown
    assert "| `checkpoint` | runs/fake/model.pt |" in markdown


def test_bleu_by_length_table(first_run: Any, corpus: Any) -> None:
    report, report_dir = first_run
    _, markdown = _load(report_dir)
    for system in report["systems"]:
        rows = system["bleu_by_length"]
        assert [r["bucket"] for r in rows] == ["1-10", "11-20", "21-30", "31+"]
        assert sum(r["count"] for r in rows) == len(corpus[0])
    beam_by_bucket = {r["bucket"]: r["bleu"] for r in report["systems"][1]["bleu_by_length"]}
    assert beam_by_bucket["31+"] == pytest.approx(100.0)  # long sources are translated whole
    assert "## BLEU by source length" in markdown
    assert "| 31+ |" in markdown
    assert "](bleu_by_length.png)" in markdown
    assert (report_dir / "bleu_by_length.png").read_bytes().startswith(PNG_MAGIC)


def test_best_worst_and_random_examples(first_run: Any, corpus: Any) -> None:
    report, report_dir = first_run
    _, markdown = _load(report_dir)
    examples = report["examples"]
    assert examples["system"] == f"beam-{BEAM}"
    best, worst, chosen = examples["best"], examples["worst"], examples["random"]
    assert len(best) == len(worst) == len(chosen) == 5
    assert min(e["chrf"] for e in best) >= max(e["chrf"] for e in worst)
    assert best[0]["chrf"] == pytest.approx(100.0)
    indices = [e["index"] for e in best + worst + chosen]
    assert len(set(indices)) == len(indices)  # random ones are neither best nor worst
    sources, refs = corpus
    for example in best + worst + chosen:
        i = example["index"]
        assert (example["source"], example["reference"]) == (sources[i], refs[i])
        assert set(example["other_outputs"]) == {"greedy"}
    for heading in ("### Best", "### Worst", "### Random"):
        assert heading in markdown
    assert f"   - source: {worst[0]['source']}" in markdown


def test_random_examples_follow_the_seed(corpus: Any) -> None:
    sources, refs = corpus
    run = SystemRun("sys", refs, seconds=1.0, output_tokens=10)

    def random_indices(seed: int) -> list[int]:
        report = build_report(
            sources,
            refs,
            [run],
            perplexity=None,
            model_info={},
            attention_examples=[],
            n_bootstrap=0,
            num_examples=3,
            seed=seed,
        )
        return [e["index"] for e in report["examples"]["random"]]

    assert random_indices(0) == random_indices(0)
    assert random_indices(0) != random_indices(1)


def test_attention_heatmaps_exist_and_are_linked(first_run: Any) -> None:
    report, report_dir = first_run
    _, markdown = _load(report_dir)
    assert len(report["attention"]) == 2
    for number in (1, 2):
        assert (report_dir / f"attention_{number}.png").read_bytes().startswith(PNG_MAGIC)
        assert f"](attention_{number}.png)" in markdown
    assert not (report_dir / "attention_3.png").exists()
    first = report["attention"][0]
    assert np.asarray(first["weights"]).shape == (
        len(first["output_pieces"]),
        len(first["source_pieces"]),
    )


def test_no_significance_without_compare(first_run: Any) -> None:
    report, report_dir = first_run
    assert report["significance"] is None
    assert "## Significance" not in _load(report_dir)[1]


def test_significance_against_compared_output(compared_run: Path) -> None:
    report, markdown = _load(compared_run)
    significance = report["significance"]
    assert (significance["baseline"], significance["system"]) == ("previous greedy", f"beam-{BEAM}")
    greedy_bleu = report["systems"][0]["scores"]["bleu"]["score"]
    bleu = significance["metrics"]["bleu"]
    assert bleu["baseline"] == pytest.approx(greedy_bleu)
    assert bleu["system"] > bleu["baseline"]
    assert 0.0 < bleu["p_value"] < 0.05
    assert "## Significance" in markdown
    assert "previous greedy" in markdown
    assert "p-value" in markdown


def test_greedy_only_and_model_without_attention(tmp_path: Path, corpus: Any) -> None:
    sources, refs = corpus
    translator = FakeTranslator(sources, refs, with_attention_support=False)
    report = evaluate_translator(
        translator, sources, refs, beam_size=1, report_dir=tmp_path, n_bootstrap=0, num_attention=2
    )
    assert [s["name"] for s in report["systems"]] == ["greedy"]
    assert report["examples"]["best"][0]["other_outputs"] == {}
    assert report["systems"][0]["scores"]["bleu"]["ci_low"] is None
    assert read_hypotheses(tmp_path / ReportDir.HYPOTHESES_FILE) == read_hypotheses(
        tmp_path / ReportDir.GREEDY_HYPOTHESES_FILE
    )
    assert not list(tmp_path.glob("attention_*.png"))
    assert "No attention weights" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_evaluation_rejects_bad_input(tmp_path: Path, corpus: Any) -> None:
    sources, refs = corpus
    translator = FakeTranslator(sources, refs)
    with pytest.raises(ValueError, match=f"{len(sources)} sources but {len(refs) - 1} references"):
        evaluate_translator(translator, sources, refs[:-1], report_dir=tmp_path)
    with pytest.raises(ValueError, match="2 hypotheses to compare against"):
        evaluate_translator(translator, sources, refs, report_dir=tmp_path, compare_hyps=["a", "b"])
    with pytest.raises(FileNotFoundError, match="evaluate"):
        read_hypotheses(tmp_path / "missing.txt")
    assert translator.calls == []  # rejected before any decoding


def test_attention_example_checks_shape() -> None:
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        AttentionExample(["▁a", "▁b"], ["▁x", "▁y", "▁z"], np.ones((2, 3)))


def test_plot_attention_axes_are_source_and_output_pieces() -> None:
    example = AttentionExample(
        ["▁ein", "▁Hund"], ["▁a", "▁dog", "."], [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]
    )
    fig = plot_attention(example)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == example.source_pieces
    assert [t.get_text() for t in ax.get_yticklabels()] == example.output_pieces
    image = ax.images[0].get_array()
    assert image is not None
    assert image.shape == (3, 2)
