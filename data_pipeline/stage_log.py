"""A stage's log file: what third-party tools print (img2dataset's advice and per-shard tables, Spark's JVM log)
goes there, and the terminal keeps the build's own progress lines."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def _on_descriptor(stream, descriptor: int) -> bool:
    try:
        return stream.fileno() == descriptor
    except (AttributeError, OSError, io.UnsupportedOperation):  # pytest's capsys, a notebook's stream
        return False


@contextlib.contextmanager
def output_to(log: Path) -> Iterator[TextIO]:
    """Sends stdout and stderr to ``log`` (appended) while the block runs; yields a stream to the terminal.

    The redirection is made on file descriptors 1 and 2, so it holds for C code and for every process started
    inside the block (img2dataset's spawned workers, a Spark JVM, which keeps it for its whole life), and on
    ``sys.stdout``/``sys.stderr`` for a process whose streams are not those descriptors (a notebook).

    Yields:
        The terminal's stderr, for the stage's own progress line.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1) if _on_descriptor(sys.stderr, 2) else sys.stderr
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", buffering=1, encoding="utf-8", errors="replace") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield terminal
        finally:
            handle.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)
            if terminal is not sys.stderr:
                terminal.close()
