"""The study's report: docs/study.md (setup, results, plots, the long-sentence runs over seeds
when there are any, and claims) and study.json."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from seq2seq.corpus import Pair
from seq2seq.machine import describe_machine
from seq2seq.report_markdown import markdown_table, with_interval
from seq2seq.rundir import RunDir
from study.claims import CLAIMS, Claim, build_evidence, fmt_number
from study.evaluation import CellResult, SeedResults
from study.grid import FLOAT32_WHY, REPO, TEST_SET, Settings
from study.plots import save_plots
from study.report_long import long_lines
from study.seeds import seeded_claims


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def setup_lines(
    results: dict[str, CellResult], s: Settings, num_test: int, machine: str
) -> list[str]:
    first = next(iter(results.values()))
    m, t = first.cfg.model, first.cfg.train
    info = first.info
    scope = "all" if not s.test_pairs else f"the first {s.test_pairs}"
    lines = [
        "## Setup",
        "",
        f"- Data: Multi30k task 1, de→en; {info.get('train_pairs')} training pairs, "
        f"{info.get('valid_pairs')} validation pairs (BLEU on the first "
        f"{t.valid_max_pairs or 'all'}), test: {TEST_SET}, {scope} ({num_test} sentences).",
        f"- Models: embedding {m.embed_size}, hidden {m.hidden_size} (a bidirectional encoder has "
        f"{m.hidden_size // 2} per direction), one layer, dropout {m.dropout}, joint SentencePiece "
        f"unigram vocabulary of {m.src_vocab_size}, tied embeddings, input feeding "
        f"{'on' if m.input_feeding else 'off'}.",
        f"- Budget: **{s.budget}**, the same for every model; batches of at most {t.max_tokens} "
        "tokens, Adam lr "
        f"{t.lr:g} halved when validation BLEU stalls, gradient clipping at {t.clip_norm:g}, label "
        f"smoothing {t.label_smoothing:g}, no early stopping. The weights with the best "
        "validation BLEU (validated once per epoch and at the end) are evaluated. "
        + (
            "Training multiplies in bfloat16 (`train.cpu_bf16`: weights, Adam and the loss in "
            "float32); validation, decoding and the gradient profiles run in float32."
            if t.cpu_bf16
            else f"Training runs in float32: {FLOAT32_WHY}."
        ),
        f"- Decoding: **greedy** (beam 1). Scores: sacreBLEU, cased and detokenised, "
        f"`{first.evaluation['test']['bleu']['signature']}`; chrF "
        f"`{first.evaluation['test']['chrf']['signature']}`. Brackets: 95% percentile bootstrap "
        f"interval ({s.bootstrap} resamples of the test sentences, Koehn 2004).",
        f"- Machine: {machine} (threads per model; {s.jobs} model(s) trained at once); report "
        f"written at commit {_git_commit()}.",
        "- One training run (seed) per model: differences smaller than the intervals are noise, "
        + (
            f"and seed-to-seed variation is measured in the long-sentence section below ({s.seeds} "
            "seeds of the core models), which decides claims 5 to 9 again."
            if s.long
            else "and seed-to-seed variation is not measured."
        ),
        "",
        f"Reproduce: `python -m study {_budget_flag(s)}` (runs in "
        f"`{_display(s.out)}/runs/`; rerunning skips finished runs and resumes "
        "interrupted ones).",
        "",
    ]
    return lines


def _budget_flag(s: Settings) -> str:
    budget = f"--steps {s.steps}" if s.steps else f"--budget-minutes {s.minutes:g}"
    precision = " --cpu-bf16" if s.cpu_bf16 else " --no-cpu-bf16"
    long = f" --long --seeds {s.seeds} --long-steps {s.long_steps}" if s.long else ""
    return budget + long + precision


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def results_lines(results: dict[str, CellResult]) -> list[str]:
    rows = []
    for r in results.values():
        speed = r.speed
        rows.append(
            [
                r.name,
                r.cell.cell,
                r.cell.attention,
                r.cell.encoder,
                f"{int(r.info['parameters']):,}",
                r.info.get("step"),
                _fmt_epochs(r),
                f"{r.info.get('train_seconds', 0) / 60:.1f}",
                with_interval(r.evaluation["test"]["bleu"]),
                with_interval(r.evaluation["test"]["chrf"]),
                f"{r.info.get('best_valid_bleu', float('nan')):.2f}",
                fmt_number(speed["seconds_per_epoch"], 1) if speed["seconds_per_epoch"] else "n/a",
                f"{speed['tokens_per_s']:.0f}" if speed["tokens_per_s"] else "n/a",
            ]
        )
    headers = [
        "model",
        "cell",
        "attention",
        "encoder",
        "parameters",
        "steps",
        "epochs",
        "train min",
        "test BLEU [95% CI]",
        "test chrF [95% CI]",
        "best valid BLEU",
        "s/epoch",
        "tokens/s",
    ]
    return [
        "## Results",
        "",
        f"Test set {TEST_SET}, greedy decoding. *train min*: wall-clock training time including "
        "validations. *s/epoch* and *tokens/s* (target tokens) count training steps only, "
        f"measured from every step's time in {RunDir.LOG_FILE}.",
        "",
        *markdown_table(headers, rows),
    ]


def _fmt_epochs(result: CellResult) -> str:
    return "< 1" if result.epochs is None else f"{result.epochs:.1f}"


def curve_lines(images: dict[str, str]) -> list[str]:
    return [
        "## Learning curves",
        "",
        "Validation BLEU (greedy) and validation loss against wall-clock training time, every "
        "model on one figure. Solid: no attention; dashed: attention.",
        "",
        f"![learning curves]({images['learning_curves']})",
        "",
    ]


def length_lines(results: dict[str, CellResult], images: dict[str, str]) -> list[str]:
    buckets = [row["bucket"] for row in next(iter(results.values())).evaluation["bleu_by_length"]]
    counts = {
        row["bucket"]: row["count"]
        for r in results.values()
        for row in r.evaluation["bleu_by_length"]
    }
    rows = []
    for r in results.values():
        by_bucket = {row["bucket"]: row["bleu"] for row in r.evaluation["bleu_by_length"]}
        rows.append([r.name, *(f"{by_bucket.get(b, float('nan')):.2f}" for b in buckets)])
    headers = ["model", *(f"{b} words ({counts[b]})" for b in buckets)]
    return [
        "## BLEU by source length",
        "",
        "Corpus BLEU of each bucket of source length in words (sentences per bucket in "
        "brackets). Multi30k's sentences are short: the longest bucket is small, so its scores "
        "are noisy; the claims below use paired bootstrap intervals for them.",
        "",
        *markdown_table(headers, rows),
        f"![BLEU by source length]({images['bleu_by_length']})",
        "",
    ]


def gradient_lines(
    results: dict[str, CellResult], images: dict[str, str], s: Settings
) -> list[str]:
    distances = [d for d in (5, 10, 20, 30) if d < s.window]
    rows = []
    for r in results.values():
        rows.append(
            [
                r.name,
                *(fmt_number(r.ratio("trained", "recurrence", d)) for d in distances),
                *(fmt_number(r.ratio("init", "recurrence", d)) for d in distances),
                *(fmt_number(r.ratio("trained", "loss", d)) for d in (3, 6)),
            ]
        )
    headers = [
        "model",
        *(f"rec. d={d} trained" for d in distances),
        *(f"rec. d={d} init" for d in distances),
        "loss d=3 trained",
        "loss d=6 trained",
    ]
    return [
        "## Gradient flow",
        "",
        "How much of the gradient reaches back to each source position (Bengio et al. 1994; "
        "Pascanu et al. 2013), measured with `study/gradflow.py` on validation data, for the "
        "trained weights and for the same model at initialisation (same seed):",
        "",
        f"- *Encoder recurrence*: ||dh_T/dx_t||, the Frobenius norm of the Jacobian of the "
        f"encoder's last forward state with respect to its input t tokens earlier, averaged over "
        f"{s.windows} windows of {s.window} consecutive validation tokens. The recurrence alone, "
        "as in the papers.",
        "- *Loss*: ||dloss/dx_t||, the gradient of each validation sentence's teacher-forced "
        "cross-entropy (per target token) with respect to the embedded source token, averaged "
        "over real positions by the number of recurrent steps to the nearest final encoder state "
        "(the end for a unidirectional encoder; the nearer end for a bidirectional one, whose "
        "backward direction ends at the first token). Attention adds a direct path, so "
        "attention models are flat here by design.",
        "",
        "Table: gradient at distance d divided by gradient at distance 0.",
        "",
        *markdown_table(headers, rows),
        f"![gradient flow]({images['gradient_flow']})",
        "",
    ]


def grad_norm_lines(results: dict[str, CellResult], images: dict[str, str]) -> list[str]:
    rows = []
    for r in results.values():
        g = r.grad_norms
        rows.append(
            [
                r.name,
                fmt_number(g.get("median")),
                fmt_number(g.get("p99")),
                fmt_number(g.get("max")),
                fmt_number(g.get("spikiness")),
                f"{100 * g.get('clipped', 0.0):.0f}%",
            ]
        )
    return [
        "## Gradient norm during training",
        "",
        "Norm of the whole gradient before clipping at every step "
        f"({RunDir.LOG_FILE} `grad_norm`); the first 100 steps are left out of the table when a "
        "run has more than 200.",
        "",
        *markdown_table(["model", "median", "p99", "max", "p99 / median", "steps clipped"], rows),
        f"![gradient norm]({images['grad_norm']})",
        "",
    ]


def claim_lines(claims: Sequence[Claim], seeded: dict[int, Claim], seeds: int) -> list[str]:
    """The verdicts, then each claim's numbers and rule; a claim decided over seeds
    (``seeded``, by number) shows that decision, and its one-run verdict beneath."""
    decided_by = f"{seeds} seeds, joined pairs"
    table = (
        markdown_table(
            ["#", "claim", "verdict", "decided by"],
            [
                [
                    i,
                    c.title,
                    f"**{seeded[i].verdict if i in seeded else c.verdict}**",
                    f"{decided_by} (one run: {c.verdict})" if i in seeded else "one run",
                ]
                for i, c in enumerate(claims, 1)
            ],
        )
        if seeded
        else markdown_table(
            ["#", "claim", "verdict"],
            [[i, c.title, f"**{c.verdict}**"] for i, c in enumerate(claims, 1)],
        )
    )
    over_seeds = (
        f" Claims {min(seeded)} to {max(seeded)} are decided over {seeds} seeds of the models "
        "trained with joined pairs (the long-sentence section; claim 9 on its long test set): "
        "confirmed or refuted only when every seed gives that verdict; each seed's own "
        "evidence and the one-run verdict are listed under them."
        if seeded
        else ""
    )
    lines = [
        "## Conclusions",
        "",
        "Each claim is decided from the numbers above by the rule quoted under it: *confirmed*, "
        "*refuted*, or *unclear at this scale* (the evidence does not separate the cases). "
        "BLEU differences use paired bootstrap resampling of the test sentences (Koehn 2004), "
        "which is stricter and fairer than checking whether two separate intervals overlap."
        + over_seeds,
        "",
        *table,
    ]
    for number, one_run in enumerate(claims, 1):
        claim = seeded.get(number, one_run)
        lines += [f"### {number}. {claim.title}: {claim.verdict}", ""]
        if claim.plain:
            lines += [f"**In short:** {claim.plain}", ""]
        lines += [f"- {item}" for item in claim.evidence]
        lines += ["", f"*Rule:* {claim.rule}", ""]
        if number in seeded:
            lines += [
                f"*One run on Multi30k alone (the grid above):* {one_run.verdict}. "
                + (one_run.plain or "; ".join(one_run.evidence)),
                "",
            ]
    return lines


def write_study(
    results: dict[str, CellResult],
    test: list[Pair],
    s: Settings,
    machine: str = "",
    by_seed: dict[int, SeedResults] | None = None,
    long_test: list[Pair] | None = None,
) -> Path:
    """docs/study.md (or s.report) with its PNGs in a folder named like it, and study.json;
    with the runs on joined pairs (``by_seed``) and the long test set, their section too, and
    claims 5 to 9 decided over their seeds."""
    s.report.parent.mkdir(parents=True, exist_ok=True)
    by_seed = by_seed or {}
    images = save_plots(results, s.report.with_suffix(""), by_seed)
    sources = [src for src, _ in test]
    claims = [decide(build_evidence(results, sources, s)) for decide in CLAIMS]
    seeded: dict[int, Claim] = {}
    long_section: list[str] = []
    if by_seed and long_test:
        seeded = seeded_claims(by_seed, sources, [src for src, _ in long_test], s)
        long_section = long_lines(by_seed, long_test, s, images)
    lines = [
        "# The study: RNN vs GRU vs LSTM, attention vs none",
        "",
        "Small encoder-decoders trained on real data under one budget each, to check what the "
        "textbooks say about recurrent cells and attention. Written by `python -m study`.",
        "",
        *setup_lines(results, s, len(test), machine or describe_machine(s.threads)),
        *results_lines(results),
        *curve_lines(images),
        *length_lines(results, images),
        *gradient_lines(results, images, s),
        *grad_norm_lines(results, images),
        *long_section,
        *claim_lines(claims, seeded, len(by_seed)),
    ]
    s.report.write_text("\n".join(lines), encoding="utf-8")
    summary = {
        "settings": {k: str(v) for k, v in dataclasses.asdict(s).items()},
        "models": {
            r.name: {
                "parameters": r.info["parameters"],
                "step": r.info.get("step"),
                "test": r.evaluation["test"],
                "bleu_by_length": r.evaluation["bleu_by_length"],
                "speed": r.speed,
                "grad_norm": r.grad_norms,
                "gradients": r.evaluation["gradients"],
            }
            for r in results.values()
        },
        "claims": [dataclasses.asdict(c) for c in claims],
        "long": {
            f"{name}-seed{seed}": {
                "test": results.test[name].evaluation["test"],
                "long_test": results.long[name].evaluation["test"],
                "bleu_by_length_long": results.long[name].evaluation["bleu_by_length"],
                "speed": results.test[name].speed,
            }
            for seed, results in by_seed.items()
            for name in results.test
        },
        "claims_over_seeds": {number: dataclasses.asdict(c) for number, c in seeded.items()},
    }
    (s.out / "study.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return s.report
