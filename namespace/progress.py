"""A numbered progress display for multi-step commands: ``[2/6] embedding names ... (0.4 s)``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Steps:
    """Prints each step as it starts, to stderr, and how long the previous one took when that was at least
    ``report_after`` seconds (a line per quick step is enough).
    """

    def __init__(self, total: int, stream=None, report_after: float = 1.0) -> None:
        self.total, self.index, self.stream = total, 0, stream or sys.stderr
        self.report_after = report_after
        self.started: float | None = None

    def _finish_previous(self) -> None:
        if self.started is not None and time.perf_counter() - self.started >= self.report_after:
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


@contextmanager
def library_progress_bars_off() -> Iterator[None]:
    """Turns diffusers' and transformers' progress bars off inside the block and restores them after."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    modules = [diffusers_logging, transformers_logging]
    enabled = [module.is_progress_bar_enabled() for module in modules]
    for module in modules:
        module.disable_progress_bar()
    try:
        yield
    finally:
        for module, was_enabled in zip(modules, enabled, strict=True):
            if was_enabled:
                module.enable_progress_bar()
