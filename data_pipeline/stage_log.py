"""A stage's log file: what third-party tools print (img2dataset's advice and per-shard tables, Spark's JVM log)
goes there, redacted (:func:`namespace.redaction.redacted_text`: a failed read's presigned URL, an exception's
repr of storage options), and the terminal keeps the build's own progress lines."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from namespace.redaction import redacted_text

LONGEST_PENDING = 1 << 20  # bytes without a line end written anyway (a progress bar that never ends its line)


def _on_descriptor(stream, descriptor: int) -> bool:
    try:
        return stream.fileno() == descriptor
    except (AttributeError, OSError, io.UnsupportedOperation):  # pytest's capsys, a notebook's stream
        return False


def _redacted(data: bytes) -> bytes:
    return redacted_text(data.decode("utf-8", "replace")).encode("utf-8")


def _copy_redacted(read_end: int, log: BinaryIO, marker: bytes, finished: threading.Event) -> None:
    """Copies the pipe into ``log`` a whole line (``\\n`` or ``\\r``) at a time, redacted, until every writer has
    closed the pipe (a Spark JVM keeps it for its whole life); sets ``finished`` on reading ``marker``, the end of the
    block. After a failed write it keeps reading, so that no writer ever blocks on a full pipe."""
    pending, failed = b"", False
    with open(read_end, "rb", buffering=0) as pipe, log:
        while chunk := pipe.read(65536):
            if failed:
                continue
            pending += chunk
            before, found, after = pending.partition(marker)
            before, pending = (before, after) if found else (b"", pending)
            line_end = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
            cut = len(pending) if len(pending) > LONGEST_PENDING else line_end
            try:
                log.write(_redacted(before + pending[:cut]))
            except OSError:  # a full disk: the block goes on, its output is lost
                failed = True
                finished.set()
            pending = pending[cut:]
            if found:
                finished.set()
        with contextlib.suppress(OSError):
            log.write(_redacted(pending))
    finished.set()


@contextlib.contextmanager
def output_to(log: Path) -> Iterator[TextIO]:
    """Sends stdout and stderr to ``log`` (appended, each line redacted) while the block runs; yields a stream to the
    terminal.

    The redirection is made on file descriptors 1 and 2 (a pipe that a thread copies into ``log``), so it holds for C
    code and for every process started inside the block (img2dataset's spawned workers, a Spark JVM, which keeps it
    for its whole life), and on ``sys.stdout``/``sys.stderr`` for a process whose streams are not those descriptors
    (a notebook). When the block ends, everything written inside it is in ``log``.

    Yields:
        The terminal's stderr, for the stage's own progress line.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    handle = open(log, "ab", buffering=0)  # noqa: SIM115 (the copying thread closes it)
    read_end, write_end = os.pipe()
    marker, finished = f"\0end of block {uuid.uuid4().hex}\n".encode(), threading.Event()
    threading.Thread(target=_copy_redacted, args=(read_end, handle, marker, finished), daemon=True).start()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1) if _on_descriptor(sys.stderr, 2) else sys.stderr
    with open(write_end, "w", buffering=1, encoding="utf-8", errors="replace") as stream:
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield terminal
        finally:
            stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)
            if terminal is not sys.stderr:
                terminal.close()
            os.write(write_end, marker)
            finished.wait(timeout=60)  # the copy of everything written before the marker
