"""The model card of a shipped run (`RunDir.model_card`), written from what `ship` measured and
chose (`ship_record.ShipRecord`), the test reports and the run's config and training facts.

Every fact comes from those: the machine is the one `machine.describe_machine` read while
shipping, and nothing is written from memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from seq2seq import checkpoint
from seq2seq.config import ModelConfig, RunConfig, SubwordConfig, TrainConfig
from seq2seq.download import language_name, language_pair_name
from seq2seq.multilingual import run_directions
from seq2seq.rundir import RunDir, RunInfo

if TYPE_CHECKING:
    from seq2seq.ship_record import PrecisionTrial, ShipRecord


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
            lines.append(
                f"| {split} | {system['name']} | {with_interval(s['bleu'])} | "
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


def minutes_text(minutes: float | None) -> str:
    return "core-minutes not recorded" if minutes is None else f"{minutes:,.0f} core-minutes"


def with_interval(score: dict[str, Any]) -> str:
    """``"38.13 [36.9, 39.4]"``: a report's score with its 95% interval, when it has one."""
    if score.get("ci_low") is None:
        return f"{score['score']:.2f}"
    return f"{score['score']:.2f} [{score['ci_low']:.1f}, {score['ci_high']:.1f}]"


def training_core_minutes(folder: Path) -> float | None:
    """The CPU-core minutes (or device minutes) that trained ``folder``'s weights: each run's
    training time × threads × processes, summed over an ensemble's members; None when a run
    did not record its time."""
    runs = checkpoint.shipped_runs(folder)
    total = 0.0
    for run in runs:
        cfg, recorded = checkpoint.load_config(run)
        info = RunInfo.from_dict(recorded)
        if info.train_seconds is None:
            return None
        total += info.train_seconds / 60 * cfg.train.threads * (info.world_size or 1)
    return total


def directions_section(
    run: RunDir, record: ShipRecord, reports: dict[str, dict[str, Any]]
) -> list[str]:
    """A multilingual model's scores: one row per test set and direction (reports named
    ``TEST_SET.SRC-TGT``), with the shipped decoding, beside the bilingual models shipped next
    to it."""
    if not reports:
        return scores_section(run, record, reports)
    lines = [
        "## Scores by direction (sacreBLEU, cased and detokenised; 95% bootstrap intervals)",
        "",
        f"Every direction decoded as shipped (beam {record.decoding.beam}, length penalty "
        f"{round(record.decoding.length_penalty, 4)}). Bilingual model: the model shipped "
        "beside this one for that direction, on the same test set, with the core-minutes that "
        "trained it, and this model's gain over it with its 95% paired-bootstrap interval "
        "(negative: the bilingual model is better).",
        "",
        "| test set | direction | BLEU | chrF | BLEU tok+lc | bilingual model | gain |",
        "|---|---|---|---|---|---|---|",
    ]
    by_split: dict[str, list[float]] = {}
    signatures = {}
    for name, report in sorted(reports.items(), key=lambda item: item[0].rpartition(".")[0]):
        split, _, direction = name.rpartition(".")
        system = report["systems"][-1]
        scores = system["scores"]
        by_split.setdefault(split, []).append(scores["bleu"]["score"])
        beside = record.bilingual.get(name)
        bilingual = (
            f"{beside.bleu:.2f} ({beside.model}, {minutes_text(beside.core_minutes)}) | "
            f"{beside.gain:+.2f} [{beside.low:+.1f}, {beside.high:+.1f}]"
            if beside
            else " | "
        )
        lines.append(
            f"| {split} | {language_pair_name(*direction.split('-'))} | "
            f"{with_interval(scores['bleu'])} | {with_interval(scores['chrf'])} | "
            f"{system['bleu_tok_lc']['score']:.2f} | {bilingual} |"
        )
        for key in ("bleu", "chrf"):
            signatures[key] = scores[key]["signature"]
    lines.append("")
    lines += [
        f"- Mean BLEU of the {len(bleus)} directions on {split}: {sum(bleus) / len(bleus):.2f}"
        for split, bleus in by_split.items()
    ]
    minutes = training_core_minutes(run.root)
    directions = len({name.rpartition(".")[2] for name in reports})
    share = "" if minutes is None else f", {minutes / directions:,.0f} per direction scored"
    lines.append(
        f"- This model trained for {minutes_text(minutes)} for all its directions together{share}."
    )
    lines += [f"- {k} signature: `{v}`" for k, v in signatures.items()]
    if record.tests_not_at_hand:
        lines.append(f"- Not scored here: {', '.join(record.tests_not_at_hand)}.")
    links = ", ".join(f"[{t}]({run.relative(run.report(t).markdown)})" for t in reports)
    return [*lines, "", f"Full reports: {links}.", ""]


def precision_text(precision: PrecisionTrial) -> str:
    """The weights' dtype and the validation scores that chose it."""
    if precision.fp32_valid_bleu is None:
        return (
            f"Weights stored as float16 before this ship ran (validation BLEU "
            f"{precision.fp16_valid_bleu:.2f}), so not compared with float32 here."
        )
    return (
        f"Weights stored as {precision.dtype} (validation BLEU {precision.fp16_valid_bleu:.2f} "
        f"in float16 vs {precision.fp32_valid_bleu:.2f} in float32)."
    )


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
        f"its best length penalty). {precision_text(precision)} Chosen, timed and scored on: "
        f"{record.machine}.",
        "",
    ]
    averaging = record.averaging
    if record.members:
        pass  # each member's averaging is in the members' table
    elif averaging is None:
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
    """The decoder in a few words."""
    if m.decoder == "cgru":
        return (
            f"conditional GRU decoder {m.hidden_size} (Sennrich et al. 2017) with {m.attention} "
            "attention"
        )
    feeding = "and input feeding" if m.input_feeding else "without input feeding"
    return f"{m.cell.upper()} decoder {m.hidden_size} with {m.attention} attention {feeding}"


def model_text(m: ModelConfig) -> str:
    """The architecture in one sentence."""
    return (
        f"embeddings {m.embed_size} (shared source/target/output: "
        f"{m.share_embeddings and m.tie_embeddings}), "
        f"{'bidirectional ' if m.bidirectional else ''}{m.cell.upper()} encoder "
        f"{m.encoder_hidden_size} per direction, {decoder_text(m)}, {m.num_layers} layer(s), "
        f"dropout {m.dropout}, word dropout {m.embed_dropout}"
    )


def training_lines(cfg: RunConfig, info: RunInfo) -> list[str]:
    """One run's model and training, as Markdown bullets."""
    tc = cfg.train
    threads = f"{tc.threads} thread(s)" if tc.threads else "torch's default threads"
    return [
        f"- {(info.parameters or 0) / 1e6:.1f}M parameters: {model_text(cfg.model)}.",
        f"- {subword_text(cfg.subword)}.",
        f"- {learning_rate_text(tc)}; label smoothing {tc.label_smoothing}; clipping "
        f"{tc.clip_norm}; batches of ≤ {tc.max_tokens} tokens.",
        f"- Trained {(info.train_seconds or 0) / 60:.0f} minutes ({info.step} steps; best "
        f"validation BLEU {info.best_valid_bleu or 0:.2f} at step {info.best_step}) on "
        f"{info.device}, {info.world_size} process(es) of {threads}, torch {info.torch}; "
        f"stopped: {info.stopped}.",
    ]


def rebuild_lines(
    folder: RunDir, members: list[tuple[RunDir, RunConfig]], ship_flags: list[str]
) -> list[str]:
    """The commands that rebuild the shipped folder: train each run from its config (named as
    the run), assemble an ensemble of them, ship with the flags it was shipped with."""
    commands = [f"seq2seq train --config configs/{cfg.train.name}.yaml" for _, cfg in members]
    target = f"checkpoints/{folder.name}"
    if folder.is_ensemble():
        runs = " ".join(f"{cfg.train.out_dir}/{cfg.train.name}" for _, cfg in members)
        commands.append(f"seq2seq ensemble {target} {runs}")
    commands.append(" ".join([f"seq2seq ship {target}", *ship_flags]))
    return ["## Rebuild", "", "```", *commands, "```", ""]


def training_section(
    folder: RunDir,
    members: list[tuple[RunDir, RunConfig]],
    info_of: dict[Path, RunInfo],
    record: ShipRecord,
) -> list[str]:
    """The model and training of the run, or of each member of an ensemble."""
    lines = ["## Model and training", ""]
    if not record.members:
        [(run, cfg)] = members
        lines += training_lines(cfg, info_of[run.root])
        lines += ["", f"![learning curves]({folder.relative(run.learning_curve)})", ""]
    else:
        lines += [
            "| member | validation BLEU alone (shipped decoding) | checkpoint averaging |",
            "|---|---|---|",
        ]
        for member in record.members:
            averaged = member.averaging
            kept = (
                f"{averaged.average_valid_bleu:.2f} vs {averaged.best_valid_bleu:.2f}: "
                f"{'shipped' if averaged.kept else 'not shipped'}"
                if averaged
                else "none"
            )
            lines.append(f"| {member.name} | {member.valid_bleu:.2f} | {kept} |")
        lines += [
            f"| **ensemble** | **{record.decoding.valid_bleu:.2f}** | |",
            "",
            "The ensemble averages its members' log-probabilities at every decoding step.",
            "",
        ]
        for run, cfg in members:
            lines += [f"### {run.name}", "", *training_lines(cfg, info_of[run.root]), ""]
            lines += [f"![learning curves]({folder.relative(run.learning_curve)})", ""]
    return lines


# Single RNNs trained on Multi30k alone, on test_2016_flickr, as their papers report them:
# multi-bleu on Moses-tokenised, lowercased text against the dataset's lc.norm.tok references.
PUBLISHED_MULTI30K: dict[tuple[str, str], list[tuple[str, float]]] = {
    ("de", "en"): [("Lample et al. 2018, 3-layer biLSTM, word vocabulary", 38.4)],
    ("en", "de"): [
        ("Lample et al. 2018, 3-layer biLSTM, word vocabulary", 35.2),
        ("nmtpy attentive GRU example", 37.3),
        ("Marian RNN (MeMAD, WMT18)", 38.9),
        ("LIUM text-only single model (WMT17)", 39.0),
    ],
}
PUBLISHED_TEST_SET = "test_2016_flickr"


def published_section(cfg: RunConfig, reports: dict[str, dict[str, Any]]) -> list[str]:
    """This model's shipped decoding beside published single RNNs, each BLEU named for what it
    is; nothing when the pair has no published numbers or the test set was not scored."""
    published = PUBLISHED_MULTI30K.get((cfg.data.src_lang, cfg.data.tgt_lang), [])
    report = reports.get(PUBLISHED_TEST_SET)
    if cfg.data.corpus != "multi30k" or cfg.data.multilingual or not published or not report:
        return []
    shipped = report["systems"][-1]
    literature = "tok+lc, the papers' own (multi-bleu, Moses tokens, lowercased)"
    return [
        f"## Beside published single RNNs trained on Multi30k alone ({PUBLISHED_TEST_SET})",
        "",
        "| system | BLEU | which BLEU |",
        "|---|---|---|",
        f"| this model ({shipped['name']}) | {shipped['scores']['bleu']['score']:.1f} | "
        "sacreBLEU, cased and detokenised |",
        f"| this model ({shipped['name']}) | {shipped['bleu_tok_lc']['score']:.1f} | tok+lc, "
        "approximated with sacreBLEU's 13a tokens, lowercased |",
        *(f"| {system} | {bleu:.1f} | {literature} |" for system, bleu in published),
        "",
    ]


def model_card(run_dir: Path, record: ShipRecord, reports: dict[str, dict[str, Any]]) -> str:
    """The card's Markdown: of a run, or of an ensemble folder (`RunDir.is_ensemble`)."""
    folder = RunDir(run_dir)
    member_dirs = checkpoint.shipped_runs(run_dir)
    loaded = {path: checkpoint.load_config(path) for path in member_dirs}
    members = [(RunDir(path), cfg) for path, (cfg, _) in loaded.items()]
    info_of = {path: RunInfo.from_dict(recorded) for path, (_, recorded) in loaded.items()}
    cfg, info = members[0][1], info_of[member_dirs[0]]
    corpus = "Multi30k task 1" if cfg.data.corpus == "multi30k" else f"`{cfg.data.train}`"
    what = (
        f"An ensemble of {len(members)} attentional encoder-decoders"
        if folder.is_ensemble()
        else f"An attentional {cfg.model.cell.upper()} encoder-decoder"
    )
    if cfg.data.multilingual:
        directions = run_directions(cfg.data)
        languages = dict.fromkeys(lang for direction in directions for lang in direction)
        title = f"{len(directions)} directions between " + ", ".join(map(language_name, languages))
        what += (
            ", one model for every direction: the source starts with a token naming the target "
            "language (Johnson et al. 2017),"
        )
        scores = directions_section(folder, record, reports)
    else:
        title = language_pair_name(cfg.data.src_lang, cfg.data.tgt_lang)
        scores = scores_section(folder, record, reports)
    lines = [
        f"# {folder.name}: {title}",
        "",
        f"{what} trained on {corpus} ({info.train_pairs} training pairs).",
        "",
        *scores,
        *published_section(cfg, reports),
        *decoding_section(cfg, record),
        *training_section(folder, members, info_of, record),
        *rebuild_lines(folder, members, record.flags),
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
