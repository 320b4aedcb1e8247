"""Running the stages' commands in-process and keeping the exact command line of each, for the report.

The demo sits above the stages: it calls each stage's own entry (``main(argv, prog)``, the function ``magicnaming``
dispatches to), never the ``magicnaming`` dispatcher (the floor above it), and records the shell line that does the
same, so every figure can name the command that made it.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Entry = Callable[..., int | None]  # a command's main(argv, prog)


@dataclass
class CommandLog:
    """Runs stage commands and records each as a shell line with its duration.

    Attributes:
        script: the file every command line is appended to (a replayable ``commands.sh``).
        lines: the shell lines run so far, in order.
    """

    script: Path
    lines: list[str] = field(default_factory=list)

    def run(self, entry: Entry, command: str, args: list) -> str:
        """Runs ``entry`` as ``magicnaming COMMAND ARGS`` runs it and returns that shell line; a failing command raises
        RuntimeError naming the line.

        Args:
            entry: the command's ``main(argv, prog)``.
            command: its name in ``magicnaming`` (``"data"``, ``"encoder pretrain_tiny"``).
            args: its arguments (any value; written as strings).
        """
        argv = [str(arg) for arg in args]
        line = shlex.join(["magicnaming", *command.split(), *argv])
        print(f"  $ {line}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            status = entry(argv, prog=f"magicnaming {command}") or 0
        except SystemExit as exit_info:  # argument parsers exit on bad input
            status = exit_info.code if isinstance(exit_info.code, int) else 1
        except (ValueError, TypeError, RuntimeError, OSError) as error:
            raise RuntimeError(f"this step failed: {error}\n  {line}") from error
        if status:
            raise RuntimeError(f"this step failed (exit status {status}; its error is printed above):\n  {line}")
        self.lines.append(line)
        with self.script.open("a") as script:
            script.write(f"{line}   # {time.perf_counter() - started:.1f} s\n")
        return line


def write_overlay(path: Path, settings: dict) -> Path:
    """Writes a YAML overlay (the demo's own settings on top of a stage's config)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path
