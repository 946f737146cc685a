"""Training throughput: target tokens/s of real training steps, against the machine's GEMM peak.

Each step is `seq2seq.train.train_step` (forward, label smoothing, backward, clipping, Adam) on a
Multi30k batch cut by the run's TokenBatchSampler (max_tokens from its config), on a fresh model
of the run's config. The baseline, measured in the same run, is the fastest of a few matrix
multiplies of the model's own sizes; the model's FLOPs are counted analytically, so the table
says what share of that peak training reaches. Variants: input feeding toggled, the encoder
without packed sequences, and bfloat16 autocast (`train.cpu_bf16`) against bfloat16's own peak.

    python bench/train_throughput.py --threads 1 --repeats 3 --profile --write
"""

from __future__ import annotations

import dataclasses
import functools
import types
from dataclasses import dataclass

import common
import torch
from torch import Tensor

from seq2seq.config import ModelConfig
from seq2seq.data import Batch
from seq2seq.encoder import Encoder, word_dropout
from seq2seq.session import Learner, build_grad_scaler
from seq2seq.train import train_step

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def step_flops(m: ModelConfig, batch: Batch, packed: bool = True) -> float:
    """FLOPs of one training step as executed (2 per multiply-add, x3 for forward + backward).

    Counts the matrix products: encoder RNN (real tokens only when packed), attention keys, the
    bridge, and per padded target position the decoder RNN (with the fed-back vector; cgru: its
    two transitions), attention scores and context, combine and pre-output (cgru: the deep
    output) and output projection. Element-wise work (gates, softmax, loss, Adam) is left out.
    """
    g, e, h, v, layers = GATES[m.cell], m.embed_size, m.hidden_size, m.tgt_vocab_size, m.num_layers
    he, dirs = m.encoder_hidden_size, 2 if m.bidirectional else 1
    b, s = batch.src_ids.shape
    t = batch.tgt_in.size(1)
    src_tokens = int(batch.src_lengths.sum()) if packed else b * s
    enc = src_tokens * sum(
        dirs * g * he * ((e if layer == 0 else dirs * he) + he) for layer in range(layers)
    )
    keys = b * s * h * h if m.attention in ("general", "bahdanau") else 0
    bridge = b * layers * h * h * (2 if m.cell == "lstm" else 1)
    dec_in = e + (h if m.input_feeding else 0)
    dec_rnn = sum(g * h * ((dec_in if layer == 0 else h) + h) for layer in range(layers))
    attention = 0 if m.attention == "none" else 2 * s * h  # scores + context
    attention += h * h + s * h if m.attention == "bahdanau" else 0  # query proj + energy
    to_output = (h if m.attention == "none" else 2 * h) * h + h * e  # combine, pre-output
    if m.decoder == "cgru":  # a second transition fed the context; a deep output [s; c; y] -> E
        dec_rnn = g * h * (e + h) + layers * g * h * (h + h)
        to_output = (2 * h + e) * e
    per_position = dec_rnn + attention + to_output + e * v
    return 2.0 * 3 * (enc + keys + bridge + b * t * per_position)


def gemm_gflops(size: list[int], device: torch.device, dtype: torch.dtype, secs: float) -> float:
    """GFLOP/s of (m x k) @ (k x n) for ``size`` = [m, k, n], repeated for about ``secs`` s."""
    m, k, n = size
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    calls, elapsed = 0, 0.0
    while elapsed < secs:
        elapsed += common.timed(lambda: [torch.mm(a, b, out=out) for _ in range(10)], device)
        calls += 10
    return 2.0 * m * k * n * calls / elapsed / 1e9


def dense_encoder_forward(
    self: Encoder, src_ids: Tensor, src_lengths: Tensor
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Encoder.forward without packing: faster or not, but the backward direction reads padding
    (speed only, not a correct model)."""
    embedded = self.dropout(
        word_dropout(self.embedding(src_ids), self.cfg.embed_dropout, self.training)
    )
    memory, final = self.rnn(embedded)
    hidden, cell = final if isinstance(final, tuple) else (final, None)
    return memory, self._join_directions(hidden), self._join_directions(cell)


@dataclass
class Variant:
    name: str
    changes: dict[str, object]  # ModelConfig fields
    packed: bool = True
    cpu_bf16: bool = False  # train.cpu_bf16: bfloat16 autocast (CPU rows only)


def make_learner(td: common.TrainingData, device: torch.device, v: Variant) -> Learner:
    train = dataclasses.replace(td.cfg.train, cpu_bf16=v.cpu_bf16)
    td = dataclasses.replace(td, cfg=dataclasses.replace(td.cfg, train=train))
    learner = common.make_learner(td, device, **v.changes)
    if not v.packed:
        encoder = learner.model.encoder
        encoder.forward = types.MethodType(dense_encoder_forward, encoder)  # type: ignore
    return learner


def run_steps(learner: Learner, td: common.TrainingData, batches: list[list[int]]) -> None:
    scaler = build_grad_scaler(learner)
    for indices in batches:  # collating is part of a step, as in the training loop
        train_step(learner, td.data.collate(indices).to(learner.device), scaler)


def profile_table(
    learner: Learner, td: common.TrainingData, batches: list[list[int]], top: int
) -> str:
    """The ops with the most self CPU time over ``batches``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_steps(learner, td, batches)
    events = list(prof.key_averages())
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    rows = [
        (f"`{e.key}`", e.count, e.self_cpu_time_total / 1e3, 100 * e.self_cpu_time_total / total)
        for e in events[:top]
    ]
    return common.table(["op", "calls", "self CPU ms", "% of self CPU"], rows)


def gemm_rows(
    m: ModelConfig, dtype: torch.dtype, device: torch.device, bt: int, b: int, repeats: int
) -> list[tuple[object, ...]]:
    """The baseline: GFLOP/s of matrix products of the model's sizes, B·T and B as trained."""
    g, h, e, v = GATES[m.cell], m.hidden_size, m.embed_size, m.tgt_vocab_size
    shapes = [
        (f"output projection (B·T×E)·(E×V), B·T={bt}", bt, e, v),
        (f"RNN gates over a sequence (B·T×H)·(H×{g}H)", bt, h, g * h),
        (f"decoder step (B×(E+H))·((E+H)×{g}H), B={b}", b, e + h, g * h),
        (f"recurrent step (B×H)·(H×{g}H)", b, h, g * h),
    ]
    return [
        (
            device.type,
            name,
            str(dtype).removeprefix("torch."),
            common.median([gemm_gflops(size, device, dtype, 0.3) for _ in range(repeats)]),
        )
        for name, *size in shapes
    ]


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__, repeats=3)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--profile", action="store_true", help="also profile a few steps (CPU)")
    p.add_argument("--no-variants", action="store_true", help="only the run's own config")
    args = common.setup(p.parse_args(argv))
    if args.quick:
        args.steps, args.warmup, args.repeats = 2, 1, 1
    td = common.load_training_data(args.run, args.mirror, max_pairs=2000 if args.quick else 0)
    m = td.cfg.model
    all_batches = td.sampler.batches(0)
    warmup, batches = all_batches[: args.warmup], all_batches[args.warmup :][: args.steps]
    collated = [td.data.collate(b) for b in batches]
    tokens = sum(b.num_tgt_tokens for b in collated)
    bt = int(common.median([b.tgt_in.numel() for b in collated]))
    b = int(common.median([len(b) for b in batches]))
    decoder = "cgru" if m.decoder == "cgru" else f"input feeding {m.input_feeding}"
    variants = [Variant(f"as configured ({decoder}, packed)", {})]
    if not args.no_variants:
        if m.decoder == "luong":  # the conditional GRU has no input feeding to switch
            feeding = not m.input_feeding
            variants.append(Variant(f"input_feeding={feeding}", {"input_feeding": feeding}))
        variants.append(Variant("encoder without packing", {}, packed=False))
        variants.append(Variant("bfloat16 autocast (train.cpu_bf16)", {}, cpu_bf16=True))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    gemms: list[tuple[object, ...]] = []
    steps: list[tuple[object, ...]] = []
    for device in devices:
        amp = device.type == "cuda" and td.cfg.train.amp  # train_step autocasts to fp16 then
        dtypes = [torch.float16 if amp else torch.float32]
        if device.type == "cpu" and any(v.cpu_bf16 for v in variants):
            dtypes.append(torch.bfloat16)
        peaks = {}
        for dtype in dtypes:
            rows = gemm_rows(m, dtype, device, bt, b, args.repeats)
            gemms += rows
            peaks[dtype] = max(float(r[-1]) for r in rows)  # type: ignore[arg-type]
        base_speed = 0.0
        for variant in variants:
            if variant.cpu_bf16 and device.type != "cpu":
                continue  # a GPU autocasts to float16 with train.amp instead
            peak = peaks[torch.bfloat16 if variant.cpu_bf16 else dtypes[0]]
            learner = make_learner(td, device, variant)
            run_steps(learner, td, warmup)
            run = functools.partial(run_steps, learner, td, batches)
            seconds = common.median([common.timed(run, device) for _ in range(args.repeats)])
            gflops = sum(step_flops(learner.cfg.model, c, variant.packed) for c in collated) / 1e9
            speed = tokens / seconds
            base_speed = base_speed or speed
            steps.append(
                (
                    device.type,
                    variant.name,
                    speed,
                    1e3 * seconds / len(batches),
                    gflops / seconds,
                    common.percent(gflops / seconds / peak),
                    common.ratio(speed / base_speed),
                )
            )
    flops_per_token = sum(step_flops(m, c) for c in collated) / tokens
    body = [
        f"Run `{args.run}`: {m.cell.upper()}, E={m.embed_size}, H={m.hidden_size}, "
        f"V={m.tgt_vocab_size}, attention {m.attention}, bidirectional {m.bidirectional}; "
        f"max_tokens {td.cfg.train.max_tokens}; {len(batches)} timed steps of epoch 0 "
        f"({tokens:,} target tokens; per batch, median {b} sentences and {bt} padded target "
        f"positions) after {len(warmup)} warm-up; median of {args.repeats} repeats.",
        "",
        "Baseline: matrix-multiply speed at the model's sizes (the fastest of a dtype is the "
        "peak of the variants that multiply in it).",
        "",
        common.table(["device", "GEMM", "dtype", "GFLOP/s"], gemms),
        "",
        f"Training steps ({flops_per_token / 1e6:.1f} MFLOP per target token as configured: "
        "matrix products only, padding included, backward = 2x forward):",
        "",
        common.table(
            ["device", "variant", "target tok/s", "ms/step", "GFLOP/s", "% of peak", "vs config"],
            steps,
        ),
    ]
    if args.profile:
        learner = make_learner(td, torch.device("cpu"), variants[0])
        run_steps(learner, td, warmup)
        count = min(3, len(batches))
        body += [
            "",
            f"Where the time goes: top ops by self CPU time over {count} steps (torch.profiler):",
            "",
            profile_table(learner, td, batches[:count], top=8 if args.quick else 15),
        ]
    common.publish(args, "Training throughput", "\n".join(body))


if __name__ == "__main__":
    main()
