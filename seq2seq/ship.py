"""A finished training run, or an ensemble folder of runs, → a shipped model:
``seq2seq ship RUN``.

In this order, so that nothing is chosen on a test set:
1. averaging: the run's latest checkpoint averaging (training's own, or ``seq2seq average``'s,
   from its log); a run with snapshots that were never averaged is averaged now; an ensemble's
   members each so;
2. decoding: every beam size with a grid of length penalties, scored on the validation set; a
   grid whose best value sits on its upper edge grows by its step until it does not (or reaches
   `config.MAX_LENGTH_PENALTY`); the smallest beam within a tolerance of the best score, with its
   best length penalty, becomes the run's ``decode`` settings (every member's, for an
   ensemble, which is tuned as one model and then scored member by member);
3. float16: the weights are stored in float16 if validation BLEU holds within a tolerance; the
   float32 file is set aside meanwhile (`RunDir.fp32_weights`) and the weights file is only ever
   replaced by an atomic rename, so it is whole at every moment;
4. the test reports (`evaluate.evaluate_translator`) on every test set at hand;
5. `RunDir.ship_record` (what was measured and chosen) and the model card (`model_card`).

A multilingual run is shipped the same way, one decoding for all its directions: a decoding's
validation score is the mean of the directions' BLEU (as training validates), and every
direction is scored on every test set that has both its languages, into reports named
``TEST_SET.SRC-TGT`` (as `seq2seq evaluate --src-lang SRC --to TGT` names them). A direction
that a bilingual model shipped beside it (in the same parent folder) also translates is compared
with that model's report on the same test set: its BLEU and the multilingual model's gain, with a
paired-bootstrap interval.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seq2seq import checkpoint
from seq2seq.averaging import average_files
from seq2seq.config import MAX_LENGTH_PENALTY, DataConfig, ShipConfig
from seq2seq.corpus import load_split
from seq2seq.directions import Direction, parse_direction, split_tag
from seq2seq.download import MULTI30K_LANGS, DownloadError
from seq2seq.evaluate import evaluate_translator, read_hypotheses
from seq2seq.machine import describe_machine
from seq2seq.metrics import paired_gain, score_corpus
from seq2seq.model_card import model_card, training_core_minutes
from seq2seq.multilingual import direction_data, load_validation, run_directions
from seq2seq.rundir import RunDir
from seq2seq.ship_record import (
    BilingualComparison,
    MemberRecord,
    PrecisionTrial,
    ShipRecord,
    Trial,
)
from seq2seq.snapshots import AveragingOutcome, last_averaging, last_snapshots
from seq2seq.translate import Translator


@dataclass(frozen=True)
class DirectionSet:
    """One direction's sentences of a split: its sources (untagged) and references."""

    direction: Direction
    sources: list[str]
    references: list[str]


def toward(translator: Translator, direction: Direction) -> Translator:
    """``translator`` translating ``direction`` (a multilingual model's view; a bilingual
    model is itself)."""
    return (
        translator.toward(direction.tgt, direction.src) if translator.multilingual else translator
    )


def valid_bleu(
    translator: Translator, sets: Sequence[DirectionSet], beam: int, length_penalty: float
) -> float:
    """Corpus BLEU of ``translator``'s output with this decoding, the mean over directions (the
    scorer of every choice)."""
    scores = []
    for one in sets:
        translations = toward(translator, one.direction).translate(
            one.sources, beam_size=beam, length_penalty=length_penalty
        )
        hypotheses = [t.text for t in translations]
        scores.append(score_corpus(hypotheses, one.references, n_bootstrap=0)["bleu"].score)
    return sum(scores) / len(scores)


Scorer = Callable[[int, float], float]  # (beam size, length penalty) -> validation BLEU


def timed_trial(score: Scorer, beam: int, length_penalty: float) -> Trial:
    start = time.perf_counter()
    bleu = score(beam, length_penalty)
    trial = Trial(beam, length_penalty, bleu, round(time.perf_counter() - start, 1))
    print(f"validation, beam {beam}, length penalty {length_penalty}: BLEU {bleu:.2f}", flush=True)
    return trial


def tune_length_penalty(score: Scorer, beam: int, grid: Sequence[float]) -> list[Trial]:
    """``grid`` scored at ``beam``, grown by its last step while its best value is its largest
    (the best may lie beyond), up to `MAX_LENGTH_PENALTY`."""
    trials = [timed_trial(score, beam, lp) for lp in grid]
    step = grid[-1] - grid[-2] if len(grid) > 1 else 0.4
    while True:
        best = max(trials, key=lambda t: t.valid_bleu)  # the first of equals: no growth on a tie
        largest = max(t.length_penalty for t in trials)
        if best.length_penalty < largest or largest >= MAX_LENGTH_PENALTY:
            return trials
        trials.append(timed_trial(score, beam, round(min(largest + step, MAX_LENGTH_PENALTY), 4)))


def tune_decoding(score: Scorer, beams: Sequence[int], grid: Sequence[float]) -> list[Trial]:
    """Every beam size scored: greedy once (a length penalty changes nothing there), every
    wider beam over the length-penalty ``grid`` (`tune_length_penalty`)."""
    trials = []
    for beam in beams:
        if beam == 1:
            trials.append(timed_trial(score, 1, 1.0))
        else:
            trials += tune_length_penalty(score, beam, grid)
    return trials


def choose_decoding(trials: list[Trial], tolerance: float) -> Trial:
    """The cheapest setting (smallest beam) within ``tolerance`` BLEU of the best one, with the
    best length penalty for that beam."""
    top = max(t.valid_bleu for t in trials)
    close = [t for t in trials if t.valid_bleu >= top - tolerance]
    return min(close, key=lambda t: (t.beam, -t.valid_bleu))


def restore_float32(run: RunDir) -> None:
    """Put back float32 weights that an interrupted float16 check left set aside."""
    if run.fp32_weights.is_file():
        print(f"{run.fp32_weights} was set aside by an interrupted float16 check: restored")
        os.replace(run.fp32_weights, run.weights)


def try_float16(
    runs: Sequence[RunDir], fp32_valid_bleu: float, score: Callable[[], float], tolerance: float
) -> PrecisionTrial:
    """Store the weights of ``runs`` (one run, or an ensemble's members) in float16 if ``score``
    (validation BLEU as they load from disk) holds within ``tolerance`` of ``fp32_valid_bleu``;
    else put float32 back.

    Each float32 file is copied aside first; a weights file is replaced only by atomic renames,
    so a crash leaves whole weights files (and `restore_float32` puts float32 back). Weights
    that are float16 already (a run shipped before) stay so, with no float32 score claimed.
    """
    if all(checkpoint.float_dtypes(run.weights) == {torch.float16} for run in runs):
        print("float16: the weights were float16 already (shipped before); kept, not compared")
        return PrecisionTrial(None, fp32_valid_bleu, "float16")
    for run in runs:
        checkpoint.write_atomically(run.fp32_weights, functools.partial(_copy, run.weights))
    for run in runs:
        model, _ = checkpoint.load_model(run.root)
        checkpoint.save_weights(model, run.weights, dtype=torch.float16)
    fp16_valid_bleu = score()
    keep = fp16_valid_bleu >= fp32_valid_bleu - tolerance
    for run in runs:
        if keep:
            run.fp32_weights.unlink()
        else:
            os.replace(run.fp32_weights, run.weights)
    trial = PrecisionTrial(fp32_valid_bleu, fp16_valid_bleu, "float16" if keep else "float32")
    print(f"float16: validation BLEU {fp16_valid_bleu:.2f} vs {fp32_valid_bleu:.2f} in float32")
    print(f"weights stored as {trial.dtype}")
    return trial


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def settle_averaging(run_dir: Path) -> AveragingOutcome | None:
    """The run's latest averaging; a run with snapshots it never averaged is averaged now."""
    done = last_averaging(checkpoint.read_log(run_dir))
    run = RunDir(run_dir)
    if done is not None or len(run.snapshots()) < 2:
        return done
    cfg, _ = checkpoint.load_config(run_dir)
    outcome = average_files(run_dir, last_snapshots(run, cfg.train.average_last or 2**31))
    print(outcome.summary())
    return outcome


def validation_sets(data: DataConfig, pairs: int) -> list[DirectionSet]:
    """The validation split's first ``pairs`` (0 = all) by direction: a bilingual run's one; a
    multilingual run's pairs are taken in turn (`multilingual.load_validation`), so that the
    first ones cover every direction."""
    if not data.multilingual:
        valid = load_split(data, "val")
        valid = valid[:pairs] if pairs else valid
        [direction] = run_directions(data)
        return [DirectionSet(direction, [src for src, _ in valid], [tgt for _, tgt in valid])]
    tagged, names = load_validation(data)
    if pairs:
        tagged, names = tagged[:pairs], names[:pairs]
    sets: dict[str, DirectionSet] = {}
    for (src, tgt), name in zip(tagged, names, strict=True):
        one = sets.setdefault(name, DirectionSet(parse_direction(name), [], []))
        one.sources.append(split_tag(src)[1])
        one.references.append(tgt)
    return list(sets.values())


@dataclass(frozen=True)
class TestReport:
    """One report `ship` writes: a test set, scored in one direction."""

    name: str  # its folder in the run's eval/: the test set, with the direction if multilingual
    split: str
    direction: Direction


def wanted_reports(data: DataConfig, options: ShipConfig) -> list[TestReport]:
    """The reports asked for: every direction on each test set given, or by default on every
    Multi30k test set that has both its languages."""
    multilingual = data.multilingual
    wanted = []
    for direction in run_directions(data):
        splits = options.test_sets
        if not splits and data.corpus == "multi30k":
            splits = tuple(
                split
                for split, langs in MULTI30K_LANGS.items()
                if split.startswith("test_") and set(direction) <= set(langs)
            )
        for split in splits:
            name = f"{split}.{direction}" if multilingual else split
            wanted.append(TestReport(name, split, direction))
    return wanted


def bilingual_beside(run_dir: Path) -> dict[str, Path]:
    """Direction (``de-en``) -> the bilingual model shipped beside ``run_dir`` (a folder with a
    `RunDir.ship_record` in the same parent folder) that translates it."""
    found: dict[str, Path] = {}
    for record_file in sorted(run_dir.parent.glob(f"*/{RunDir.SHIP_FILE}")):
        folder = record_file.parent
        if folder.resolve() == run_dir.resolve():
            continue
        try:
            cfg, _ = checkpoint.load_config(shipped_members(folder)[0])
        except (OSError, ValueError):  # not a model that loads: nothing to compare with
            continue
        if not cfg.data.multilingual:
            found.setdefault(f"{cfg.data.src_lang}-{cfg.data.tgt_lang}", folder)
    return found


def compare_with_bilingual(
    folder: Path, split: str, hypotheses: list[str], references: list[str], n: int
) -> BilingualComparison | None:
    """``hypotheses`` against the bilingual model ``folder``'s shipped report on ``split``;
    None when it has none of the same sentences."""
    report = RunDir(folder).report(split)
    if not (report.json.is_file() and report.hypotheses.is_file()):
        return None
    baseline = read_hypotheses(report.hypotheses)
    if len(baseline) != len(references):  # another version of the test set
        return None
    gain = paired_gain(hypotheses, baseline, references, n)
    systems = json.loads(report.json.read_text(encoding="utf-8"))["systems"]
    bleu = float(systems[-1]["scores"]["bleu"]["score"])  # its shipped decoding
    minutes = training_core_minutes(folder)
    return BilingualComparison(folder.name, bleu, gain.value, gain.low, gain.high, minutes)


def evaluate_tests(
    run_dir: Path, data: DataConfig, decoding: Trial, options: ShipConfig
) -> tuple[dict[str, dict[str, Any]], dict[str, BilingualComparison]]:
    """The test reports (`RunDir.report`) of every test set at hand, by report name; and for
    a multilingual run, its comparisons with the bilingual models beside it."""
    translator = Translator.from_run(run_dir, device="cpu")
    beside = bilingual_beside(run_dir) if data.multilingual else {}
    reports, comparisons = {}, {}
    for wanted in wanted_reports(data, options):
        try:
            pairs = load_split(direction_data(data, wanted.direction), wanted.split)
        except (DownloadError, FileNotFoundError, ValueError) as err:
            print(f"{wanted.name}: not available here ({err})")
            continue
        reports[wanted.name] = evaluate_translator(
            toward(translator, wanted.direction),
            [src for src, _ in pairs],
            [tgt for _, tgt in pairs],
            beam_size=decoding.beam,
            length_penalty=decoding.length_penalty,
            report_dir=RunDir(run_dir).report(wanted.name).root,
            n_bootstrap=options.n_bootstrap,
        )
        bleu = reports[wanted.name]["systems"][-1]["scores"]["bleu"]["score"]
        print(f"{wanted.name}: BLEU {bleu:.2f}")
        bilingual = beside.get(str(wanted.direction))
        if bilingual is not None:
            hypotheses = read_hypotheses(RunDir(run_dir).report(wanted.name).hypotheses)
            references = [tgt for _, tgt in pairs]
            compared = compare_with_bilingual(
                bilingual, wanted.split, hypotheses, references, options.n_bootstrap
            )
            if compared is not None:
                comparisons[wanted.name] = compared
    return reports, comparisons


def bleu_by_test_set(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Test set -> system name -> BLEU, from the test reports."""
    return {
        split: {s["name"]: s["scores"]["bleu"]["score"] for s in report["systems"]}
        for split, report in reports.items()
    }


def shipped_members(folder: Path) -> list[Path]:
    """The runs whose weights ``folder`` ships: an ensemble folder's members, or the run."""
    return checkpoint.shipped_runs(folder)


def save_decoding(members: Sequence[Path], chosen: Trial) -> None:
    """Make the chosen decoding every member's default (an ensemble decodes with its first
    member's, and a member loaded alone keeps the ensemble's choice)."""
    for member in members:
        cfg, info = checkpoint.load_config(member)
        decode = cfg.decode.override(beam_size=chosen.beam, length_penalty=chosen.length_penalty)
        checkpoint.save_config(member, dataclasses.replace(cfg, decode=decode), info)


def ship(run_dir: Path, options: ShipConfig | None = None) -> ShipRecord:
    """Ship the run or ensemble folder (see the module docstring); it is locked meanwhile."""
    options = options or ShipConfig()
    run_dir = Path(run_dir)
    members = shipped_members(run_dir)  # a clear error for no run or a broken list, before locks
    cfg, _ = checkpoint.load_config(members[0])
    with ExitStack() as locks:
        for locked in dict.fromkeys([run_dir, *members]):
            locks.enter_context(checkpoint.lock_run_dir(locked))
        for member in members:
            restore_float32(RunDir(member))
        averagings = [settle_averaging(member) for member in members]
        data = dataclasses.replace(cfg.data, mirror=options.mirror or cfg.data.mirror)
        sets = validation_sets(data, options.valid_pairs)

        def scorer(folder: Path) -> Scorer:
            translator = Translator.from_run(folder, device="cpu")
            return lambda beam, lp: valid_bleu(translator, sets, beam, lp)

        tuning = tune_decoding(scorer(run_dir), options.beams, options.length_penalties)
        chosen = choose_decoding(tuning, options.choice_tolerance)
        save_decoding(members, chosen)
        print(f"decoding: beam {chosen.beam}, length penalty {chosen.length_penalty}")
        precision = try_float16(
            [RunDir(member) for member in members],
            chosen.valid_bleu,
            lambda: scorer(run_dir)(chosen.beam, chosen.length_penalty),
            options.fp16_tolerance,
        )
        member_records = []
        if RunDir(run_dir).is_ensemble():
            for member, averaging in zip(members, averagings, strict=True):
                alone = scorer(member)(chosen.beam, chosen.length_penalty)
                print(f"member {member.name} alone: validation BLEU {alone:.2f}")
                member_records.append(MemberRecord(member.name, averaging, alone))
        reports, comparisons = evaluate_tests(run_dir, data, chosen, options)
        record = ShipRecord(
            machine=describe_machine(torch.get_num_threads()),
            averaging=None if member_records else averagings[0],
            tuning=tuning,
            decoding=chosen,
            precision=precision,
            tests=bleu_by_test_set(reports),
            tests_not_at_hand=[
                t.name for t in wanted_reports(data, options) if t.name not in reports
            ],
            members=member_records,
            bilingual=comparisons,
            flags=options.as_flags(),
        )
        run = RunDir(run_dir)
        checkpoint.write_text_atomically(run.ship_record, json.dumps(record.to_dict(), indent=2))
        checkpoint.write_text_atomically(run.model_card, model_card(run_dir, record, reports))
    print(f"model card written to {run.model_card}")
    return record


def rewrite_card(run_dir: Path) -> Path:
    """Write the model card again from `RunDir.ship_record` and the test reports on disk."""
    run = RunDir(run_dir)
    if not run.ship_record.is_file():
        raise FileNotFoundError(f"{run.ship_record} not found: ship the run first")
    record = ShipRecord.from_dict(json.loads(run.ship_record.read_text()), run.ship_record)
    reports = {
        split: json.loads(run.report(split).json.read_text(encoding="utf-8"))
        for split in record.tests
        if run.report(split).json.is_file()
    }
    checkpoint.write_text_atomically(run.model_card, model_card(run_dir, record, reports))
    return run.model_card
