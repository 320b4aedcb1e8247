"""The ``magicnaming`` command: one entry point, a subcommand per job.

Each subcommand lives in its own module with a ``main(argv, prog)``; this dispatcher imports only the chosen one,
so ``magicnaming --help`` is instant and a plugin-only install never imports Lightning or Spark. ``COMMANDS`` is the
one place that names the stages' entries (the import-linter contracts in pyproject.toml and tests/test_layering.py
check every such string against the floors).
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from typing import NamedTuple


class Command(NamedTuple):
    """A ``magicnaming`` command: its entry, ``"module:function"`` taking ``(argv, prog)``, and its line of help."""

    entry: str
    help: str
    demo: bool = False  # one of the demo's own steps, listed under the demo's heading in --help


# tests/test_cli.py imports every entry
COMMANDS: dict[str, Command] = {
    "data": Command("namespace.data_pipeline.commands:main", "build the LaionCele data set from caption parquet"),
    "train": Command("namespace.train.commands:main", "train the name encoder with Lightning (fit, validate, export)"),
    "encoder": Command(
        "namespace.encoder.commands:main",
        "create a name-encoder folder from a config, describe one, write its model card or push it to the Hub",
    ),
    "identity": Command(
        "namespace.inference.identity_commands:main",
        "make identity files: encode images, mix, sample, from text, refine, or one per face of a group photo",
    ),
    "generate": Command(
        "namespace.inference.commands:main_generate", "draw one identity in prompts with any SDXL pipeline"
    ),
    "interpolate": Command(
        "namespace.inference.commands:main_interpolate", "a grid of the path between two identities"
    ),
    "story": Command(
        "namespace.inference.story.commands:main",
        "a story with consistent characters: storyline → editable panels → pages (PNG, PDF)",
    ),
    "app": Command(
        "namespace.inference.app.commands:main", "the web app: identities, generation, fictional people, stories"
    ),
    "evaluate": Command(
        "namespace.inference.evaluation.commands:main",
        "the paper's evaluation on any encoder: CLIP-TI, FID/KID, identity, the δ/η trade-off, a report",
    ),
    "faces": Command("namespace.faces.commands:main", "find, compare and calibrate real faces (the face stack)"),
    "demo": Command("namespace.demo:main", "run the end-to-end demo on the miniature world (offline)", demo=True),
    "miniature": Command(
        "namespace.miniature.commands:main",
        "build the miniature world: a tiny SDXL that knows the sample's people by name",
        demo=True,
    ),
    "likeness": Command(
        "namespace.inference.likeness:main",
        "measure likeness, prompt following and interpolation on a miniature world",
        demo=True,
    ),
}
# subcommands served by another module than their command's: the tiny towers learn the synthetic people, which the
# encoder package (a core module) does not know
SUBCOMMANDS: dict[tuple[str, str], Command] = {
    ("encoder", "pretrain_tiny"): Command(
        "namespace.synthetic.commands:main",
        "pre-train the tiny CLIP towers on synthetic people (random tiny towers cannot tell people apart)",
        demo=True,
    ),
}
DEMO_HEADING = "the demo's commands (it runs them itself; the miniature world, offline):"


def usage() -> str:
    entries = {name: command for name, command in COMMANDS.items()}
    entries |= {" ".join(words): command for words, command in SUBCOMMANDS.items()}
    width = max(map(len, entries))

    def lines(demo: bool) -> str:
        return "\n".join(f"  {name:<{width}}  {c.help}" for name, c in entries.items() if c.demo == demo) + "\n"

    return (
        "usage: magicnaming COMMAND [--help] [--config YAML] [options]\n\n"
        "MagicNaming: consistent identities in any SDXL pipeline.\n\ncommands:\n"
        + lines(demo=False)
        + f"\n{DEMO_HEADING}\n"
        + lines(demo=True)
    )


def _plain_warnings(prog: str) -> None:
    """Our warnings (plain ``UserWarning``: a reference without a face, a prompt cut short) as one line each,
    ``magicnaming generate: warning: ...``, instead of Python's file-and-line form; other categories unchanged."""
    import warnings

    original = getattr(warnings.formatwarning, "python_format", warnings.formatwarning)  # main() may run again

    def one_line(message, category, filename, lineno, line=None):
        if category is UserWarning:
            return f"{prog}: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    one_line.python_format = original
    warnings.formatwarning = one_line


def run_demo(argv: list[str]) -> None:
    """Runs ``magicnaming demo ARGV`` in a process of its own (its threads and seeds stay its own). Handed to the
    commands whose ``main`` takes a ``run_demo`` (the app builds the miniature world with it): a stage never names the
    demo, the floor above it."""
    subprocess.run([sys.executable, "-m", "namespace.cli", "demo", *argv], check=True)


def _entry(argv: list[str]) -> tuple[str, Command, list[str]] | None:
    """The command line's command (its name, as the program names it), its entry and its arguments."""
    if tuple(argv[:2]) in SUBCOMMANDS:
        return " ".join(argv[:2]), SUBCOMMANDS[tuple(argv[:2])], argv[2:]
    if argv[0] in COMMANDS:
        return argv[0], COMMANDS[argv[0]], argv[1:]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"magicnaming {__version__}")
        return 0
    found = _entry(argv)
    if found is None:
        print(f"magicnaming: unknown command {argv[0]!r}; expected one of {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    command, (entry, _, _), rest = found
    module_name, function = entry.split(":")
    _plain_warnings(f"magicnaming {command}")
    try:
        run = getattr(importlib.import_module(module_name), function)
        handed = {"run_demo": run_demo} if "run_demo" in inspect.signature(run).parameters else {}
        return run(rest, prog=f"magicnaming {command}", **handed) or 0
    except (ValueError, TypeError, RuntimeError, OSError) as error:  # bad input: say what, not where
        if os.environ.get("MAGICNAMING_DEBUG"):
            raise
        print(f"magicnaming {command}: error: {error}\n(set MAGICNAMING_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
