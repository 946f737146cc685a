"""Load benchmark for the demo: N concurrent gradio_client clients, p50/p95 latency, errors.

Not a test. Either launches app.py's demo in-process on one run directory, or connects to a
running demo with ``--url`` (loopback only). Examples::

    python bench/load_app.py checkpoints/multi30k-de-en --clients 20 --requests 5
    python bench/load_app.py --url http://127.0.0.1:7860/ --model multi30k-en-de --mode greedy
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MAX_CLIENTS = 64
MAX_REQUESTS = 50  # per client
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
LANGS = ("de", "en")  # source languages of app.BUILTIN_EXAMPLES


@dataclass
class Tally:
    """Latencies of successful requests and messages of failed ones, shared by the clients."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float | None, error: str = "") -> None:
        with self.lock:
            if error:
                self.errors.append(error)
            else:
                self.latencies.append(seconds or 0.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a run directory to serve")
    parser.add_argument("--url", help="a running demo on this machine instead of run_dir")
    parser.add_argument("--model", help="model name (default: the run folder's name)")
    parser.add_argument("--clients", type=int, default=20, help=f"at most {MAX_CLIENTS}")
    parser.add_argument("--requests", type=int, default=5, help="per client")
    parser.add_argument("--mode", choices=["greedy", "beam"], default="beam")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--lang", choices=LANGS, default="de", help="source text")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run")
    args = parser.parse_args(argv)
    if (args.run_dir is None) == (args.url is None):
        parser.error("give either a run directory or --url")
    if args.url and urlparse(args.url).hostname not in LOOPBACK:
        parser.error(f"--url must be on this machine ({', '.join(sorted(LOOPBACK))})")
    if not 1 <= args.clients <= MAX_CLIENTS or not 1 <= args.requests <= MAX_REQUESTS:
        parser.error(f"--clients must be 1-{MAX_CLIENTS} and --requests 1-{MAX_REQUESTS}")
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(run_dir: Path) -> Iterator[str]:
    """Launch the demo on one run, on a free loopback port; yield its URL."""
    sys.path.insert(0, str(REPO))
    import app

    try:
        translator = app.load_run(run_dir)
    except app.SetupError as err:
        sys.exit(f"error: {err}")
    demo = app.build_demo({run_dir.name: translator})
    port = free_port()
    try:
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def run_client(
    url: str, args: argparse.Namespace, index: int, deadline: float, tally: Tally
) -> None:
    """One client sending its requests one after another until done or past the deadline."""
    import app  # here, not at the top: the app module loads gradio and the package

    client = Client(url, verbose=False)
    sentences = app.BUILTIN_EXAMPLES[args.lang]
    for i in range(args.requests):
        left = deadline - time.monotonic()
        if left <= 0:
            tally.add(None, "not sent: deadline passed")
            continue
        text = sentences[(index + i) % len(sentences)]
        start = time.perf_counter()
        try:
            job = client.submit(text, args.model, args.mode, args.beam, 1.0, api_name="/translate")
            job.result(timeout=left)
            tally.add(time.perf_counter() - start)
        except Exception as err:  # any failure counts; the table shows the first few
            tally.add(None, f"{type(err).__name__}: {err}")


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def print_table(args: argparse.Namespace, tally: Tally, wall: float) -> None:
    ok, lat = len(tally.latencies), sorted(tally.latencies)
    rows = [
        ("clients x requests", f"{args.clients} x {args.requests}"),
        ("decoding", "greedy" if args.mode == "greedy" else f"beam {args.beam}"),
        ("succeeded", str(ok)),
        ("errors", str(len(tally.errors))),
        ("p50 latency (ms)", f"{percentile(lat, 50) * 1000:.0f}" if lat else "-"),
        ("p95 latency (ms)", f"{percentile(lat, 95) * 1000:.0f}" if lat else "-"),
        ("max latency (ms)", f"{lat[-1] * 1000:.0f}" if lat else "-"),
        ("throughput (req/s)", f"{ok / wall:.1f}"),
        ("wall time (s)", f"{wall:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    vwidth = max(len(value) for _, value in rows)
    print(f"| {'metric'.ljust(width)} | {'value'.rjust(vwidth)} |")
    print(f"|{'-' * (width + 2)}|{'-' * (vwidth + 1)}:|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value.rjust(vwidth)} |")
    for error in sorted(set(tally.errors))[:5]:
        print(f"error: {error}")


def bench(url: str, args: argparse.Namespace) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + args.timeout
    threads = [
        threading.Thread(target=run_client, args=(url, args, i, deadline, tally), daemon=True)
        for i in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
    return tally


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url_context: AbstractContextManager[str]
    if args.url:
        url_context = nullcontext(args.url)
    else:
        args.model = args.model or args.run_dir.name
        url_context = serve(args.run_dir)
    with url_context as url:
        start = time.perf_counter()
        tally = bench(url, args)
        print_table(args, tally, time.perf_counter() - start)
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
