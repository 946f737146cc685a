"""int8 dynamic quantization: BLEU and speed of fp32 against int8, side by side.

`Translator.from_run(run, quantize=True)` quantizes the GRU/LSTM and linear layers' weights to
int8 (activations on the fly; the tied output layer gets its own int8 copy). Both models decode
Multi30k test_2016_flickr with beam search: sacreBLEU (cased, 13a) on all of it at batch 64, and
latency on its first sentences one at a time. fp32 is the baseline, measured in the same run;
the BLEU difference is checked against a budget of 0.3.

    python bench/quantize.py --threads 1 --repeats 3 --write
"""

from __future__ import annotations

import time

import common
from torch import nn
from torch.ao.nn.quantized import dynamic as nnqd

from seq2seq.metrics import score_corpus
from seq2seq.translate import Translator

BLEU_BUDGET = 0.3
QUANTIZED = (nnqd.GRU, nnqd.LSTM, nnqd.Linear)


def median_seconds(translator: Translator, sources: list[str], repeats: int, **kw: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        translator.translate(sources, **kw)
        times.append(time.perf_counter() - start)
    return common.median(times)


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__, repeats=3)
    p.add_argument("--limit", type=int, default=0, help="first N test sentences (0 = all)")
    p.add_argument("--beam", type=int, default=5, help="beam size (%(default)s)")
    p.add_argument("--one-by-one", type=int, default=100, help="sentences timed at batch 1")
    args = common.setup(p.parse_args(argv))
    if args.quick:
        args.limit, args.repeats, args.one_by_one = args.limit or 20, 1, 5
    models = {
        "fp32": Translator.from_run(args.run, device="cpu"),
        "int8": Translator.from_run(args.run, device="cpu", quantize=True),
    }
    src_lang, tgt_lang = models["fp32"].language_pair
    sources, refs = common.load_test(args.mirror, src_lang, tgt_lang, args.limit)
    few = sources[: args.one_by_one]
    rows, outputs, signature = [], {}, ""
    for name, translator in models.items():
        translator.translate(sources[:8], beam_size=args.beam)  # warm-up
        texts = [t.text for t in translator.translate(sources, beam_size=args.beam)]
        outputs[name] = texts
        bleu = score_corpus(texts, refs, n_bootstrap=0)["bleu"]
        signature = bleu.signature
        corpus = median_seconds(translator, sources, args.repeats, beam_size=args.beam)
        single = median_seconds(translator, few, args.repeats, beam_size=args.beam, batch_size=1)
        rows.append([name, bleu.score, len(sources) / corpus, 1e3 * single / len(few)])
    base = rows[0]
    for r in rows:
        r += [common.ratio(r[2] / base[2]), common.ratio(base[3] / r[3])]  # type: ignore[operator]
    diff = rows[1][1] - base[1]  # type: ignore[operator]
    same = sum(a == b for a, b in zip(outputs["fp32"], outputs["int8"], strict=True))
    verdict = "within" if diff >= -BLEU_BUDGET else "OUTSIDE"
    int8_modules = dict(models["int8"].model.named_modules())
    quantized = [n for n, m in int8_modules.items() if isinstance(m, QUANTIZED)]
    left = [n for n, m in int8_modules.items() if type(m) in (nn.GRU, nn.LSTM, nn.Linear)]
    body = [
        f"Run `{args.run}`; {len(sources)} sentences of test_2016_flickr, beam {args.beam}; "
        f"speeds are medians of {args.repeats} repeats (batch 64 on all sentences, batch 1 on "
        f"the first {len(few)}); BLEU: {signature}.",
        "",
        common.table(
            [
                "weights",
                "BLEU",
                "sentences/s (batch 64)",
                "ms/sentence (batch 1)",
                "batch 64 vs fp32",
                "batch 1 vs fp32",
            ],
            rows,
        ),
        "",
        f"BLEU int8 − fp32 = {diff:+.2f}: **{verdict} the budget** (a drop of at most "
        f"{BLEU_BUDGET} BLEU). "
        f"{same}/{len(sources)} outputs identical.",
        "",
        f"int8 modules ({len(quantized)}): {', '.join(quantized)}; GRU/LSTM/Linear left in fp32: "
        f"{', '.join(left) or 'none'}. The quantized model decodes through the unchanged search.",
    ]
    common.publish(args, "int8 dynamic quantization", "\n".join(body))


if __name__ == "__main__":
    main()
