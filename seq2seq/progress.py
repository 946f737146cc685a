"""Progress of a training run on the terminal: a tqdm bar when interactive, log lines otherwise."""

from __future__ import annotations

import sys
from typing import Any


class ProgressReporter:
    """A tqdm bar on a terminal; plain log lines every `log_every` steps otherwise."""

    def __init__(self, mode: str, enabled: bool, total_steps: int | None, done_steps: int) -> None:
        """mode: "bar", "log" or "auto" (a bar on a terminal); only one process reports."""
        use_bar = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        self.bar: Any = None
        self.enabled = enabled
        if self.enabled and use_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=done_steps, unit="step", dynamic_ncols=True)

    def update(self, record: dict[str, Any], log_line: bool) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{record['loss']:.3f}",
                tok_s=f"{record['tokens_per_s']:.0f}",
                ep=record["epoch"],
                refresh=False,
            )
        elif log_line:
            print(
                f"step {record['step']} epoch {record['epoch']} loss {record['loss']:.3f} "
                f"lr {record['lr']:.2e} |g| {record['grad_norm']:.2f} "
                f"{record['tokens_per_s']:.0f} tok/s",
                file=sys.stderr,
                flush=True,
            )

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
