"""The Markdown page of an evaluation report: its sections (from `report.build_report`'s dict),
and the table and score helpers other reports share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seq2seq.metrics import TOKENIZED_LC_BLEU_NOTE

SIGNIFICANCE_LEVEL = 0.05


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines, a blank line after it; cells may hold any value."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |"]
    lines.append("|" + "---|" * len(headers))
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def with_interval(score: dict[str, Any]) -> str:
    """'39.17 [37.60, 40.80]' from a `metrics.score_corpus` score (no brackets without one)."""
    text = _number(score["score"])
    if score["ci_low"] is not None:
        text += f" [{_number(score['ci_low'])}, {_number(score['ci_high'])}]"
    return text


def _scores_lines(report: dict[str, Any]) -> list[str]:
    systems = report["systems"]
    metrics = [(key, systems[0]["scores"][key]["name"]) for key in systems[0]["scores"]]
    rows: list[list[str]] = [
        [label, *(with_interval(s["scores"][key]) for s in systems)] for key, label in metrics
    ]
    rows.append(
        [systems[0]["bleu_tok_lc"]["name"], *(with_interval(s["bleu_tok_lc"]) for s in systems)]
    )
    rows.append(["length ratio (hyp/ref)", *(_number(s["length_ratio"], 3) for s in systems)])
    for key, label in [("sentences_per_second", "sentences/s"), ("tokens_per_second", "tokens/s")]:
        rows.append([label, *(_number(s["speed"][key], 1) for s in systems)])
    rows.append(["decoding time (s)", *(_number(s["speed"]["seconds"]) for s in systems)])
    signatures = {
        s["scores"][key]["name"]: s["scores"][key]["signature"]
        for s in systems
        for key in s["scores"]
    }
    signatures[systems[0]["bleu_tok_lc"]["name"]] = systems[0]["bleu_tok_lc"]["signature"]
    return [
        "## Scores",
        "",
        (
            f"{report['num_sentences']} sentences; sacreBLEU on detokenised, cased output against "
            "the raw references. Brackets: 95% bootstrap interval. TER: lower is better. "
            "tokens/s counts whitespace words of the output."
        ),
        "",
        *markdown_table(["metric", *(s["name"] for s in systems)], rows),
        f"*{systems[0]['bleu_tok_lc']['name']}*: {TOKENIZED_LC_BLEU_NOTE}",
        "",
        "Signatures:",
        "",
        *(f"- {name}: `{signature}`" for name, signature in signatures.items()),
        "",
        f"Perplexity on the references: {_number(report['perplexity'])}",
        "",
    ]


def _length_lines(report: dict[str, Any], chart: str | None) -> list[str]:
    systems = report["systems"]
    bleus = [{row["bucket"]: row["bleu"] for row in s["bleu_by_length"]} for s in systems]
    rows = [
        [row["bucket"], row["count"], *(_number(b[row["bucket"]]) for b in bleus)]
        for row in systems[0]["bleu_by_length"]
    ]
    headers = ["source words", "sentences", *(s["name"] for s in systems)]
    lines = ["## BLEU by source length", "", *markdown_table(headers, rows)]
    if chart:
        lines += [f"![BLEU by source length]({chart})", ""]
    return lines


def _example_lines(number: int, example: dict[str, Any], system: str) -> list[str]:
    lines = [
        f"{number}. sentence {example['index']}, chrF {_number(example['chrf'], 1)}",
        f"   - source: {example['source']}",
        f"   - reference: {example['reference']}",
        f"   - {system}: {example['output']}",
    ]
    return lines + [f"   - {name}: {text}" for name, text in example["other_outputs"].items()]


def _examples_lines(report: dict[str, Any]) -> list[str]:
    section = report["examples"]
    lines = ["## Examples", "", f"Ranked by {section['ranked_by']} of {section['system']}.", ""]
    for kind in ("best", "worst", "random"):
        lines += [f"### {kind.capitalize()}", ""]
        for number, example in enumerate(section[kind], 1):
            lines += _example_lines(number, example, section["system"])
        lines.append("")
    return lines


def _flatten(info: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in info.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _model_lines(report: dict[str, Any]) -> list[str]:
    rows = [[f"`{key}`", value] for key, value in _flatten(report["model"])]
    return ["## Model", "", *markdown_table(["field", "value"], rows)]


def _significance_lines(report: dict[str, Any]) -> list[str]:
    sig = report["significance"]
    if sig is None:
        return []
    rows = []
    for metric in sig["metrics"].values():
        verdict = "yes" if metric["p_value"] < SIGNIFICANCE_LEVEL else "no"
        rows.append(
            [
                metric["name"],
                _number(metric["baseline"]),
                _number(metric["system"]),
                _number(metric["p_value"], 4),
                verdict,
            ]
        )
    test = {"bs": "paired bootstrap resampling", "ar": "approximate randomisation"}[sig["test"]]
    return [
        "## Significance",
        "",
        f"{sig['system']} against {sig['baseline']}: {test}, n = {sig['n']}.",
        "",
        *markdown_table(
            [
                "metric",
                sig["baseline"],
                sig["system"],
                "p-value",
                f"significant at {SIGNIFICANCE_LEVEL}",
            ],
            rows,
        ),
        *(f"- {m['name']}: `{m['signature']}`" for m in sig["metrics"].values()),
        "",
    ]


def _attention_lines(images: Sequence[str]) -> list[str]:
    if not images:
        return ["## Attention", "", "No attention weights were given.", ""]
    lines = ["## Attention", "", "x: source subwords, y: output subwords.", ""]
    for number, image in enumerate(images, 1):
        lines += [f"![attention {number}]({image})", ""]
    return lines


def render_markdown(
    report: dict[str, Any], attention_images: Sequence[str] = (), length_chart: str | None = None
) -> str:
    """The Markdown page's text; images are paths relative to the report."""
    lines = [f"# Evaluation report: {report['primary_system']}", ""]
    lines += _scores_lines(report)
    lines += _length_lines(report, length_chart)
    lines += _significance_lines(report)
    lines += _examples_lines(report)
    lines += _attention_lines(attention_images)
    lines += _model_lines(report)
    return "\n".join(lines)
