"""The benchmarks' command lines in the style of the ``magicnaming`` commands: snake_case flags (``--image_size``),
the dtype option ``--dtype`` (fp32, fp16 or bf16), and a boolean given as ``--flag true`` or ``--flag false``, never
as a bare switch.

A kebab-case spelling of a flag (``--image-size``), a renamed flag (``--precision``, now ``--dtype``) and a bare
boolean (``--tiny``) are refused with the argument and the form expected, where argparse would say only
"unrecognized arguments" or "expected one argument". No old spelling is kept as an alias: one style.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DTYPES = ("fp32", "fp16", "bf16")  # --dtype, as the magicnaming commands take it (there also ``auto``)


def boolean(text: str) -> bool:
    """``true`` or ``false`` (any case), as jsonargparse reads a boolean of the ``magicnaming`` commands."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Boolean(argparse.Action):
    """``--flag true|false``; a bare ``--flag`` (argparse hands it no value) is refused with the form expected."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if values is None:
            parser.error(f"argument {option_string}: expected {option_string} true or {option_string} false, got no "
                         "value (a boolean flag takes its value, as in the magicnaming commands)")  # fmt: skip
        setattr(namespace, self.dest, values)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The module doc as written; a boolean shown as ``--flag {true,false}`` (argparse would write the optional
    value of its bare form, ``[{true,false}]``, which is refused)."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        return "{true,false}" if isinstance(action, _Boolean) else super()._format_args(action, default_metavar)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the module doc's style: ``add_boolean`` for booleans; kebab-case spellings and the flags in
    ``renamed`` (old → new) refused by name."""

    def __init__(self, description: str | None = None, renamed: dict[str, str] | None = None, **options) -> None:
        options.setdefault("formatter_class", _HelpFormatter)
        super().__init__(description=description, **options)
        self.renamed = renamed or {}

    def add_boolean(self, flag: str, help: str | None = None) -> argparse.Action:
        """A boolean flag, false by default: ``--flag true`` or ``--flag false``."""
        return self.add_argument(flag, type=boolean, nargs="?", default=False, action=_Boolean, help=help)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        for item in args:
            flag = item.split("=", 1)[0]
            new = self.renamed.get(flag, "--" + flag[2:].replace("-", "_"))
            if flag.startswith("--") and new != flag and new in self._option_string_actions:
                form = f"{new} true or {new} false" if isinstance(self._option_string_actions[new], _Boolean) else new
                why = "renamed" if flag in self.renamed else "every flag is snake_case"
                self.error(f"argument {flag}: expected {form} ({why}, as in the magicnaming commands)")
        return super().parse_known_args(args, namespace)
