"""Decoding throughput on Multi30k test_2016_flickr (1000 German sentences).

Greedy and beam search at batch sizes 1 and 64 through `seq2seq.search.decode_corpus`, against
the baseline measured in the same run: `bench/reference_beam.py`, a plain beam search one
sentence at a time. The batched beam must return exactly the reference's outputs; the script
says so (and exits with status 1 if not). Source encoding and detokenization are not timed.

    python bench/decode_throughput.py --threads 1 --repeats 3 --write
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable

import common
import torch
from reference_beam import reference_beam_search

from seq2seq.search import Hypothesis, decode_corpus
from seq2seq.translate import Translator

Outputs = list[list[Hypothesis]]


def measure(decode: Callable[[], Outputs], repeats: int) -> tuple[float, Outputs]:
    """Median seconds over ``repeats`` runs, and the outputs of the last."""
    times, outputs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = decode()
        times.append(time.perf_counter() - start)
    return common.median(times), outputs


def compare(got: Outputs, expected: Outputs) -> tuple[list[int], float]:
    """Sentences whose best hypothesis differs in tokens, and the largest score difference."""
    differ = [
        i
        for i, (g, e) in enumerate(zip(got, expected, strict=True))
        if g[0].token_ids != e[0].token_ids
    ]
    gap = max(abs(g[0].score - e[0].score) for g, e in zip(got, expected, strict=True))
    return differ, gap


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, repeats=3)
    p.add_argument("--limit", type=int, default=0, help="first N test sentences (0 = all)")
    p.add_argument("--beam", type=int, default=5, help="beam size (%(default)s)")
    p.add_argument("--batch-sizes", default="1,64", help="comma-separated (%(default)s)")
    p.add_argument("--reference-repeats", type=int, default=1, help="repeats of the slow reference")
    p.add_argument(
        "--reference-limit", type=int, default=0, help="reference on the first N only (0 = all)"
    )
    args = common.setup(p.parse_args(argv))
    if args.quick:
        args.limit, args.repeats, args.reference_repeats = args.limit or 20, 1, 1
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    translator = Translator.from_run(args.run, device="cpu")
    model = translator.model
    src_lang, tgt_lang = translator.language_pair
    sources, _ = common.load_test(args.mirror, src_lang, tgt_lang, args.limit)
    ids, _ = translator.encode(sources)
    beam_cfg = translator.decode_config(beam_size=args.beam, nbest=1)
    decode_corpus(model, ids[:8], beam_cfg, "cpu", 8)  # warm-up

    ref_ids = ids[: args.reference_limit] if args.reference_limit else ids

    def reference() -> Outputs:
        return [reference_beam_search(model, torch.tensor([x]), len(x), beam_cfg) for x in ref_ids]

    def row(name: str, batch: str, seconds: float, outputs: Outputs) -> list[object]:
        tokens = sum(len(h[0].token_ids) for h in outputs)
        n = len(outputs)
        return [name, batch, n / seconds, tokens / seconds, 1e3 * seconds / n]

    ref_seconds, ref_out = measure(reference, args.reference_repeats)
    rows = [row(f"reference beam {args.beam} (baseline)", "one at a time", ref_seconds, ref_out)]
    checks, ok = [], True
    for beam in (1, args.beam):
        cfg = translator.decode_config(beam_size=beam, nbest=1)
        for batch in batch_sizes:
            seconds, out = measure(
                functools.partial(decode_corpus, model, ids, cfg, "cpu", batch), args.repeats
            )
            rows.append(row("greedy" if beam == 1 else f"beam {beam}", str(batch), seconds, out))
            if beam == args.beam:
                differ, gap = compare(out[: len(ref_ids)], ref_out)
                ok = ok and not differ
                checks.append(
                    f"- beam {beam}, batch {batch}: {len(ref_ids) - len(differ)}/{len(ref_ids)} "
                    "outputs "
                    f"identical to the reference (largest |score difference| {gap:.1e})"
                    + (f"; they differ at sentences {differ[:10]}" if differ else "")
                )
    for r in rows:
        r.append(common.ratio(r[2] / rows[0][2]))  # type: ignore[operator]
    body = [
        f"Run `{args.run}`, {len(ids)} sentences of test_2016_flickr; median of {args.repeats} "
        f"repeats ({args.reference_repeats} for the reference"
        + (f", on the first {len(ref_ids)} sentences" if len(ref_ids) < len(ids) else "")
        + "); tokens are output subwords "
        "(EOS not counted); encoding and detokenization not timed.",
        "",
        common.table(
            ["search", "batch", "sentences/s", "tokens/s", "ms/sentence", "vs reference"], rows
        ),
        "",
        "Batched beam against the one-sentence reference:",
        *checks,
        "",
        "**All identical.**"
        if ok
        else "**MISMATCH: the batched beam differs from the reference.**",
    ]
    common.publish(args, "Decoding throughput", "\n".join(body))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
