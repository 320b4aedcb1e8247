"""Running ``magicnaming`` commands in-process and keeping the exact command line of each, for the report.

The demo drives the stages (data pipeline, trainer, plugin) only through their commands and files: the core never
imports a stage, and every figure can name the command that made it.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CommandLog:
    """Runs commands through ``namespace.cli.main`` and records each as a shell line with its duration.

    Attributes:
        script: the file every command line is appended to (a replayable ``commands.sh``).
        lines: the shell lines run so far, in order.
    """

    script: Path
    lines: list[str] = field(default_factory=list)

    def run(self, args: list[str]) -> str:
        """Runs ``magicnaming ARGS`` and returns its shell line; a failing command raises RuntimeError."""
        from namespace.cli import main

        line = shlex.join(["magicnaming", *map(str, args)])
        print(f"  $ {line}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            status = main([str(arg) for arg in args])
        except SystemExit as exit_info:  # argument parsers exit on bad input
            status = exit_info.code if isinstance(exit_info.code, int) else 1
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
