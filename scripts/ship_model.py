"""Turn a finished training run into a shipped model directory.

    python scripts/ship_model.py checkpoints/multi30k-de-en [--mirror FOLDER]

0. with --average last1.pt last2.pt ...: averages those training states' weights and keeps the
   average if it scores higher than the best checkpoint on the validation set (greedy);
1. chooses beam size and length penalty on the validation set (never on a test set);
2. stores the weights as float16 if that costs no validation BLEU (> 0.1 lost: keeps float32);
3. evaluates every Multi30k test set that is cached or reachable, writing a report for each
   into the run's eval folder;
4. writes the model card, and what it was written from (to rewrite it with --card-only).
The resumable training state is training-only and not shipped (git ignores it). Every file name
is `seq2seq.rundir.RunDir`'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from seq2seq import checkpoint
from seq2seq.config import DataConfig
from seq2seq.corpus import load_split
from seq2seq.download import DownloadError, language_pair_name
from seq2seq.evaluate import evaluate_translator
from seq2seq.metrics import score_corpus
from seq2seq.rundir import ReportDir, RunDir, RunInfo
from seq2seq.translate import Translator

BEAMS = (1, 5, 10)
PENALTIES = (0.6, 1.0, 1.4)
TEST_SETS = ("test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


def valid_bleu(
    translator: Translator, sources: list[str], refs: list[str], beam: int, lp: float
) -> float:
    hyps = [t.text for t in translator.translate(sources, beam_size=beam, length_penalty=lp)]
    return score_corpus(hyps, refs, n_bootstrap=0)["bleu"].score


def try_average(run_dir: Path, paths: list[Path], sources: list[str], refs: list[str]) -> dict:
    best = Translator.from_run(run_dir, device="cpu")
    best_bleu = valid_bleu(best, sources, refs, 1, 1.0)
    averaged = Translator.from_run(run_dir, device="cpu")
    averaged.model.load_state_dict(checkpoint.average_weights(paths))
    averaged_bleu = valid_bleu(averaged, sources, refs, 1, 1.0)
    keep = averaged_bleu > best_bleu
    if keep:
        checkpoint.save_weights(averaged.model, RunDir(run_dir).weights)
    print(
        f"average of {len(paths)}: valid BLEU (greedy) {averaged_bleu:.2f} vs best "
        f"{best_bleu:.2f}: {'kept' if keep else 'dropped'}",
        flush=True,
    )
    return {
        "checkpoints": len(paths),
        "best_valid_bleu_greedy": round(best_bleu, 2),
        "averaged_valid_bleu_greedy": round(averaged_bleu, 2),
        "kept": keep,
    }


def tune_decoding(translator: Translator, sources: list[str], refs: list[str]) -> list[dict]:
    rows = []
    for beam in BEAMS:
        for lp in PENALTIES if beam > 1 else (1.0,):
            start = time.perf_counter()
            bleu = valid_bleu(translator, sources, refs, beam, lp)
            rows.append(
                {
                    "beam": beam,
                    "length_penalty": lp,
                    "valid_bleu": round(bleu, 2),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(f"valid beam {beam} lp {lp}: BLEU {bleu:.2f}", flush=True)
    return rows


def choose_decoding(tuning: list[dict], tolerance: float = 0.1) -> dict:
    """The cheapest setting (smallest beam) within ``tolerance`` BLEU of the best one."""
    top = max(r["valid_bleu"] for r in tuning)
    close = [r for r in tuning if r["valid_bleu"] >= top - tolerance]
    return min(close, key=lambda r: (r["beam"], -r["valid_bleu"]))


def try_float16(run_dir: Path, translator: Translator, sources, refs, beam, lp, fp32_bleu) -> dict:
    weights, backup = RunDir(run_dir).weights, RunDir(run_dir).fp32_weights
    weights.replace(backup)
    checkpoint.save_weights(translator.model, weights, dtype=torch.float16)
    half = Translator.from_run(run_dir, device="cpu")
    fp16_bleu = valid_bleu(half, sources, refs, beam, lp)
    keep = fp16_bleu >= fp32_bleu - 0.1
    if keep:
        backup.unlink()
    else:
        backup.replace(weights)
    print(
        f"float16: valid BLEU {fp16_bleu:.2f} vs {fp32_bleu:.2f}: {'kept' if keep else 'dropped'}"
    )
    return {
        "fp32_valid_bleu": round(fp32_bleu, 2),
        "fp16_valid_bleu": round(fp16_bleu, 2),
        "dtype": "float16" if keep else "float32",
    }


def evaluate_tests(run_dir: Path, data: DataConfig, beam: int, lp: float) -> dict[str, dict]:
    translator = Translator.from_run(run_dir, device="cpu")
    results = {}
    for split in TEST_SETS:
        try:
            pairs = load_split(data, split)
        except (DownloadError, FileNotFoundError, ValueError) as err:
            print(f"{split}: not available here ({err})")
            continue
        report = evaluate_translator(
            translator,
            [s for s, _ in pairs],
            [t for _, t in pairs],
            beam_size=beam,
            length_penalty=lp,
            report_dir=RunDir(run_dir).report(split).root,
            n_bootstrap=1000,
        )
        results[split] = report
        best = report["systems"][-1]
        print(f"{split}: BLEU {best['scores']['bleu']['score']:.2f}")
    return results


def model_card(
    run_dir: Path, tuning: list[dict], dtype: dict, tests: dict[str, dict], averaging: dict | None
) -> str:
    cfg, recorded = checkpoint.load_config(run_dir)
    info, run = RunInfo.from_dict(recorded), RunDir(run_dir)
    m = cfg.model
    lines = [
        f"# {run_dir.name}: {language_pair_name(cfg.data.src_lang, cfg.data.tgt_lang)}",
        "",
        f"An attentional {m.cell.upper()} encoder-decoder trained on Multi30k task 1 "
        f"({info.train_pairs} training pairs) on a 2-core CPU.",
        "",
        "## Scores (sacreBLEU, cased and detokenised; 95% bootstrap intervals)",
        "",
        "| test set | decoding | BLEU | chrF | TER | BLEU tok+lc |",
        "|---|---|---|---|---|---|",
    ]
    signatures = {}
    for split, report in tests.items():
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
    missing = [t for t in TEST_SETS if t not in tests]
    lines += [""] + [f"- {k} signature: `{v}`" for k, v in signatures.items()]
    lines += [
        "- BLEU tok+lc is the tokenised, lowercased BLEU that the Multi30k literature reports: "
        "not comparable with the cased detokenised sacreBLEU.",
    ]
    if missing:
        lines.append(
            f"- Not scored here (no copy on the training machine): {', '.join(missing)}. "
            f"`seq2seq evaluate --checkpoint checkpoints/{run_dir.name} --test-set NAME` "
            "downloads and scores them."
        )
    links = ", ".join(f"[{t}]({run.relative(run.report(t).markdown)})" for t in tests)
    lines += ["", f"Full reports: {links}.", ""]
    lines += [
        "## Decoding, chosen on the validation set",
        "",
        "| beam | length penalty | valid BLEU | seconds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['beam']} | {r['length_penalty']} | {r['valid_bleu']} | {r['seconds']} |"
        for r in tuning
    ]
    lines += [
        "",
        f"Shipped: beam {cfg.decode.beam_size}, length penalty {cfg.decode.length_penalty}. "
        f"Weights stored as {dtype['dtype']} (validation BLEU {dtype['fp16_valid_bleu']} in "
        f"float16 vs {dtype['fp32_valid_bleu']} in float32).",
        "",
    ]
    if averaging:
        lines += [
            f"Checkpoint averaging: the mean of the last {averaging['checkpoints']} training "
            f"checkpoints scored {averaging['averaged_valid_bleu_greedy']} validation BLEU "
            f"(greedy) against {averaging['best_valid_bleu_greedy']} for the best single one: "
            f"{'shipped' if averaging['kept'] else 'not shipped'}.",
            "",
        ]
    minutes = (info.train_seconds or 0) / 60
    lines += [
        "## Model and training",
        "",
        f"- {(info.parameters or 0) / 1e6:.1f}M parameters: embeddings {m.embed_size} "
        f"(shared source/target/output: {m.share_embeddings and m.tie_embeddings}), "
        f"{'bidirectional ' if m.bidirectional else ''}{m.cell.upper()} encoder "
        f"{m.encoder_hidden_size} per direction, {m.cell.upper()} decoder {m.hidden_size} with "
        f"{m.attention} attention and input feeding, {m.num_layers} layer(s), dropout {m.dropout}, "
        f"word dropout {m.embed_dropout}.",
        f"- SentencePiece {cfg.subword.model_type}, {cfg.subword.vocab_size} pieces, "
        f"{'joint' if cfg.subword.joint else 'separate'} vocabulary.",
        f"- Adam lr {cfg.train.lr}, halved when validation BLEU stalls; label smoothing "
        f"{cfg.train.label_smoothing}; clipping {cfg.train.clip_norm}; batches of ≤ "
        f"{cfg.train.max_tokens} tokens.",
        f"- Trained {minutes:.0f} minutes ({info.step} steps; best validation BLEU "
        f"{info.best_valid_bleu or 0:.2f} at step {info.best_step}) on one thread of "
        f"a 2-core x86-64 CPU, torch {info.torch}; stopped: {info.stopped}.",
        f"- Reproduce: `seq2seq train --config configs/{run_dir.name}.yaml` "
        "(then `python scripts/ship_model.py checkpoints/" + run_dir.name + "`).",
        "",
        f"![learning curves]({run.relative(run.learning_curve)})",
        "",
        "## Known limits",
        "",
        "- Multi30k is image captions: short, simple, literal sentences. Other text (news, "
        "dialogue, long sentences) translates poorly.",
        "- Rare words come out as subword guesses; names and numbers may be garbled.",
        f"- Trained on {info.train_pairs} sentence pairs: it reflects their style and biases.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--mirror", default="", help="Multi30k mirror: URL or folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--card-only",
        action="store_true",
        help=f"rewrite {RunDir.MODEL_CARD_FILE} from {RunDir.SHIP_FILE} and "
        f"{RunDir.EVAL_DIR}/*/{ReportDir.JSON_FILE} only",
    )
    parser.add_argument(
        "--average",
        type=Path,
        nargs="*",
        default=[],
        help=f"training states ({RunDir.STATE_FILE} copies) whose mean weights to try",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_dir: Path = args.run_dir
    run = RunDir(run_dir)
    previous = json.loads(run.ship_record.read_text()) if run.ship_record.is_file() else {}
    if args.card_only:
        tests = {
            t: json.loads(run.report(t).json.read_text())
            for t in TEST_SETS
            if run.report(t).json.is_file()
        }
        card = model_card(
            run_dir, previous["tuning"], previous["dtype"], tests, previous.get("averaging")
        )
        run.model_card.write_text(card, encoding="utf-8")
        return
    cfg, info = checkpoint.load_config(run_dir)
    data = dataclasses.replace(cfg.data, mirror=args.mirror or cfg.data.mirror)
    valid = load_split(data, "val")
    sources, refs = [s for s, _ in valid], [t for _, t in valid]
    averaging = (
        try_average(run_dir, args.average, sources, refs)
        if args.average
        else previous.get("averaging")  # an earlier run of this script averaged already
    )
    translator = Translator.from_run(run_dir, device="cpu")
    tuning = tune_decoding(translator, sources, refs)
    best = choose_decoding(tuning)
    decode = dataclasses.replace(
        cfg.decode, beam_size=best["beam"], length_penalty=best["length_penalty"]
    )
    checkpoint.save_config(run_dir, dataclasses.replace(cfg, decode=decode), info)
    dtype = try_float16(
        run_dir, translator, sources, refs, best["beam"], best["length_penalty"], best["valid_bleu"]
    )
    tests = evaluate_tests(run_dir, data, best["beam"], best["length_penalty"])
    card = model_card(run_dir, tuning, dtype, tests, averaging)
    run.model_card.write_text(card, encoding="utf-8")
    run.ship_record.write_text(
        json.dumps({"averaging": averaging, "tuning": tuning, "dtype": dtype}, indent=2)
    )
    print(f"model card written to {run.model_card}")


if __name__ == "__main__":
    main()
