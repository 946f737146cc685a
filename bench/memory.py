"""Peak memory (RSS) of training and of serving, each measured in a fresh process.

Every measurement starts a new Python process that does one job and reports its peak resident
set size (``resource.getrusage(...).ru_maxrss``). The baseline, measured the same way, is a
process that only imports torch and seq2seq.

- train: load and encode the run's training data as `seq2seq.train` does, then a few training
  steps (`train.train_step`) of a fresh model of the run's config on the largest batches (by
  padded target positions) under its max_tokens;
- translator (fp32 / int8): `Translator.from_run` and one sentence with beam 5;
- app: `app.load_translators` on the run's parent folder (every run the demo would serve, with
  Gradio imported) and one sentence; `Translator.from_run` if app.py has no such function.

    python bench/memory.py --threads 1 --repeats 3 --write
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import common

SENTENCE = "Ein Mann mit einem orangefarbenen Hut starrt auf etwas."
JOBS = {
    "baseline": "import torch and seq2seq (baseline)",
    "translator": "Translator.from_run + 1 sentence, beam 5",
    "translator-int8": "Translator.from_run(quantize=True) + 1 sentence, beam 5",
    "app": "app.load_translators + 1 sentence, beam 5",
    "train": "train: data + {steps} step(s) on the largest batches",
}


def child(job: str, args: argparse.Namespace) -> str:
    """Do ``job`` in this process; a note on what was done."""
    import torch

    from seq2seq.translate import Translator

    if job == "baseline":
        import seq2seq.train  # noqa: F401

        return ""
    if job.startswith("translator"):
        translator = Translator.from_run(args.run, device="cpu", quantize=job.endswith("int8"))
        return translator.translate([SENTENCE], beam_size=5)[0].text
    if job == "app":
        sys.path.insert(0, str(common.REPO))
        import app

        if hasattr(app, "load_translators"):
            translators = app.load_translators(args.run.resolve().parent)
            translator = translators[args.run.resolve().name]
            note = f"{len(translators)} run(s) loaded: {', '.join(translators)}"
        else:
            translator, note = Translator.from_run(args.run, device="cpu"), "Translator.from_run"
        return f"{note}; {translator.translate([SENTENCE], beam_size=5)[0].text!r}"
    from seq2seq.session import build_grad_scaler  # job "train"
    from seq2seq.train import train_step

    td = common.load_training_data(args.run, args.mirror, max_pairs=2000 if args.quick else 0)
    learner = common.make_learner(td, torch.device("cpu"))
    tgt_lengths = td.data.tgt_lengths

    def padded_targets(batch: list[int]) -> int:
        return len(batch) * max(tgt_lengths[i] for i in batch)

    batches = sorted(td.sampler.batches(0), key=padded_targets, reverse=True)[: args.steps]
    scaler = build_grad_scaler(learner)
    for indices in batches:
        train_step(learner, td.data.collate(indices), scaler)
    sizes = [tuple(td.data.collate(b).tgt_in.shape) for b in batches]
    return f"{len(td.data):,} pairs; target batches (B, T) {sizes}"


def measure(job: str, args: argparse.Namespace) -> tuple[float, str]:
    """Peak RSS in MiB of a fresh process doing ``job``, and its note."""
    command = [sys.executable, __file__, "--child", job, "--run", str(args.run)]
    command += ["--threads", str(args.threads), "--mirror", args.mirror]
    command += ["--steps", str(args.steps)] + (["--quick"] if args.quick else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{job} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["maxrss_kib"] / 1024, result["note"]


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__, repeats=3)
    p.add_argument("--steps", type=int, default=3, help="training steps (%(default)s)")
    p.add_argument("--jobs", default=",".join(JOBS), help="which to measure (%(default)s)")
    p.add_argument("--child", choices=list(JOBS), help="internal: run one job and report")
    args = common.setup(p.parse_args(argv))
    if args.quick:
        args.steps = min(args.steps, 1)
    if args.child:
        note = child(args.child, args)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(json.dumps({"maxrss_kib": maxrss, "note": note}))
        return
    if args.quick:
        args.repeats = 1
    jobs = ["baseline"] + [j for j in args.jobs.split(",") if j and j != "baseline"]
    rows: list[list[object]] = []
    notes = []
    base = 0.0
    for job in jobs:
        results = [measure(job, args) for _ in range(args.repeats)]
        mib = common.median([r[0] for r in results])
        base = base or mib
        rows.append([JOBS[job].format(steps=args.steps), mib, mib - base, common.ratio(mib / base)])
        if results[0][1]:
            notes.append(f"- {job}: {results[0][1]}")
    body = [
        f"Run `{args.run}`; peak RSS (ru_maxrss) of a fresh process per measurement, median of "
        f"{args.repeats}.",
        "",
        common.table(["process", "peak RSS MiB", "over baseline MiB", "vs baseline"], rows),
        "",
        *notes,
    ]
    common.publish(args, "Peak memory", "\n".join(body))


if __name__ == "__main__":
    main()
