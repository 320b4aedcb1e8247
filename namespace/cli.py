"""The ``magicnaming`` command: one entry point, a subcommand per job.

Each subcommand lives in its own module with a ``main(argv, prog)``; this dispatcher imports only the chosen one,
so ``magicnaming --help`` is instant and a plugin-only install never imports Lightning or Spark.
"""

from __future__ import annotations

import importlib
import os
import sys

# name → ("module:function" taking (argv, prog), one-line help); tests/test_cli.py imports every one
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("namespace.demo:main", "run the end-to-end demo on the miniature world (offline)"),
    "encoder": ("namespace.encoder.commands:main", "create a name-encoder folder from a config, or describe one"),
    "miniature": (
        "namespace.miniature.commands:main",
        "build the miniature world: a tiny SDXL that knows the sample's people by name",
    ),
    "evaluate": (
        "namespace.inference.evaluation.commands:main",
        "the paper's evaluation on any encoder: CLIP-TI, FID/KID, identity, the δ/η trade-off, a report",
    ),
    "likeness": (
        "namespace.inference.likeness:main",
        "measure likeness, prompt following and interpolation on a miniature world",
    ),
    "faces": ("namespace.faces.commands:main", "find, compare and calibrate real faces (the face stack)"),
    "data": ("namespace.data_pipeline.commands:main", "build the LaionCele data set from caption parquet"),
    "train": ("namespace.train.commands:main", "train the name encoder with Lightning (fit, validate, export)"),
    "generate": ("namespace.inference.commands:main_generate", "draw one identity in prompts with any SDXL pipeline"),
    "interpolate": ("namespace.inference.commands:main_interpolate", "a grid of the path between two identities"),
    "identity": (
        "namespace.inference.identity_commands:main",
        "make identity files: encode images, mix, sample, or from text",
    ),
    "story": (
        "namespace.inference.story.commands:main",
        "a story with consistent characters: storyline → editable panels → pages (PNG, PDF)",
    ),
    "app": ("namespace.inference.app.commands:main", "the web app: identities, generation, fictional people, stories"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return (
        "usage: magicnaming COMMAND [--help] [--config YAML] [options]\n\n"
        "MagicNaming: consistent identities in any SDXL pipeline.\n\ncommands:\n" + "\n".join(lines) + "\n"
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"magicnaming {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"magicnaming: unknown command {command!r}; expected one of {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    module_name, function = COMMANDS[command][0].split(":")
    _plain_warnings(f"magicnaming {command}")
    try:
        return getattr(importlib.import_module(module_name), function)(rest, prog=f"magicnaming {command}") or 0
    except (ValueError, TypeError, RuntimeError, OSError) as error:  # bad input: say what, not where
        if os.environ.get("MAGICNAMING_DEBUG"):
            raise
        print(f"magicnaming {command}: error: {error}\n(set MAGICNAMING_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
