"""Running a command's typed function as a command line (jsonargparse), with the project's help formatting."""

from __future__ import annotations


def run_command(components, argv: list[str], prog: str, description: str | None = None):
    """Runs a command's typed function (or a list or dict of them, as subcommands) with jsonargparse; every
    command's help goes through ``PlainHelpFormatter`` (docstring markup as plain text, types by name)."""
    from jsonargparse import CLI

    from .help_format import PlainHelpFormatter

    options = {"description": description} if description else {}
    return CLI(components, args=argv, prog=prog, as_positional=False, formatter_class=PlainHelpFormatter, **options)
