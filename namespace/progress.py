"""A numbered progress display for multi-step commands: ``[2/6] embedding names ... (0.4 s)``."""

from __future__ import annotations

import sys
import time


class Steps:
    """Prints each step as it starts and how long the previous one took, to stderr."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.index, self.stream = total, 0, stream or sys.stderr
        self.started: float | None = None

    def _finish_previous(self) -> None:
        if self.started is not None:
            print(f"      done in {time.perf_counter() - self.started:.1f} s", file=self.stream, flush=True)

    def start(self, description: str) -> None:
        self._finish_previous()
        self.index += 1
        self.started = time.perf_counter()
        print(f"[{self.index}/{self.total}] {description} ...", file=self.stream, flush=True)

    def done(self, message: str) -> None:
        self._finish_previous()
        self.started = None
        print(message, file=self.stream, flush=True)


def progress(iterable, **options):
    """A tqdm progress bar over ``iterable`` on ``file`` (stderr by default); off when that stream is not a terminal
    or MAGICNAMING_PROGRESS=0."""
    import os

    from tqdm.auto import tqdm

    disable = os.environ.get("MAGICNAMING_PROGRESS", "") == "0" or not (options.get("file") or sys.stderr).isatty()
    return tqdm(iterable, disable=options.pop("disable", disable), **options)
