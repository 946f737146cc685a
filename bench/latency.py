"""Latency of one typical sentence: p50/p95 over many runs after warm-up.

Rows: the search alone (`decode_corpus` on the already-encoded sentence: the baseline),
`Translator.translate` with beam 5 and greedy (what the CLI and the demo call), and, with
``--gradio-url``, the demo's ``/translate`` API through gradio_client (HTTP and queue included).

    python bench/latency.py --threads 1 --repeats 100 --write
    python bench/latency.py --repeats 50 --gradio-url http://127.0.0.1:7860/
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import common

from seq2seq.search import decode_corpus
from seq2seq.translate import Translator

SENTENCE = "Ein Mann mit einem orangefarbenen Hut starrt auf etwas."


def latencies(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def gradio_call(url: str, model: str, sentence: str, beam: int) -> Callable[[], object]:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    client = Client(url, verbose=False, analytics_enabled=False)

    def call() -> object:
        return client.predict(sentence, model, "beam", beam, 1.0, api_name="/translate")

    print(f"Gradio {url} ({model}): {call()[0]!r}")  # type: ignore[index]
    return call


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__, repeats=100)
    p.add_argument("--sentence", default=SENTENCE, help="the sentence (%(default)s)")
    p.add_argument("--beam", type=int, default=5, help="beam size (%(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    p.add_argument("--gradio-url", help="also time this running demo's /translate API")
    p.add_argument("--gradio-model", help="its model choice (default: the run's folder name)")
    args = common.setup(p.parse_args(argv))
    if args.quick:
        args.repeats, args.warmup = 5, 1
    translator = Translator.from_run(args.run, device="cpu")
    ids, _ = translator.encode([args.sentence])
    beam_cfg = translator.decode_config(beam_size=args.beam, nbest=1)
    calls: list[tuple[str, Callable[[], object]]] = [
        (
            f"search only, beam {args.beam} (baseline)",
            lambda: decode_corpus(translator.model, ids, beam_cfg, "cpu", 1),
        ),
        (
            f"Translator.translate, beam {args.beam}",
            lambda: translator.translate([args.sentence], beam_size=args.beam),
        ),
        (
            "Translator.translate, greedy",
            lambda: translator.translate([args.sentence], beam_size=1),
        ),
    ]
    if args.gradio_url:
        model = args.gradio_model or args.run.resolve().name
        calls.append(
            (
                f"Gradio API /translate, beam {args.beam}",
                gradio_call(args.gradio_url, model, args.sentence, args.beam),
            )
        )
    rows = []
    for name, call in calls:
        times = latencies(call, args.repeats, args.warmup)
        p50 = 1e3 * common.percentile(times, 50)
        rows.append([name, p50, 1e3 * common.percentile(times, 95), 1e3 * min(times)])
    for r in rows:
        r.append(common.ratio(r[1] / rows[0][1]))  # type: ignore[operator]
    output = translator.translate([args.sentence], beam_size=args.beam)[0]
    body = [
        f'Run `{args.run}`; "{args.sentence}" ({len(ids[0])} subwords) → "{output.text}"; '
        f"{args.repeats} timed runs after {args.warmup} warm-up.",
        "",
        common.table(["path", "p50 ms", "p95 ms", "min ms", "p50 vs search"], rows),
    ]
    if args.gradio_url:
        body += ["", "The demo runs in its own process, with its own thread count."]
    common.publish(args, "Latency of one sentence", "\n".join(body))


if __name__ == "__main__":
    main()
