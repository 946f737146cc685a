"""The model card of a shipped run (`RunDir.model_card`), written from what `ship` measured and
chose (`ship.ShipRecord`), the test reports and the run's config and training facts.

Every fact comes from those: the machine is the one `machine.describe_machine` read while
shipping, and nothing is written from memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from seq2seq import checkpoint
from seq2seq.config import ModelConfig, RunConfig, SubwordConfig, TrainConfig
from seq2seq.download import language_pair_name
from seq2seq.rundir import RunDir, RunInfo

if TYPE_CHECKING:
    from seq2seq.ship import ShipRecord


def scores_section(
    run: RunDir, record: ShipRecord, reports: dict[str, dict[str, Any]]
) -> list[str]:
    """The test sets' scores (one row per decoding), their signatures and links to the reports."""
    missing = ", ".join(record.tests_not_at_hand)
    not_scored = (
        f"- Not scored here (neither cached nor reachable when shipping): {missing}. "
        f"`seq2seq evaluate --checkpoint checkpoints/{run.name} --test-set NAME` downloads "
        "and scores them."
    )
    if not reports:
        none = "No test set was at hand when the model was shipped."
        return ["## Scores", "", none, *([not_scored] if missing else []), ""]
    lines = [
        "## Scores (sacreBLEU, cased and detokenised; 95% bootstrap intervals)",
        "",
        "| test set | decoding | BLEU | chrF | TER | BLEU tok+lc |",
        "|---|---|---|---|---|---|",
    ]
    signatures = {}
    for split, report in reports.items():
        for system in report["systems"]:
            s = system["scores"]
            ci = (
                f" [{s['bleu']['ci_low']:.1f}, {s['bleu']['ci_high']:.1f}]"
                if s["bleu"]["ci_low"] is not None
                else ""
            )
            lines.append(
                f"| {split} | {system['name']} | {s['bleu']['score']:.2f}{ci} | "
                f"{s['chrf']['score']:.2f} | {s['ter']['score']:.2f} | "
                f"{system['bleu_tok_lc']['score']:.2f} |"
            )
            for key in ("bleu", "chrf", "ter"):
                signatures[key] = s[key]["signature"]
    lines += [""] + [f"- {k} signature: `{v}`" for k, v in signatures.items()]
    lines.append(
        "- BLEU tok+lc is the tokenised, lowercased BLEU that the Multi30k literature reports: "
        "not comparable with the cased detokenised sacreBLEU."
    )
    if missing:
        lines.append(not_scored)
    links = ", ".join(f"[{t}]({run.relative(run.report(t).markdown)})" for t in reports)
    return [*lines, "", f"Full reports: {links}.", ""]


def decoding_section(cfg: RunConfig, record: ShipRecord) -> list[str]:
    """The validation scores of every decoding tried, what was chosen, and the weights' dtype."""
    chosen, precision = record.decoding, record.precision
    lines = [
        "## Decoding, chosen on the validation set",
        "",
        "| beam | length penalty | valid BLEU | seconds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {t.beam} | {round(t.length_penalty, 4)} | {t.valid_bleu:.2f} | {t.seconds} |"
        for t in record.tuning
    ]
    lines += [
        "",
        f"Shipped: beam {chosen.beam}, length penalty {round(chosen.length_penalty, 4)} "
        f"(validation BLEU {chosen.valid_bleu:.2f}; the smallest beam near the best score, with "
        f"its best length penalty). Weights stored as {precision.dtype} (validation BLEU "
        f"{precision.fp16_valid_bleu:.2f} in float16 vs {precision.fp32_valid_bleu:.2f} in "
        "float32).",
        "",
    ]
    averaging = record.averaging
    if averaging is None:
        lines += ["No checkpoint averaging: the run kept no weight snapshots.", ""]
    else:
        lines += [
            f"Checkpoint averaging: the mean of the last {len(averaging.averaged)} weight "
            f"snapshots scored {averaging.average_valid_bleu:.2f} validation BLEU (as training "
            f"validates: beam {cfg.train.valid_beam}) against "
            f"{averaging.best_valid_bleu:.2f} for the best checkpoint: "
            f"{'shipped' if averaging.kept else 'not shipped'}.",
            "",
        ]
    return lines


def learning_rate_text(tc: TrainConfig) -> str:
    """How the run's learning rate moved (`train.lr_schedule`)."""
    warmup = f"{tc.warmup_steps} warm-up steps, then " if tc.warmup_steps else ""
    after = {
        "plateau": f"multiplied by {tc.lr_factor} after {tc.lr_patience} validations without "
        "BLEU gain",
        "linear": f"linear decay to {tc.min_lr} at the end of the budget",
        "cosine": f"cosine decay to {tc.min_lr} at the end of the budget",
        "inverse_sqrt": f"falling as 1/sqrt(step), not below {tc.min_lr}",
    }[tc.lr_schedule]
    return f"Adam lr {tc.lr}: {warmup}{after}"


def subword_text(sw: SubwordConfig) -> str:
    """The vocabulary, and how training sentences were segmented (subword regularisation)."""
    text = (
        f"SentencePiece {sw.model_type}, {sw.vocab_size} pieces, "
        f"{'joint' if sw.joint else 'separate'} vocabulary"
    )
    if not sw.sampling_alpha:
        return text
    if sw.model_type == "bpe":
        return f"{text}; BPE-dropout {sw.sampling_alpha} on the training sentences"
    return (
        f"{text}; training sentences segmented anew every epoch by sampling (alpha "
        f"{sw.sampling_alpha}, nbest {sw.nbest_size})"
    )


def decoder_text(m: ModelConfig) -> str:
    if m.decoder == "cgru":
        return (
            f"conditional GRU decoder {m.hidden_size} (Sennrich et al. 2017) with {m.attention} "
            "attention"
        )
    feeding = "and input feeding" if m.input_feeding else "without input feeding"
    return f"{m.cell.upper()} decoder {m.hidden_size} with {m.attention} attention {feeding}"


def training_section(run: RunDir, cfg: RunConfig, info: RunInfo, machine: str) -> list[str]:
    m, tc = cfg.model, cfg.train
    threads = f"{tc.threads} thread(s)" if tc.threads else "torch's default threads"
    return [
        "## Model and training",
        "",
        f"- {(info.parameters or 0) / 1e6:.1f}M parameters: embeddings {m.embed_size} "
        f"(shared source/target/output: {m.share_embeddings and m.tie_embeddings}), "
        f"{'bidirectional ' if m.bidirectional else ''}{m.cell.upper()} encoder "
        f"{m.encoder_hidden_size} per direction, {decoder_text(m)}, {m.num_layers} layer(s), "
        f"dropout {m.dropout}, word dropout {m.embed_dropout}.",
        f"- {subword_text(cfg.subword)}.",
        f"- {learning_rate_text(tc)}; label smoothing {tc.label_smoothing}; clipping "
        f"{tc.clip_norm}; batches of ≤ {tc.max_tokens} tokens.",
        f"- Trained {(info.train_seconds or 0) / 60:.0f} minutes ({info.step} steps; best "
        f"validation BLEU {info.best_valid_bleu or 0:.2f} at step {info.best_step}) on "
        f"{info.device}, {info.world_size} process(es) of {threads}, torch {info.torch}; "
        f"stopped: {info.stopped}.",
        f"- Shipped (decoding chosen, timed and scored) on: {machine}.",
        f"- Reproduce: `seq2seq train --config configs/{run.name}.yaml`, then "
        f"`seq2seq ship checkpoints/{run.name}`.",
        "",
        f"![learning curves]({run.relative(run.learning_curve)})",
        "",
    ]


def model_card(run_dir: Path, record: ShipRecord, reports: dict[str, dict[str, Any]]) -> str:
    """The card's Markdown."""
    run = RunDir(run_dir)
    cfg, recorded = checkpoint.load_config(run_dir)
    info = RunInfo.from_dict(recorded)
    corpus = "Multi30k task 1" if cfg.data.corpus == "multi30k" else f"`{cfg.data.train}`"
    lines = [
        f"# {run.name}: {language_pair_name(cfg.data.src_lang, cfg.data.tgt_lang)}",
        "",
        f"An attentional {cfg.model.cell.upper()} encoder-decoder trained on {corpus} "
        f"({info.train_pairs} training pairs).",
        "",
        *scores_section(run, record, reports),
        *decoding_section(cfg, record),
        *training_section(run, cfg, info, record.machine),
        "## Known limits",
        "",
        "- Multi30k is image captions: short, simple, literal sentences. Other text (news, "
        "dialogue, long sentences) translates poorly."
        if cfg.data.corpus == "multi30k"
        else "- It knows the style and vocabulary of its training corpus only.",
        "- Rare words come out as subword guesses; names and numbers may be garbled.",
        f"- Trained on {info.train_pairs} sentence pairs: it reflects their style and biases.",
    ]
    return "\n".join(lines) + "\n"
